# nft 1.1.x: the nftables backend with the nft of Debian trixie (1.1.3 in the cached gateway image of
# tests/pester/gateways/GatewayLab.psm1), where the rest of the suite runs this machine's nft (1.0.6 on bookworm).
#
# A wrapper named nft, first on PATH, runs the image's /usr/sbin/nft with chroot (a file given with -f is fed on
# stdin, since the image cannot see this system's files) and logs each call. With PSNETFILTER_NFT_RUNNER=process the
# module runs the nft executable instead of this system's libnftables, so every change, listing and test assertion
# goes through trixie's nft:
#   - NftablesBackend.Tests.ps1 and NftablesCoexistence.Tests.ps1 run again in a child pwsh, and must pass;
#   - a boot set of nftables forwards (apply.sh + forwards.nft) is started over its identical live forwards and
#     must leave them alone, which needs the script's reading of nft 1.1's listing to match its own load.
# Namespaces: the child suites' own (psnfk*, psnfc*), and psnfV-* here; all deleted afterwards.

BeforeDiscovery {
    $isRoot = (& id -u) -eq '0'
    $SkipReason = $null
    if ($env:CI -ne 'true' -and -not $isRoot) {
        $SkipReason = 'needs root (network namespaces, debootstrap of the trixie image)'
    }
    $Title = if ($SkipReason) { "nft 1.1 of Debian trixie (skipped: $SkipReason)" } else { 'nft 1.1 of Debian trixie' }
}

Describe $Title -Tag 'Gateways' -Skip:([bool]$SkipReason) {
    BeforeAll {
        $ErrorActionPreference = 'Stop'
        $script:ModulePath = if ($env:PSNETFILTER_TEST_MODULE) { $env:PSNETFILTER_TEST_MODULE } else { Join-Path $PSScriptRoot '../../out/PSNetfilter' }
        Import-Module (Join-Path $script:ModulePath 'PSNetfilter.psd1') -Force
        foreach ($dir in '/usr/local/sbin', '/usr/sbin', '/sbin') {
            if (($env:PATH -split ':') -notcontains $dir) { $env:PATH = "$env:PATH`:$dir" }
        }
        Import-Module (Join-Path $PSScriptRoot 'persistence/PersistenceTestHelpers.psm1') -Force
        Install-PsnfpPackage -Command @{ 'ip' = 'iproute2'; 'debootstrap' = 'debootstrap'; 'nsenter' = 'util-linux'; 'iptables' = 'iptables' }
        Import-Module (Join-Path $PSScriptRoot 'gateways/GatewayLab.psm1') -Force
        Import-Module (Join-Path $PSScriptRoot '../lab/PSNetfilterLab.psm1') -Force

        $script:Rootfs = Get-H5lGatewayRootfs
        $script:Work = Join-Path ([IO.Path]::GetTempPath()) ('psnfV-' + [guid]::NewGuid().ToString('N').Substring(0, 10))
        $null = New-Item -ItemType Directory -Path "$($script:Work)/bin"
        $script:Log = "$($script:Work)/nft.log"
        $wrapper = @"
#!/bin/sh
# nft of the trixie image for the tests: a file given with -f is read here and fed on stdin.
echo "`$*" >>'$($script:Log)'
if [ `$# -eq 2 ] && [ "`$1" = -f ] && [ "`$2" != - ]; then
    exec chroot '$($script:Rootfs)' /usr/sbin/nft -f - <"`$2"
fi
exec chroot '$($script:Rootfs)' /usr/sbin/nft "`$@"
"@
        [IO.File]::WriteAllText("$($script:Work)/bin/nft", ($wrapper -replace "`r", '') + "`n")
        & chmod 0755 "$($script:Work)/bin/nft"
        $script:Path = "$($script:Work)/bin:$env:PATH"
    }

    AfterAll {
        if ($script:Work -and (Test-Path -LiteralPath $script:Work)) { Remove-Item -LiteralPath $script:Work -Recurse -Force }
    }

    It 'the wrapper is the nft of trixie, version 1.1' {
        $version = & "$($script:Work)/bin/nft" --version
        $version | Should -Match '^nftables v1\.1\.'
    }

    It 'the nftables backend suites pass with it (<_>)' -ForEach @('NftablesBackend.Tests.ps1', 'NftablesCoexistence.Tests.ps1') {
        $result = "$($script:Work)/$_.json"
        $before = if (Test-Path -LiteralPath $script:Log) { @(Get-Content -LiteralPath $script:Log).Count } else { 0 }
        # This pwsh again (run as a dotnet tool, it is dotnet with pwsh.dll).
        $exe = [Environment]::ProcessPath
        $pre = if ([IO.Path]::GetFileNameWithoutExtension($exe) -eq 'dotnet') { @(Join-Path $PSHOME 'pwsh.dll') } else { @() }
        $psi = [Diagnostics.ProcessStartInfo]::new($exe)
        foreach ($a in @($pre) + @('-NoProfile', '-NonInteractive', '-File', (Join-Path $PSScriptRoot 'Invoke-PesterSuite.ps1'), '-ModulePath', $script:ModulePath, '-ResultFile', $result, '-Path', (Join-Path $PSScriptRoot $_))) {
            $psi.ArgumentList.Add($a)
        }
        $psi.Environment['PATH'] = $script:Path
        $psi.Environment['PSNETFILTER_NFT_RUNNER'] = 'process'
        $psi.Environment['PSNETFILTER_TEST_MODULE'] = $script:ModulePath
        $psi.RedirectStandardOutput = $true
        $psi.RedirectStandardError = $true
        $p = [Diagnostics.Process]::Start($psi)
        $out = $p.StandardOutput.ReadToEndAsync()
        $err = $p.StandardError.ReadToEndAsync()
        $p.WaitForExit()
        $text = $out.Result + $err.Result
        Test-Path -LiteralPath $result | Should -BeTrue -Because "the child wrote its result ($($p.ExitCode)): $text"
        $summary = Get-Content -LiteralPath $result -Raw | ConvertFrom-Json
        $summary.Failed | Should -Be 0 -Because $text
        $summary.Passed | Should -BeGreaterThan 5 -Because $text
        @(Get-Content -LiteralPath $script:Log).Count | Should -BeGreaterThan ($before + 10) -Because 'the suite ran through the trixie nft'
    }

    It 'a boot set of nftables forwards, started over them with trixie nft, leaves them alone' {
        $lab = New-PSNetfilterLab -Prefix 'psnfV'
        try {
            $gw = $lab.Gateway
            $env:PSNETFILTER_NFT_RUNNER = 'process'
            $oldPath = $env:PATH
            $env:PATH = $script:Path
            $w = @{ NetworkNamespace = $gw; Backend = 'Nftables'; WarningAction = 'SilentlyContinue' }
            $null = New-PortForward @w -Name web -ExternalAddress $lab.GatewayExternalAddress -ExternalPort 8080 -InternalAddress $lab.ServerAddress -Description 'trixie'
            $null = New-PortForward @w -Name ssh -ExternalPort 2222 -InternalAddress $lab.ServerAddress -InternalPort 22 -SourceAddress 192.0.2.0/24
            $root = "$($script:Work)/root"
            $null = New-Item -ItemType Directory -Path $root
            $svc = Get-PortForward -NetworkNamespace $gw | Install-PortForwardService -NetworkNamespace $gw -Root $root -NoStart -WarningAction SilentlyContinue
            $script = Get-Content -LiteralPath $svc.ScriptPath -Raw
            # The installed file and trixie's nft: the nft file under the test's root, the wrapper first on the script's PATH.
            $script = $script.Replace("PSNF_NFT_FILE='/etc/", "PSNF_NFT_FILE='$root/etc/").Replace("`nPATH=/usr/local/sbin:", "`nPATH=$($script:Work)/bin:/usr/local/sbin:")
            [IO.File]::WriteAllText($svc.ScriptPath, $script)
            $before = & ip netns exec $gw nft -a list table inet psnetfilter
            $calls = @(Get-Content -LiteralPath $script:Log).Count
            $out = & ip netns exec $gw /bin/sh $svc.ScriptPath start 2>&1
            $LASTEXITCODE | Should -Be 0 -Because ($out -join "`n")
            ($out -join "`n") | Should -Match 'left alone: ssh web; 0 live parts'
            @(Get-Content -LiteralPath $script:Log).Count | Should -BeGreaterThan $calls -Because 'the script ran the trixie nft'
            & ip netns exec $gw nft -a list table inet psnetfilter | Should -Be $before
        }
        finally {
            $env:PATH = $oldPath
            Remove-Item Env:PSNETFILTER_NFT_RUNNER -ErrorAction SilentlyContinue
            Remove-PSNetfilterLab -Lab $lab
        }
    }
}
