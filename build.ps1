#Requires -Version 7.4

<#
.SYNOPSIS
    Build, test and demo script for PSNetfilter.

.DESCRIPTION
    Tasks (several may be given; they run in order):

      Build    dotnet publish src/PSNetfilter, then assemble out/PSNetfilter/ from the
               published assemblies (never System.Management.Automation.dll) and module/*,
               and compile docs/cmdlets/*.md into en-US/PSNetfilter.dll-Help.xml
               (build/HelpCompiler.ps1).
      Test     Build and Package, then the xunit tests (dotnet test, trx in out/TestResults) and the
               Pester suite (tests/pester/Invoke-PesterSuite.ps1, in a child pwsh). The last
               line printed is "N passed, N failed[, N skipped]" summed over both runners;
               the exit code is 1 when anything failed or a runner produced no results.
      Demo     Build, then demo/Start-Demo.ps1 in a child pwsh.
      Package  Build, then pack out/PSNetfilter into out/PSNetfilter.<version>.nupkg
               (Compress-PSResource; install it from a local repository with
               Register-PSResourceRepository and Install-PSResource).
      Clean    Remove out/ and the bin/obj folders under src/ and tests/.

    Test and Demo need root, iproute2 and iptables; when a tool is missing and we are
    root, they are installed with apt-get, which waits (up to 5 minutes, saying so) while another package
    manager holds the package lock. Runs from any working directory.

.EXAMPLE
    dotnet tool restore && dotnet pwsh -NoProfile -File ./build.ps1 Test
#>
[CmdletBinding()]
param(
    # Several tasks: ./build.ps1 Clean Build (works with pwsh -File too).
    [Parameter(Position = 0, ValueFromRemainingArguments)]
    [ValidateSet('Build', 'Test', 'Demo', 'Package', 'Clean')]
    [string[]]$Task = 'Build',

    [string]$Configuration = 'Release'
)

$ErrorActionPreference = 'Stop'
Set-StrictMode -Version 3.0

$Root = $PSScriptRoot
$OutDir = Join-Path $Root 'out'
$ModuleOut = Join-Path $OutDir 'PSNetfilter'
$TestResultsDir = Join-Path $OutDir 'TestResults'

# Quiet, colourless, telemetry-free children.
$env:NO_COLOR = '1'
$env:DOTNET_CLI_TELEMETRY_OPTOUT = '1'
$env:DOTNET_NOLOGO = '1'
$env:DOTNET_SKIP_FIRST_TIME_EXPERIENCE = '1'
$env:POWERSHELL_TELEMETRY_OPTOUT = '1'
$env:POWERSHELL_UPDATECHECK = 'Off'
$PSStyle.OutputRendering = 'PlainText'
# iproute2/iptables live in sbin, which is not always on PATH.
foreach ($dir in '/usr/local/sbin', '/usr/sbin', '/sbin') {
    if (($env:PATH -split ':') -notcontains $dir) { $env:PATH = "$env:PATH`:$dir" }
}

$script:Built = $false
$script:ExitCode = 0
$script:Summary = $null

#region helpers

function Write-Step([string]$Message) {
    Write-Host "==> $Message"
}

function Get-DotnetPath {
    $processPath = [Environment]::ProcessPath
    if ([IO.Path]::GetFileNameWithoutExtension($processPath) -eq 'dotnet') { return $processPath }
    $cmd = Get-Command dotnet -CommandType Application -ErrorAction SilentlyContinue | Select-Object -First 1
    if ($cmd) { return $cmd.Source }
    throw 'dotnet was not found on PATH.'
}

. (Join-Path $PSScriptRoot 'build/PwshInvocation.ps1') # Get-PwshInvocation, shared with the tests
. (Join-Path $PSScriptRoot 'build/AptGet.ps1')         # Invoke-AptGet (waits for another package manager), shared with the tests

function Invoke-Native {
    # Runs a native command with its output shown; throws on a non-zero exit code unless
    # -AllowFailure, in which case the exit code is returned.
    param(
        [Parameter(Mandatory)][string]$FilePath,
        [string[]]$ArgumentList = @(),
        [switch]$AllowFailure
    )
    Write-Host "    $FilePath $($ArgumentList -join ' ')"
    & $FilePath @ArgumentList | Out-Host
    $code = $LASTEXITCODE
    if ($code -ne 0 -and -not $AllowFailure) {
        throw "'$FilePath $($ArgumentList -join ' ')' failed with exit code $code."
    }
    if ($AllowFailure) { return $code }
}

function Invoke-ChildPwsh {
    # Runs a script in a child pwsh (fresh session); returns its exit code.
    param([Parameter(Mandatory)][string]$Script, [string[]]$ArgumentList = @())
    $pwsh = Get-PwshInvocation
    $exe = $pwsh[0]
    $pre = @($pwsh | Select-Object -Skip 1)
    Invoke-Native -FilePath $exe -ArgumentList ($pre + @('-NoProfile', '-NonInteractive', '-File', $Script) + $ArgumentList) -AllowFailure
}

function Test-IsRoot {
    try { return ((& id -u) -eq '0') } catch { return $false }
}

function Install-Prerequisite {
    # iproute2 (ip, ss) and iptables are needed by the lab, the tests and the demo.
    $tools = 'ip', 'ss', 'iptables', 'iptables-save', 'iptables-restore', 'ip6tables', 'ip6tables-save', 'ip6tables-restore'
    $missing = @($tools | Where-Object { -not (Get-Command $_ -CommandType Application -ErrorAction SilentlyContinue) })
    $packages = @('iptables', 'iproute2')
    # The module reads sysctls with procps' sysctl, which minimal images lack.
    if (-not (Get-Command sysctl -CommandType Application -ErrorAction SilentlyContinue)) { $missing += 'sysctl'; $packages += 'procps' }
    # The module enters named network namespaces with util-linux's nsenter (present on Debian; not in every image).
    if (-not (Get-Command nsenter -CommandType Application -ErrorAction SilentlyContinue)) { $missing += 'nsenter'; $packages += 'util-linux' }
    # Test-PortForward reads the conntrack table (unreplied -NoSnat connections) with conntrack(8) when present.
    if (-not (Get-Command conntrack -CommandType Application -ErrorAction SilentlyContinue)) { $missing += 'conntrack'; $packages += 'conntrack' }
    # Test-PortForward and New-PortForward read the other nftables tables (firewalld, libvirt, /etc/nftables.conf) with nft.
    if (-not (Get-Command nft -CommandType Application -ErrorAction SilentlyContinue)) { $missing += 'nft'; $packages += 'nftables' }
    if ($missing.Count -eq 0) { return }
    if (-not (Test-IsRoot)) {
        Write-Warning "Missing tools: $($missing -join ', '). Install them (as root: apt-get install -y $($packages -join ' '))."
        return
    }
    if (-not (Get-Command apt-get -ErrorAction SilentlyContinue)) {
        Write-Warning "Missing tools: $($missing -join ', '), and apt-get is not available to install them."
        return
    }
    Write-Step "Installing $($packages -join ', ') (missing: $($missing -join ', '))"
    # Another package manager (unattended-upgrades, another apt-get) may hold the lock: wait for it, up to 5 minutes.
    $null = Invoke-AptGet -ArgumentList @('update') -Check
    $null = Invoke-AptGet -ArgumentList (@('install', '-y') + $packages) -Check
}

#endregion

#region tasks

function Invoke-BuildTask {
    if ($script:Built) { return }
    $dotnet = Get-DotnetPath
    $publishDir = Join-Path ([IO.Path]::GetTempPath()) "psnf-publish-$PID"
    try {
        Write-Step "Publishing src/PSNetfilter ($Configuration)"
        if (Test-Path -LiteralPath $publishDir) { Remove-Item -LiteralPath $publishDir -Recurse -Force }
        Invoke-Native -FilePath $dotnet -ArgumentList @('publish', (Join-Path $Root 'src/PSNetfilter/PSNetfilter.csproj'),
            '-c', $Configuration, '-o', $publishDir, '--nologo')

        Write-Step "Assembling $ModuleOut"
        if (Test-Path -LiteralPath $ModuleOut) { Remove-Item -LiteralPath $ModuleOut -Recurse -Force }
        $null = New-Item -ItemType Directory -Force -Path $ModuleOut
        $dlls = @(Get-ChildItem -LiteralPath $publishDir -Filter '*.dll' -File |
                Where-Object { $_.Name -ne 'System.Management.Automation.dll' })
        if (-not ($dlls | Where-Object Name -eq 'PSNetfilter.dll')) {
            throw "dotnet publish did not produce PSNetfilter.dll in $publishDir."
        }
        $dlls | Copy-Item -Destination $ModuleOut

        $moduleSrc = Join-Path $Root 'module'
        if (Test-Path -LiteralPath $moduleSrc) {
            Get-ChildItem -LiteralPath $moduleSrc -Force | Copy-Item -Destination $ModuleOut -Recurse -Force
        }
        if (-not (Test-Path -LiteralPath (Join-Path $ModuleOut 'PSNetfilter.psd1'))) {
            Write-Warning 'module/PSNetfilter.psd1 does not exist yet: out/PSNetfilter cannot be imported by manifest.'
        }

        # Help: docs/cmdlets/Verb-Noun.md -> the MAML file Get-Help reads for the binary module.
        Write-Step 'Compiling help from docs/cmdlets'
        $null = & (Join-Path $Root 'build/HelpCompiler.ps1') -SourcePath (Join-Path $Root 'docs/cmdlets') `
            -OutputPath (Join-Path $ModuleOut 'en-US/PSNetfilter.dll-Help.xml')
        Get-ChildItem -LiteralPath $ModuleOut -Recurse -File | ForEach-Object {
            Write-Host "    $([IO.Path]::GetRelativePath($Root, $_.FullName))"
        }
    }
    finally {
        if (Test-Path -LiteralPath $publishDir) { Remove-Item -LiteralPath $publishDir -Recurse -Force -ErrorAction SilentlyContinue }
    }
    $script:Built = $true
}

function Read-TrxCount([string]$Path) {
    [xml]$trx = Get-Content -LiteralPath $Path -Raw
    $c = $trx.TestRun.ResultSummary.Counters
    $get = { param($name) $v = $c.GetAttribute($name); if ($v) { [int]$v } else { 0 } }
    $total = & $get 'total'
    $executed = & $get 'executed'
    [pscustomobject]@{
        Passed  = & $get 'passed'
        Failed  = (& $get 'failed') + (& $get 'error') + (& $get 'timeout') + (& $get 'aborted')
        Skipped = [Math]::Max((& $get 'notExecuted'), $total - $executed)
    }
}

function Invoke-TestTask {
    $dotnet = Get-DotnetPath
    $problems = [System.Collections.Generic.List[string]]::new()
    $passed = 0; $failed = 0; $skipped = 0

    try { Install-Prerequisite }
    catch {
        Write-Host "INSTALLING PREREQUISITES FAILED: $_"
        $problems.Add('installing iptables/iproute2 failed')
    }
    try { Invoke-BuildTask; Invoke-PackageTask }
    catch {
        Write-Host "BUILD FAILED: $_"
        $problems.Add('module build failed')
    }

    if (Test-Path -LiteralPath $TestResultsDir) { Remove-Item -LiteralPath $TestResultsDir -Recurse -Force }
    $null = New-Item -ItemType Directory -Force -Path $TestResultsDir

    # --- xunit ---
    Write-Step 'Running xunit tests'
    $trx = Join-Path $TestResultsDir 'xunit.trx'
    $xunitExit = Invoke-Native -FilePath $dotnet -AllowFailure -ArgumentList @('test',
        (Join-Path $Root 'tests/PSNetfilter.Tests/PSNetfilter.Tests.csproj'), '-c', $Configuration, '--nologo',
        '--logger', 'trx;LogFileName=xunit.trx', '--results-directory', $TestResultsDir)
    $xunit = $null
    if (Test-Path -LiteralPath $trx) {
        try { $xunit = Read-TrxCount $trx } catch { Write-Host "Could not read ${trx}: $_" }
    }
    if ($xunit) {
        if ($xunitExit -ne 0 -and $xunit.Failed -eq 0) {
            # dotnet test failed without a failed test (crash, aborted run).
            $problems.Add("dotnet test exited with $xunitExit without failed tests")
        }
        $passed += $xunit.Passed; $failed += $xunit.Failed; $skipped += $xunit.Skipped
    }
    else {
        $problems.Add("xunit did not run (dotnet test exit code $xunitExit, no $([IO.Path]::GetRelativePath($Root, $trx)))")
    }

    # --- Pester ---
    Write-Step 'Restoring Pester 5.7.1'
    $pesterRestore = Invoke-Native -FilePath $dotnet -AllowFailure -ArgumentList @('restore',
        (Join-Path $Root 'tests/pester/PesterRestore/PesterRestore.csproj'), '--nologo')
    if ($pesterRestore -ne 0) { $problems.Add('Pester restore failed') }

    Write-Step 'Running Pester tests'
    $pesterJson = Join-Path $TestResultsDir 'pester.json'
    $pesterExit = Invoke-ChildPwsh -Script (Join-Path $Root 'tests/pester/Invoke-PesterSuite.ps1') -ArgumentList @(
        '-ModulePath', $ModuleOut, '-ResultFile', $pesterJson, '-TestResultPath', (Join-Path $TestResultsDir 'pester.xml'))
    $pester = $null
    if (Test-Path -LiteralPath $pesterJson) {
        try { $pester = Get-Content -LiteralPath $pesterJson -Raw | ConvertFrom-Json } catch { Write-Host "Could not read ${pesterJson}: $_" }
    }
    if ($pester) {
        $passed += [int]$pester.Passed; $failed += [int]$pester.Failed; $skipped += [int]$pester.Skipped
        if ($pesterExit -ne 0 -and [int]$pester.Failed -eq 0) {
            $problems.Add("Pester suite exited with $pesterExit without failed tests")
        }
    }
    else {
        $problems.Add("Pester did not run (exit code $pesterExit, no $([IO.Path]::GetRelativePath($Root, $pesterJson)))")
    }

    # --- summary ---
    Write-Host ''
    Write-Host '==> Test summary'
    if ($xunit) { Write-Host ("    xunit  - passed {0}, failed {1}, skipped {2}" -f $xunit.Passed, $xunit.Failed, $xunit.Skipped) }
    if ($pester) { Write-Host ("    pester - passed {0}, failed {1}, skipped {2}" -f $pester.Passed, $pester.Failed, $pester.Skipped) }
    foreach ($p in $problems) { Write-Host "    PROBLEM - $p (counted as one failure)" }
    # A build that failed or a runner that did not run is a failure too.
    $failed += $problems.Count

    $line = "$passed passed, $failed failed"
    if ($skipped -gt 0) { $line += ", $skipped skipped" }
    $script:Summary = $line
    if ($failed -gt 0) { $script:ExitCode = 1 }
}

function Invoke-DemoTask {
    Install-Prerequisite
    Invoke-BuildTask
    Write-Step 'Running demo/Start-Demo.ps1'
    $code = Invoke-ChildPwsh -Script (Join-Path $Root 'demo/Start-Demo.ps1') -ArgumentList @('-ModulePath', $ModuleOut)
    if ($code -ne 0) {
        Write-Host "Demo failed (exit code $code)."
        $script:ExitCode = 1
    }
}

function Invoke-PackageTask {
    # out/PSNetfilter.<version>.nupkg: the assembled module folder packed as a PowerShell module package
    # (Compress-PSResource writes the nuspec from the manifest: tags, ProjectUri, LicenseUri, ReleaseNotes).
    Invoke-BuildTask
    $manifest = Import-PowerShellDataFile -LiteralPath (Join-Path $ModuleOut 'PSNetfilter.psd1')
    $version = $manifest.ModuleVersion
    Write-Step "Packing PSNetfilter $version"
    Import-Module Microsoft.PowerShell.PSResourceGet -ErrorAction Stop
    $staging = Join-Path ([IO.Path]::GetTempPath()) "psnf-package-$PID"
    try {
        if (Test-Path -LiteralPath $staging) { Remove-Item -LiteralPath $staging -Recurse -Force }
        $null = New-Item -ItemType Directory -Force -Path $staging
        Compress-PSResource -Path $ModuleOut -DestinationPath $staging
        $nupkg = @(Get-ChildItem -LiteralPath $staging -Filter 'PSNetfilter.*.nupkg' -File)
        if ($nupkg.Count -ne 1) { throw "Compress-PSResource produced $($nupkg.Count) packages in $staging, expected 1." }
        Get-ChildItem -LiteralPath $OutDir -Filter 'PSNetfilter.*.nupkg' -File | Remove-Item -Force
        $target = Join-Path $OutDir "PSNetfilter.$version.nupkg"
        Move-Item -LiteralPath $nupkg[0].FullName -Destination $target -Force
        Write-Host "    $([IO.Path]::GetRelativePath($Root, $target))"
    }
    finally {
        if (Test-Path -LiteralPath $staging) { Remove-Item -LiteralPath $staging -Recurse -Force -ErrorAction SilentlyContinue }
    }
}

function Invoke-CleanTask {
    Write-Step 'Cleaning'
    $targets = @($OutDir) + @(
        foreach ($top in 'src', 'tests') {
            $dir = Join-Path $Root $top
            if (Test-Path -LiteralPath $dir) {
                Get-ChildItem -LiteralPath $dir -Directory -Recurse |
                    Where-Object { $_.Name -in 'bin', 'obj' -and (Test-Path -Path (Join-Path $_.Parent.FullName '*.csproj')) } |
                    ForEach-Object FullName
            }
        })
    foreach ($t in $targets) {
        if (Test-Path -LiteralPath $t) {
            Write-Host "    removing $([IO.Path]::GetRelativePath($Root, $t))"
            Remove-Item -LiteralPath $t -Recurse -Force
        }
    }
    $script:Built = $false
}

#endregion

try {
    foreach ($t in $Task) {
        switch ($t) {
            'Build' { Invoke-BuildTask }
            'Test' { Invoke-TestTask }
            'Demo' { Invoke-DemoTask }
            'Package' { Invoke-PackageTask }
            'Clean' { Invoke-CleanTask }
        }
    }
}
catch {
    Write-Host "ERROR: $($_.Exception.Message)"
    if ($_.InvocationInfo) { Write-Host $_.InvocationInfo.PositionMessage }
    $script:ExitCode = 1
}

# The test summary is the very last line of output.
if ($script:Summary) { Write-Host $script:Summary }
exit $script:ExitCode
