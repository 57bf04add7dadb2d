# New-PortForward, Get-PortForward and Remove-PortForward against real traffic in a lab of network
# namespaces (tests/lab/PSNetfilterLab.psm1):
#
#     client 203.0.113.2 / 2001:db8:1::2
#        |
#     gateway 203.0.113.1 / 2001:db8:1::1 (external), 198.51.100.1 / 2001:db8:2::1 (internal)
#        |
#     server 198.51.100.10 / 2001:db8:2::10 (hello server on several TCP and UDP ports)
#
# The gateway is preloaded with the Docker, libvirt, kube-proxy and exotic IPv4 fixtures and the Docker IPv6
# fixture (FORWARD policy DROP) before any forward exists. After every New and every Remove the gateway's
# tables, with the module's PSNF lines taken out, must equal what the fixtures left; after the last Remove
# the dump must be exactly the pre-forward dump. All traffic stays inside the lab's namespaces.
#
# The whole file runs once per backend (Describe -ForEach, the module-wide preference $PSNetfilterBackend). For the
# nftables backend the same assertions read nft: iptables' tables stay exactly as the fixtures left them (that
# backend writes no iptables rule), every nftables table but `table inet psnetfilter` stays byte-identical
# (`nft -s list ruleset` minus ours), and our table holds one dispatch rule per map where iptables holds one jump
# per chain. Docker's FORWARD policy DROP drops the nftables backend's traffic (an accept in our table ends only our
# table): the nftables run first proves that Test-PortForward names it and that its fix works, then opens DOCKER-USER
# for DNATed connections, as an admin of that gateway would, and takes that rule into the baseline.
#
# The It blocks of the main Describe run in order and build on each other (one lab, one server process):
# forwards created early are used by the idempotence, -WhatIf, wildcard and pipeline tests further down.

BeforeDiscovery {
    $isRoot = (& id -u) -eq '0'
    $hasIp = [bool](Get-Command ip -ErrorAction SilentlyContinue) -or (Test-Path /usr/sbin/ip) -or (Test-Path /sbin/ip)
    $hasIptables = [bool](Get-Command iptables -ErrorAction SilentlyContinue) -or (Test-Path /usr/sbin/iptables) -or (Test-Path /sbin/iptables)
    $NetnsSkipReason = $null
    if ($env:CI -ne 'true') {
        # In CI (as root) these tests must run; elsewhere they need root, iproute2 and iptables.
        if (-not $isRoot) { $NetnsSkipReason = 'needs root (creates network namespaces and netfilter rules)' }
        elseif (-not $hasIp) { $NetnsSkipReason = 'needs iproute2 (ip)' }
        elseif (-not $hasIptables) { $NetnsSkipReason = 'needs iptables' }
    }
    $NetnsTitle = if ($NetnsSkipReason) { "PortForward in lab namespaces (skipped: $NetnsSkipReason)" } else { 'PortForward in lab namespaces' }
}

BeforeAll {
    $modulePath = if ($env:PSNETFILTER_TEST_MODULE) { $env:PSNETFILTER_TEST_MODULE } else { Join-Path $PSScriptRoot '../../out/PSNetfilter' }
    $script:ModuleManifest = Join-Path $modulePath 'PSNetfilter.psd1'
    $script:FixtureDir = Join-Path $PSScriptRoot '../fixtures/foreign'
    $script:IpTool = Get-Command ip -CommandType Application -ErrorAction SilentlyContinue | Select-Object -First 1 -ExpandProperty Source
    if (-not $script:IpTool) { $script:IpTool = '/usr/sbin/ip' }

    function script:Import-TestModules {
        Import-Module (Join-Path $PSScriptRoot '../lab/PSNetfilterLab.psm1') -Force
        if (-not (Test-Path -LiteralPath $script:ModuleManifest)) {
            throw "The built module was not found at '$($script:ModuleManifest)'. Build it (./build.ps1 Build) and set PSNETFILTER_TEST_MODULE to out/PSNetfilter."
        }
        Import-Module $script:ModuleManifest -Force
    }

    function script:Import-ForeignFixtures([string]$Namespace) {
        # Every IPv4 fixture, then the Docker IPv6 one: a gateway several programs already manage.
        foreach ($name in 'docker', 'libvirt', 'kube-proxy', 'exotic') {
            Import-PSNetfilterLabRuleset -Namespace $Namespace -Path (Join-Path $script:FixtureDir "$name.v4.rules")
        }
        Import-PSNetfilterLabRuleset -Namespace $Namespace -Path (Join-Path $script:FixtureDir 'docker.v6.rules') -Family IPv6
    }

    function script:Get-NftRuleset([string]$Namespace) {
        # `nft -s list ruleset` (no counters) as lines: every nftables table, iptables-nft's ones included.
        # Standard output only: nft writes its warnings about iptables-nft's tables to standard error.
        $out = @(& $script:IpTool netns exec $Namespace nft -s list ruleset 2>$null | ForEach-Object { "$_" })
        if ($LASTEXITCODE -ne 0) { throw "nft -s list ruleset in $Namespace failed (exit $LASTEXITCODE)" }
        $out
    }

    function script:Split-NftRuleset([string[]]$Lines, [switch]$WithoutIptables) {
        # Ours: the lines of `table inet psnetfilter`; Others: every other line, in order (with -WithoutIptables not
        # those of iptables-nft's nat and filter tables either: Assert-ForeignRulesIntact compares them through
        # iptables-save, the module's PSNF- chains left out).
        $ours = [System.Collections.Generic.List[string]]::new()
        $others = [System.Collections.Generic.List[string]]::new()
        $inOurs = $false
        $skip = $false
        foreach ($line in $Lines) {
            if ($WithoutIptables -and $line -cmatch '^table ip6? (filter|nat) \{$') { $skip = $true }
            if ($skip) { if ($line -ceq '}') { $skip = $false }; continue }
            if ($line -ceq 'table inet psnetfilter {') { $inOurs = $true }
            if ($inOurs) { $ours.Add($line); if ($line -ceq '}') { $inOurs = $false } } else { $others.Add($line) }
        }
        [pscustomobject]@{ Ours = $ours.ToArray(); Others = $others.ToArray() }
    }

    function script:Get-FullDump([string]$Namespace) {
        # Both families, comments and chain counters stripped (iptables-save without -c prints no rule counters);
        # for the nftables backend the nftables ruleset too (nft -s: without counters).
        $dump = "### IPv4`n" + (Get-PSNetfilterLabDump -Namespace $Namespace -Family IPv4) + "`n### IPv6`n" + (Get-PSNetfilterLabDump -Namespace $Namespace -Family IPv6)
        if ($Backend -eq 'Nftables') { $dump += "`n### nft`n" + ((Get-NftRuleset $Namespace) -join "`n") }
        $dump
    }

    function script:Get-TableDump([string]$Namespace) {
        # 'IPv4 nat' -> the lines of that table ('*nat' .. 'COMMIT'), one Get-PSNetfilterLabDump per family.
        $tables = [ordered]@{}
        foreach ($family in 'IPv4', 'IPv6') {
            $current = $null
            foreach ($line in ((Get-PSNetfilterLabDump -Namespace $Namespace -Family $family) -split "`n")) {
                if ($line.StartsWith('*')) {
                    $current = "$family $($line.Substring(1))"
                    $tables[$current] = [System.Collections.Generic.List[string]]::new()
                }
                if ($null -ne $current) { $tables[$current].Add($line) }
            }
        }
        $tables
    }

    function script:Remove-PsnfLine([string[]]$Lines) {
        # The module's lines: its chains (PSNF-*) and the jumps to them. Case-sensitive on purpose: the exotic
        # fixture has a foreign chain called 'psnf-exotic-matches' that must be compared like any other.
        @($Lines | Where-Object { $_ -cnotmatch 'PSNF-' })
    }

    function script:Save-Baseline {
        # What the fixtures (and the admin's rules) left: the foreign rules every later assertion compares with.
        $script:BaselineTables = Get-TableDump $script:gw
        $script:BaselineDump = Get-FullDump $script:gw
        $script:BaselineNftOthers = (Split-NftRuleset (Get-NftRuleset $script:gw) -WithoutIptables).Others
    }

    function script:Invoke-Iptables([string]$Tool, [string[]]$Arguments) {
        & $script:IpTool netns exec $script:gw $Tool -w @Arguments
        if ($LASTEXITCODE -ne 0) { throw "$Tool $($Arguments -join ' ') failed in $($script:gw) (exit $LASTEXITCODE)" }
    }

    function script:Assert-ForeignRulesIntact([string]$After) {
        $now = Get-TableDump $script:gw
        @($now.Keys) | Should -Be @($script:BaselineTables.Keys) -Because "after $After the gateway must have the same tables as after loading the fixtures"
        foreach ($key in $script:BaselineTables.Keys) {
            # Both backends write the module's PSNF- chains (the nftables backend only its forwards' accepts in
            # FORWARD, where the fixtures' FORWARD drops): what is left must be exactly the fixtures.
            $lines = Remove-PsnfLine $now[$key]
            $lines -join "`n" |
                Should -BeExactly ($script:BaselineTables[$key] -join "`n") -Because "after $After, table '$key' without PSNF lines must be exactly what the fixtures left"
        }
        if ($Backend -eq 'Nftables') {
            (Split-NftRuleset (Get-NftRuleset $script:gw) -WithoutIptables).Others -join "`n" |
                Should -BeExactly ($script:BaselineNftOthers -join "`n") -Because "after $After every nftables table but inet psnetfilter must be byte-identical"
        }
        $now['IPv4 filter'] | Should -Contain ':FORWARD DROP' -Because "after $After the IPv4 FORWARD policy must still be DROP"
        $now['IPv6 filter'] | Should -Contain ':FORWARD DROP' -Because "after $After the IPv6 FORWARD policy must still be DROP"
    }

    function script:Assert-JumpsFirst([ValidateSet('IPv4', 'IPv6')][string]$Family) {
        if ($Backend -eq 'Nftables') {
            # Our table's base chains at the hooks and priorities of iptables' nat and filter chains, and one
            # dispatch rule per map or set of the family (never a second copy), as the iptables backend has one jump
            # per chain.
            $ours = (Split-NftRuleset (Get-NftRuleset $script:gw)).Ours
            $ours | Should -Not -BeNullOrEmpty -Because 'a forward of the nftables backend lives in table inet psnetfilter'
            foreach ($hook in @('type nat hook prerouting priority dstnat; policy accept;', 'type nat hook postrouting priority srcnat; policy accept;', 'type filter hook forward priority filter; policy accept;')) {
                @($ours | Where-Object { $_.Trim() -ceq $hook }).Count | Should -Be 1 -Because "table inet psnetfilter has one chain '$hook'"
            }
            $n = if ($Family -eq 'IPv4') { '4' } else { '6' }
            foreach ($map in "dnat$n", "snat$n", "masq$n", "accept$n") {
                @($ours | Where-Object { $_ -clike "*comment ""psnf:v1:@$map""*" }).Count | Should -Be 1 -Because "one dispatch rule reads @$map"
            }
            return
        }
        $t = Get-TableDump $script:gw
        @($t["$Family nat"] | Where-Object { $_ -clike '-A PREROUTING *' })[0] | Should -BeExactly '-A PREROUTING -j PSNF-PREROUTING'
        @($t["$Family nat"] | Where-Object { $_ -clike '-A POSTROUTING *' })[0] | Should -BeExactly '-A POSTROUTING -j PSNF-POSTROUTING'
        @($t["$Family filter"] | Where-Object { $_ -clike '-A FORWARD *' })[0] | Should -BeExactly '-A FORWARD -j PSNF-FORWARD'
        # One jump each, never a second copy.
        @($t["$Family nat"] | Where-Object { $_ -ceq '-A PREROUTING -j PSNF-PREROUTING' }).Count | Should -Be 1
        @($t["$Family nat"] | Where-Object { $_ -ceq '-A POSTROUTING -j PSNF-POSTROUTING' }).Count | Should -Be 1
        @($t["$Family filter"] | Where-Object { $_ -ceq '-A FORWARD -j PSNF-FORWARD' }).Count | Should -Be 1
    }

    function script:Hello([string]$Seen, [string]$Protocol, [int]$Port) {
        "hello from server; you are $Seen proto $Protocol port $Port"
    }

    function script:Invoke-Probe([object[]]$Target) {
        # One probe process in the client namespace for all targets.
        # 5 s per step: generous on a busy CI machine, and free for the expected failures (refused at once).
        $results = @(Invoke-PSNetfilterLabProbe -Lab $script:lab -Target $Target -TimeoutSeconds 5)
        $results.Count | Should -Be @($Target).Count
        , $results
    }

    function script:Format-Definition($Forward) {
        # The definition of a forward as one comparable line.
        '{0}|{1}|{2}|{3}|{4}|{5}|{6}|{7}|{8}' -f $Forward.Name, $Forward.Protocol, $Forward.ExternalAddress, $Forward.ExternalPort,
            $Forward.InternalAddress, $Forward.InternalPort, $Forward.SnatMode, $Forward.SnatAddress, $Forward.Description
    }
}

Describe "$NetnsTitle, <Backend> backend" -Skip:([bool]$NetnsSkipReason) -ForEach @(@{ Backend = 'Iptables' }, @{ Backend = 'Nftables' }) {
    BeforeAll {
        # The same tests for each backend: new forwards go to the one of this block (the module-wide preference).
        $global:PSNetfilterBackend = $Backend
        Import-TestModules
        $script:lab = $null
        $script:bare = $null
        $script:lab = New-PSNetfilterLab -Prefix 'psnfn-n'
        $script:gw = $script:lab.Gateway
        $script:ext = $script:lab.GatewayExternalAddress        # 203.0.113.1
        $script:ext6 = $script:lab.GatewayExternalAddressV6     # 2001:db8:1::1
        $script:srv = $script:lab.ServerAddress                 # 198.51.100.10
        $script:srv6 = $script:lab.ServerAddressV6              # 2001:db8:2::10
        $script:gwIn = $script:lab.GatewayInternalAddress       # 198.51.100.1
        $script:gwIn6 = $script:lab.GatewayInternalAddressV6    # 2001:db8:2::1
        $script:client = $script:lab.ClientAddress              # 203.0.113.2

        Import-ForeignFixtures $script:gw
        Save-Baseline

        # One hello server for every port used below (it listens dual-stack).
        $null = Start-PSNetfilterLabServer -Lab $script:lab -TcpPort (8080..8089) -UdpPort 5353, 5354

        # A second, bare namespace for Get-PortForward -NetworkNamespace a | New-PortForward -NetworkNamespace b.
        $bareName = "psnfn-n$($script:lab.Id)-b"
        & $script:IpTool netns add $bareName
        if ($LASTEXITCODE -ne 0) { throw "ip netns add $bareName failed" }
        $script:bare = $bareName

        $script:OddDescription = "DNS for the caf$([char]0xE9) ""lab"" it's`n-A FORWARD -j ACCEPT"

        $script:Seed = @{
            NetworkNamespace = $script:gw
            Name             = 'seed'
            Protocol         = 'Tcp'
            ExternalAddress  = $script:ext
            ExternalPort     = 8080
            InternalAddress  = $script:srv
        }
    }

    AfterAll {
        Remove-Variable -Name PSNetfilterBackend -Scope Global -ErrorAction SilentlyContinue
        if ($script:lab) { Remove-PSNetfilterLab -Lab $script:lab }
        if ($script:bare) { & $script:IpTool netns delete $script:bare 2>$null }
    }

    It 'starts from the foreign rulesets only: FORWARD policy DROP, no PSNF rule, and the client reaches nothing' {
        $script:BaselineTables.Keys | Should -Contain 'IPv4 nat'
        $script:BaselineTables.Keys | Should -Contain 'IPv4 filter'
        $script:BaselineTables.Keys | Should -Contain 'IPv6 nat'
        $script:BaselineTables.Keys | Should -Contain 'IPv6 filter'
        $script:BaselineTables['IPv4 filter'] | Should -Contain ':FORWARD DROP'
        $script:BaselineTables['IPv6 filter'] | Should -Contain ':FORWARD DROP'
        $script:BaselineTables['IPv4 filter'] | Should -Contain ':DOCKER-USER -'
        $script:BaselineTables['IPv4 filter'] | Should -Contain ':psnf-exotic-matches -'
        $script:BaselineDump | Should -Not -MatchExactly 'PSNF-'
        $script:BaselineDump | Should -Not -MatchExactly 'psnf:v1:'
        @(Get-PortForward -NetworkNamespace $script:gw).Count | Should -Be 0

        $r = Invoke-Probe @(
            @{ Protocol = 'Tcp'; Address = $script:ext; Port = 8080 }
            @{ Protocol = 'Tcp'; Address = $script:ext6; Port = 8080 }
        )
        $r | ForEach-Object { $_.Success | Should -BeFalse -Because 'nothing forwards to the server yet' }
    }

    # Docker's FORWARD policy DROP (ip/ip6 filter) drops what an accept in another table let through: the iptables
    # backend's FORWARD jump comes first and accepts its forwards, the nftables backend's table cannot.
    if ($Backend -eq 'Nftables') {
        Context 'Docker''s FORWARD policy DROP and the nftables backend' {
            AfterAll { Remove-PortForward -NetworkNamespace $script:gw -Name docker-probe -ErrorAction SilentlyContinue }

            It 'carries a forward through it: the forward''s accept is written into iptables'' FORWARD too, and goes with it' {
                $p = New-PortForward -NetworkNamespace $script:gw -Name docker-probe -ExternalAddress $script:ext -ExternalPort 8089 -InternalAddress $script:srv -WarningAction SilentlyContinue
                $p.Change | Should -Be 'Created'
                $p.Backend | Should -Be 'nftables'
                (Invoke-Probe @(@{ Protocol = 'Tcp'; Address = $script:ext; Port = 8089 }))[0].Reply | Should -BeExactly (Hello $script:gwIn tcp 8089)
                $filter = (Get-TableDump $script:gw)["IPv4 filter"]
                @($filter | Where-Object { $_ -clike '-A PSNF-*psnf:v1:docker-probe:nftfwd*-j ACCEPT' }).Count | Should -Be 1
                @($filter | Where-Object { $_ -clike '-A FORWARD *' })[0] | Should -BeExactly '-A FORWARD -j PSNF-FORWARD'
                @(Test-PortForward -NetworkNamespace $script:gw -Name docker-probe -NoConnect | Where-Object Severity -eq 'Error') | Should -BeNullOrEmpty
                Remove-PortForward -NetworkNamespace $script:gw -Name docker-probe
                @((Get-TableDump $script:gw)["IPv4 filter"] | Where-Object { $_ -cmatch 'PSNF-' }) | Should -BeNullOrEmpty -Because 'the last forward takes the module''s chains along'
                Assert-ForeignRulesIntact 'the docker-probe forward came and went'
            }
        }
    }

    Context 'the seed gateway: tcp 203.0.113.1:8080 -> 198.51.100.10:8080 with default SNAT' {
        It 'creates it, resolving the SNAT address from the route, and leaves the foreign rules intact' {
            $f = New-PortForward @script:Seed
            $f | Should -HaveCount 1
            $f.Change | Should -Be 'Created'
            $f.Name | Should -Be 'seed'
            $f.Family | Should -Be 'IPv4'
            $f.SnatMode | Should -Be 'Snat'
            $f.SnatAddress | Should -BeOfType [System.Net.IPAddress]
            $f.SnatAddress.ToString() | Should -Be $script:gwIn
            $f.NetworkNamespace | Should -Be $script:gw
            $f.Backend | Should -Be $Backend.ToLowerInvariant() -Because 'the preference chose the backend'
            Assert-ForeignRulesIntact 'New-PortForward seed'
            Assert-JumpsFirst IPv4
        }

        It 'carries the traffic: the client gets the hello line, the server sees the gateway''s internal address' {
            $r = Invoke-Probe @(@{ Protocol = 'Tcp'; Address = $script:ext; Port = 8080 })
            $r[0].Error | Should -BeNullOrEmpty
            $r[0].Reply | Should -BeExactly (Hello $script:gwIn tcp 8080)
        }

        It 'is listed by Get-PortForward: Complete, SnatMode Snat, SnatAddress 198.51.100.1, Packets > 0' {
            $g = @(Get-PortForward -NetworkNamespace $script:gw -Name seed)
            $g | Should -HaveCount 1
            $g[0] | Should -BeOfType 'PSNetfilter.PortForward'
            $g[0].Status | Should -Be 'Complete'
            $g[0].Protocol | Should -Be 'Tcp'
            $g[0].Family | Should -Be 'IPv4'
            $g[0].ExternalAddress | Should -BeOfType [System.Net.IPAddress]
            $g[0].ExternalAddress.ToString() | Should -Be $script:ext
            $g[0].ExternalPort | Should -BeOfType [int]
            $g[0].ExternalPort | Should -Be 8080
            $g[0].InternalAddress.ToString() | Should -Be $script:srv
            $g[0].InternalPort | Should -Be 8080
            $g[0].SnatMode | Should -Be 'Snat'
            $g[0].SnatAddress.ToString() | Should -Be $script:gwIn
            $g[0].NetworkNamespace | Should -Be $script:gw
            $g[0].Packets | Should -BeGreaterThan 0
            $g[0].Bytes | Should -BeGreaterThan 0
            # The default table view reads like the issue's example line.
            ($g | Out-String -Width 200) | Should -Match 'seed\s+Tcp\s+203\.0\.113\.1:8080 -> 198\.51\.100\.10:8080\s+snat 198\.51\.100\.1'
        }
    }

    Context 'UDP, and IPv6 TCP and UDP' {
        It 'creates a UDP forward and IPv6 TCP and UDP forwards, the foreign rules intact after each' {
            # The description carries quotes, non-ASCII and a line that looks like an iptables-restore command:
            # it is stored encoded, so it can neither break nor inject into the payload.
            $udp4 = New-PortForward -NetworkNamespace $script:gw -Name udp4 -Protocol Udp -ExternalAddress $script:ext -ExternalPort 5353 -InternalAddress $script:srv -Description $script:OddDescription
            $udp4.Change | Should -Be 'Created'
            $udp4.Description | Should -BeExactly $script:OddDescription
            $udp4.SnatAddress.ToString() | Should -Be $script:gwIn
            Assert-ForeignRulesIntact 'New-PortForward udp4'

            $tcp6 = New-PortForward -NetworkNamespace $script:gw -Name tcp6 -ExternalAddress $script:ext6 -ExternalPort 8080 -InternalAddress $script:srv6
            $tcp6.Change | Should -Be 'Created'
            $tcp6.Family | Should -Be 'IPv6'
            $tcp6.SnatMode | Should -Be 'Snat'
            $tcp6.SnatAddress.ToString() | Should -Be $script:gwIn6
            Assert-ForeignRulesIntact 'New-PortForward tcp6'
            Assert-JumpsFirst IPv6

            $udp6 = New-PortForward -NetworkNamespace $script:gw -Name udp6 -Protocol Udp -ExternalAddress $script:ext6 -ExternalPort 5353 -InternalAddress $script:srv6
            $udp6.Change | Should -Be 'Created'
            $udp6.Family | Should -Be 'IPv6'
            $udp6.SnatAddress.ToString() | Should -Be $script:gwIn6
            Assert-ForeignRulesIntact 'New-PortForward udp6'
        }

        It 'carries UDP and IPv6 traffic; with SNAT the server sees 198.51.100.1 / 2001:db8:2::1' {
            $r = Invoke-Probe @(
                @{ Protocol = 'Udp'; Address = $script:ext; Port = 5353 }
                @{ Protocol = 'Tcp'; Address = $script:ext6; Port = 8080 }
                @{ Protocol = 'Udp'; Address = $script:ext6; Port = 5353 }
            )
            $r[0].Reply | Should -BeExactly (Hello $script:gwIn udp 5353)
            $r[1].Reply | Should -BeExactly (Hello $script:gwIn6 tcp 8080)
            $r[2].Reply | Should -BeExactly (Hello $script:gwIn6 udp 5353)
        }

        It 'lists them Complete with counters' {
            $g = @(Get-PortForward -NetworkNamespace $script:gw -Name udp4, tcp6, udp6)
            $g | Should -HaveCount 3
            foreach ($f in $g) {
                $f.Status | Should -Be 'Complete'
                $f.Packets | Should -BeGreaterThan 0
            }
            ($g | Where-Object Name -EQ 'udp4').Description | Should -BeExactly $script:OddDescription
            @(Get-PortForward -NetworkNamespace $script:gw -Family IPv6).Name | Sort-Object | Should -Be @('tcp6', 'udp6')
            @(Get-PortForward -NetworkNamespace $script:gw -Protocol Udp).Name | Sort-Object | Should -Be @('udp4', 'udp6')
        }
    }

    Context 'each source NAT mode, any local address, another internal port' {
        It 'creates -SnatAddress, -Masquerade, -NoSnat and any-address forwards, the foreign rules intact after each' {
            $a = New-PortForward -NetworkNamespace $script:gw -Name mode-snat -ExternalAddress $script:ext -ExternalPort 8082 -InternalAddress $script:srv -SnatAddress $script:ext
            $a.Change | Should -Be 'Created'
            $a.SnatMode | Should -Be 'Snat'
            $a.SnatAddress.ToString() | Should -Be $script:ext
            Assert-ForeignRulesIntact 'New-PortForward -SnatAddress'

            $m = New-PortForward -NetworkNamespace $script:gw -Name mode-masq -ExternalAddress $script:ext -ExternalPort 8083 -InternalAddress $script:srv -Masquerade
            $m.SnatMode | Should -Be 'Masquerade'
            $m.SnatAddress | Should -BeNullOrEmpty
            Assert-ForeignRulesIntact 'New-PortForward -Masquerade'

            $n = New-PortForward -NetworkNamespace $script:gw -Name mode-nosnat -ExternalAddress $script:ext -ExternalPort 8084 -InternalAddress $script:srv -NoSnat
            $n.SnatMode | Should -Be 'None'
            $n.SnatAddress | Should -BeNullOrEmpty
            Assert-ForeignRulesIntact 'New-PortForward -NoSnat'

            $any = New-PortForward -NetworkNamespace $script:gw -Name any-local -ExternalPort 8181 -InternalAddress $script:srv -InternalPort 8085
            $any.ExternalAddress | Should -BeNullOrEmpty
            $any.ExternalPort | Should -Be 8181
            $any.InternalPort | Should -Be 8085
            Assert-ForeignRulesIntact 'New-PortForward without -ExternalAddress'

            # Docker DNATs tcp/9000 of every local address (its DOCKER chain, reached from nat PREROUTING);
            # the iptables backend's jump at position 1 must win, and so must the nftables backend's prerouting chain
            # (iptables' nat priority, dstnat; measured here to come before Docker's chain, loaded before it).
            $d = New-PortForward -NetworkNamespace $script:gw -Name over-docker -ExternalAddress $script:ext -ExternalPort 9000 -InternalAddress $script:srv -InternalPort 8081
            $d.Change | Should -Be 'Created'
            Assert-ForeignRulesIntact 'New-PortForward on Docker''s published port'
        }

        It 'carries the traffic of each: SNAT to the given address, MASQUERADE, client address kept, any local address' {
            $r = Invoke-Probe @(
                @{ Protocol = 'Tcp'; Address = $script:ext; Port = 8082 }
                @{ Protocol = 'Tcp'; Address = $script:ext; Port = 8083 }
                @{ Protocol = 'Tcp'; Address = $script:ext; Port = 8084 }
                @{ Protocol = 'Tcp'; Address = $script:ext; Port = 8181 }
                @{ Protocol = 'Tcp'; Address = $script:ext; Port = 9000 }
            )
            $r[0].Reply | Should -BeExactly (Hello $script:ext tcp 8082) -Because '-SnatAddress 203.0.113.1 is the source the server sees'
            $r[1].Reply | Should -BeExactly (Hello $script:gwIn tcp 8083) -Because 'MASQUERADE takes the outgoing interface''s address'
            $r[2].Reply | Should -BeExactly (Hello $script:client tcp 8084) -Because '-NoSnat keeps the client''s address (the server replies via its default route, the gateway)'
            $r[3].Reply | Should -BeExactly (Hello $script:gwIn tcp 8085) -Because 'a forward without -ExternalAddress matches any local address and maps 8181 to 8085'
            $r[4].Reply | Should -BeExactly (Hello $script:gwIn tcp 8081) -Because 'the PSNF jump sits before Docker''s DNAT of port 9000'
        }

        It 'reads each mode back from the kernel' {
            $g = @{}
            Get-PortForward -NetworkNamespace $script:gw | ForEach-Object { $g[$_.Name] = $_ }
            $g['mode-snat'].SnatMode | Should -Be 'Snat'
            $g['mode-snat'].SnatAddress.ToString() | Should -Be $script:ext
            $g['mode-masq'].SnatMode | Should -Be 'Masquerade'
            $g['mode-masq'].SnatAddress | Should -BeNullOrEmpty
            $g['mode-nosnat'].SnatMode | Should -Be 'None'
            $g['mode-nosnat'].SnatAddress | Should -BeNullOrEmpty
            $g['any-local'].ExternalAddress | Should -BeNullOrEmpty
            $g['any-local'].ExternalPort | Should -Be 8181
            $g['any-local'].InternalPort | Should -Be 8085
            $g['any-local'].SnatAddress.ToString() | Should -Be $script:gwIn
            foreach ($name in 'mode-snat', 'mode-masq', 'mode-nosnat', 'any-local', 'over-docker') {
                $g[$name].Status | Should -Be 'Complete' -Because "$name has all its rules"
                $g[$name].Packets | Should -BeGreaterThan 0 -Because "$name carried a connection"
            }
        }
    }

    Context 'idempotence and -Force' {
        It 'returns the existing forward as Unchanged for the same definition and changes nothing' {
            $before = Get-FullDump $script:gw
            $again = New-PortForward @script:Seed
            $again | Should -HaveCount 1
            $again.Change | Should -Be 'Unchanged'
            $again.Name | Should -Be 'seed'
            $again.Status | Should -Be 'Complete'
            $again.SnatAddress.ToString() | Should -Be $script:gwIn
            # The other kinds too: IPv6, -NoSnat, any local address.
            @(New-PortForward -NetworkNamespace $script:gw -Name tcp6 -ExternalAddress $script:ext6 -ExternalPort 8080 -InternalAddress $script:srv6).Change | Should -Be 'Unchanged'
            @(New-PortForward -NetworkNamespace $script:gw -Name mode-nosnat -ExternalAddress $script:ext -ExternalPort 8084 -InternalAddress $script:srv -NoSnat).Change | Should -Be 'Unchanged'
            @(New-PortForward -NetworkNamespace $script:gw -Name any-local -ExternalPort 8181 -InternalAddress $script:srv -InternalPort 8085).Change | Should -Be 'Unchanged'
            Get-FullDump $script:gw | Should -BeExactly $before -Because 'an unchanged forward must not rewrite anything'
        }

        It 'reads every forward back as its own definition: Get-PortForward | New-PortForward is all Unchanged' {
            # NetworkNamespace binds from the piped objects too.
            $before = Get-FullDump $script:gw
            $all = @(Get-PortForward -NetworkNamespace $script:gw)
            $all.Count | Should -Be 9
            $again = @(Get-PortForward -NetworkNamespace $script:gw | New-PortForward)
            $again | Should -HaveCount 9
            $again | ForEach-Object { $_.Change | Should -Be 'Unchanged' -Because "$($_.Name) was read back from the kernel unchanged" }
            Get-FullDump $script:gw | Should -BeExactly $before
        }

        It 'refuses another definition under the same name with PortForwardExists and changes nothing' {
            $before = Get-FullDump $script:gw
            $out = New-PortForward @script:Seed -InternalPort 8086 -ErrorVariable err -ErrorAction SilentlyContinue
            $out | Should -BeNullOrEmpty
            $err | Should -HaveCount 1
            $err[0].FullyQualifiedErrorId | Should -BeExactly 'PortForwardExists,PSNetfilter.Commands.NewPortForwardCommand'
            $err[0].CategoryInfo.Category | Should -Be 'ResourceExists'
            $err[0].Exception.Message | Should -Match 'seed'
            Get-FullDump $script:gw | Should -BeExactly $before
        }

        It 'refuses an IPv4 forward under the name of an IPv6 one (names are unique across families) and changes nothing' {
            # The IPv6 family holds module chains, so an IPv4 add reads it too (it skips only a family without any).
            $before = Get-FullDump $script:gw
            $out = New-PortForward -NetworkNamespace $script:gw -Name tcp6 -ExternalAddress $script:ext -ExternalPort 8090 -InternalAddress $script:srv -ErrorVariable err -ErrorAction SilentlyContinue
            $out | Should -BeNullOrEmpty
            $err | Should -HaveCount 1
            $err[0].FullyQualifiedErrorId | Should -BeExactly 'PortForwardExists,PSNetfilter.Commands.NewPortForwardCommand'
            Get-FullDump $script:gw | Should -BeExactly $before
        }

        It 'replaces it with -Force (Replaced), the foreign rules intact, and the traffic goes to the new target' {
            $f = New-PortForward @script:Seed -InternalPort 8086 -Force
            $f | Should -HaveCount 1
            $f.Change | Should -Be 'Replaced'
            $f.InternalPort | Should -Be 8086
            Assert-ForeignRulesIntact 'New-PortForward -Force'
            Assert-JumpsFirst IPv4
            $g = @(Get-PortForward -NetworkNamespace $script:gw -Name seed)
            $g | Should -HaveCount 1
            $g[0].InternalPort | Should -Be 8086
            $g[0].Status | Should -Be 'Complete'
            $r = Invoke-Probe @(@{ Protocol = 'Tcp'; Address = $script:ext; Port = 8080 })
            $r[0].Reply | Should -BeExactly (Hello $script:gwIn tcp 8086)
        }
    }

    Context '-WhatIf' {
        It 'New-PortForward -WhatIf creates nothing, and -Force -WhatIf replaces nothing' {
            $before = Get-FullDump $script:gw
            $out = New-PortForward -NetworkNamespace $script:gw -Name whatif -ExternalAddress $script:ext -ExternalPort 8089 -InternalAddress $script:srv -WhatIf
            $out | Should -BeNullOrEmpty
            $out = New-PortForward @script:Seed -InternalPort 8087 -Force -WhatIf
            $out | Should -BeNullOrEmpty
            Get-FullDump $script:gw | Should -BeExactly $before
            Get-PortForward -NetworkNamespace $script:gw -Name whatif -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
            (Get-PortForward -NetworkNamespace $script:gw -Name seed).InternalPort | Should -Be 8086
        }

        It 'Remove-PortForward -WhatIf removes nothing (by name, by wildcard, by pipeline)' {
            $before = Get-FullDump $script:gw
            $count = @(Get-PortForward -NetworkNamespace $script:gw).Count
            Remove-PortForward -NetworkNamespace $script:gw -Name seed -WhatIf
            Remove-PortForward -NetworkNamespace $script:gw -Name * -WhatIf
            Get-PortForward -NetworkNamespace $script:gw | Remove-PortForward -WhatIf
            Get-FullDump $script:gw | Should -BeExactly $before
            @(Get-PortForward -NetworkNamespace $script:gw).Count | Should -Be $count
        }
    }

    Context 'Remove-PortForward by wildcard' {
        It 'removes exactly the matching forwards, the foreign rules intact' {
            $removed = @(Remove-PortForward -NetworkNamespace $script:gw -Name 'mode-*' -PassThru)
            @($removed.Name | Sort-Object) | Should -Be @('mode-masq', 'mode-nosnat', 'mode-snat')
            $removed | ForEach-Object { $_.Change | Should -Be 'Removed' }
            Assert-ForeignRulesIntact 'Remove-PortForward mode-*'
            @(Get-PortForward -NetworkNamespace $script:gw).Name | Sort-Object |
                Should -Be @('any-local', 'over-docker', 'seed', 'tcp6', 'udp4', 'udp6')
            Get-FullDump $script:gw | Should -Not -Match 'psnf:v1:mode-'
        }

        It 'stops their traffic while the forwards to the same server with other names still carry it' {
            $r = Invoke-Probe @(
                @{ Protocol = 'Tcp'; Address = $script:ext; Port = 8082 }
                @{ Protocol = 'Tcp'; Address = $script:ext; Port = 8083 }
                @{ Protocol = 'Tcp'; Address = $script:ext; Port = 8084 }
                @{ Protocol = 'Tcp'; Address = $script:ext; Port = 8080 }
                @{ Protocol = 'Tcp'; Address = $script:ext; Port = 8181 }
            )
            $r[0].Success | Should -BeFalse
            $r[1].Success | Should -BeFalse
            $r[2].Success | Should -BeFalse
            $r[3].Reply | Should -BeExactly (Hello $script:gwIn tcp 8086)
            $r[4].Reply | Should -BeExactly (Hello $script:gwIn tcp 8085)
        }
    }

    Context 'pipelines' {
        It 'Get-PortForward -NetworkNamespace a | New-PortForward -NetworkNamespace b re-creates the forwards in b' {
            $source = @(Get-PortForward -NetworkNamespace $script:gw)
            $source.Count | Should -Be 6
            $created = @(Get-PortForward -NetworkNamespace $script:gw | New-PortForward -NetworkNamespace $script:bare -WarningAction SilentlyContinue)
            $created | Should -HaveCount 6
            $created | ForEach-Object { $_.Change | Should -Be 'Created' }
            $copy = @(Get-PortForward -NetworkNamespace $script:bare)
            $copy | Should -HaveCount 6
            $copy | ForEach-Object {
                $_.NetworkNamespace | Should -Be $script:bare
                $_.Status | Should -Be 'Complete'
            }
            @($copy | ForEach-Object { Format-Definition $_ } | Sort-Object) |
                Should -Be @($source | ForEach-Object { Format-Definition $_ } | Sort-Object)
            # The source namespace is untouched.
            Assert-ForeignRulesIntact 'copying its forwards to another namespace'
            @(Get-PortForward -NetworkNamespace $script:gw).Count | Should -Be 6
        }

        It 'Import-Csv | New-PortForward creates every row in one call (one iptables-restore per family), blank cells meaning "not given"' {
            $csvPath = Join-Path $TestDrive 'forwards.csv'
            @(
                'Name,Protocol,ExternalAddress,ExternalPort,InternalAddress,InternalPort,SnatAddress,Description'
                "csv-web,Tcp,$($script:ext),8088,$($script:srv),8088,,web server"
                "csv-alt,Tcp,$($script:ext),8188,$($script:srv),8087,$($script:ext),"
                "csv-dns,Udp,$($script:ext),5354,$($script:srv),5354,,"
                "csv-web6,Tcp,$($script:ext6),8088,$($script:srv6),8088,,IPv6 web"
                "csv-any,Tcp,,8288,$($script:srv),8089,,"
            ) | Set-Content -LiteralPath $csvPath -Encoding utf8

            $stream = @(Import-Csv -LiteralPath $csvPath | New-PortForward -NetworkNamespace $script:gw -Verbose 4>&1)
            $created = @($stream | Where-Object { $_ -isnot [System.Management.Automation.VerboseRecord] })
            $verbose = @($stream | Where-Object { $_ -is [System.Management.Automation.VerboseRecord] } | ForEach-Object Message)
            $created | Should -HaveCount 5
            $created | ForEach-Object { $_.Change | Should -Be 'Created' }
            if ($Backend -eq 'Iptables') {
                # One transaction per family for the whole pipeline.
                @($verbose | Where-Object { $_ -match '(^|/)iptables(-nft|-legacy)?-restore -w --noflush' }).Count | Should -Be 1
                @($verbose | Where-Object { $_ -match '(^|/)ip6tables(-nft|-legacy)?-restore -w --noflush' }).Count | Should -Be 1
            }
            else {
                # One nft transaction for both families; the fixtures' FORWARD drops, so the forwards' accepts go into
                # iptables' FORWARD too: one iptables-restore per family for all of them.
                @($verbose | Where-Object { $_ -like 'nft input*' }).Count | Should -Be 1
                @($verbose | Where-Object { $_ -match '(^|/)iptables(-nft|-legacy)?-restore -w --noflush' }).Count | Should -Be 1
                @($verbose | Where-Object { $_ -match '(^|/)ip6tables(-nft|-legacy)?-restore -w --noflush' }).Count | Should -Be 1
            }
            Assert-ForeignRulesIntact 'Import-Csv | New-PortForward'

            $g = @{}
            Get-PortForward -NetworkNamespace $script:gw -Name csv-* | ForEach-Object { $g[$_.Name] = $_ }
            $g.Count | Should -Be 5
            $g['csv-web'].Description | Should -BeExactly 'web server'
            $g['csv-alt'].Description | Should -BeNullOrEmpty
            $g['csv-alt'].SnatAddress.ToString() | Should -Be $script:ext
            $g['csv-alt'].InternalPort | Should -Be 8087
            $g['csv-dns'].Protocol | Should -Be 'Udp'
            $g['csv-dns'].SnatAddress.ToString() | Should -Be $script:gwIn -Because 'a blank SnatAddress cell means the route decides'
            $g['csv-web6'].Family | Should -Be 'IPv6'
            $g['csv-web6'].Description | Should -BeExactly 'IPv6 web'
            $g['csv-any'].ExternalAddress | Should -BeNullOrEmpty -Because 'a blank ExternalAddress cell means any local address'

            $r = Invoke-Probe @(
                @{ Protocol = 'Tcp'; Address = $script:ext; Port = 8088 }
                @{ Protocol = 'Tcp'; Address = $script:ext; Port = 8188 }
                @{ Protocol = 'Udp'; Address = $script:ext; Port = 5354 }
                @{ Protocol = 'Tcp'; Address = $script:ext6; Port = 8088 }
                @{ Protocol = 'Tcp'; Address = $script:ext; Port = 8288 }
            )
            $r[0].Reply | Should -BeExactly (Hello $script:gwIn tcp 8088)
            $r[1].Reply | Should -BeExactly (Hello $script:ext tcp 8087)
            $r[2].Reply | Should -BeExactly (Hello $script:gwIn udp 5354)
            $r[3].Reply | Should -BeExactly (Hello $script:gwIn6 tcp 8088)
            $r[4].Reply | Should -BeExactly (Hello $script:gwIn tcp 8089)
        }

        It 'Get-PortForward -NetworkNamespace $gw | Remove-PortForward removes them all and leaves exactly the pre-forward dump' {
            $all = @(Get-PortForward -NetworkNamespace $script:gw)
            $all.Count | Should -Be 11
            $removed = @(Get-PortForward -NetworkNamespace $script:gw | Remove-PortForward -PassThru)
            $removed | Should -HaveCount 11
            Assert-ForeignRulesIntact 'Get-PortForward | Remove-PortForward'
            @(Get-PortForward -NetworkNamespace $script:gw) | Should -HaveCount 0
            $after = Get-FullDump $script:gw
            $after | Should -Not -MatchExactly 'PSNF-' -Because 'no PSNF chain and no jump may be left'
            $after | Should -Not -MatchExactly 'psnf:v1:[a-z0-9]' -Because 'no rule or element of a forward may be left'
            if ($Backend -eq 'Iptables') {
                $after | Should -BeExactly $script:BaselineDump
            }
            else {
                # The nftables backend keeps its table, without elements; everything else is the pre-forward dump.
                $parts = Split-NftRuleset ($after -split "`n")
                ($parts.Others -join "`n") | Should -BeExactly ((Split-NftRuleset ($script:BaselineDump -split "`n")).Others -join "`n")
            }
        }

        It 'cleans up the copy in the second namespace the same way' {
            @(Get-PortForward -NetworkNamespace $script:bare | Remove-PortForward -PassThru) | Should -HaveCount 6
            @(Get-PortForward -NetworkNamespace $script:bare) | Should -HaveCount 0
            Get-FullDump $script:bare | Should -Not -MatchExactly 'PSNF-'
            Get-FullDump $script:bare | Should -Not -MatchExactly 'psnf:v1:[a-z0-9]'
        }

        It 'no longer forwards anything once all are removed' {
            $r = Invoke-Probe @(
                @{ Protocol = 'Tcp'; Address = $script:ext; Port = 8080 }
                @{ Protocol = 'Tcp'; Address = $script:ext6; Port = 8080 }
                @{ Protocol = 'Tcp'; Address = $script:ext; Port = 8088 }
            )
            $r | ForEach-Object { $_.Success | Should -BeFalse }
        }
    }
}
