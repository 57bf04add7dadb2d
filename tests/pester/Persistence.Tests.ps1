# Install-PortForwardService / Uninstall-PortForwardService (issue 3): the generated files, bad input, the
# boot-set script run by hand in a lab (no systemd), an install into / (Persisted, Uninstall), and a real
# boot of a minimal Debian image with systemd-nspawn into a lab's gateway namespace.
#
#     client 203.0.113.2 / 2001:db8:1::2
#        |
#     gateway 203.0.113.1 / 2001:db8:1::1 (external), 198.51.100.1 / 2001:db8:2::1 (internal)
#        |   Docker, libvirt, kube-proxy and exotic rules preloaded (FORWARD policy DROP)
#     server 198.51.100.10 / 2001:db8:2::10 (hello server on TCP 8080)
#
# Every namespace created here is named psnfp-*; every namespace, overlay mount, container, temporary folder
# and file written to / is removed again (AfterAll), also after a failure. The It blocks of a Context run in
# order and build on each other.

BeforeDiscovery {
    $isRoot = (& id -u) -eq '0'
    $PersistSkipReason = $null
    if ($env:CI -ne 'true' -and -not $isRoot) {
        # In CI (as root) these tests must run; elsewhere they need root.
        $PersistSkipReason = 'needs root (network namespaces, netfilter rules, mounts, systemd-nspawn)'
    }
    $PersistTitle = if ($PersistSkipReason) { "Port forward service (skipped: $PersistSkipReason)" } else { 'Port forward service' }
}

Describe $PersistTitle -Skip:([bool]$PersistSkipReason) {
    BeforeAll {
        . (Join-Path $PSScriptRoot '../support/ImportBootedImageSuite.ps1')
        Install-PsnfpPackage -Command @{
            'ip' = 'iproute2'; 'ss' = 'iproute2'; 'iptables' = 'iptables'; 'systemd-analyze' = 'systemd'
            'debootstrap' = 'debootstrap'; 'systemd-nspawn' = 'systemd-container'; 'nsenter' = 'util-linux'
        }

        $script:FollowedManagers = 'netfilter-persistent.service', 'nftables.service', 'firewalld.service', 'iptables.service', 'ip6tables.service',
        'docker.service', 'libvirtd.service', 'virtnetworkd.service'
        $script:FixtureDir = Join-Path $PSScriptRoot '../fixtures/foreign'
        $script:Work = Join-Path ([IO.Path]::GetTempPath()) ('psnfp-persist-' + [guid]::NewGuid().ToString('n').Substring(0, 8))
        $null = New-Item -ItemType Directory -Path $script:Work
        $script:Namespaces = [System.Collections.Generic.List[string]]::new()
        $script:Labs = [System.Collections.Generic.List[object]]::new()
        $script:HostFiles = [System.Collections.Generic.List[string]]::new()
        $script:Overlay = $null
        $script:Container = $null
        $script:NftContainer = $null
        $script:NftOverlays = [System.Collections.Generic.List[object]]::new()
        $script:RootCount = 0

        function script:New-TestRoot {
            $script:RootCount++
            $dir = Join-Path $script:Work "root$($script:RootCount)"
            $null = New-Item -ItemType Directory -Path $dir
            $dir
        }

        function script:New-TestNamespace([string]$Suffix) {
            $ns = New-PsnfpNamespace -Suffix $Suffix
            $script:Namespaces.Add($ns)
            $ns
        }

        function script:New-TestLab([bool]$Forwarding = $true) {
            $lab = New-PSNetfilterLab -Prefix 'psnfp-' -Forwarding $Forwarding
            $script:Labs.Add($lab)
            foreach ($name in 'docker', 'libvirt', 'kube-proxy', 'exotic') {
                Import-PSNetfilterLabRuleset -Namespace $lab.Gateway -Path (Join-Path $script:FixtureDir "$name.v4.rules")
            }
            Import-PSNetfilterLabRuleset -Namespace $lab.Gateway -Path (Join-Path $script:FixtureDir 'docker.v6.rules') -Family IPv6
            $null = Start-PSNetfilterLabServer -Lab $lab -TcpPort 8080
            $lab
        }

        function script:Get-Failure([scriptblock]$Script) {
            # The ErrorRecord a call fails with (terminating or not), or $null.
            try {
                $ErrorActionPreference = 'Stop'
                $null = & $Script
                $null
            }
            catch {
                $_
            }
        }

        function script:Get-Tree([string]$Dir) {
            # Every path under a folder with its kind, for "nothing was written" checks.
            [string[]]$items = @(Get-ChildItem -LiteralPath $Dir -Recurse -Force -ErrorAction SilentlyContinue | ForEach-Object {
                    "$([IO.Path]::GetRelativePath($Dir, $_.FullName)) $(if ($_.LinkTarget) { 'link' } elseif ($_.PSIsContainer) { 'dir' } else { 'file' })"
                })
            [Array]::Sort($items, [StringComparer]::Ordinal)
            $items
        }

        function script:Get-Stat([string]$Path) {
            # "mode uid gid" of a file (of the link itself for a symlink).
            (Invoke-PsnfpProcess stat -ArgumentList @('-c', '%a %u %g', $Path) -Check).StdOut.Trim()
        }

        function script:Invoke-Script([string]$Namespace, [string]$Script, [string]$Action, [hashtable]$Environment = @{}) {
            Invoke-PsnfpProcess ip -ArgumentList @('netns', 'exec', $Namespace, '/bin/sh', $Script, $Action) -Environment $Environment -TimeoutSeconds 120
        }

        function script:Set-Forwarding([string]$Namespace, [string]$Value) {
            Invoke-PsnfpProcess ip -ArgumentList @('netns', 'exec', $Namespace, 'sysctl', '-q', '-w', "net.ipv4.ip_forward=$Value", "net.ipv6.conf.all.forwarding=$Value") -Check | Out-Null
        }

        function script:Get-Forwarding([string]$Namespace) {
            (Invoke-PsnfpProcess ip -ArgumentList @('netns', 'exec', $Namespace, 'sysctl', '-n', 'net.ipv4.ip_forward', 'net.ipv6.conf.all.forwarding') -Check).StdOut.Trim() -split '\s+' -join ','
        }

        function script:Remove-HostUnit([string]$Unit) {
            # Files an install into / wrote, whatever state the test left them in.
            $base = $Unit -replace '\.service$', ''
            foreach ($p in "/etc/systemd/system/multi-user.target.wants/$Unit", "/etc/systemd/system/$Unit", "/etc/psnetfilter/$base/apply.sh") {
                if ((Test-Path -LiteralPath $p) -or (Get-Item -LiteralPath $p -Force -ErrorAction SilentlyContinue)) { Remove-Item -LiteralPath $p -Force }
            }
            if (Test-Path -LiteralPath "/etc/psnetfilter/$base") { Remove-Item -LiteralPath "/etc/psnetfilter/$base" -Recurse -Force }
            if ((Test-Path -LiteralPath /etc/psnetfilter) -and -not (Get-ChildItem -LiteralPath /etc/psnetfilter -Force)) { Remove-Item -LiteralPath /etc/psnetfilter -Force }
        }

        # Forwards to persist, in a namespace of their own (by value: they never need to carry traffic here).
        $script:Src = New-TestNamespace -Suffix src
        $common = @{ NetworkNamespace = $script:Src; WarningAction = 'SilentlyContinue' }
        $null = New-PortForward @common -Name web -ExternalPort 8080 -InternalAddress 198.51.100.10 -SnatAddress 198.51.100.1
        $null = New-PortForward @common -Name web.v6 -ExternalAddress 2001:db8:1::1 -ExternalPort 8081 -InternalAddress 2001:db8:2::10 -InternalPort 8080 -Masquerade
        $null = New-PortForward @common -Name dns -Protocol Udp -ExternalPort 5353 -InternalAddress 198.51.100.10 -InternalPort 53 -NoSnat -Description "it's a `"quoted`" `$(description)`nwith a line break"
        $null = New-PortForward @common -Name other -ExternalPort 9000 -InternalAddress 198.51.100.20 -Masquerade
    }

    AfterAll {
        if ($script:Container) { $null = Stop-PsnfpContainer $script:Container }
        if ($script:Overlay) { Remove-PsnfpOverlay $script:Overlay }
        if ($script:NftContainer) { $null = Stop-PsnfpContainer $script:NftContainer }
        if ($script:BeContainer) { $null = Stop-PsnfpContainer $script:BeContainer }
        foreach ($o in $script:NftOverlays) { Remove-PsnfpOverlay $o }
        foreach ($unit in $script:HostFiles) { Remove-HostUnit $unit }
        foreach ($lab in $script:Labs) { Remove-PSNetfilterLab -Lab $lab -ErrorAction Continue }
        Remove-PsnfpNamespace $script:Namespaces
        if ($script:Work -and (Test-Path -LiteralPath $script:Work)) { Remove-Item -LiteralPath $script:Work -Recurse -Force }
    }

    Context 'the files it writes' {
        It 'writes the script, the unit and the enabling symlink: root-owned, mode 0644, and says what it did' {
            $script:Root1 = New-TestRoot
            $svc = Get-PortForward -NetworkNamespace $script:Src web, web.v6, dns | Install-PortForwardService -Root $script:Root1 -NoStart -WarningAction SilentlyContinue
            $svc.UnitName | Should -Be 'psnetfilter.service'
            $svc.Root | Should -Be $script:Root1
            $svc.UnitPath | Should -Be "$($script:Root1)/etc/systemd/system/psnetfilter.service"
            $svc.ScriptPath | Should -Be "$($script:Root1)/etc/psnetfilter/psnetfilter/apply.sh"
            $svc.Files.Count | Should -Be 12
            @($svc.Forwards.Name) | Should -Be @('dns', 'web', 'web.v6')
            @($svc.Forwards | Where-Object { -not $_.Persisted }).Count | Should -Be 0
            $svc.Enabled | Should -BeTrue
            $svc.State | Should -Be 'NotStarted'
            $svc.Started | Should -BeFalse
            $svc.Changed | Should -BeTrue
            Get-Stat $svc.UnitPath | Should -Be '644 0 0'
            Get-Stat $svc.ScriptPath | Should -Be '644 0 0'
            $link = Get-Item -LiteralPath "$($script:Root1)/etc/systemd/system/multi-user.target.wants/psnetfilter.service" -Force
            $link.LinkTarget | Should -Be '/etc/systemd/system/psnetfilter.service'
            Get-Stat "$($script:Root1)/etc/systemd/system/psnetfilter-reapply.service" | Should -Be '644 0 0'
            [string[]]$tree = @(
                'etc dir', 'etc/psnetfilter dir', 'etc/psnetfilter/psnetfilter dir', 'etc/psnetfilter/psnetfilter/apply.sh file',
                'etc/systemd dir', 'etc/systemd/system dir', 'etc/systemd/system/multi-user.target.wants dir',
                'etc/systemd/system/multi-user.target.wants/psnetfilter.service link', 'etc/systemd/system/psnetfilter.service file',
                'etc/systemd/system/psnetfilter-reapply.service file')
            foreach ($m in $script:FollowedManagers) {
                # The re-apply helper is wanted by every firewall manager it follows, installed or not.
                $tree += "etc/systemd/system/$m.wants dir", "etc/systemd/system/$m.wants/psnetfilter-reapply.service link"
                (Get-Item -LiteralPath "$($script:Root1)/etc/systemd/system/$m.wants/psnetfilter-reapply.service" -Force).LinkTarget | Should -Be '/etc/systemd/system/psnetfilter-reapply.service'
            }
            [Array]::Sort($tree, [StringComparer]::Ordinal)
            Get-Tree $script:Root1 | Should -Be $tree
        }

        It 'writes a unit with the restore-unit conventions and no Conflicts= with other firewalls' {
            $unit = Get-Content -LiteralPath "$($script:Root1)/etc/systemd/system/psnetfilter.service"
            foreach ($line in 'Type=oneshot', 'RemainAfterExit=yes', 'DefaultDependencies=no', 'Wants=network-pre.target',
                'Before=network-pre.target shutdown.target', 'After=local-fs.target systemd-modules-load.service',
                'Conflicts=shutdown.target', 'WantedBy=multi-user.target',
                'ExecStart=/bin/sh /etc/psnetfilter/psnetfilter/apply.sh start', 'ExecStop=/bin/sh /etc/psnetfilter/psnetfilter/apply.sh stop') {
                $unit | Should -Contain $line
            }
            @($unit | Where-Object { $_ -like 'Conflicts=*' }) | Should -Be @('Conflicts=shutdown.target')
        }

        It 'writes a POSIX sh script that needs no pwsh or .NET and keeps free text out of the shell' {
            $text = Get-Content -LiteralPath "$($script:Root1)/etc/psnetfilter/psnetfilter/apply.sh" -Raw
            $text | Should -Match '^#!/bin/sh\n'
            $text | Should -Not -Match 'pwsh|dotnet|powershell'
            $text | Should -Not -Match 'quoted|line break'   # the description lives base64url-encoded in the tag only
            $text | Should -Match '(?m)^# psnf-forward: dns IPv4 '
            (Invoke-PsnfpProcess /bin/sh -ArgumentList @('-n', "$($script:Root1)/etc/psnetfilter/psnetfilter/apply.sh")).ExitCode | Should -Be 0
            (Invoke-PsnfpProcess /bin/sh -ArgumentList @("$($script:Root1)/etc/psnetfilter/psnetfilter/apply.sh", 'bogus')).ExitCode | Should -Be 2
        }

        It 'writes nothing when the same set is installed again, in any order' {
            $files = "$($script:Root1)/etc/systemd/system/psnetfilter.service", "$($script:Root1)/etc/psnetfilter/psnetfilter/apply.sh"
            $before = foreach ($f in $files) { $i = Get-Item -LiteralPath $f; "$($i.LastWriteTimeUtc.Ticks) $((Invoke-PsnfpProcess stat -ArgumentList @('-c', '%i', $f)).StdOut.Trim()) $((Get-FileHash -LiteralPath $f).Hash)" }
            Start-Sleep -Milliseconds 20
            $svc = Get-PortForward -NetworkNamespace $script:Src web, web.v6, dns | Sort-Object Name -Descending |
                Install-PortForwardService -Root $script:Root1 -NoStart -WarningAction SilentlyContinue
            $svc.Changed | Should -BeFalse
            $after = foreach ($f in $files) { $i = Get-Item -LiteralPath $f; "$($i.LastWriteTimeUtc.Ticks) $((Invoke-PsnfpProcess stat -ArgumentList @('-c', '%i', $f)).StdOut.Trim()) $((Get-FileHash -LiteralPath $f).Hash)" }
            $after | Should -Be $before
        }

        It 'replaces the saved set with another set, atomically (no temporary files left)' {
            $svc = Get-PortForward -NetworkNamespace $script:Src other | Install-PortForwardService -Root $script:Root1 -NoStart -WarningAction SilentlyContinue
            $svc.Changed | Should -BeTrue
            @($svc.Forwards.Name) | Should -Be @('other')
            $header = Get-Content -LiteralPath $svc.ScriptPath | Where-Object { $_ -like '# psnf-forward:*' }
            @($header).Count | Should -Be 1
            $header | Should -BeLike '# psnf-forward: other IPv4 *'
            @(Get-ChildItem -LiteralPath $script:Root1 -Recurse -Force | Where-Object Name -Like '*.tmp').Count | Should -Be 0
        }

        It 'selects live forwards with -ForwardName (wildcards) and restores into -NetworkNamespace with ip netns exec' {
            $root = New-TestRoot
            $svc = Install-PortForwardService -ForwardName 'web*' -NetworkNamespace $script:Src -Root $root -NoStart
            $svc.UnitName | Should -Be "psnetfilter-$($script:Src).service"
            @($svc.Forwards.Name) | Should -Be @('web', 'web.v6')
            $svc.NetworkNamespace | Should -Be $script:Src
            $unit = Get-Content -LiteralPath $svc.UnitPath
            $unit | Should -Contain "ExecStart=/sbin/ip netns exec $($script:Src) /bin/sh /etc/psnetfilter/psnetfilter-$($script:Src)/apply.sh start"
            $unit | Should -Contain "ExecStop=/sbin/ip netns exec $($script:Src) /bin/sh /etc/psnetfilter/psnetfilter-$($script:Src)/apply.sh stop"
            $unit | Should -Contain "Description=PSNetfilter saved port forwards in network namespace $($script:Src)"
            (Get-Content -LiteralPath $svc.ScriptPath) | Should -Contain "PSNF_LOCK='/run/psnetfilter/netns-$($script:Src).lock'"
        }

        It 'warns when the forwards were read from another namespace than the unit restores into' {
            $root = New-TestRoot
            $svc = Get-PortForward -NetworkNamespace $script:Src web | Install-PortForwardService -Root $root -NoStart -WarningVariable warnings -WarningAction SilentlyContinue
            $svc.NetworkNamespace | Should -BeNullOrEmpty
            ($warnings -join "`n") | Should -Match ([regex]::Escape("-NetworkNamespace $($script:Src)"))
        }

        It 'shows what it would write with -WhatIf and writes nothing' {
            $root = New-TestRoot
            $out = Get-PortForward -NetworkNamespace $script:Src web | Install-PortForwardService -Root $root -NoStart -WhatIf -WarningAction SilentlyContinue
            $out | Should -BeNullOrEmpty
            Get-Tree $root | Should -BeNullOrEmpty
        }

        It 'generates units that systemd-analyze verify accepts without any output' {
            $units = [System.Collections.Generic.List[string]]::new()
            $units.Add("$($script:Root1)/etc/systemd/system/psnetfilter.service")
            foreach ($case in @(
                    @{ Name = $null; Ns = $script:Src; Forwards = @('web', 'dns') },
                    @{ Name = 'edge.fw_1.service'; Ns = $null; Forwards = @('web.v6') },
                    @{ Name = 'psnetfilter-custom'; Ns = $script:Src; Forwards = @('web', 'web.v6', 'dns', 'other') })) {
                $root = New-TestRoot
                $params = @{ Root = $root; NoStart = $true; WarningAction = 'SilentlyContinue' }
                if ($case.Name) { $params.Name = $case.Name }
                if ($case.Ns) { $params.NetworkNamespace = $case.Ns }
                $svc = Get-PortForward -NetworkNamespace $script:Src $case.Forwards | Install-PortForwardService @params
                $units.Add($svc.UnitPath)
                $units.Add(($svc.UnitPath -replace '\.service$', '-reapply.service'))
                (Invoke-PsnfpProcess /bin/sh -ArgumentList @('-n', $svc.ScriptPath)).ExitCode | Should -Be 0
            }
            foreach ($u in $units) {
                $r = Test-PsnfpUnitFile -Path $u
                $r.Output | Should -BeNullOrEmpty -Because "systemd-analyze verify of $u must print nothing"
                $r.ExitCode | Should -Be 0
            }
        }
    }

    Context 'bad input: clear errors, nothing written' {
        BeforeAll {
            $script:BadRoot = New-TestRoot
        }

        It 'fails with NoForwardsGiven when no forwards are given' {
            (Get-Failure { @() | Install-PortForwardService -Root $script:BadRoot -NoStart }).FullyQualifiedErrorId | Should -BeLike 'NoForwardsGiven,*'
            (Get-Failure { Get-PortForward -NetworkNamespace $script:Src 'nomatch*' | Install-PortForwardService -Root $script:BadRoot -NoStart }).FullyQualifiedErrorId | Should -BeLike 'NoForwardsGiven,*'
            (Get-Failure { Install-PortForwardService -ForwardName 'nomatch*' -NetworkNamespace $script:Src -Root $script:BadRoot -NoStart }).FullyQualifiedErrorId | Should -BeLike 'NoForwardsGiven,*'
            Get-Tree $script:BadRoot | Should -BeNullOrEmpty
        }

        It 'fails with InvalidForwardObject for a hand-made or deserialized object, even beside valid forwards' {
            $fake = [pscustomobject]@{ Name = 'web'; Protocol = 'Tcp'; ExternalPort = 8080; InternalAddress = '198.51.100.10' }
            $e = Get-Failure { @((Get-PortForward -NetworkNamespace $script:Src web), $fake) | Install-PortForwardService -Root $script:BadRoot -NoStart -WarningAction SilentlyContinue }
            $e.FullyQualifiedErrorId | Should -BeLike 'InvalidForwardObject,*'
            $e.Exception.Message | Should -Match 'not a PSNetfilter port forward'
            $xml = Join-Path $script:Work 'forward.clixml'
            Get-PortForward -NetworkNamespace $script:Src web | Export-Clixml -LiteralPath $xml
            $e = Get-Failure { Import-Clixml -LiteralPath $xml | Install-PortForwardService -Root $script:BadRoot -NoStart }
            $e.FullyQualifiedErrorId | Should -BeLike 'InvalidForwardObject,*'
            $e.Exception.Message | Should -Match 'deserialized'
            (Get-Failure { 'web' | Install-PortForwardService -Root $script:BadRoot -NoStart }).FullyQualifiedErrorId | Should -BeLike 'InvalidForwardObject,*'
            Get-Tree $script:BadRoot | Should -BeNullOrEmpty
        }

        It 'fails with InvalidUnitName for <Name>' -ForEach @(
            @{ Name = 'bad name' }, @{ Name = 'a/b' }, @{ Name = 'x.timer' }, @{ Name = 'tmpl@.service' }, @{ Name = '.hidden' },
            @{ Name = '-dash' }, @{ Name = 'ünicode' }, @{ Name = ('n' * 250) }, @{ Name = 'a%b' }, @{ Name = 'a:b' }, @{ Name = "a`nb" }) {
            $e = Get-Failure { Get-PortForward -NetworkNamespace $script:Src web | Install-PortForwardService -Name $Name -Root $script:BadRoot -NoStart -WarningAction SilentlyContinue }
            $e.FullyQualifiedErrorId | Should -BeLike 'InvalidUnitName,*'
            Get-Tree $script:BadRoot | Should -BeNullOrEmpty
        }

        It 'fails with RootNotWritable naming the path, and leaves nothing behind' {
            $root = New-TestRoot
            $null = New-Item -ItemType Directory -Path "$root/etc/psnetfilter"
            Set-Content -LiteralPath "$root/etc/systemd" -Value 'not a directory'
            $before = Get-Tree $root
            $e = Get-Failure { Get-PortForward -NetworkNamespace $script:Src web | Install-PortForwardService -Root $root -NoStart -WarningAction SilentlyContinue }
            $e.FullyQualifiedErrorId | Should -BeLike 'RootNotWritable,*'
            $e.Exception.Message | Should -Match ([regex]::Escape("$root/etc/systemd"))
            Get-Tree $root | Should -Be $before
        }

        It 'fails with RootNotFound for a root that does not exist' {
            $e = Get-Failure { Get-PortForward -NetworkNamespace $script:Src web | Install-PortForwardService -Root "$($script:Work)/nope" -NoStart -WarningAction SilentlyContinue }
            $e.FullyQualifiedErrorId | Should -BeLike 'RootNotFound,*'
            Test-Path -LiteralPath "$($script:Work)/nope" | Should -BeFalse
        }

        It 'fails with DuplicateForwardName for two different forwards of one name' {
            $other = New-TestNamespace -Suffix dup
            $null = New-PortForward -NetworkNamespace $other -Name web -ExternalPort 8090 -InternalAddress 198.51.100.10 -Masquerade -WarningAction SilentlyContinue
            $e = Get-Failure { @((Get-PortForward -NetworkNamespace $script:Src web), (Get-PortForward -NetworkNamespace $other web)) | Install-PortForwardService -Root $script:BadRoot -NoStart -WarningAction SilentlyContinue }
            $e.FullyQualifiedErrorId | Should -BeLike 'DuplicateForwardName,*'
            Get-Tree $script:BadRoot | Should -BeNullOrEmpty
        }

        It 'persists a drifted forward as its definition, but not one whose SNAT address is lost' {
            $drift = New-TestNamespace -Suffix drift
            $null = New-PortForward -NetworkNamespace $drift -Name keep -ExternalPort 8080 -InternalAddress 198.51.100.10 -SnatAddress 198.51.100.1 -WarningAction SilentlyContinue
            $null = New-PortForward -NetworkNamespace $drift -Name lost -ExternalPort 8081 -InternalAddress 198.51.100.10 -SnatAddress 198.51.100.1 -WarningAction SilentlyContinue
            # Delete keep's FORWARD rule and lost's SNAT rule by hand (by position, as -D by spec fails on nft).
            foreach ($t in @(@{ Table = 'filter'; Tag = 'psnf:v1:keep:fwd' }, @{ Table = 'nat'; Tag = 'psnf:v1:lost:snat' })) {
                $rules = (Invoke-PsnfpProcess ip -ArgumentList @('netns', 'exec', $drift, 'iptables', '-t', $t.Table, '-S') -Check).StdOut -split "`n"
                $line = $rules | Where-Object { $_.Contains($t.Tag) } | Select-Object -First 1
                $chain = ($line -split ' ')[1]
                $pos = @($rules | Where-Object { $_.StartsWith("-A $chain ") }).IndexOf($line) + 1
                Invoke-PsnfpProcess ip -ArgumentList @('netns', 'exec', $drift, 'iptables', '-t', $t.Table, '-D', $chain, "$pos") -Check | Out-Null
            }
            $keep = Get-PortForward -NetworkNamespace $drift keep
            $keep.Status | Should -Not -Be 'Complete'
            $root = New-TestRoot
            $svc = $keep | Install-PortForwardService -Root $root -NoStart -NetworkNamespace $drift
            @($svc.Forwards.Name) | Should -Be @('keep')
            (Get-Content -LiteralPath $svc.ScriptPath -Raw) | Should -Match 'psnf:v1:keep:fwd'
            $root2 = New-TestRoot
            $e = Get-Failure { Get-PortForward -NetworkNamespace $drift lost | Install-PortForwardService -Root $root2 -NoStart -NetworkNamespace $drift }
            $e.FullyQualifiedErrorId | Should -BeLike 'IncompleteForwardDefinition,*'
            Get-Tree $root2 | Should -BeNullOrEmpty
        }

        It 'fails with PortForwardServiceNotFound when uninstalling a unit that is not there' {
            $e = Get-Failure { Uninstall-PortForwardService -Name nothing-here -Root $script:BadRoot }
            $e.FullyQualifiedErrorId | Should -BeLike 'PortForwardServiceNotFound,*'
        }
    }

    Context 'the script run by hand in a lab, without systemd' {
        BeforeAll {
            $script:LabA = New-TestLab
            $gw = $script:LabA.Gateway
            $script:PreA = Get-PsnfpDump -Namespace $gw
            $w = @{ NetworkNamespace = $gw; WarningAction = 'SilentlyContinue' }
            $null = New-PortForward @w -Name A -ExternalPort 8080 -InternalAddress 198.51.100.10
            $null = New-PortForward @w -Name B -ExternalAddress 2001:db8:1::1 -ExternalPort 8081 -InternalAddress 2001:db8:2::10 -InternalPort 8080 -Masquerade
            $null = New-PortForward @w -Name C -ExternalPort 8082 -InternalAddress 198.51.100.10 -InternalPort 8080 -NoSnat
            $script:RootA = New-TestRoot
            $script:SvcA = Get-PortForward -NetworkNamespace $gw A, B | Install-PortForwardService -NetworkNamespace $gw -Root $script:RootA -NoStart
            $script:ScriptA = $script:SvcA.ScriptPath
            $script:CountC = Get-PsnfpTaggedCount -Namespace $gw -Name C
        }

        It 'start, twice, leaves exactly one copy of the saved forwards and the others intact' {
            $gw = $script:LabA.Gateway
            foreach ($i in 1, 2) {
                $r = Invoke-Script $gw $script:ScriptA start
                $r.ExitCode | Should -Be 0 -Because $r.Output
                $r.StdOut | Should -Match 'IPv4: restored A'
            }
            Get-PsnfpTaggedCount -Namespace $gw -Name A | Should -Be 3
            Get-PsnfpTaggedCount -Namespace $gw -Name B | Should -Be 3
            Get-PsnfpTaggedCount -Namespace $gw -Name C | Should -Be $script:CountC
            $fwd = Get-PortForward -NetworkNamespace $gw
            @($fwd.Name) | Should -Be @('A', 'B', 'C')
            @($fwd | Where-Object Status -NE 'Complete').Count | Should -Be 0
            ($script:PreA -split "`n" | Where-Object { $_ -notmatch 'PSNF-' }) -join "`n" | Should -Be (Get-PsnfpDump -Namespace $gw -NoModule)
        }

        It 'stop removes exactly the saved forwards; the others and the foreign rules stay' {
            $gw = $script:LabA.Gateway
            $r = Invoke-Script $gw $script:ScriptA stop
            $r.ExitCode | Should -Be 0 -Because $r.Output
            Get-PsnfpTaggedCount -Namespace $gw -Name A | Should -Be 0
            Get-PsnfpTaggedCount -Namespace $gw -Name B | Should -Be 0
            Get-PsnfpTaggedCount -Namespace $gw -Name C | Should -Be $script:CountC
            @((Get-PortForward -NetworkNamespace $gw).Name) | Should -Be @('C')
            (Get-PortForward -NetworkNamespace $gw C).Status | Should -Be 'Complete'
            Get-PsnfpModuleLines -Namespace $gw -Family IPv6 | Should -BeNullOrEmpty   # B was the only IPv6 forward: chains and jumps gone
            ($script:PreA -split "`n" | Where-Object { $_ -notmatch 'PSNF-' }) -join "`n" | Should -Be (Get-PsnfpDump -Namespace $gw -NoModule)
            (Invoke-Script $gw $script:ScriptA stop).ExitCode | Should -Be 0   # again: nothing to do
        }

        It 'start from an empty ruleset restores them, turns forwarding on, and they carry traffic' {
            $gw = $script:LabA.Gateway
            Get-PortForward -NetworkNamespace $gw | Remove-PortForward
            Get-PsnfpDump -Namespace $gw | Should -Be $script:PreA
            Set-Forwarding $gw 0
            $r = Invoke-Script $gw $script:ScriptA start
            $r.ExitCode | Should -Be 0 -Because $r.Output
            Get-Forwarding $gw | Should -Be '1,1'
            @((Get-PortForward -NetworkNamespace $gw).Name) | Should -Be @('A', 'B')
            $probe = Invoke-PSNetfilterLabProbe -Lab $script:LabA -Target @(
                @{ Protocol = 'Tcp'; Address = '203.0.113.1'; Port = 8080 },
                @{ Protocol = 'Tcp'; Address = '[2001:db8:1::1]'; Port = 8081 },
                @{ Protocol = 'Tcp'; Address = '203.0.113.1'; Port = 8082 })
            $probe[0].Reply | Should -Be 'hello from server; you are 198.51.100.1 proto tcp port 8080'
            $probe[1].Reply | Should -Be 'hello from server; you are 2001:db8:2::1 proto tcp port 8080'
            $probe[2].Success | Should -BeFalse
        }

        It 'stop keeps the forwards once when Uninstall asks it to (the keep flag)' {
            $gw = $script:LabA.Gateway
            $flag = "/run/psnetfilter/$($script:SvcA.UnitName).keep-forwards"
            $null = New-Item -ItemType Directory -Force -Path /run/psnetfilter
            Set-Content -LiteralPath $flag -Value 'keep'
            try {
                $r = Invoke-Script $gw $script:ScriptA stop
                $r.ExitCode | Should -Be 0
                $r.StdOut | Should -Match 'stay'
                @((Get-PortForward -NetworkNamespace $gw).Name) | Should -Be @('A', 'B')
                Test-Path -LiteralPath $flag | Should -BeFalse
            }
            finally {
                Remove-Item -LiteralPath $flag -Force -ErrorAction SilentlyContinue
            }
        }

        It 'uses the legacy tools when the backend is legacy' {
            $ns = New-TestNamespace -Suffix legacy
            $env = @{ PSNETFILTER_IPTABLES_BACKEND = 'legacy' }
            $r = Invoke-Script $ns $script:ScriptA start $env
            $r.ExitCode | Should -Be 0 -Because $r.Output
            $r.StdOut | Should -Match 'iptables legacy'
            $legacy = (Invoke-PsnfpProcess ip -ArgumentList @('netns', 'exec', $ns, 'iptables-legacy-save', '-t', 'nat') -Check).StdOut
            ($legacy -split "`n" | Where-Object { $_.Contains('psnf:v1:A:') }).Count | Should -Be 2
            $nft = (Invoke-PsnfpProcess ip -ArgumentList @('netns', 'exec', $ns, 'iptables-nft-save') -Check).StdOut
            $nft | Should -Not -Match 'psnf:v1:'
            (Invoke-Script $ns $script:ScriptA start $env).ExitCode | Should -Be 0
            ((Invoke-PsnfpProcess ip -ArgumentList @('netns', 'exec', $ns, 'iptables-legacy-save', '-t', 'nat') -Check).StdOut -split "`n" | Where-Object { $_.Contains('psnf:v1:A:') }).Count | Should -Be 2
            (Invoke-Script $ns $script:ScriptA stop $env).ExitCode | Should -Be 0
            (Invoke-PsnfpProcess ip -ArgumentList @('netns', 'exec', $ns, 'iptables-legacy-save') -Check).StdOut | Should -Not -Match 'PSNF-'
            (Invoke-PsnfpProcess ip -ArgumentList @('netns', 'exec', $ns, 'ip6tables-legacy-save') -Check).StdOut | Should -Not -Match 'PSNF-'
        }

        It 'Uninstall-PortForwardService -Root removes the files and leaves the live forwards' {
            $gw = $script:LabA.Gateway
            $script:SvcA | Uninstall-PortForwardService -WarningAction SilentlyContinue
            Get-Tree $script:RootA | Should -Be @('etc dir', 'etc/psnetfilter dir', 'etc/systemd dir', 'etc/systemd/system dir', 'etc/systemd/system/multi-user.target.wants dir')
            @((Get-PortForward -NetworkNamespace $gw).Name) | Should -Be @('A', 'B')
        }
    }

    Context 'installed into / (Persisted, Uninstall)' {
        BeforeAll {
            $script:LabR = $script:LabA
            $script:HostUnit = 'psnfp-' + [guid]::NewGuid().ToString('n').Substring(0, 8) + '.service'
            $script:HostFiles.Add($script:HostUnit)
            $gw = $script:LabR.Gateway
            $null = New-PortForward -NetworkNamespace $gw -Name C -ExternalPort 8082 -InternalAddress 198.51.100.10 -InternalPort 8080 -NoSnat -WarningAction SilentlyContinue
        }

        It 'installs, enables, and Get-PortForward shows Persisted for exactly the saved forwards' {
            $gw = $script:LabR.Gateway
            @(Get-PortForward -NetworkNamespace $gw | Where-Object Persisted).Count | Should -Be 0
            $svc = Get-PortForward -NetworkNamespace $gw A, B | Install-PortForwardService -Name $script:HostUnit -NetworkNamespace $gw -NoStart
            $svc.Root | Should -Be '/'
            $svc.UnitPath | Should -Be "/etc/systemd/system/$($script:HostUnit)"
            Get-Stat $svc.UnitPath | Should -Be '644 0 0'
            (Get-Item -LiteralPath "/etc/systemd/system/multi-user.target.wants/$($script:HostUnit)" -Force).LinkTarget | Should -Be "/etc/systemd/system/$($script:HostUnit)"
            $fwd = Get-PortForward -NetworkNamespace $gw
            @($fwd | Where-Object Persisted | ForEach-Object Name) | Should -Be @('A', 'B')
            ($fwd | Where-Object Name -EQ 'C').Persisted | Should -BeFalse
            @(Get-PortForward -NetworkNamespace $script:Src | Where-Object Persisted).Count | Should -Be 0   # another namespace
        }

        It 'moves a persisted forward to the nftables backend in one step: live, and in the unit that restores it' {
            $gw = $script:LabR.Gateway
            $base = $script:HostUnit -replace '\.service$', ''
            $moved = @(Get-PortForward -NetworkNamespace $gw A | New-PortForward -Backend Nftables -Verbose 4>&1 -WarningAction SilentlyContinue)
            ($moved | Where-Object { $_ -is [System.Management.Automation.VerboseRecord] } | ForEach-Object Message) -join "`n" |
                Should -Match ([regex]::Escape("$($script:HostUnit) now restores A into the nftables backend"))
            $a = Get-PortForward -NetworkNamespace $gw A
            $a.Backend | Should -Be 'nftables'
            $a.Persisted | Should -BeTrue
            $script = Get-Content -LiteralPath "/etc/psnetfilter/$base/apply.sh" -Raw
            $script | Should -Match '(?m)^# psnf-backend: A nftables$'
            $script | Should -Not -Match '(?m)^# psnf-backend: B '
            Test-Path -LiteralPath "/etc/psnetfilter/$base/forwards.nft" | Should -BeTrue

            # What the next boot does: stop, then start the set by hand. A comes back in nftables, B in iptables.
            foreach ($action in 'stop', 'start') {
                $r = Invoke-PsnfpProcess ip -ArgumentList @('netns', 'exec', $gw, '/bin/sh', "/etc/psnetfilter/$base/apply.sh", $action)
                $r.ExitCode | Should -Be 0 -Because $r.Output
            }
            $r.Output | Should -Match 'nftables: restored A '
            $after = @(Get-PortForward -NetworkNamespace $gw | Select-Object Name, Backend, Status | ForEach-Object { "$($_.Name) $($_.Backend) $($_.Status)" })
            $after | Should -Be @('A nftables Complete', 'B iptables Complete', 'C iptables Complete')
            $tagged = @((Get-PsnfpDump -Namespace $gw -Table nat, filter) -split "`n" | Where-Object { $_.Contains('psnf:v1:A:') })
            @($tagged | Where-Object { -not $_.Contains('psnf:v1:A:nftfwd') }) | Should -BeNullOrEmpty -Because 'no iptables rule of the iptables forward A is left'
            @($tagged | Where-Object { $_.Contains('psnf:v1:A:nftfwd') }).Count | Should -Be 1 -Because 'the lab''s FORWARD drops (the Docker fixture), so the unit put back the accept of the nftables forward A there'
            Invoke-PSNetfilterLabProbe -Lab $script:LabR -Protocol Tcp -Address 203.0.113.1 -Port 8080 | Should -Be 'hello from server; you are 198.51.100.1 proto tcp port 8080'

            # And back: the unit holds iptables forwards only again, so its nft file goes.
            $null = Get-PortForward -NetworkNamespace $gw A | New-PortForward -Backend Iptables -WarningAction SilentlyContinue
            (Get-PortForward -NetworkNamespace $gw A).Backend | Should -Be 'iptables'
            Get-Content -LiteralPath "/etc/psnetfilter/$base/apply.sh" -Raw | Should -Not -Match 'psnf-backend:'
            Test-Path -LiteralPath "/etc/psnetfilter/$base/forwards.nft" | Should -BeFalse
        }

        It 'says that it did not start the unit when systemd is not running' -Skip:(Test-Path /run/systemd/system) {
            $gw = $script:LabR.Gateway
            $svc = Get-PortForward -NetworkNamespace $gw A, B | Install-PortForwardService -Name $script:HostUnit -NetworkNamespace $gw -WarningVariable warnings -WarningAction SilentlyContinue
            $svc.Changed | Should -BeFalse
            $svc.Started | Should -BeFalse
            $svc.State | Should -Be 'NotStarted'
            ($warnings -join "`n") | Should -Match 'not started'
        }

        It 'Uninstall -RemoveForwards removes the files and exactly the saved forwards' {
            $gw = $script:LabR.Gateway
            Uninstall-PortForwardService -Name $script:HostUnit -RemoveForwards
            Test-Path -LiteralPath "/etc/systemd/system/$($script:HostUnit)" | Should -BeFalse
            Get-Item -LiteralPath "/etc/systemd/system/multi-user.target.wants/$($script:HostUnit)" -Force -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
            Test-Path -LiteralPath "/etc/psnetfilter/$($script:HostUnit -replace '\.service$', '')" | Should -BeFalse
            $fwd = Get-PortForward -NetworkNamespace $gw
            @($fwd.Name) | Should -Be @('C')
            $fwd.Persisted | Should -BeFalse
        }
    }

    Context 'a real boot of a Debian image with systemd-nspawn' {
        BeforeAll {
            $script:Rootfs = Get-PsnfpRootfs
            # The forwards to persist come from a namespace of their own; C is live there but not selected.
            $src = New-TestNamespace -Suffix bootsrc
            $w = @{ NetworkNamespace = $src; WarningAction = 'SilentlyContinue' }
            $null = New-PortForward @w -Name A -ExternalPort 8080 -InternalAddress 198.51.100.10 -SnatAddress 198.51.100.1
            $null = New-PortForward @w -Name B -ExternalAddress 2001:db8:1::1 -ExternalPort 8081 -InternalAddress 2001:db8:2::10 -InternalPort 8080 -Masquerade
            $null = New-PortForward @w -Name C -ExternalPort 8082 -InternalAddress 198.51.100.10 -InternalPort 8080 -Masquerade

            # A fresh gateway for the boot: foreign rules, a live forward D of its own, forwarding off.
            $script:LabB = New-TestLab -Forwarding $false
            $gw = $script:LabB.Gateway
            $null = New-PortForward -NetworkNamespace $gw -Name D -ExternalPort 8083 -InternalAddress 198.51.100.10 -InternalPort 8080 -NoSnat -WarningAction SilentlyContinue
            Set-Forwarding $gw 0
            $script:PreBoot = Get-PsnfpDump -Namespace $gw

            $script:Overlay = New-PsnfpOverlay -Rootfs $script:Rootfs
            $script:SvcB = Get-PortForward -NetworkNamespace $src A, B | Install-PortForwardService -Root $script:Overlay.Root -NoStart -WarningVariable bootWarnings -WarningAction SilentlyContinue
            $script:BootWarnings = $bootWarnings
        }

        It 'installs into the image and the unit passes systemd-analyze verify inside it' {
            $script:SvcB.UnitPath | Should -Be "$($script:Overlay.Root)/etc/systemd/system/psnetfilter.service"
            $script:SvcB.Enabled | Should -BeTrue
            ($script:BootWarnings -join "`n") | Should -Match 'restores it into the host'
            $r = Test-PsnfpUnitFile -Path /etc/systemd/system/psnetfilter.service -Root $script:Overlay.Root
            $r.Output | Should -BeNullOrEmpty
            $r.ExitCode | Should -Be 0
        }

        It 'boots, and the unit is active' {
            Get-Forwarding $script:LabB.Gateway | Should -Be '0,0'
            # The pwsh running this test and the built module are bound in read-only under /opt/psnfp, for the
            # cmdlet tests under a running systemd further down; the unit itself runs /bin/sh and iptables only.
            $script:Pwsh = Get-PsnfpPwshBinds -ModulePath $script:ModulePath
            $script:Container = Start-PsnfpContainer -Root $script:Overlay.Root -Namespace $script:LabB.Gateway -LogPath "$($script:Overlay.Dir)/nspawn.log" -Bind $script:Pwsh.Bind
            $failed = (Invoke-PsnfpContainer -Container $script:Container -ArgumentList @('systemctl', '--failed', '--no-legend', '--plain')).StdOut.Trim()
            (Invoke-PsnfpContainer -Container $script:Container -ArgumentList @('systemctl', 'is-active', 'psnetfilter.service')).StdOut.Trim() | Should -Be 'active' -Because "failed units: $failed"
            (Invoke-PsnfpContainer -Container $script:Container -ArgumentList @('systemctl', 'is-enabled', 'psnetfilter.service')).StdOut.Trim() | Should -Be 'enabled'
            $journal = (Invoke-PsnfpContainer -Container $script:Container -ArgumentList @('journalctl', '-u', 'psnetfilter.service', '--no-pager', '-o', 'cat')).StdOut
            $journal | Should -Match 'IPv4: restored A'
            $journal | Should -Match 'IPv6: restored B'
        }

        It 'turned forwarding on, and traffic flows through the persisted forwards only' {
            $gw = $script:LabB.Gateway
            Get-Forwarding $gw | Should -Be '1,1'
            @((Get-PortForward -NetworkNamespace $gw).Name) | Should -Be @('A', 'B', 'D')   # C was not selected: it did not come
            @(Get-PortForward -NetworkNamespace $gw | Where-Object Status -NE 'Complete').Count | Should -Be 0
            $probe = Invoke-PSNetfilterLabProbe -Lab $script:LabB -Target @(
                @{ Protocol = 'Tcp'; Address = '203.0.113.1'; Port = 8080 },
                @{ Protocol = 'Tcp'; Address = '[2001:db8:1::1]'; Port = 8081 },
                @{ Protocol = 'Tcp'; Address = '203.0.113.1'; Port = 8082 },
                @{ Protocol = 'Tcp'; Address = '203.0.113.1'; Port = 8083 })
            $probe[0].Reply | Should -Be 'hello from server; you are 198.51.100.1 proto tcp port 8080'
            $probe[1].Reply | Should -Be 'hello from server; you are 2001:db8:2::1 proto tcp port 8080'
            $probe[2].Success | Should -BeFalse
            $probe[3].Reply | Should -Be 'hello from server; you are 203.0.113.2 proto tcp port 8080'
        }

        It 'left the foreign rules and the live forward intact' {
            $pre = ($script:PreBoot -split "`n" | Where-Object { $_ -notmatch 'PSNF-' }) -join "`n"
            Get-PsnfpDump -Namespace $script:LabB.Gateway -NoModule | Should -Be $pre
            Get-PsnfpTaggedCount -Namespace $script:LabB.Gateway -Name D | Should -Be 2
        }

        It 'restart changes nothing' {
            $before = Get-PsnfpDump -Namespace $script:LabB.Gateway
            $r = Invoke-PsnfpContainer -Container $script:Container -ArgumentList @('systemctl', 'restart', 'psnetfilter.service')
            $r.ExitCode | Should -Be 0 -Because $r.Output
            (Invoke-PsnfpContainer -Container $script:Container -ArgumentList @('systemctl', 'is-active', 'psnetfilter.service')).StdOut.Trim() | Should -Be 'active'
            Get-PsnfpDump -Namespace $script:LabB.Gateway | Should -Be $before
        }

        It 'stop removes exactly the restored forwards' {
            $r = Invoke-PsnfpContainer -Container $script:Container -ArgumentList @('systemctl', 'stop', 'psnetfilter.service')
            $r.ExitCode | Should -Be 0 -Because $r.Output
            Get-PsnfpDump -Namespace $script:LabB.Gateway | Should -Be $script:PreBoot
            @((Get-PortForward -NetworkNamespace $script:LabB.Gateway).Name) | Should -Be @('D')
        }

        It 'with systemd running, the cmdlets start, report and stop units (pwsh inside the booted image)' {
            $r = Invoke-PsnfpContainer -Container $script:Container -ArgumentList @('systemctl', 'start', 'psnetfilter.service')
            $r.ExitCode | Should -Be 0 -Because $r.Output
            $run = Invoke-PsnfpContainerPwsh -Container $script:Container -Pwsh $script:Pwsh -Script @'
                $o = [ordered]@{}
                $o.Before = @(Get-PortForward | ForEach-Object { "$($_.Name)=$($_.Persisted)" })
                $first = Get-PortForward D | Install-PortForwardService -Name psnfp-extra
                $o.First = $first | Select-Object UnitName, State, Started, Changed, Enabled
                $again = Get-PortForward D | Install-PortForwardService -Name psnfp-extra
                $o.Again = $again | Select-Object State, Started, Changed
                $o.WithExtra = @(Get-PortForward | ForEach-Object { "$($_.Name)=$($_.Persisted)" })
                Uninstall-PortForwardService -Name psnfp-extra
                $o.AfterKeep = @(Get-PortForward | ForEach-Object { "$($_.Name)=$($_.Persisted)" })
                $o.ExtraState = (& systemctl is-active psnfp-extra.service) -join ''
                $o.ExtraFiles = @(Test-Path /etc/systemd/system/psnfp-extra.service, /etc/psnetfilter/psnfp-extra, /etc/systemd/system/multi-user.target.wants/psnfp-extra.service)
                $null = Get-PortForward D | Install-PortForwardService -Name psnfp-extra
                Uninstall-PortForwardService -Name psnfp-extra -RemoveForwards
                $o.AfterRemove = @(Get-PortForward | ForEach-Object { $_.Name })
                $o.MainState = (& systemctl is-active psnetfilter.service) -join ''
                $null = New-PortForward -Name D -ExternalPort 8083 -InternalAddress 198.51.100.10 -InternalPort 8080 -NoSnat
                $o
'@
            $o = $run.Result
            $o.Before | Should -Be @('A=True', 'B=True', 'D=False') -Because $run.Output
            $o.First.UnitName | Should -Be 'psnfp-extra.service'
            $o.First.State | Should -Be 'active'
            $o.First.Started | Should -BeTrue
            $o.First.Changed | Should -BeTrue
            $o.First.Enabled | Should -BeTrue
            $o.Again.Changed | Should -BeFalse
            $o.Again.Started | Should -BeFalse
            $o.Again.State | Should -Be 'active'
            $o.WithExtra | Should -Be @('A=True', 'B=True', 'D=True')
            $o.AfterKeep | Should -Be @('A=True', 'B=True', 'D=False')
            $o.ExtraState | Should -Not -Be 'active'
            $o.ExtraFiles | Should -Be @($false, $false, $false)
            $o.AfterRemove | Should -Be @('A', 'B')
            $o.MainState | Should -Be 'active'
            @((Get-PortForward -NetworkNamespace $script:LabB.Gateway).Name) | Should -Be @('A', 'B', 'D')
            $probe = Invoke-PSNetfilterLabProbe -Lab $script:LabB -Protocol Tcp -Address 203.0.113.1 -Port 8083
            $probe | Should -Be 'hello from server; you are 203.0.113.2 proto tcp port 8080'
        }

        It 'with systemd running, a unit for a named namespace restores into that namespace only (pwsh inside the booted image)' {
            $run = Invoke-PsnfpContainerPwsh -Container $script:Container -Pwsh $script:Pwsh -Script @'
                $ErrorActionPreference = 'Stop'
                $o = [ordered]@{}
                & ip netns add psnfp-inner
                try {
                    $null = New-PortForward -NetworkNamespace psnfp-inner -Name E -ExternalPort 8084 -InternalAddress 198.51.100.10 -SnatAddress 198.51.100.1 -WarningAction SilentlyContinue
                    $svc = Get-PortForward -NetworkNamespace psnfp-inner E | Install-PortForwardService -Name psnfp-inner -NetworkNamespace psnfp-inner
                    $o.Install = $svc | Select-Object UnitName, State, Started, Enabled
                    $o.ExecStart = @(Get-Content /etc/systemd/system/psnfp-inner.service | Where-Object { $_ -like 'ExecStart=*' })
                    $o.AfterInstall = @(& ip netns exec psnfp-inner iptables-save | Where-Object { $_ -match 'psnf:v1:E:' }).Count
                    # Take the live forward away; systemd's restart of the unit (stop, then start) brings it back.
                    Remove-PortForward -NetworkNamespace psnfp-inner -Name E
                    $o.Removed = @(Get-PortForward -NetworkNamespace psnfp-inner).Count
                    & systemctl restart psnfp-inner.service
                    $o.RestartExit = $LASTEXITCODE
                    $o.AfterRestart = @(Get-PortForward -NetworkNamespace psnfp-inner | ForEach-Object { "$($_.Name)=$($_.Status)=$($_.Persisted)" })
                    $o.Tagged = @(& ip netns exec psnfp-inner iptables-save | Where-Object { $_ -match 'psnf:v1:E:' }).Count
                    $o.Outside = @(Get-PortForward | ForEach-Object Name)
                    & systemctl stop psnfp-inner.service
                    $o.AfterStop = @(Get-PortForward -NetworkNamespace psnfp-inner).Count
                    Uninstall-PortForwardService -Name psnfp-inner
                    $o.Files = @(Test-Path /etc/systemd/system/psnfp-inner.service, /etc/psnetfilter/psnfp-inner)
                }
                finally {
                    & ip netns delete psnfp-inner
                }
                $o
'@
            $o = $run.Result
            $o.Install.UnitName | Should -Be 'psnfp-inner.service' -Because $run.Output
            $o.Install.State | Should -Be 'active'
            $o.Install.Started | Should -BeTrue
            $o.Install.Enabled | Should -BeTrue
            $o.ExecStart | Should -Be @('ExecStart=/sbin/ip netns exec psnfp-inner /bin/sh /etc/psnetfilter/psnfp-inner/apply.sh start')
            $o.AfterInstall | Should -Be 3 -Because 'starting the unit leaves one copy of the live forward'
            $o.Removed | Should -Be 0
            $o.RestartExit | Should -Be 0
            $o.AfterRestart | Should -Be @('E=Complete=True')
            $o.Tagged | Should -Be 3
            $o.Outside | Should -Be @('A', 'B', 'D') -Because 'the unit restores into its namespace, not the one systemd runs in'
            $o.AfterStop | Should -Be 0
            $o.Files | Should -Be @($false, $false)
            @((Get-PortForward -NetworkNamespace $script:LabB.Gateway).Name) | Should -Be @('A', 'B', 'D')
        }

        It 'is stopped at shutdown, which removes the forwards again' {
            $r = Invoke-PsnfpContainer -Container $script:Container -ArgumentList @('systemctl', 'start', 'psnetfilter.service')
            $r.ExitCode | Should -Be 0 -Because $r.Output
            Get-PsnfpTaggedCount -Namespace $script:LabB.Gateway -Name A | Should -Be 3
            Stop-PsnfpContainer $script:Container | Should -BeTrue
            $script:Container = $null
            Get-PsnfpDump -Namespace $script:LabB.Gateway | Should -Be $script:PreBoot
        }

        It 'cleans up: no container, no overlay mount left' {
            $root = $script:Overlay.Root
            Remove-PsnfpOverlay $script:Overlay
            $script:Overlay = $null
            Test-PsnfpMounted $root | Should -BeFalse
            @(Get-Content -LiteralPath /proc/mounts | Where-Object { $_ -match 'psnfp-boot-' }).Count | Should -Be 0
        }
    }

    Context 'beside nftables.service with Debian''s stock /etc/nftables.conf (flush ruleset): the forwards come back by themselves' {
        BeforeAll {
            $script:RootfsN = Get-PsnfpRootfs
            $src = New-TestNamespace -Suffix nftsrc
            $script:SrcN = $src
            $w = @{ NetworkNamespace = $src; WarningAction = 'SilentlyContinue' }
            $null = New-PortForward @w -Name A -ExternalPort 8080 -InternalAddress 198.51.100.10 -SnatAddress 198.51.100.1
            $null = New-PortForward @w -Name B -ExternalAddress 2001:db8:1::1 -ExternalPort 8081 -InternalAddress 2001:db8:2::10 -InternalPort 8080 -Masquerade
            $script:LabN = New-TestLab
            $script:OverlayN = New-PsnfpOverlay -Rootfs $script:RootfsN
            $script:NftOverlays.Add($script:OverlayN)
            $null = Get-PortForward -NetworkNamespace $src A, B | Install-PortForwardService -Root $script:OverlayN.Root -NoStart -WarningAction SilentlyContinue
            # Enable nftables.service as `systemctl enable nftables` does (Debian ships it disabled).
            $wants = "$($script:OverlayN.Root)/etc/systemd/system/sysinit.target.wants"
            $null = New-Item -ItemType Directory -Force -Path $wants
            $null = New-Item -ItemType SymbolicLink -Path "$wants/nftables.service" -Target /lib/systemd/system/nftables.service

            function script:Invoke-InN([string[]]$Arguments) { Invoke-PsnfpContainer -Container $script:NftContainer -ArgumentList $Arguments }
            function script:Get-Counted([string]$Namespace) {
                # Both families with counters, in order, without the timestamp comments.
                $lines = foreach ($tool in 'iptables-save', 'ip6tables-save') {
                    (Invoke-PsnfpProcess ip -ArgumentList @('netns', 'exec', $Namespace, $tool, '-c') -Check).StdOut -split "`n" | Where-Object { $_ -and -not $_.StartsWith('#') }
                }
                $lines -join "`n"
            }
            function script:Wait-Forwards([string]$Namespace, [string[]]$Names) {
                # The unit's reload runs as a job of its own (propagated, or queued by the helper): poll.
                $deadline = [DateTime]::UtcNow.AddSeconds(30)
                do {
                    $fwd = @(Get-PortForward -NetworkNamespace $Namespace -WarningAction SilentlyContinue)
                    if ((@($fwd | ForEach-Object Name) -join ',') -eq ($Names -join ',') -and -not ($fwd | Where-Object Status -NE 'Complete')) { return $true }
                    Start-Sleep -Milliseconds 250
                } while ([DateTime]::UtcNow -lt $deadline)
                $false
            }
            function script:Add-Marker([string]$Namespace) {
                Invoke-PsnfpProcess ip -ArgumentList @('netns', 'exec', $Namespace, 'iptables', '-t', 'filter', '-N', 'H6B-MARK') -Check | Out-Null
            }
            function script:Test-Marker([string]$Namespace) {
                (Invoke-PsnfpProcess ip -ArgumentList @('netns', 'exec', $Namespace, 'iptables', '-t', 'filter', '-S', 'H6B-MARK')).ExitCode -eq 0
            }
            function script:Get-ReloadCount {
                @((Invoke-InN @('journalctl', '-u', 'psnetfilter.service', '--no-pager', '-o', 'cat')).StdOut -split "`n" | Where-Object { $_ -match 'IPv4: restored A \(.*left alone: none' }).Count
            }
        }

        It 'the unit and its re-apply helper pass systemd-analyze verify in an image with nftables.service and in one without any followed manager' {
            foreach ($u in 'psnetfilter.service', 'psnetfilter-reapply.service') {
                $r = Test-PsnfpUnitFile -Path "/etc/systemd/system/$u" -Root $script:OverlayN.Root
                $r.Output | Should -BeNullOrEmpty -Because "verify of $u with nftables.service installed and enabled"
                $r.ExitCode | Should -Be 0
            }
            # Without: a copy of the image whose nftables.service is removed, so none of the followed managers exists.
            $bare = New-PsnfpOverlay -Rootfs $script:RootfsN
            $script:NftOverlays.Add($bare)
            Remove-Item -LiteralPath "$($bare.Root)/usr/lib/systemd/system/nftables.service" -Force -ErrorAction SilentlyContinue
            Remove-Item -LiteralPath "$($bare.Root)/lib/systemd/system/nftables.service" -Force -ErrorAction SilentlyContinue
            foreach ($m in $script:FollowedManagers) {
                Test-Path -LiteralPath "$($bare.Root)/usr/lib/systemd/system/$m" | Should -BeFalse
            }
            $null = Get-PortForward -NetworkNamespace $script:SrcN A | Install-PortForwardService -Root $bare.Root -NoStart -WarningAction SilentlyContinue
            foreach ($u in 'psnetfilter.service', 'psnetfilter-reapply.service') {
                $r = Test-PsnfpUnitFile -Path "/etc/systemd/system/$u" -Root $bare.Root
                $r.Output | Should -BeNullOrEmpty -Because "verify of $u without any followed manager installed"
                $r.ExitCode | Should -Be 0
            }
        }

        It 'boots: nftables.service flushes the ruleset first, then the unit restores the forwards, and they carry traffic' {
            $script:NftContainer = Start-PsnfpContainer -Root $script:OverlayN.Root -Namespace $script:LabN.Gateway -LogPath "$($script:OverlayN.Dir)/nspawn.log"
            (Invoke-InN @('systemctl', 'is-active', 'nftables.service')).StdOut.Trim() | Should -Be 'active'
            (Invoke-InN @('systemctl', 'is-active', 'psnetfilter.service')).StdOut.Trim() | Should -Be 'active'
            Wait-Forwards $script:LabN.Gateway @('A', 'B') | Should -BeTrue
            (Invoke-PsnfpProcess ip -ArgumentList @('netns', 'exec', $script:LabN.Gateway, 'nft', 'list', 'table', 'inet', 'filter')).ExitCode | Should -Be 0 -Because 'the stock nftables.conf was loaded'
            Invoke-PSNetfilterLabProbe -Lab $script:LabN -Protocol Tcp -Address 203.0.113.1 -Port 8080 | Should -Be 'hello from server; you are 198.51.100.1 proto tcp port 8080'
        }

        It 'a start, a reload and the helper over identical live forwards change nothing: rule order and counters stay' {
            $gw = $script:LabN.Gateway
            foreach ($i in 1..3) { $null = Invoke-PSNetfilterLabProbe -Lab $script:LabN -Protocol Tcp -Address 203.0.113.1 -Port 8080 }
            $null = Invoke-PSNetfilterLabProbe -Lab $script:LabN -Protocol Tcp -Address '[2001:db8:1::1]' -Port 8081
            $before = Get-Counted $gw
            $dnat = $before -split "`n" | Where-Object { $_ -match 'psnf:v1:A:dnat' }
            $dnat | Should -Match '^\[[1-9]\d*:[1-9]\d*\] ' -Because 'the forward carried traffic, so a reset would show'
            $r = Invoke-InN @('/bin/sh', '/etc/psnetfilter/psnetfilter/apply.sh', 'start')
            $r.ExitCode | Should -Be 0 -Because $r.Output
            $r.Output | Should -Match 'IPv4: restored A \(iptables nft; live as saved and left alone: A; 0 live rules'
            $r.Output | Should -Match 'IPv6: restored B \(ip6tables nft; live as saved and left alone: B; 0 live rules'
            Get-Counted $gw | Should -Be $before
            $r = Invoke-InN @('systemctl', 'reload', 'psnetfilter.service')
            $r.ExitCode | Should -Be 0 -Because $r.Output
            Get-Counted $gw | Should -Be $before
            $r = Invoke-InN @('systemctl', 'start', 'psnetfilter-reapply.service')
            $r.ExitCode | Should -Be 0 -Because $r.Output
            Start-Sleep -Seconds 2
            (Invoke-InN @('systemctl', 'list-jobs', '--no-legend')).StdOut.Trim() | Should -BeNullOrEmpty
            Get-Counted $gw | Should -Be $before
        }

        It 'systemctl reload nftables wipes the forwards (flush ruleset) and they come back by themselves' {
            $gw = $script:LabN.Gateway
            Add-Marker $gw
            $n = Get-ReloadCount
            $r = Invoke-InN @('systemctl', 'reload', 'nftables.service')
            $r.ExitCode | Should -Be 0 -Because $r.Output
            Test-Marker $gw | Should -BeFalse -Because 'the flush deleted the iptables-nft tables'
            Wait-Forwards $gw @('A', 'B') | Should -BeTrue
            Get-ReloadCount | Should -Be ($n + 1) -Because 'the unit was reloaded once and found nothing live'
            Invoke-PSNetfilterLabProbe -Lab $script:LabN -Protocol Tcp -Address 203.0.113.1 -Port 8080 | Should -Be 'hello from server; you are 198.51.100.1 proto tcp port 8080'
            Invoke-PSNetfilterLabProbe -Lab $script:LabN -Protocol Tcp -Address '[2001:db8:1::1]' -Port 8081 | Should -Be 'hello from server; you are 2001:db8:2::1 proto tcp port 8080'
        }

        It 'systemctl restart nftables wipes the forwards and they come back by themselves (the re-apply helper)' {
            $gw = $script:LabN.Gateway
            Add-Marker $gw
            $n = Get-ReloadCount
            $r = Invoke-InN @('systemctl', 'restart', 'nftables.service')
            $r.ExitCode | Should -Be 0 -Because $r.Output
            Test-Marker $gw | Should -BeFalse
            Wait-Forwards $gw @('A', 'B') | Should -BeTrue
            Get-ReloadCount | Should -Be ($n + 1)
            (Invoke-InN @('systemctl', 'is-active', 'psnetfilter.service')).StdOut.Trim() | Should -Be 'active'
            Invoke-PSNetfilterLabProbe -Lab $script:LabN -Protocol Tcp -Address 203.0.113.1 -Port 8080 | Should -Be 'hello from server; you are 198.51.100.1 proto tcp port 8080'
        }

        It 'a stopped unit stays stopped when nftables restarts: the helper only reloads an active unit' {
            $gw = $script:LabN.Gateway
            (Invoke-InN @('systemctl', 'stop', 'psnetfilter.service')).ExitCode | Should -Be 0
            @(Get-PortForward -NetworkNamespace $gw -WarningAction SilentlyContinue).Count | Should -Be 0
            (Invoke-InN @('systemctl', 'restart', 'nftables.service')).ExitCode | Should -Be 0
            Start-Sleep -Seconds 2
            (Invoke-InN @('systemctl', 'is-active', 'psnetfilter.service')).StdOut.Trim() | Should -Not -Be 'active'
            @(Get-PortForward -NetworkNamespace $gw -WarningAction SilentlyContinue).Count | Should -Be 0
        }

        It 'cleans up: container stopped, overlays unmounted' {
            Stop-PsnfpContainer $script:NftContainer | Should -BeTrue
            $script:NftContainer = $null
            foreach ($o in @($script:NftOverlays)) {
                Remove-PsnfpOverlay $o
                Test-PsnfpMounted $o.Root | Should -BeFalse
            }
            $script:NftOverlays.Clear()
        }
    }

    Context 'a real boot with forwards of the nftables backend beside nftables.service (stock flush ruleset)' {
        BeforeAll {
            # One unit, both backends: A (IPv4) and B (IPv6) in nftables, I in iptables.
            $src = New-TestNamespace -Suffix besrc
            $w = @{ NetworkNamespace = $src; WarningAction = 'SilentlyContinue' }
            $null = New-PortForward @w -Backend Nftables -Name A -ExternalPort 8080 -InternalAddress 198.51.100.10 -SnatAddress 198.51.100.1 -Description 'web, saved in nft'
            $null = New-PortForward @w -Backend Nftables -Name B -ExternalAddress 2001:db8:1::1 -ExternalPort 8081 -InternalAddress 2001:db8:2::10 -InternalPort 8080 -Masquerade
            $null = New-PortForward @w -Backend Iptables -Name I -ExternalPort 8082 -InternalAddress 198.51.100.10 -InternalPort 8080 -Masquerade
            $script:LabE = New-TestLab
            $script:OverlayE = New-PsnfpOverlay -Rootfs (Get-PsnfpRootfs)
            $script:NftOverlays.Add($script:OverlayE)
            $script:SvcE = Get-PortForward -NetworkNamespace $src A, B, I | Install-PortForwardService -Root $script:OverlayE.Root -NoStart -WarningAction SilentlyContinue
            $wants = "$($script:OverlayE.Root)/etc/systemd/system/sysinit.target.wants"
            $null = New-Item -ItemType Directory -Force -Path $wants
            $null = New-Item -ItemType SymbolicLink -Path "$wants/nftables.service" -Target /lib/systemd/system/nftables.service

            function script:Invoke-InE([string[]]$Arguments) { Invoke-PsnfpContainer -Container $script:BeContainer -ArgumentList $Arguments }
            function script:Get-OurTable { (Invoke-PsnfpProcess ip -ArgumentList @('netns', 'exec', $script:LabE.Gateway, 'nft', '-a', 'list', 'table', 'inet', 'psnetfilter') -Check).StdOut }
            # The ruleset without our table and, with -NotIptables, without the tables iptables-nft keeps (where I lives).
            function script:Get-OtherTables([switch]$NotIptables) {
                $all = (Invoke-PsnfpProcess ip -ArgumentList @('netns', 'exec', $script:LabE.Gateway, 'nft', 'list', 'ruleset') -Check).StdOut -split "`n"
                $skip = $false
                $drop = @('table inet psnetfilter {') + $(if ($NotIptables) { 'table ip nat {', 'table ip filter {', 'table ip6 nat {', 'table ip6 filter {' })
                $kept = foreach ($l in $all) {
                    if ($drop -contains $l) { $skip = $true; continue }
                    if ($skip) { if ($l -eq '}') { $skip = $false }; continue }
                    $l
                }
                $kept -join "`n"
            }
            function script:Wait-ForwardsE([string[]]$Names) {
                $deadline = [DateTime]::UtcNow.AddSeconds(30)
                do {
                    $fwd = @(Get-PortForward -NetworkNamespace $script:LabE.Gateway -WarningAction SilentlyContinue)
                    if ((@($fwd | ForEach-Object Name) -join ',') -eq ($Names -join ',') -and -not ($fwd | Where-Object Status -NE 'Complete')) { return $true }
                    Start-Sleep -Milliseconds 250
                } while ([DateTime]::UtcNow -lt $deadline)
                $false
            }
            function script:Assert-TrafficE {
                Invoke-PSNetfilterLabProbe -Lab $script:LabE -Protocol Tcp -Address 203.0.113.1 -Port 8080 | Should -Be 'hello from server; you are 198.51.100.1 proto tcp port 8080'
                Invoke-PSNetfilterLabProbe -Lab $script:LabE -Protocol Tcp -Address '[2001:db8:1::1]' -Port 8081 | Should -Be 'hello from server; you are 2001:db8:2::1 proto tcp port 8080'
                Invoke-PSNetfilterLabProbe -Lab $script:LabE -Protocol Tcp -Address 203.0.113.1 -Port 8082 | Should -Be 'hello from server; you are 198.51.100.1 proto tcp port 8080'
            }
        }

        It 'writes forwards.nft beside the script, and the unit passes systemd-analyze verify' {
            $script:SvcE.Files | Should -Contain "$($script:OverlayE.Root)/etc/psnetfilter/psnetfilter/forwards.nft"
            $r = Test-PsnfpUnitFile -Path /etc/systemd/system/psnetfilter.service -Root $script:OverlayE.Root
            $r.Output | Should -BeNullOrEmpty
            $r.ExitCode | Should -Be 0
        }

        It 'boots: nftables.service flushes the ruleset, then the unit loads forwards.nft whole and restores I in iptables; all carry traffic' {
            $script:BeContainer = Start-PsnfpContainer -Root $script:OverlayE.Root -Namespace $script:LabE.Gateway -LogPath "$($script:OverlayE.Dir)/nspawn.log"
            (Invoke-InE @('systemctl', 'is-active', 'nftables.service')).StdOut.Trim() | Should -Be 'active'
            (Invoke-InE @('systemctl', 'is-active', 'psnetfilter.service')).StdOut.Trim() | Should -Be 'active'
            Wait-ForwardsE @('A', 'B', 'I') | Should -BeTrue
            $journal = (Invoke-InE @('journalctl', '-u', 'psnetfilter.service', '--no-pager', '-o', 'cat')).StdOut
            $journal | Should -Match 'nftables: restored A B \(the table was not there'
            $journal | Should -Match 'IPv4: restored I '
            $fwd = Get-PortForward -NetworkNamespace $script:LabE.Gateway
            @($fwd | ForEach-Object { "$($_.Name) $($_.Backend)" }) | Should -Be @('A nftables', 'B nftables', 'I iptables')
            ($fwd | Where-Object Name -EQ 'A').Description | Should -Be 'web, saved in nft'
            Assert-TrafficE
        }

        It 'a start, a reload and the helper over identical live forwards change nothing: handles and element counters stay' {
            $null = Invoke-PSNetfilterLabProbe -Lab $script:LabE -Protocol Tcp -Address 203.0.113.1 -Port 8080
            (Get-PortForward -NetworkNamespace $script:LabE.Gateway A).Packets | Should -BeGreaterThan 0 -Because 'the forward carried traffic, so a reset would show'
            $before = Get-OurTable
            $r = Invoke-InE @('/bin/sh', '/etc/psnetfilter/psnetfilter/apply.sh', 'start')
            $r.ExitCode | Should -Be 0 -Because $r.Output
            $r.Output | Should -Match 'nftables: restored A B \(live as saved and left alone: A B; 0 live parts'
            Get-OurTable | Should -Be $before
            (Invoke-InE @('systemctl', 'reload', 'psnetfilter.service')).ExitCode | Should -Be 0
            Get-OurTable | Should -Be $before
            (Invoke-InE @('systemctl', 'start', 'psnetfilter-reapply.service')).ExitCode | Should -Be 0
            Start-Sleep -Seconds 2
            Get-OurTable | Should -Be $before
        }

        It 'systemctl restart nftables wipes the forwards (flush ruleset) and they come back by themselves' {
            $r = Invoke-InE @('systemctl', 'restart', 'nftables.service')
            $r.ExitCode | Should -Be 0 -Because $r.Output
            Wait-ForwardsE @('A', 'B', 'I') | Should -BeTrue
            Assert-TrafficE
        }

        It 'stop removes exactly the saved forwards; a live unsaved forward and every other table stay as they were' {
            $gw = $script:LabE.Gateway
            $null = New-PortForward -NetworkNamespace $gw -Backend Nftables -Name U -ExternalPort 8083 -InternalAddress 198.51.100.10 -InternalPort 8080 -NoSnat -WarningAction SilentlyContinue
            $others = Get-OtherTables -NotIptables
            $r = Invoke-InE @('systemctl', 'stop', 'psnetfilter.service')
            $r.ExitCode | Should -Be 0 -Because $r.Output
            @(Get-PortForward -NetworkNamespace $gw | ForEach-Object Name) | Should -Be @('U')
            (Get-PortForward -NetworkNamespace $gw U).Status | Should -Be 'Complete'
            # nftables.service's table stays byte for byte; iptables loses I's rules (the iptables suites check those tables).
            Get-OtherTables -NotIptables | Should -Be $others
            $others | Should -Match 'table inet filter'
            Get-PsnfpTaggedCount -Namespace $gw -Name I | Should -Be 0
        }

        It 'cleans up: container stopped' {
            Stop-PsnfpContainer $script:BeContainer | Should -BeTrue
            $script:BeContainer = $null
        }
    }
}
