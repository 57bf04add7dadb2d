<#
.SYNOPSIS
    Runs every tests/pester/*.Tests.ps1 with Pester 5.7.1 and writes the counts as JSON.

.DESCRIPTION
    Imports Pester 5.7.1 from the NuGet package folder ($env:NUGET_PACKAGES or
    ~/.nuget/packages; `dotnet restore tests/pester/PesterRestore` puts it there), sets
    $env:PSNETFILTER_TEST_MODULE to the built module folder so each test file can
    `Import-Module $env:PSNETFILTER_TEST_MODULE/PSNetfilter.psd1`, runs the suite and
    writes {"Passed":n,"Failed":n,"Skipped":n,...} to -ResultFile. -Tag runs only tests with a tag (e.g.
    Findings, the real-gateway reports), -ExcludeTag leaves tests out.
    Exit code: 0 when nothing failed, 1 otherwise.

.EXAMPLE
    ./tests/pester/Invoke-PesterSuite.ps1 -ModulePath out/PSNetfilter -ResultFile out/TestResults/pester.json
#>
[CmdletBinding()]
param(
    [Parameter(Mandatory)]
    [string]$ModulePath,
    [Parameter(Mandatory)]
    [string]$ResultFile,
    # Optional NUnit XML report.
    [string]$TestResultPath,
    # Optional: run only these test files (default: every *.Tests.ps1 beside this script).
    [string[]]$Path,
    # Optional: run only tests with one of these tags (e.g. Findings).
    [string[]]$Tag,
    # Tests with these tags are left out (default: none). A tag given with -Tag is never left out.
    [string[]]$ExcludeTag = @()
)

$ErrorActionPreference = 'Stop'
Set-StrictMode -Version 3.0

$nugetRoot = if ($env:NUGET_PACKAGES) { $env:NUGET_PACKAGES } else { Join-Path $HOME '.nuget/packages' }
$pesterManifest = Join-Path $nugetRoot 'pester/5.7.1/tools/Pester.psd1'
if (-not (Test-Path -LiteralPath $pesterManifest)) {
    throw "Pester 5.7.1 was not found at '$pesterManifest'. Restore it first: dotnet restore tests/pester/PesterRestore/PesterRestore.csproj (build.ps1 Test does this)."
}
Import-Module $pesterManifest -Force

if (-not (Test-Path -LiteralPath $ModulePath -PathType Container)) {
    Write-Warning "Module folder '$ModulePath' does not exist; tests that import the module will fail."
    $env:PSNETFILTER_TEST_MODULE = [IO.Path]::GetFullPath($ModulePath)
}
else {
    $env:PSNETFILTER_TEST_MODULE = (Resolve-Path -LiteralPath $ModulePath).ProviderPath
}

$files = if ($Path) { @($Path -split "," | Where-Object { $_ }) } else { @(Get-ChildItem -LiteralPath $PSScriptRoot -Filter '*.Tests.ps1' -File | Sort-Object Name | ForEach-Object FullName) }

$config = New-PesterConfiguration
$config.Run.Path = [string[]]@($files)
$config.Run.Exit = $false
$config.Run.PassThru = $true
$config.Output.Verbosity = 'Detailed'
if ($Tag) { $config.Filter.Tag = [string[]]@($Tag) }
$excluded = @($ExcludeTag | Where-Object { $_ -and $Tag -notcontains $_ })
if ($excluded.Count -gt 0) { $config.Filter.ExcludeTag = [string[]]$excluded }
if ($TestResultPath) {
    $config.TestResult.Enabled = $true
    $config.TestResult.OutputFormat = 'NUnitXml'
    $config.TestResult.OutputPath = [IO.Path]::GetFullPath($TestResultPath)
}

function Get-FailedTestCount($Block) {
    $n = @($Block.Tests | Where-Object { $_.Result -eq 'Failed' }).Count
    foreach ($child in @($Block.Blocks)) { $n += Get-FailedTestCount $child }
    $n
}

$counts = [ordered]@{ Passed = 0; Failed = 0; Skipped = 0; NotRun = 0; FailedBlocks = 0; FailedContainers = 0; Files = @($files).Count }
try {
    if (@($files).Count -gt 0) {
        $result = Invoke-Pester -Configuration $config
        $counts.Passed = [int]$result.PassedCount
        $counts.Failed = [int]$result.FailedCount
        $counts.Skipped = [int]$result.SkippedCount
        $counts.NotRun = [int]$result.NotRunCount
        $counts.FailedBlocks = [int]$result.FailedBlocksCount
        $counts.FailedContainers = [int]$result.FailedContainersCount
        # A failing BeforeAll/AfterAll or a test file that does not even load must not go
        # unnoticed: count each such container, and each failed block none of whose tests
        # is already counted as failed (a failing BeforeAll fails its tests too), as one failure.
        $counts.Failed += $counts.FailedContainers
        foreach ($block in @($result.FailedBlocks)) {
            if ((Get-FailedTestCount $block) -eq 0) { $counts.Failed += 1 }
        }
    }
    else {
        Write-Warning "No *.Tests.ps1 files under $PSScriptRoot."
    }
}
catch {
    # Pester itself broke: that is a failure, never a quiet zero.
    $counts.Failed += 1
    Write-Error "Invoke-Pester failed: $_" -ErrorAction Continue
}
finally {
    $dir = Split-Path -Parent ([IO.Path]::GetFullPath($ResultFile))
    if ($dir) { $null = New-Item -ItemType Directory -Force -Path $dir }
    $counts | ConvertTo-Json -Compress | Set-Content -LiteralPath $ResultFile -Encoding utf8
}

exit ([int]($counts.Failed -gt 0))
