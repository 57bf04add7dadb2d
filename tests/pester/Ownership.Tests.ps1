# What the module may touch (issue 14, items 1, 2 and 10):
# - units it did not write, in a real Debian image root (an overlay of the cached debootstrap rootfs the
#   persistence suite boots), are refused with ForeignUnitExists naming the file, and nothing changes;
# - a blank or malformed -NetworkNamespace, given directly or from the pipeline, is InvalidNetworkNamespace on
#   every cmdlet, and is never taken as the host's namespace;
# - the lock files of deleted namespaces are removed, except one that another process holds.
# Namespaces made here are named h1u-<random>, and are deleted again (AfterAll), as are the overlay and the
# temporary folders.

BeforeDiscovery {
    $isRoot = (& id -u) -eq '0'
    $OwnSkipReason = $null
    if ($env:CI -ne 'true' -and -not $isRoot) {
        $OwnSkipReason = 'needs root (network namespaces, mounts, /run/psnetfilter)'
    }
    $OwnTitle = if ($OwnSkipReason) { "Ownership and names (skipped: $OwnSkipReason)" } else { 'Ownership and names' }
}

Describe $OwnTitle -Skip:([bool]$OwnSkipReason) {
    BeforeAll {
        $ErrorActionPreference = 'Stop'
        $modulePath = if ($env:PSNETFILTER_TEST_MODULE) { $env:PSNETFILTER_TEST_MODULE } else { Join-Path $PSScriptRoot '../../out/PSNetfilter' }
        Import-Module (Join-Path $modulePath 'PSNetfilter.psd1') -Force
        Import-Module (Join-Path $PSScriptRoot 'persistence/PersistenceTestHelpers.psm1') -Force
        foreach ($dir in '/usr/local/sbin', '/usr/sbin', '/sbin') {
            if (($env:PATH -split ':') -notcontains $dir) { $env:PATH = "$env:PATH`:$dir" }
        }
        Install-PsnfpPackage -Command @{ 'ip' = 'iproute2'; 'iptables' = 'iptables'; 'debootstrap' = 'debootstrap'; 'flock' = 'util-linux' }

        $script:Namespaces = [System.Collections.Generic.List[string]]::new()
        $script:Work = Join-Path ([IO.Path]::GetTempPath()) ('h1u-own-' + [guid]::NewGuid().ToString('n').Substring(0, 8))
        $null = New-Item -ItemType Directory -Path $script:Work
        $script:Overlay = $null

        function script:New-OwnNamespace {
            $name = 'h1u-' + (-join ([System.Security.Cryptography.RandomNumberGenerator]::GetBytes(4) | ForEach-Object { $_.ToString('x2') }))
            Invoke-PsnfpProcess ip -ArgumentList @('netns', 'add', $name) -Check | Out-Null
            $script:Namespaces.Add($name)
            $name
        }

        function script:Remove-OwnNamespace([string]$Name) {
            if (Test-Path -LiteralPath "/run/netns/$Name") { Invoke-PsnfpProcess ip -ArgumentList @('netns', 'delete', $Name) -Check | Out-Null }
        }

        function script:Get-Failures([scriptblock]$Script) {
            # Every ErrorRecord a call writes or throws, in order.
            $errs = [System.Collections.Generic.List[System.Management.Automation.ErrorRecord]]::new()
            try {
                & { $ErrorActionPreference = 'Continue'; & $Script } 2>&1 | ForEach-Object {
                    if ($_ -is [System.Management.Automation.ErrorRecord]) { $errs.Add($_) }
                }
            }
            catch {
                $errs.Add($_)
            }
            $errs.ToArray()
        }

        function script:Get-Tree([string]$Dir) {
            # Every path under a folder with its kind and, for a file, its hash: "nothing changed" checks.
            [string[]]$items = @(Get-ChildItem -LiteralPath $Dir -Recurse -Force -ErrorAction SilentlyContinue | ForEach-Object {
                    $kind = if ($_.LinkTarget) { "-> $($_.LinkTarget)" } elseif ($_.PSIsContainer) { 'dir' } else { (Get-FileHash -LiteralPath $_.FullName).Hash }
                    "$([IO.Path]::GetRelativePath($Dir, $_.FullName)) $kind"
                })
            [Array]::Sort($items, [StringComparer]::Ordinal)
            $items
        }

        # One forward to persist, read from a namespace of its own.
        $script:Src = New-OwnNamespace
        $script:Forward = New-PortForward -NetworkNamespace $script:Src -Name web -ExternalPort 8080 -InternalAddress 198.51.100.10 -SnatAddress 198.51.100.1 -WarningAction SilentlyContinue
    }

    AfterAll {
        if ($script:Overlay) { Remove-PsnfpOverlay $script:Overlay }
        foreach ($ns in $script:Namespaces) { Remove-OwnNamespace $ns; Remove-Item -LiteralPath "/run/psnetfilter/netns-$ns.lock" -Force -ErrorAction SilentlyContinue }
        if ($script:Work -and (Test-Path -LiteralPath $script:Work)) { Remove-Item -LiteralPath $script:Work -Recurse -Force }
    }

    Context 'units it did not write, in a real Debian image' {
        BeforeAll {
            $script:Overlay = New-PsnfpOverlay -Rootfs (Get-PsnfpRootfs)
            $script:Image = $script:Overlay.Root
            # What a package (sshd) and an admin (myapp, foreign) put there.
            Set-Content -LiteralPath "$($script:Image)/usr/lib/systemd/system/sshd.service" -Value "[Unit]`nDescription=OpenBSD Secure Shell server`n[Service]`nExecStart=/usr/sbin/sshd -D`n[Install]`nWantedBy=multi-user.target"
            Set-Content -LiteralPath "$($script:Image)/etc/systemd/system/myapp.service" -Value "[Service]`nExecStart=/usr/local/bin/myapp"
            Set-Content -LiteralPath "$($script:Image)/etc/systemd/system/foreign.service" -Value "[Service]`nExecStart=/bin/true"
            $null = New-Item -ItemType Directory -Force -Path "$($script:Image)/etc/systemd/system/multi-user.target.wants"
            $null = New-Item -ItemType SymbolicLink -Path "$($script:Image)/etc/systemd/system/multi-user.target.wants/foreign.service" -Target /etc/systemd/system/foreign.service
            $null = New-Item -ItemType SymbolicLink -Path "$($script:Image)/etc/systemd/system/multi-user.target.wants/sshd.service" -Target /lib/systemd/system/sshd.service
            $script:Before = Get-Tree "$($script:Image)/etc"
        }

        It 'refuses -Name <Name>, which would <Does> <File>, and writes nothing (also with -WhatIf)' -ForEach @(
            @{ Name = 'sshd'; Does = 'shadow'; File = 'usr/lib/systemd/system/sshd.service' }
            @{ Name = 'myapp'; Does = 'overwrite'; File = 'etc/systemd/system/myapp.service' }
            @{ Name = 'apt-daily.service'; Does = 'shadow'; File = 'usr/lib/systemd/system/apt-daily.service' }
        ) {
            foreach ($whatIf in $false, $true) {
                $e = @(Get-Failures { $script:Forward | Install-PortForwardService -Name $Name -Root $script:Image -NoStart -WhatIf:$whatIf -WarningAction SilentlyContinue })
                $e.Count | Should -Be 1
                $e[0].FullyQualifiedErrorId | Should -Be 'ForeignUnitExists,PSNetfilter.Commands.InstallPortForwardServiceCommand'
                $e[0].CategoryInfo.Category | Should -Be 'ResourceExists'
                $e[0].TargetObject | Should -Be "$($script:Image)/$File"
                $e[0].Exception.Message | Should -Match ([regex]::Escape("$($script:Image)/$File"))
                $e[0].Exception.Message | Should -Match $Does
            }
            Get-Tree "$($script:Image)/etc" | Should -Be $script:Before
        }

        It 'refuses to uninstall <Name>, a unit it did not write, and removes nothing (not its enabling link either)' -ForEach @(
            @{ Name = 'foreign'; File = 'etc/systemd/system/foreign.service' }
            @{ Name = 'sshd'; File = 'usr/lib/systemd/system/sshd.service' }
        ) {
            $e = @(Get-Failures { Uninstall-PortForwardService -Name $Name -Root $script:Image })
            $e.Count | Should -Be 1
            $e[0].FullyQualifiedErrorId | Should -Be 'ForeignUnitExists,PSNetfilter.Commands.UninstallPortForwardServiceCommand'
            $e[0].TargetObject | Should -Be "$($script:Image)/$File"
            Get-Tree "$($script:Image)/etc" | Should -Be $script:Before
        }

        It 'installs, replaces and uninstalls a unit of its own beside them' {
            $svc = $script:Forward | Install-PortForwardService -Name h1u-own -Root $script:Image -NoStart -WarningAction SilentlyContinue
            $svc.Changed | Should -BeTrue
            (Get-Content -LiteralPath $svc.UnitPath -TotalCount 1) | Should -BeLike '# Written by PSNetfilter Install-PortForwardService*'
            Uninstall-PortForwardService -Name h1u-own -Root $script:Image
            Test-Path -LiteralPath "$($script:Image)/etc/psnetfilter/h1u-own" | Should -BeFalse
            Get-Tree "$($script:Image)/etc/systemd" | Should -Be @($script:Before | Where-Object { $_ -like 'systemd/*' -or $_ -like 'systemd *' } | ForEach-Object { $_ -replace '^systemd/?', '' } | Where-Object { $_ -notlike ' *' })
        }
    }

    Context 'a blank or malformed namespace is never the host' {
        It '<Command> -NetworkNamespace <Shown> is InvalidNetworkNamespace' -ForEach @(
            foreach ($value in @(@{ V = ''; Shown = "''" }, @{ V = ' '; Shown = "' '" }, @{ V = "ns1`n"; Shown = 'ns1 and a newline' })) {
                @{ Command = 'New-PortForward'; Shown = $value.Shown; V = $value.V; Params = @{ Name = 'blank'; ExternalPort = 8080; InternalAddress = '198.51.100.10'; WhatIf = $true } }
                @{ Command = 'Get-PortForward'; Shown = $value.Shown; V = $value.V; Params = @{} }
                @{ Command = 'Remove-PortForward'; Shown = $value.Shown; V = $value.V; Params = @{ Name = 'blank'; WhatIf = $true } }
                @{ Command = 'Test-PortForward'; Shown = $value.Shown; V = $value.V; Params = @{ NoConnect = $true } }
                @{ Command = 'Install-PortForwardService'; Shown = $value.Shown; V = $value.V; Params = @{ ForwardName = 'web'; NoStart = $true; WhatIf = $true } }
                @{ Command = 'Uninstall-PortForwardService'; Shown = $value.Shown; V = $value.V; Params = @{ WhatIf = $true } }
            }
        ) {
            $root = Join-Path $script:Work ([guid]::NewGuid().ToString('n'))
            $null = New-Item -ItemType Directory -Path $root
            $p = $Params.Clone()
            if ($Command -like '*Service') { $p.Root = $root }
            $e = @(Get-Failures { & $Command @p -NetworkNamespace $V })
            $e.Count | Should -Be 1
            $e[0].FullyQualifiedErrorId | Should -BeLike 'InvalidNetworkNamespace,*'
            $e[0].TargetObject | Should -BeExactly $V
            Get-Tree $root | Should -BeNullOrEmpty
        }

        It 'New-PortForward -NetworkNamespace '''' -WhatIf errors instead of planning against the host' {
            # (What if: lines go to the host, not to a stream: the error is what shows no plan was made.)
            $out = New-PortForward -NetworkNamespace '' -Name h1u-blank -ExternalPort 8080 -InternalAddress 198.51.100.10 -WhatIf -ErrorVariable errs -ErrorAction SilentlyContinue
            $out | Should -BeNullOrEmpty
            $errs.Count | Should -Be 1
            $errs[0].FullyQualifiedErrorId | Should -Be 'InvalidNetworkNamespace,PSNetfilter.Commands.NewPortForwardCommand'
        }

        # ConvertFrom-Csv gives a blank last cell as $null, which binds as "the host": the row is still refused.
        It 'a blank NetworkNamespace cell of a CSV is an error for that row only (New-PortForward)' {
            $csv = @"
Name,ExternalPort,InternalAddress,SnatAddress,NetworkNamespace
h1u-good,8091,198.51.100.10,198.51.100.1,$($script:Src)
h1u-blank,8092,198.51.100.10,198.51.100.1,
"@ | ConvertFrom-Csv
            $null = $csv | New-PortForward -WhatIf -ErrorVariable errs -ErrorAction SilentlyContinue
            @($errs | ForEach-Object FullyQualifiedErrorId) | Should -Be @('InvalidNetworkNamespace,PSNetfilter.Commands.NewPortForwardCommand')
            @($errs | ForEach-Object TargetObject) | Should -Be @('')
        }

        It 'a blank NetworkNamespace cell after a row that named one is an error for that row in Remove-, Test- and Get-PortForward' {
            $csv = @"
Name,NetworkNamespace
h1u-none-a,$($script:Src)
h1u-none-b,
"@ | ConvertFrom-Csv
            $null = $csv | Remove-PortForward -WhatIf -ErrorVariable removeErrs -ErrorAction SilentlyContinue
            $null = $csv | Test-PortForward -NoConnect -ErrorVariable testErrs -ErrorAction SilentlyContinue
            $null = $csv | Get-PortForward -ErrorVariable getErrs -ErrorAction SilentlyContinue
            foreach ($case in @(@('RemovePortForwardCommand', $removeErrs), @('TestPortForwardCommand', $testErrs), @('GetPortForwardCommand', $getErrs))) {
                $ids = @($case[1] | ForEach-Object FullyQualifiedErrorId)
                $ids | Should -Contain "InvalidNetworkNamespace,PSNetfilter.Commands.$($case[0])"
                @($case[1] | Where-Object { $_.FullyQualifiedErrorId -like 'InvalidNetworkNamespace*' }).Count | Should -Be 1
            }
        }

        It 'Install-PortForwardService -NetworkNamespace "ns1`n" writes no unit' {
            $root = Join-Path $script:Work 'newline'
            $null = New-Item -ItemType Directory -Path $root
            $e = @(Get-Failures { $script:Forward | Install-PortForwardService -NetworkNamespace "ns1`n" -Root $root -NoStart -WarningAction SilentlyContinue })
            $e.Count | Should -Be 1
            $e[0].FullyQualifiedErrorId | Should -Be 'InvalidNetworkNamespace,PSNetfilter.Commands.InstallPortForwardServiceCommand'
            Get-Tree $root | Should -BeNullOrEmpty
        }
    }

    Context 'lock files of namespaces that no longer exist' {
        It 'removes them on the next change, except one another process holds, which goes once it is free' {
            $gone = New-OwnNamespace
            $held = New-OwnNamespace
            $live = New-OwnNamespace
            foreach ($ns in $gone, $held) { $null = Remove-PortForward -Name h1u-none -NetworkNamespace $ns -ErrorAction SilentlyContinue }
            $goneLock = "/run/psnetfilter/netns-$gone.lock"
            $heldLock = "/run/psnetfilter/netns-$held.lock"
            Test-Path -LiteralPath $goneLock | Should -BeTrue
            Test-Path -LiteralPath $heldLock | Should -BeTrue

            $holder = Start-Process -FilePath (Get-Command flock -CommandType Application | Select-Object -First 1).Source -ArgumentList '-o', '-x', $heldLock, 'sleep', '20' -PassThru
            try {
                $deadline = [DateTime]::UtcNow.AddSeconds(10)
                do {
                    & flock -n -s $heldLock true
                    $isHeld = $LASTEXITCODE -ne 0
                    if (-not $isHeld) { Start-Sleep -Milliseconds 20 }
                } until ($isHeld -or [DateTime]::UtcNow -gt $deadline)
                $isHeld | Should -BeTrue
                Remove-OwnNamespace $gone
                Remove-OwnNamespace $held

                $null = Remove-PortForward -Name h1u-none -NetworkNamespace $live -ErrorAction SilentlyContinue
                Test-Path -LiteralPath $goneLock | Should -BeFalse
                Test-Path -LiteralPath $heldLock | Should -BeTrue
                & flock -n -s $heldLock true
                $LASTEXITCODE | Should -Not -Be 0 -Because 'the holder still has its lock'
                Test-Path -LiteralPath "/run/psnetfilter/netns-$live.lock" | Should -BeTrue
            }
            finally {
                if (-not $holder.HasExited) { $holder.Kill() }
                $holder.WaitForExit(10000) | Out-Null
            }

            $null = Remove-PortForward -Name h1u-none -NetworkNamespace $live -ErrorAction SilentlyContinue
            Test-Path -LiteralPath $heldLock | Should -BeFalse
        }
    }
}
