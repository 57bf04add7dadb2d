# The module manifest's metadata, and the package `build.ps1 Package` writes to out/PSNetfilter.<version>.nupkg:
# its nuspec and files, and that PSResourceGet installs it from a local file repository so that a fresh pwsh
# imports PSNetfilter by name. Needs no root; skipped (with the reason) when out/ has no package.

BeforeDiscovery {
    $moduleDir = if ($env:PSNETFILTER_TEST_MODULE) { $env:PSNETFILTER_TEST_MODULE } else { Join-Path $PSScriptRoot '../../out/PSNetfilter' }
    $outDir = Split-Path -Parent ([IO.Path]::GetFullPath($moduleDir))
    $packages = @(Get-ChildItem -Path (Join-Path $outDir 'PSNetfilter.*.nupkg') -File -ErrorAction SilentlyContinue)
    $PackageSkipReason = if ($packages.Count -eq 0) { "no $outDir/PSNetfilter.*.nupkg: run ./build.ps1 Package (build.ps1 Test does)" }
    $PackageTitle = if ($PackageSkipReason) { "PSNetfilter package (skipped: $PackageSkipReason)" } else { 'PSNetfilter package' }
}

BeforeAll {
    $moduleDir = if ($env:PSNETFILTER_TEST_MODULE) { $env:PSNETFILTER_TEST_MODULE } else { Join-Path $PSScriptRoot '../../out/PSNetfilter' }
    $script:ModuleDir = [IO.Path]::GetFullPath($moduleDir)
    $script:OutDir = Split-Path -Parent $script:ModuleDir
    $script:ManifestPath = Join-Path $script:ModuleDir 'PSNetfilter.psd1'
    $script:Manifest = Import-PowerShellDataFile -LiteralPath $script:ManifestPath

    function Invoke-FreshPwsh {
        # Runs a script in a new pwsh process (the same pwsh as this one) and returns its exit code and output.
        param([Parameter(Mandatory)][string]$Script)
        $exe = [Environment]::ProcessPath
        $pre = @()
        if ([IO.Path]::GetFileNameWithoutExtension($exe) -eq 'dotnet') { $pre = @(Join-Path $PSHOME 'pwsh.dll') }
        $encoded = [Convert]::ToBase64String([Text.Encoding]::Unicode.GetBytes($Script))
        $out = & $exe @pre -NoProfile -NonInteractive -OutputFormat Text -EncodedCommand $encoded 2>&1
        [pscustomobject]@{ ExitCode = $LASTEXITCODE; Output = (@($out | ForEach-Object { "$_" }) -join "`n") }
    }
}

Describe 'The module manifest' {
    It 'is valid' {
        { Test-ModuleManifest -Path $script:ManifestPath -ErrorAction Stop } | Should -Not -Throw
    }

    It 'declares PowerShell 7.4 or later, Core edition only' {
        $script:Manifest.PowerShellVersion | Should -Be '7.4'
        @($script:Manifest.CompatiblePSEditions) | Should -Be @('Core')
    }

    It 'exports cmdlets explicitly: no wildcards, no functions, variables or aliases' {
        $cmdlets = @($script:Manifest.CmdletsToExport)
        $cmdlets.Count | Should -BeGreaterThan 0
        $cmdlets | ForEach-Object { [System.Management.Automation.WildcardPattern]::ContainsWildcardCharacters($_) | Should -BeFalse }
        foreach ($key in 'FunctionsToExport', 'VariablesToExport', 'AliasesToExport') {
            $script:Manifest.ContainsKey($key) | Should -BeTrue -Because "$key must be given (an empty list), or PowerShell exports everything"
            @($script:Manifest[$key]).Count | Should -Be 0
        }
    }

    It 'exports exactly the cmdlets the assembly defines' {
        # Imported by the assembly alone (no manifest), a binary module exports every cmdlet it defines.
        $dll = Join-Path $script:ModuleDir 'PSNetfilter.dll'
        $child = Invoke-FreshPwsh -Script "(Import-Module -Name '$dll' -PassThru).ExportedCmdlets.Keys | Sort-Object"
        $child.ExitCode | Should -Be 0 -Because $child.Output
        $inDll = @($child.Output -split "`n" | Where-Object { $_ -match '^\w+-\w+$' })
        $inDll.Count | Should -BeGreaterThan 0 -Because $child.Output
        @($script:Manifest.CmdletsToExport | Sort-Object) | Should -Be @($inDll | Sort-Object)
    }

    It 'carries the gallery metadata: Linux and netfilter tags, ProjectUri, LicenseUri, ReleaseNotes' {
        $psData = $script:Manifest.PrivateData.PSData
        $psData.Tags | Should -Contain 'Linux'
        $psData.Tags | Should -Contain 'netfilter'
        $psData.Tags | ForEach-Object { $_ | Should -Not -Match '\s' }
        foreach ($key in 'ProjectUri', 'LicenseUri') {
            $uri = $null
            [Uri]::TryCreate([string]$psData[$key], [UriKind]::Absolute, [ref]$uri) | Should -BeTrue -Because "$key must be an absolute URI"
            $uri.Scheme | Should -BeIn 'http', 'https'
        }
        "$($psData.ReleaseNotes)".Trim() | Should -Not -BeNullOrEmpty
        $script:Manifest.Description | Should -Not -BeNullOrEmpty
        $script:Manifest.Author | Should -Not -BeNullOrEmpty
    }
}

Describe $PackageTitle -Skip:([bool]$PackageSkipReason) {
    BeforeAll {
        $script:Package = @(Get-ChildItem -Path (Join-Path $script:OutDir 'PSNetfilter.*.nupkg') -File)
        $script:Version = $script:Manifest.ModuleVersion
        $script:Work = Join-Path ([IO.Path]::GetTempPath()) ('psnfh-pkg-' + [guid]::NewGuid().ToString('n').Substring(0, 8))
        $script:RepoDir = Join-Path $script:Work 'repo'
        $script:SaveDir = Join-Path $script:Work 'modules'
        $script:RepoName = 'PSNetfilterTest' + [guid]::NewGuid().ToString('n').Substring(0, 8)
        $null = New-Item -ItemType Directory -Force -Path $script:RepoDir, $script:SaveDir
        Add-Type -AssemblyName System.IO.Compression.FileSystem
        Import-Module Microsoft.PowerShell.PSResourceGet -ErrorAction Stop
        if ($script:Package.Count -eq 1) {
            Copy-Item -LiteralPath $script:Package[0].FullName -Destination $script:RepoDir
            Register-PSResourceRepository -Name $script:RepoName -Uri $script:RepoDir -Trusted
        }
    }

    AfterAll {
        if ($script:RepoName -and (Get-PSResourceRepository -Name $script:RepoName -ErrorAction SilentlyContinue)) {
            Unregister-PSResourceRepository -Name $script:RepoName
        }
        if ($script:Work -and (Test-Path -LiteralPath $script:Work)) { Remove-Item -LiteralPath $script:Work -Recurse -Force }
    }

    It 'is one package, named after the module version' {
        $script:Package.Count | Should -Be 1 -Because 'build.ps1 Package removes older packages from out/'
        $script:Package[0].Name | Should -Be "PSNetfilter.$($script:Version).nupkg"
    }

    It 'has a nuspec with the manifest metadata' {
        $zip = [System.IO.Compression.ZipFile]::OpenRead($script:Package[0].FullName)
        try {
            $entry = $zip.Entries | Where-Object FullName -eq 'PSNetfilter.nuspec'
            $entry | Should -Not -BeNullOrEmpty
            $reader = [IO.StreamReader]::new($entry.Open())
            try { [xml]$nuspec = $reader.ReadToEnd() } finally { $reader.Dispose() }
        }
        finally { $zip.Dispose() }
        $m = $nuspec.package.metadata
        $m.id | Should -Be 'PSNetfilter'
        $m.version | Should -Be $script:Version
        $tags = $m.tags -split '\s+'
        $tags | Should -Contain 'Linux'
        $tags | Should -Contain 'netfilter'
        $m.projectUrl | Should -Be $script:Manifest.PrivateData.PSData.ProjectUri
        $m.licenseUrl | Should -Be $script:Manifest.PrivateData.PSData.LicenseUri
        "$($m.releaseNotes)".Trim() | Should -Not -BeNullOrEmpty
    }

    It 'holds the module files of out/PSNetfilter, byte for byte, and nothing else of the build' {
        $zip = [System.IO.Compression.ZipFile]::OpenRead($script:Package[0].FullName)
        try {
            $files = @{}
            foreach ($e in $zip.Entries) {
                if ($e.FullName -match '^(_rels/|package/|\[Content_Types\]\.xml$|PSNetfilter\.nuspec$)') { continue }
                $s = $e.Open()
                try { $files[$e.FullName] = [Convert]::ToHexString([Security.Cryptography.SHA256]::HashData($s)) } finally { $s.Dispose() }
            }
        }
        finally { $zip.Dispose() }
        $expected = @{}
        foreach ($f in Get-ChildItem -LiteralPath $script:ModuleDir -Recurse -File) {
            $expected[[IO.Path]::GetRelativePath($script:ModuleDir, $f.FullName).Replace('\', '/')] = (Get-FileHash -LiteralPath $f.FullName -Algorithm SHA256).Hash
        }
        @($files.Keys | Sort-Object) | Should -Be @($expected.Keys | Sort-Object) -Because 'the package must be packed from the current out/PSNetfilter (./build.ps1 Package)'
        foreach ($k in $expected.Keys) { $files[$k] | Should -Be $expected[$k] -Because "$k in the package must be the built one (./build.ps1 Package)" }
        $files.Keys | Should -Contain 'en-US/PSNetfilter.dll-Help.xml'
        $files.Keys | Should -Contain 'PSNetfilter.dll'
        $files.Keys | Where-Object { $_ -match 'System\.Management\.Automation\.dll$|\.pdb$' } | Should -BeNullOrEmpty
    }

    It 'is found in a registered local file repository' {
        $found = Find-PSResource -Name PSNetfilter -Repository $script:RepoName
        $found.Name | Should -Be 'PSNetfilter'
        "$($found.Version)" | Should -Be $script:Version
        $found.Type | Should -Be 'Module'
    }

    It 'installs from the repository into a temporary module folder and imports by name in a fresh pwsh' {
        Save-PSResource -Name PSNetfilter -Repository $script:RepoName -Path $script:SaveDir -TrustRepository -Quiet
        Join-Path $script:SaveDir "PSNetfilter/$($script:Version)/PSNetfilter.psd1" | Should -Exist
        $sep = [IO.Path]::PathSeparator
        $child = Invoke-FreshPwsh -Script @"
`$ErrorActionPreference = 'Stop'
`$env:PSModulePath = '$($script:SaveDir)' + '$sep' + `$env:PSModulePath
`$available = @(Get-Module -ListAvailable -Name PSNetfilter)
Import-Module PSNetfilter
`$m = Get-Module PSNetfilter
`$help = Get-Help New-PortForward
[pscustomobject]@{
    Available  = `$available.Count
    ModuleBase = `$m.ModuleBase
    Version    = "`$(`$m.Version)"
    Cmdlets    = @(Get-Command -Module PSNetfilter | Sort-Object Name | ForEach-Object Name)
    HelpFromFile = @(`$help.PSObject.TypeNames) -contains 'MamlCommandHelpInfo'
    Synopsis   = "`$(`$help.Synopsis)"
} | ConvertTo-Json -Compress
"@
        $child.ExitCode | Should -Be 0 -Because $child.Output
        $json = ($child.Output -split "`n" | Where-Object { $_ -like '{*' } | Select-Object -Last 1)
        $json | Should -Not -BeNullOrEmpty -Because $child.Output
        $r = $json | ConvertFrom-Json
        $r.ModuleBase | Should -BeLike "$($script:SaveDir)*"
        $r.Version | Should -Be $script:Version
        @($r.Cmdlets) | Should -Be @($script:Manifest.CmdletsToExport | Sort-Object)
        $r.HelpFromFile | Should -BeTrue
        $r.Synopsis | Should -Not -BeLike 'New-PortForward *'
    }
}
