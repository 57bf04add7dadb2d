# The Ansible role docs/ansible/roles/psnetfilter_forwards (issue 5), run by Debian's ansible with the example
# playbook docs/ansible/site.yml against a fleet of three booted gateway containers:
#
#     client 203.0.113.2 / 2001:db8:1::2                     (one lab per gateway, the same addressing in each)
#        |
#     gateway 203.0.113.1 / 2001:db8:1::1, 198.51.100.1 / 2001:db8:2::1
#        |   a minimal Debian (python3 added) booted with systemd-nspawn into this namespace; an overlay, a cgroup
#        |   and a tmpfs /tmp of its own; pwsh and the built module bound in read-only under /opt/psnfp
#     server 198.51.100.10 / 2001:db8:2::10 (hello server: TCP 8080, 8081, 9090; UDP 5353)
#
# Ansible reaches each container with the community.docker.nsenter connection (ansible_nsenter_pid = the
# container's systemd). Proven: the first run changes every gateway, the second changes nothing, check mode
# (with the same list and with a modified one) reports what would change and changes nothing, and after a
# reboot of each container (poweroff, then a boot from the same overlay into a fresh lab whose gateway has no
# rules and forwarding off) the persisted forwards carry real traffic; a run after the reboot changes nothing.
#
# Everything created here is named psnfa-* (namespaces, machines, cgroups, folders) and is removed again in
# AfterAll, also after a failure. The It blocks run in order and build on each other.

BeforeDiscovery {
    $isRoot = (& id -u) -eq '0'
    $AnsibleSkipReason = $null
    if ($env:CI -ne 'true' -and -not $isRoot) {
        $AnsibleSkipReason = 'needs root (network namespaces, mounts, cgroups, systemd-nspawn, apt-get)'
    }
    $AnsibleTitle = if ($AnsibleSkipReason) { "Ansible role psnetfilter_forwards (skipped: $AnsibleSkipReason)" } else { 'Ansible role psnetfilter_forwards on a fleet of booted gateways' }
}

Describe $AnsibleTitle -Skip:([bool]$AnsibleSkipReason) {
    BeforeAll {
        . (Join-Path $PSScriptRoot '../support/ImportBootedImageSuite.ps1')
        Import-Module (Join-Path $PSScriptRoot 'ansible/AnsibleTestHelpers.psm1') -Force
        Install-PsnfpPackage -Command @{
            'ip' = 'iproute2'; 'ss' = 'iproute2'; 'iptables' = 'iptables'; 'debootstrap' = 'debootstrap'
            'systemd-nspawn' = 'systemd-container'; 'nsenter' = 'util-linux'; 'ansible-playbook' = 'ansible'
        }

        $script:AnsibleDir = (Resolve-Path -LiteralPath (Join-Path $PSScriptRoot '../../docs/ansible')).ProviderPath
        $script:Playbook = Join-Path $script:AnsibleDir 'site.yml'
        $script:Work = Join-Path ([IO.Path]::GetTempPath()) ('psnfa-work-' + (New-PsnfaId))
        $null = New-Item -ItemType Directory -Path $script:Work
        $script:Clock = [Diagnostics.Stopwatch]::StartNew()
        $script:Timings = [ordered]@{}
        $script:Fleet = [System.Collections.Generic.List[object]]::new()
        $script:OldLabs = [System.Collections.Generic.List[object]]::new()

        $script:Rootfs = Get-PsnfaRootfs
        $script:Pwsh = Get-PsnfpPwshBinds -ModulePath $script:ModulePath
        $script:Timings.Setup = $script:Clock.Elapsed.TotalSeconds

        function script:New-TestLab {
            # A fresh client/gateway/server lab with the hello server; the gateway has no rules and forwarding off.
            $lab = New-PSNetfilterLab -Prefix 'psnfa-' -Forwarding $false
            try { $null = Start-PSNetfilterLabServer -Lab $lab -TcpPort 8080, 8081, 9090 -UdpPort 5353 -LifetimeSeconds 1200 }
            catch { Remove-PSNetfilterLab -Lab $lab -ErrorAction Continue; throw }
            $lab
        }

        function script:Start-Fleet {
            # Boots every gateway's container from its overlay into its lab's gateway, side by side, then waits.
            foreach ($gw in $script:Fleet) {
                $gw.Cgroup = New-PsnfaCgroup -Name "psnfa-$($gw.Lab.Id)"
                $gw.Container = Start-PsnfaContainer -Root $gw.Overlay.Root -Namespace $gw.Lab.Gateway -Cgroup $gw.Cgroup `
                    -LogPath (Join-Path $gw.Overlay.Dir "nspawn-$($gw.Lab.Id).log") -Bind $script:Pwsh.Bind -Machine "psnfa-$($gw.Lab.Id)"
            }
            foreach ($gw in $script:Fleet) { $null = Wait-PsnfaContainer -Container $gw.Container -TimeoutSeconds 120 }
        }

        function script:Write-Inventory([string]$Name, [switch]$Modified) {
            # An inventory (JSON, which the yaml inventory plugin reads) with the fleet's current systemd PIDs.
            $hosts = [ordered]@{}
            foreach ($gw in $script:Fleet) {
                $hosts[$gw.Host] = [ordered]@{
                    ansible_connection         = 'community.docker.nsenter'
                    ansible_nsenter_pid        = $gw.Container.SystemdPid
                    ansible_python_interpreter = '/usr/bin/python3'
                    ansible_remote_tmp         = '/tmp/.ansible/tmp'
                    psnetfilter_exclusive      = $gw.Exclusive
                    psnetfilter_forwards       = @(if ($Modified) { $gw.Modified } else { $gw.Forwards })
                }
            }
            $inventory = [ordered]@{ all = [ordered]@{ children = [ordered]@{ gateways = [ordered]@{
                            vars  = [ordered]@{
                                psnetfilter_pwsh_command     = @($script:Pwsh.Command)
                                psnetfilter_module           = $script:Pwsh.Module
                                # The minimal image has no libicu.
                                psnetfilter_pwsh_environment = @{ DOTNET_SYSTEM_GLOBALIZATION_INVARIANT = '1'; HOME = '/root' }
                            }
                            hosts = $hosts
                        }
                    }
                }
            }
            $path = Join-Path $script:Work "$Name.json"
            ConvertTo-Json -InputObject $inventory -Depth 12 | Set-Content -LiteralPath $path -Encoding utf8NoBOM
            $path
        }

        function script:Invoke-Playbook([string]$Inventory, [string[]]$ExtraArgument = @(), [string]$Label) {
            $t = [Diagnostics.Stopwatch]::StartNew()
            $r = Invoke-PsnfaPlaybook -Playbook $script:Playbook -Inventory $Inventory -WorkDir $script:Work -ExtraArgument $ExtraArgument
            $script:Timings[$Label] = [Math]::Round($t.Elapsed.TotalSeconds, 1)
            Set-Content -LiteralPath (Join-Path $script:Work "$Label.log") -Value $r.Output
            $r
        }

        function script:Get-BootSetState([object]$Gateway) {
            # Hash and write time of the files the role's Install-PortForwardService wrote into the gateway's image.
            foreach ($rel in 'etc/psnetfilter/psnetfilter/apply.sh', 'etc/systemd/system/psnetfilter.service') {
                $p = Join-Path $Gateway.Overlay.Root $rel
                if (Test-Path -LiteralPath $p) { "$rel $((Get-FileHash -LiteralPath $p).Hash) $((Get-Item -LiteralPath $p).LastWriteTimeUtc.Ticks)" } else { "$rel missing" }
            }
        }

        function script:Get-Names([string]$Namespace) {
            [string[]]@(Get-PortForward -NetworkNamespace $Namespace | ForEach-Object Name | Sort-Object)
        }

        # The description travels as data: quotes, '$', backquote, ';', a newline and non-ASCII stay text.
        $tricky = "it's `"quoted`"; `$HOME `$(id) ``n ~root`nzweite Zeile: äö"
        $fleetSpec = @(
            @{
                Host = 'gw1'; Exclusive = $true; Stray = $true
                Forwards = @(
                    [ordered]@{ name = 'web'; protocol = 'tcp'; external_address = '203.0.113.1'; external_port = 8080; internal_address = '198.51.100.10'; internal_port = 8080 }
                    [ordered]@{ name = 'web6'; protocol = 'tcp'; external_address = '2001:db8:1::1'; external_port = 8081; internal_address = '2001:db8:2::10'; internal_port = 8080; snat_mode = 'masquerade'; description = 'IPv6 web' }
                    [ordered]@{ name = 'dns'; protocol = 'udp'; external_port = 5353; internal_address = '198.51.100.10'; snat_mode = 'snat'; snat_address = '198.51.100.1'; description = $tricky }
                )
                Modified = @(
                    [ordered]@{ name = 'web'; protocol = 'tcp'; external_address = '203.0.113.1'; external_port = 8080; internal_address = '198.51.100.10'; internal_port = 8081 }
                    [ordered]@{ name = 'web6'; protocol = 'tcp'; external_address = '2001:db8:1::1'; external_port = 8081; internal_address = '2001:db8:2::10'; internal_port = 8080; snat_mode = 'masquerade'; description = 'IPv6 web' }
                    [ordered]@{ name = 'dns'; protocol = 'udp'; external_port = 5353; internal_address = '198.51.100.10'; snat_mode = 'snat'; snat_address = '198.51.100.1'; description = $tricky }
                    [ordered]@{ name = 'extra'; external_port = 7000; internal_address = '198.51.100.10'; internal_port = 9090 }
                )
                Probes = @(
                    @{ Protocol = 'Tcp'; Address = '203.0.113.1'; Port = 8080; Expect = 'hello from server; you are 198.51.100.1 proto tcp port 8080' }
                    @{ Protocol = 'Tcp'; Address = '[2001:db8:1::1]'; Port = 8081; Expect = 'hello from server; you are 2001:db8:2::1 proto tcp port 8080' }
                    @{ Protocol = 'Udp'; Address = '203.0.113.1'; Port = 5353; Expect = 'hello from server; you are 198.51.100.1 proto udp port 5353' }
                    @{ Protocol = 'Tcp'; Address = '203.0.113.1'; Port = 9999; Expect = $null }   # the stray forward was removed
                )
            }
            @{
                Host = 'gw2'; Exclusive = $false; Stray = $true
                Forwards = @(
                    [ordered]@{ name = 'web'; external_port = 8080; internal_address = '198.51.100.10'; snat_mode = 'none' }
                    [ordered]@{ name = 'alt'; protocol = 'tcp'; external_address = '203.0.113.1'; external_port = 9000; internal_address = '198.51.100.10'; internal_port = 9090; snat_mode = 'masquerade' }
                )
                # alt leaves the list: not exclusive, so it stays live, but the saved set would change.
                Modified = @(
                    [ordered]@{ name = 'web'; external_port = 8080; internal_address = '198.51.100.10'; snat_mode = 'none' }
                )
                Probes = @(
                    @{ Protocol = 'Tcp'; Address = '203.0.113.1'; Port = 8080; Expect = 'hello from server; you are 203.0.113.2 proto tcp port 8080' }
                    @{ Protocol = 'Tcp'; Address = '203.0.113.1'; Port = 9000; Expect = 'hello from server; you are 198.51.100.1 proto tcp port 9090' }
                    @{ Protocol = 'Tcp'; Address = '203.0.113.1'; Port = 9999; Expect = 'hello from server; you are 198.51.100.1 proto tcp port 8080'; BeforeRebootOnly = $true }
                )
            }
            @{
                Host = 'gw3'; Exclusive = $false; Stray = $false
                Forwards = @(
                    [ordered]@{ name = 'web'; external_address = '203.0.113.1'; external_port = 8080; internal_address = '198.51.100.10'; snat_address = '198.51.100.1' }
                    [ordered]@{ name = 'dns6'; protocol = 'udp'; external_address = '2001:db8:1::1'; external_port = 5353; internal_address = '2001:db8:2::10'; snat_mode = 'masquerade'; description = 'resolver' }
                    [ordered]@{ name = 'range'; external_address = '203.0.113.1'; external_port = '8090-8091'; internal_address = '198.51.100.10'; internal_port = '8080-8081'; description = $null }
                )
                Modified = @(
                    [ordered]@{ name = 'web'; external_address = '203.0.113.1'; external_port = 8080; internal_address = '198.51.100.10'; snat_address = '198.51.100.1' }
                    [ordered]@{ name = 'dns6'; protocol = 'udp'; external_address = '2001:db8:1::1'; external_port = 5353; internal_address = '2001:db8:2::10'; snat_mode = 'masquerade'; description = 'another resolver' }
                    [ordered]@{ name = 'range'; external_address = '203.0.113.1'; external_port = '8090-8091'; internal_address = '198.51.100.10'; internal_port = '8080-8081'; description = $null }
                )
                Probes = @(
                    @{ Protocol = 'Tcp'; Address = '203.0.113.1'; Port = 8080; Expect = 'hello from server; you are 198.51.100.1 proto tcp port 8080' }
                    @{ Protocol = 'Udp'; Address = '[2001:db8:1::1]'; Port = 5353; Expect = 'hello from server; you are 2001:db8:2::1 proto udp port 5353' }
                    @{ Protocol = 'Tcp'; Address = '203.0.113.1'; Port = 8091; Expect = 'hello from server; you are 198.51.100.1 proto tcp port 8081' }
                )
            }
        )

        foreach ($spec in $fleetSpec) {
            $lab = New-TestLab
            $gw = [pscustomobject]@{
                Host = $spec.Host; Exclusive = $spec.Exclusive; Stray = $spec.Stray; Forwards = $spec.Forwards; Modified = $spec.Modified
                Probes = $spec.Probes; Lab = $lab; Overlay = $null; Cgroup = $null; Container = $null
                Names = [string[]]@($spec.Forwards | ForEach-Object { $_.name } | Sort-Object)
            }
            $script:Fleet.Add($gw)
            $gw.Overlay = New-PsnfaOverlay -Rootfs $script:Rootfs
        }
        $script:Timings.Labs = [Math]::Round($script:Clock.Elapsed.TotalSeconds, 1)
    }

    AfterAll {
        foreach ($gw in @($script:Fleet)) {
            if ($gw.Container) { $null = Stop-PsnfaContainer -Container $gw.Container -TimeoutSeconds 20 }
            elseif ($gw.Cgroup) { Remove-PsnfaCgroup $gw.Cgroup }
            if ($gw.Overlay) { Remove-PsnfpOverlay $gw.Overlay }
            if ($gw.Lab) { Remove-PSNetfilterLab -Lab $gw.Lab -ErrorAction Continue }
        }
        foreach ($lab in @($script:OldLabs)) { Remove-PSNetfilterLab -Lab $lab -ErrorAction Continue }
        if ($script:Work -and (Test-Path -LiteralPath $script:Work)) { Remove-Item -LiteralPath $script:Work -Recurse -Force }
        if ($script:Clock) {
            $script:Timings.Total = [Math]::Round($script:Clock.Elapsed.TotalSeconds, 1)
            Write-Host "Ansible fleet timings (s): $(($script:Timings.GetEnumerator() | ForEach-Object { "$($_.Key)=$($_.Value)" }) -join ', ')"
        }
    }

    It "is Debian's ansible (core 2.14) with the community.docker.nsenter connection" {
        $v = Invoke-PsnfpProcess ansible-playbook -ArgumentList @('--version') -Environment @{ LC_ALL = 'C.UTF-8' } -Check
        $v.StdOut | Should -Match 'core 2\.14\.'
        (Invoke-PsnfpProcess dpkg-query -ArgumentList @('-W', '-f', '${Status}', 'ansible')).StdOut | Should -Be 'install ok installed'
        $doc = Invoke-PsnfpProcess ansible-doc -ArgumentList @('-t', 'connection', 'community.docker.nsenter') -Environment @{ LC_ALL = 'C.UTF-8'; HOME = $script:Work }
        $doc.ExitCode | Should -Be 0 -Because $doc.Output
        $doc.StdOut | Should -Match 'nsenter_pid'
    }

    It 'the role parses: the pwsh script and the YAML' {
        $ps1 = Join-Path $script:AnsibleDir 'roles/psnetfilter_forwards/files/psnetfilter_forwards.ps1'
        $tokens = $null; $errors = $null
        $null = [System.Management.Automation.Language.Parser]::ParseFile($ps1, [ref]$tokens, [ref]$errors)
        @($errors).Count | Should -Be 0 -Because (@($errors) -join '; ')
        $r = Invoke-PsnfpProcess ansible-playbook -ArgumentList @('--syntax-check', '-i', (Join-Path $script:AnsibleDir 'inventory.example.yml'), $script:Playbook) -Environment @{ LC_ALL = 'C.UTF-8'; HOME = $script:Work; ANSIBLE_NOCOLOR = '1' }
        $r.ExitCode | Should -Be 0 -Because $r.Output
        # The command module expands $VARIABLES in argv (ansible-core 2.14): nothing the role puts there has a '$'.
        (Get-Content -Raw -LiteralPath (Join-Path $script:AnsibleDir 'roles/psnetfilter_forwards/vars/main.yml')) -split "`n" |
            Where-Object { $_ -match '^\s+- ' } | Where-Object { $_.Contains('$') } | Should -BeNullOrEmpty
    }

    It 'boots three gateway containers side by side, each in its own cgroup and lab gateway' {
        # The stray forwards exist before the first run: gw1 (exclusive) must remove its one, gw2 must keep it.
        foreach ($gw in $script:Fleet | Where-Object Stray) {
            $null = New-PortForward -NetworkNamespace $gw.Lab.Gateway -Name stray -ExternalPort 9999 -InternalAddress 198.51.100.10 -InternalPort 8080 -WarningAction SilentlyContinue
        }
        $t = [Diagnostics.Stopwatch]::StartNew()
        Start-Fleet
        $script:Timings.Boot = [Math]::Round($t.Elapsed.TotalSeconds, 1)
        $pids = @($script:Fleet | ForEach-Object { $_.Container.SystemdPid })
        @($pids | Select-Object -Unique).Count | Should -Be 3
        foreach ($gw in $script:Fleet) {
            $gw.Container.State | Should -BeIn 'running', 'degraded'
            $cg = Get-Content -LiteralPath "/proc/$($gw.Container.SystemdPid)/cgroup"
            ($cg -join "`n") | Should -Match ([regex]::Escape("/psnfa-$($gw.Lab.Id)/"))
            # The container's network namespace is its lab's gateway.
            (Get-Item -LiteralPath "/proc/$($gw.Container.SystemdPid)/ns/net").LinkTarget |
                Should -Be (Invoke-PsnfpProcess ip -ArgumentList @('netns', 'exec', $gw.Lab.Gateway, 'readlink', '/proc/self/ns/net') -Check).StdOut.Trim()
            (Invoke-PsnfpContainer -Container $gw.Container -ArgumentList @('/usr/bin/python3', '-c', 'print(1)')).StdOut.Trim() | Should -Be '1'
            # /tmp is a tmpfs (--tmpfs=/tmp; the image's own tmp.mount may stack another one on it).
            @((Invoke-PsnfpContainer -Container $gw.Container -ArgumentList @('findmnt', '-n', '-o', 'FSTYPE', '/tmp')).StdOut.Trim() -split "`n" | Select-Object -Unique) | Should -Be @('tmpfs')
        }
    }

    It 'first run: changed on every gateway, the forwards are live and persisted' {
        $script:Inventory = Write-Inventory -Name inventory
        $r = Invoke-Playbook -Inventory $script:Inventory -Label Run1
        $r.ExitCode | Should -Be 0 -Because $r.Output
        foreach ($gw in $script:Fleet) {
            $recap = $r.Recap[$gw.Host]
            $recap | Should -Not -BeNullOrEmpty -Because $r.Output
            $recap.failed | Should -Be 0
            $recap.unreachable | Should -Be 0
            $recap.changed | Should -Be 2 -Because "apply and persist both change $($gw.Host): $($r.Output)"
            $expected = [string[]]@($gw.Names + @(if ($gw.Stray -and -not $gw.Exclusive) { 'stray' }) | Sort-Object)
            Get-Names $gw.Lab.Gateway | Should -Be $expected
            @(Get-PortForward -NetworkNamespace $gw.Lab.Gateway | Where-Object Status -NE 'Complete').Count | Should -Be 0
            (Invoke-PsnfpContainer -Container $gw.Container -ArgumentList @('systemctl', 'is-active', 'psnetfilter.service')).StdOut.Trim() | Should -Be 'active'
            (Invoke-PsnfpContainer -Container $gw.Container -ArgumentList @('systemctl', 'is-enabled', 'psnetfilter.service')).StdOut.Trim() | Should -Be 'enabled'
            $header = @(Get-Content -LiteralPath (Join-Path $gw.Overlay.Root 'etc/psnetfilter/psnetfilter/apply.sh') | Where-Object { $_ -match '^# psnf-forward: ' } | ForEach-Object { ($_ -split ' ')[2] } | Sort-Object)
            $header | Should -Be $gw.Names
        }
        $dns = Get-PortForward -NetworkNamespace $script:Fleet[0].Lab.Gateway -Name dns
        $dns.Description | Should -BeExactly $script:Fleet[0].Forwards[2].description
    }

    It 'second run: changed=0 on every gateway, nothing rewritten' {
        $script:Dumps = @{}; $script:BootSets = @{}
        foreach ($gw in $script:Fleet) { $script:Dumps[$gw.Host] = Get-PsnfpDump -Namespace $gw.Lab.Gateway; $script:BootSets[$gw.Host] = @(Get-BootSetState $gw) }
        $r = Invoke-Playbook -Inventory $script:Inventory -Label Run2
        $r.ExitCode | Should -Be 0 -Because $r.Output
        foreach ($gw in $script:Fleet) {
            $r.Recap[$gw.Host].changed | Should -Be 0 -Because $r.Output
            $r.Recap[$gw.Host].failed | Should -Be 0
            $r.Recap[$gw.Host].ok | Should -BeGreaterThan 2
            Get-PsnfpDump -Namespace $gw.Lab.Gateway | Should -Be $script:Dumps[$gw.Host]
            @(Get-BootSetState $gw) | Should -Be $script:BootSets[$gw.Host]
        }
    }

    It 'check mode with the same list: changed=0, nothing changed' {
        $r = Invoke-Playbook -Inventory $script:Inventory -ExtraArgument @('--check') -Label CheckSame
        $r.ExitCode | Should -Be 0 -Because $r.Output
        foreach ($gw in $script:Fleet) {
            $r.Recap[$gw.Host].changed | Should -Be 0 -Because $r.Output
            Get-PsnfpDump -Namespace $gw.Lab.Gateway | Should -Be $script:Dumps[$gw.Host]
            @(Get-BootSetState $gw) | Should -Be $script:BootSets[$gw.Host]
        }
    }

    It 'check mode with a modified list: reports changed on every gateway, changes nothing' {
        $modified = Write-Inventory -Name inventory-modified -Modified
        $r = Invoke-Playbook -Inventory $modified -ExtraArgument @('--check', '-v') -Label CheckModified
        $r.ExitCode | Should -Be 0 -Because $r.Output
        # The cmdlets ran with -WhatIf (their messages are in the task output that -v shows).
        $r.Output | Should -Match 'What if: Performing the operation \\"Replace port forward \(was: web Tcp 203\.0\.113\.1:8080 -> 198\.51\.100\.10:8080 '
        $r.Output | Should -Match 'What if: Performing the operation \\"Create port forward\\" on target \\"extra '
        # gw1: web replaced, extra created (and the saved set with them); gw2: alt leaves the saved set only;
        # gw3: dns6 replaced (new description).
        $r.Recap['gw1'].changed | Should -Be 2 -Because $r.Output
        $r.Recap['gw2'].changed | Should -Be 1 -Because $r.Output
        $r.Recap['gw3'].changed | Should -Be 2 -Because $r.Output
        foreach ($gw in $script:Fleet) {
            $r.Recap[$gw.Host].failed | Should -Be 0
            Get-PsnfpDump -Namespace $gw.Lab.Gateway | Should -Be $script:Dumps[$gw.Host]
            @(Get-BootSetState $gw) | Should -Be $script:BootSets[$gw.Host]
            # The scratch root of the persist prediction is gone again.
            (Invoke-PsnfpContainer -Container $gw.Container -ArgumentList @('sh', '-c', 'ls -d /tmp/psnetfilter-check-* 2>/dev/null | wc -l')).StdOut.Trim() | Should -Be '0'
        }
    }

    It 'before the reboot, the forwards carry traffic' {
        foreach ($gw in $script:Fleet) {
            $probes = @($gw.Probes)
            $res = @(Invoke-PSNetfilterLabProbe -Lab $gw.Lab -Target $probes)
            for ($i = 0; $i -lt $probes.Count; $i++) {
                $res[$i].Reply | Should -Be $probes[$i].Expect -Because "$($gw.Host) $($probes[$i].Protocol) $($probes[$i].Address):$($probes[$i].Port) ($($res[$i].Error))"
            }
        }
    }

    It 'after each gateway reboots into a fresh gateway namespace, its forwards carry real traffic' {
        $t = [Diagnostics.Stopwatch]::StartNew()
        foreach ($gw in $script:Fleet) {
            Stop-PsnfaContainer -Container $gw.Container | Should -BeTrue -Because "$($gw.Host) powers off cleanly"
            $gw.Container = $null; $gw.Cgroup = $null
            # The namespace keeps its rules: boot into a new lab with the same addressing instead.
            $old = $gw.Lab
            $script:OldLabs.Add($old)
            Remove-PSNetfilterLab -Lab $old
            $null = $script:OldLabs.Remove($old)
            $gw.Lab = New-TestLab
            @(Get-PsnfpModuleLines -Namespace $gw.Lab.Gateway).Count | Should -Be 0
            (Invoke-PsnfpProcess ip -ArgumentList @('netns', 'exec', $gw.Lab.Gateway, 'cat', '/proc/sys/net/ipv4/ip_forward') -Check).StdOut.Trim() | Should -Be '0'
        }
        Start-Fleet
        $script:Timings.Reboot = [Math]::Round($t.Elapsed.TotalSeconds, 1)
        foreach ($gw in $script:Fleet) {
            (Invoke-PsnfpContainer -Container $gw.Container -ArgumentList @('systemctl', 'is-active', 'psnetfilter.service')).StdOut.Trim() | Should -Be 'active'
            Get-Names $gw.Lab.Gateway | Should -Be $gw.Names   # gw2's stray was live, never persisted: it did not come back
            @(Get-PortForward -NetworkNamespace $gw.Lab.Gateway | Where-Object Status -NE 'Complete').Count | Should -Be 0
            (Invoke-PsnfpProcess ip -ArgumentList @('netns', 'exec', $gw.Lab.Gateway, 'cat', '/proc/sys/net/ipv4/ip_forward') -Check).StdOut.Trim() | Should -Be '1'
            $probes = @($gw.Probes | Where-Object { -not $_['BeforeRebootOnly'] })
            $probes += @{ Protocol = 'Tcp'; Address = '203.0.113.1'; Port = 9999; Expect = $null }
            $res = @(Invoke-PSNetfilterLabProbe -Lab $gw.Lab -Target $probes)
            for ($i = 0; $i -lt $probes.Count; $i++) {
                $res[$i].Reply | Should -Be $probes[$i].Expect -Because "$($gw.Host) $($probes[$i].Protocol) $($probes[$i].Address):$($probes[$i].Port) ($($res[$i].Error))"
            }
        }
    }

    It 'a run after the reboot changes nothing' {
        $inventory = Write-Inventory -Name inventory-rebooted
        $r = Invoke-Playbook -Inventory $inventory -Label RunAfterReboot
        $r.ExitCode | Should -Be 0 -Because $r.Output
        foreach ($gw in $script:Fleet) {
            $r.Recap[$gw.Host].changed | Should -Be 0 -Because $r.Output
            $r.Recap[$gw.Host].failed | Should -Be 0
        }
    }

    It 'a bad item fails its gateway with the error, and changes nothing' {
        $gw = $script:Fleet[2]
        $dump = Get-PsnfpDump -Namespace $gw.Lab.Gateway
        $boot = @(Get-BootSetState $gw)
        $saved = $gw.Forwards
        try {
            $gw.Forwards = @($saved) + @([ordered]@{ name = 'bad'; external_port = 7001; internal_address = '198.51.100' })
            $inventory = Write-Inventory -Name inventory-bad
        }
        finally { $gw.Forwards = $saved }
        $r = Invoke-Playbook -Inventory $inventory -ExtraArgument @('--limit', $gw.Host) -Label BadItem
        $r.ExitCode | Should -Not -Be 0
        $r.Recap[$gw.Host].failed | Should -Be 1 -Because $r.Output
        $r.Recap[$gw.Host].changed | Should -Be 0
        $r.Output | Should -Match 'psnetfilter_forwards: \w+: .*198\.51\.100'
        Get-PsnfpDump -Namespace $gw.Lab.Gateway | Should -Be $dump
        @(Get-BootSetState $gw) | Should -Be $boot
    }

    It 'an empty list with psnetfilter_exclusive removes every forward and the unit' {
        $gw = $script:Fleet[1]
        $saved = $gw.Forwards
        try {
            $gw.Forwards = @(); $gw.Exclusive = $true
            $inventory = Write-Inventory -Name inventory-empty
        }
        finally { $gw.Forwards = $saved; $gw.Exclusive = $false }
        $r = Invoke-Playbook -Inventory $inventory -ExtraArgument @('--limit', $gw.Host) -Label EmptyList
        $r.ExitCode | Should -Be 0 -Because $r.Output
        $r.Recap[$gw.Host].changed | Should -Be 2 -Because $r.Output
        @(Get-PortForward -NetworkNamespace $gw.Lab.Gateway).Count | Should -Be 0
        @(Get-PsnfpModuleLines -Namespace $gw.Lab.Gateway).Count | Should -Be 0
        Test-Path -LiteralPath (Join-Path $gw.Overlay.Root 'etc/systemd/system/psnetfilter.service') | Should -BeFalse
        Test-Path -LiteralPath (Join-Path $gw.Overlay.Root 'etc/psnetfilter/psnetfilter') | Should -BeFalse
        Get-Item -LiteralPath (Join-Path $gw.Overlay.Root 'etc/systemd/system/multi-user.target.wants/psnetfilter.service') -Force -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        $again = Invoke-Playbook -Inventory $inventory -ExtraArgument @('--limit', $gw.Host) -Label EmptyListAgain
        $again.Recap[$gw.Host].changed | Should -Be 0 -Because $again.Output
    }

    It 'cleans up: no container, cgroup, overlay mount or namespace left' {
        $roots = @(); $namespaces = @(); $cgroups = @()
        foreach ($gw in $script:Fleet) {
            $cgroups += $gw.Container.Cgroup.Paths
            Stop-PsnfaContainer -Container $gw.Container | Should -BeTrue
            $gw.Container = $null; $gw.Cgroup = $null
            $roots += $gw.Overlay.Root
            Remove-PsnfpOverlay $gw.Overlay
            $gw.Overlay = $null
            $namespaces += $gw.Lab.Namespaces
            Remove-PSNetfilterLab -Lab $gw.Lab
            $gw.Lab = $null
        }
        foreach ($root in $roots) { Test-PsnfpMounted $root | Should -BeFalse }
        # Only this run's mounts: other runs of this suite (other checkouts) may be booting their own psnfa- fleet.
        $mine = @($roots) + @($namespaces | ForEach-Object { "/run/netns/$_" })
        @(Get-Content -LiteralPath /proc/mounts | Where-Object { $mine -contains ($_ -split ' ')[1] }).Count | Should -Be 0
        foreach ($p in $cgroups) { Test-Path -LiteralPath $p | Should -BeFalse }
        $left = @((Invoke-PsnfpProcess ip -ArgumentList @('netns', 'list')).StdOut -split "`n" | ForEach-Object { ($_ -split '\s+')[0] } | Where-Object { $namespaces -contains $_ })
        $left | Should -BeNullOrEmpty
    }
}
