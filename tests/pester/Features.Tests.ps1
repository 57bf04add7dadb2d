# The optional parts of a forward and the diagnostics (issue 6), each proven with real traffic in a lab of
# network namespaces (tests/lab/PSNetfilterLab.psm1):
#
#     client 203.0.113.2
#        |  (client-facing interface of the gateway: found by its address 203.0.113.1)
#     gateway 203.0.113.1 (external), 198.51.100.1 (internal); a hello server on tcp 7100 (loopback target)
#        |
#     server 198.51.100.10 (hello server on every internal port used below)
#
# The client reaches the server only through a forward on the gateway. The hello server answers
# "hello from server; you are <peer> proto <p> port <local port>", so each reply says which internal port the
# connection landed on and which source address the server saw.
#
# The It blocks run in order and build on each other (one lab). The Test-PortForward contexts break the lab on
# purpose and undo each breakage (also in AfterAll, should an assertion fail half way).
#
# Port plan (external -> internal, tcp unless said otherwise):
#   8000-8002 -> 9000-9002 (tcp+udp)   8100-8101 -> 7000 (tcp+udp)   8200-8203 allow-lists (+udp 8200)
#   8210-8211 -InInterface   8300-8301 -IncludeLocal / hairpin   8400 -> 127.0.0.1:7100 (gateway)
#   8500 healthy   8600-8602 drift   8700 -> 7999 (nothing listens)   8800 counters   8900 -NoSnat
#   9000 -> 9000 beside Docker's DNAT of tcp 9000

BeforeDiscovery {
    $isRoot = (& id -u) -eq '0'
    $hasIp = [bool](Get-Command ip -ErrorAction SilentlyContinue) -or (Test-Path /usr/sbin/ip) -or (Test-Path /sbin/ip)
    $hasIptables = [bool](Get-Command iptables -ErrorAction SilentlyContinue) -or (Test-Path /usr/sbin/iptables) -or (Test-Path /sbin/iptables)
    $FeaturesSkipReason = $null
    if ($env:CI -ne 'true') {
        # In CI (as root) these tests must run; elsewhere they need root, iproute2 and iptables.
        if (-not $isRoot) { $FeaturesSkipReason = 'needs root (creates network namespaces and netfilter rules)' }
        elseif (-not $hasIp) { $FeaturesSkipReason = 'needs iproute2 (ip)' }
        elseif (-not $hasIptables) { $FeaturesSkipReason = 'needs iptables' }
    }
    # NoReturnRoute reads conntrack(8); build.ps1 installs it in CI.
    $NoConntrack = ($env:CI -ne 'true') -and -not ((Get-Command conntrack -ErrorAction SilentlyContinue) -or (Test-Path /usr/sbin/conntrack))
    $FeaturesTitle = if ($FeaturesSkipReason) { "Forward features and diagnostics in lab namespaces (skipped: $FeaturesSkipReason)" } else { 'Forward features and diagnostics in lab namespaces' }
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

    function script:Invoke-InGateway {
        # ip netns exec <gateway> <command...>; throws on a non-zero exit unless -AllowFailure. Returns the output lines.
        param([Parameter(Mandatory)][string[]]$Command, [switch]$AllowFailure)
        $out = @(& $script:IpTool netns exec $script:gw @Command 2>&1 | ForEach-Object { "$_" })
        if ($LASTEXITCODE -ne 0 -and -not $AllowFailure) {
            throw "'$($Command -join ' ')' in $($script:gw) failed (exit $LASTEXITCODE): $($out -join ' ')"
        }
        $out
    }

    function script:Get-InterfaceOf([string]$Namespace, [string]$Address) {
        # The interface holding $Address, from `ip -n NS -j addr`.
        $links = & $script:IpTool -n $Namespace -j addr | ConvertFrom-Json
        $name = @($links | Where-Object { @($_.addr_info | ForEach-Object { $_.local }) -contains $Address } | ForEach-Object { $_.ifname })
        $name | Should -HaveCount 1 -Because "exactly one interface of $Namespace holds $Address"
        $name[0]
    }

    function script:Split-RuleSpec([string]$Line) {
        # iptables -S output to arguments: only the comment is quoted (it never contains spaces here).
        @([regex]::Matches($Line, '"[^"]*"|\S+') | ForEach-Object { $_.Value.Trim('"') })
    }

    function script:Find-ForwardRule([string]$Table, [string]$Name, [string]$Role, [string]$Contains) {
        # The '-A CHAIN ...' line of one tagged rule of forward $Name ($Role: dnat, snat, fwd, local).
        $tag = "psnf:v1:${Name}:$Role"
        $lines = @(Invoke-InGateway @('iptables', '-t', $Table, '-S') | Where-Object {
                $_.StartsWith('-A ') -and $_.Contains($tag) -and (-not $Contains -or $_.Contains($Contains))
            })
        $lines | Should -HaveCount 1 -Because "forward '$Name' has one $Role rule$(if ($Contains) { " with $Contains" })"
        $lines[0]
    }

    function script:Remove-RuleByHand([string]$Table, [string]$Line) {
        # Deletes a rule the way an admin would: iptables -t TABLE -D CHAIN N (its position in the chain).
        $chain = (Split-RuleSpec $Line)[1]
        $inChain = @(Invoke-InGateway @('iptables', '-t', $Table, '-S', $chain) | Where-Object { $_.StartsWith('-A ') })
        $n = [array]::IndexOf($inChain, $Line) + 1
        $n | Should -BeGreaterThan 0 -Because "the rule is in chain $chain"
        $null = Invoke-InGateway @('iptables', '-t', $Table, '-D', $chain, "$n")
        @(Invoke-InGateway @('iptables', '-t', $Table, '-S', $chain)) | Should -Not -Contain $Line
    }

    function script:Hello([string]$Seen, [string]$Protocol, [int]$Port) {
        "hello from server; you are $Seen proto $Protocol port $Port"
    }

    function script:T([int]$Port, [string]$Protocol = 'Tcp', [string]$Address = $script:ext) {
        @{ Protocol = $Protocol; Address = $Address; Port = $Port }
    }

    function script:Invoke-Probe([object[]]$Target, [string]$From = 'Client', [double]$TimeoutSeconds = 5) {
        # One probe process in the -From namespace for all targets. 5 s per step by default: generous on a busy
        # CI machine and free for refusals; probes whose expected outcome is a timeout pass a shorter one.
        $results = @(Invoke-PSNetfilterLabProbe -Lab $script:lab -Target $Target -From $From -TimeoutSeconds $TimeoutSeconds)
        $results.Count | Should -Be @($Target).Count
        , $results
    }

    function script:Format-Definition($Forward) {
        # Everything that defines a forward, as one comparable line.
        '{0}|{1}|{2}|{3}-{4}|{5}|{6}-{7}|{8}|{9}|{10}|{11}|{12}|{13}' -f $Forward.Name, $Forward.Protocol, $Forward.ExternalAddress,
            $Forward.ExternalPort, $Forward.ExternalPortEnd, $Forward.InternalAddress, $Forward.InternalPort, $Forward.InternalPortEnd,
            $Forward.SnatMode, $Forward.SnatAddress, $Forward.Description, ($Forward.SourceAddress -join ','), $Forward.InInterface, $Forward.IncludeLocal
    }

    function script:Test-Gateway([string[]]$Name, [switch]$NoConnect) {
        , @(Test-PortForward -NetworkNamespace $script:gw -Name $Name -NoConnect:$NoConnect)
    }

    function script:Assert-NoFinding([string[]]$Name, [switch]$NoConnect) {
        $found = Test-Gateway $Name -NoConnect:$NoConnect
        $found.Count | Should -Be 0 -Because "nothing is wrong with $($Name -join ', ') (got: $(($found | ForEach-Object { "$($_.Forward)/$($_.Check)/$($_.Severity): $($_.What)" }) -join '; '))"
    }

    function script:Assert-Finding([object[]]$Findings, [string]$Check, [string]$Severity, [string]$Forward) {
        # Exactly one finding of $Check, with its severity, forward (none for a namespace-wide finding) and a
        # non-empty What, Why and Fix. Returns it.
        $all = @($Findings)
        $found = @($all | Where-Object Check -EQ $Check)
        $found | Should -HaveCount 1 -Because "one $Check finding is expected (got: $(($all | ForEach-Object { "$($_.Check)/$($_.Severity)" }) -join ', '))"
        $f = $found[0]
        $f | Should -BeOfType 'PSNetfilter.Core.Diagnostics.PortForwardFinding'
        "$($f.Severity)" | Should -Be $Severity
        if ($Forward) { $f.Forward | Should -Be $Forward } else { $f.Forward | Should -BeNullOrEmpty -Because "$Check is about the whole namespace" }
        $f.What | Should -Not -BeNullOrEmpty
        $f.Why | Should -Not -BeNullOrEmpty
        $f.Fix | Should -Not -BeNullOrEmpty
        $f.NetworkNamespace | Should -Be $script:gw
        $f
    }
}

Describe "$FeaturesTitle, <Backend> backend" -Skip:([bool]$FeaturesSkipReason) -ForEach @(@{ Backend = 'Iptables' }, @{ Backend = 'Nftables' }) {
    BeforeAll {
        # The same features for each backend: new forwards go to the one of this block (the module-wide preference).
        $global:PSNetfilterBackend = $Backend
        Import-TestModules
        $script:lab = $null
        $script:lab = New-PSNetfilterLab -Prefix 'psnff'
        $script:gw = $script:lab.Gateway
        $script:ext = $script:lab.GatewayExternalAddress        # 203.0.113.1
        $script:gwIn = $script:lab.GatewayInternalAddress       # 198.51.100.1
        $script:srv = $script:lab.ServerAddress                 # 198.51.100.10
        $script:client = $script:lab.ClientAddress              # 203.0.113.2
        $script:extIf = Get-InterfaceOf $script:gw $script:ext  # the gateway's client-facing interface
        $script:intIf = Get-InterfaceOf $script:gw $script:gwIn # the gateway's server-facing interface

        # Which iptables backend the module (and the plain `iptables` used below) writes to, and the other one.
        $script:OtherBackend = if ((Invoke-InGateway @('iptables', '-V')) -join ' ' -match 'nf_tables') { 'legacy' } else { 'nft' }

        $null = Start-PSNetfilterLabServer -Lab $script:lab -TcpPort @(9000, 9001, 9002, 7000, 8200, 8201, 8202, 8210, 8211, 8300, 8301, 8500, 8600, 8601, 8602, 8800, 8900) -UdpPort @(9000, 9001, 9002, 7000, 8200)
        $null = Start-PSNetfilterLabServer -Lab $script:lab -In Gateway -TcpPort 7100

        $script:At = @{ NetworkNamespace = $script:gw; ExternalAddress = $script:ext; InternalAddress = $script:srv }
    }

    AfterAll {
        Remove-Variable -Name PSNetfilterBackend -Scope Global -ErrorAction SilentlyContinue
        if ($script:lab) { Remove-PSNetfilterLab -Lab $script:lab }
    }

    It 'starts with no forward: the client reaches nothing, and the interfaces were found by address' {
        $script:extIf | Should -Not -Be $script:intIf
        @(Get-PortForward -NetworkNamespace $script:gw) | Should -HaveCount 0
        $r = Invoke-Probe @((T 8000), (T 8000 Udp), (T 8100), (T 8200), (T 8300), (T 8400), (T 8500))
        $r | ForEach-Object { $_.Success | Should -BeFalse -Because "nothing forwards $($_.Protocol) $($_.Port) yet" }
    }

    Context 'port ranges' {
        It 'creates a range to a range and a range to one port, for TCP and UDP' {
            $rt = New-PortForward @script:At -Name rng-tcp -ExternalPort 8000-8002 -InternalPort 9000-9002
            $ru = New-PortForward @script:At -Name rng-udp -Protocol Udp -ExternalPort 8000-8002 -InternalPort 9000-9002
            $ot = New-PortForward @script:At -Name one-tcp -ExternalPort 8100-8101 -InternalPort 7000
            $ou = New-PortForward @script:At -Name one-udp -Protocol Udp -ExternalPort 8100-8101 -InternalPort 7000
            foreach ($f in $rt, $ru, $ot, $ou) {
                $f | Should -HaveCount 1
                $f.Change | Should -Be 'Created'
                $f.Status | Should -Be 'Complete'
            }
            $g = @{}
            Get-PortForward -NetworkNamespace $script:gw | ForEach-Object { $g[$_.Name] = $_ }
            foreach ($n in 'rng-tcp', 'rng-udp') {
                $g[$n].ExternalPort | Should -Be 8000
                $g[$n].ExternalPortEnd | Should -Be 8002
                $g[$n].InternalPort | Should -Be 9000
                $g[$n].InternalPortEnd | Should -Be 9002
                $g[$n].ExternalEndpoint | Should -Be "$($script:ext):8000-8002"
                $g[$n].InternalEndpoint | Should -Be "$($script:srv):9000-9002"
            }
            foreach ($n in 'one-tcp', 'one-udp') {
                $g[$n].ExternalPort | Should -Be 8100
                $g[$n].ExternalPortEnd | Should -Be 8101
                $g[$n].InternalPort | Should -Be 7000
                $g[$n].InternalPortEnd | Should -Be 7000
            }
            $g['rng-udp'].Protocol | Should -Be 'Udp'
            $g['one-udp'].Protocol | Should -Be 'Udp'
        }

        It 'maps 8000 -> 9000 .. 8002 -> 9002 and 8100, 8101 -> 7000 (the server reports its local port), TCP and UDP; 8003 is not forwarded' {
            $r = Invoke-Probe @(
                (T 8000), (T 8001), (T 8002), (T 8003), (T 8100), (T 8101)
                (T 8000 Udp), (T 8001 Udp), (T 8002 Udp), (T 8003 Udp), (T 8100 Udp), (T 8101 Udp)
            )
            $i = 0
            foreach ($proto in 'tcp', 'udp') {
                $r[$i + 0].Reply | Should -BeExactly (Hello $script:gwIn $proto 9000)
                $r[$i + 1].Reply | Should -BeExactly (Hello $script:gwIn $proto 9001)
                $r[$i + 2].Reply | Should -BeExactly (Hello $script:gwIn $proto 9002)
                $r[$i + 3].Success | Should -BeFalse -Because "$proto 8003 is outside the range 8000-8002"
                $r[$i + 4].Reply | Should -BeExactly (Hello $script:gwIn $proto 7000)
                $r[$i + 5].Reply | Should -BeExactly (Hello $script:gwIn $proto 7000)
                $i += 6
            }
        }
    }

    Context 'source allow-list (-SourceAddress)' {
        It 'creates forwards for the client''s /32 (and as a bare address, UDP), its /24, and a list that excludes it' {
            $h = New-PortForward @script:At -Name src-host -ExternalPort 8200 -SourceAddress "$($script:client)/32"
            $n = New-PortForward @script:At -Name src-net -ExternalPort 8201 -SourceAddress '203.0.113.0/24'
            $o = New-PortForward @script:At -Name src-other -ExternalPort 8202 -SourceAddress '192.0.2.0/24', '198.51.100.0/24'
            $u = New-PortForward @script:At -Name src-udp -Protocol Udp -ExternalPort 8200 -SourceAddress $script:client
            foreach ($f in $h, $n, $o, $u) { $f.Change | Should -Be 'Created' }
            $g = @{}
            Get-PortForward -NetworkNamespace $script:gw -Name src-* | ForEach-Object { $g[$_.Name] = $_ }
            @($g['src-host'].SourceAddress) | Should -Be @("$($script:client)/32")
            @($g['src-net'].SourceAddress) | Should -Be @('203.0.113.0/24')
            @($g['src-other'].SourceAddress) | Should -Be @('192.0.2.0/24', '198.51.100.0/24')
            @($g['src-udp'].SourceAddress) | Should -Be @("$($script:client)/32")
            $g.Values | ForEach-Object { $_.Status | Should -Be 'Complete' }
        }

        It 'answers the client through its /32 and its /24 (TCP and UDP), and not through the list that excludes it' {
            $r = Invoke-Probe @((T 8200), (T 8201), (T 8202), (T 8200 Udp))
            $r[0].Reply | Should -BeExactly (Hello $script:gwIn tcp 8200)
            $r[1].Reply | Should -BeExactly (Hello $script:gwIn tcp 8201)
            $r[2].Success | Should -BeFalse -Because '203.0.113.2 is in neither 192.0.2.0/24 nor 198.51.100.0/24'
            $r[2].Reply | Should -BeNullOrEmpty
            $r[3].Reply | Should -BeExactly (Hello $script:gwIn udp 8200)
        }

        It 'forwards for a source on the list: the server (198.51.100.10, in 198.51.100.0/24) gets through 8202, not 8200/8201' {
            $r = Invoke-Probe @((T 8202), (T 8200), (T 8201)) -From Server
            $r[0].Reply | Should -BeExactly (Hello $script:gwIn tcp 8202)
            $r[1].Success | Should -BeFalse -Because 'the server is not 203.0.113.2/32'
            $r[2].Success | Should -BeFalse -Because 'the server is not in 203.0.113.0/24'
        }

        It 'refuses a CIDR with host bits set (InvalidSourceAddress) and changes nothing' {
            $before = Get-PSNetfilterLabDump -Namespace $script:gw
            $out = New-PortForward @script:At -Name src-bad -ExternalPort 8203 -SourceAddress '203.0.113.2/24' -ErrorVariable err -ErrorAction SilentlyContinue
            $out | Should -BeNullOrEmpty
            $err | Should -HaveCount 1
            $err[0].FullyQualifiedErrorId | Should -BeExactly 'InvalidSourceAddress,PSNetfilter.Commands.NewPortForwardCommand'
            $err[0].Exception.Message | Should -Match 'host bits'
            Get-PSNetfilterLabDump -Namespace $script:gw | Should -BeExactly $before
            Get-PortForward -NetworkNamespace $script:gw -Name src-bad -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        }
    }

    Context '-InInterface' {
        It 'creates a forward on the client-facing interface and one on the wrong (server-facing) interface' {
            $ok = New-PortForward @script:At -Name if-client -ExternalPort 8210 -InInterface $script:extIf
            $bad = New-PortForward @script:At -Name if-wrong -ExternalPort 8211 -InInterface $script:intIf
            $ok.Change | Should -Be 'Created'
            $bad.Change | Should -Be 'Created'
            (Get-PortForward -NetworkNamespace $script:gw -Name if-client).InInterface | Should -Be $script:extIf
            (Get-PortForward -NetworkNamespace $script:gw -Name if-wrong).InInterface | Should -Be $script:intIf
        }

        It 'answers the client on its interface and not on the wrong one (which packets arriving there still use)' {
            $r = Invoke-Probe @((T 8210), (T 8211))
            $r[0].Reply | Should -BeExactly (Hello $script:gwIn tcp 8210)
            $r[1].Success | Should -BeFalse -Because "the client's packets arrive on $($script:extIf), not $($script:intIf)"
            # The rule itself works: the server's packets do arrive on the server-facing interface.
            $s = Invoke-Probe @((T 8211)) -From Server
            $s[0].Reply | Should -BeExactly (Hello $script:gwIn tcp 8211)
        }
    }

    Context 'hairpin and local (-IncludeLocal)' {
        It 'creates a forward with -IncludeLocal and one without' {
            $l = New-PortForward @script:At -Name local -ExternalPort 8300 -IncludeLocal
            $n = New-PortForward @script:At -Name nolocal -ExternalPort 8301
            $l.Change | Should -Be 'Created'
            $l.IncludeLocal | Should -BeTrue
            $n.IncludeLocal | Should -BeFalse
            (Get-PortForward -NetworkNamespace $script:gw -Name local).IncludeLocal | Should -BeTrue
            (Get-PortForward -NetworkNamespace $script:gw -Name local).Status | Should -Be 'Complete'
        }

        It 'is reachable from the gateway itself through the external address only with -IncludeLocal' {
            $r = Invoke-Probe @((T 8300), (T 8301)) -From Gateway
            $r[0].Reply | Should -BeExactly (Hello $script:gwIn tcp 8300)
            $r[1].Success | Should -BeFalse -Because 'without -IncludeLocal the gateway''s own connections are not DNATed (nothing listens on 8301 there)'
        }

        It 'is reachable from the internal network through the external address (hairpin, default SNAT), and still from the client' {
            # The server connects to 203.0.113.1 and is forwarded back to itself; the SNAT makes it see the
            # gateway's internal address, so its reply goes back through the gateway.
            $s = Invoke-Probe @((T 8300), (T 8301)) -From Server
            $s[0].Reply | Should -BeExactly (Hello $script:gwIn tcp 8300)
            $s[1].Reply | Should -BeExactly (Hello $script:gwIn tcp 8301) -Because 'hairpin connections are DNATed connections of the forward (ARCHITECTURE: the SNAT rule covers them)'
            $c = Invoke-Probe @((T 8300), (T 8301))
            $c[0].Reply | Should -BeExactly (Hello $script:gwIn tcp 8300)
            $c[1].Reply | Should -BeExactly (Hello $script:gwIn tcp 8301)
        }

        It 'with -NoSnat, masquerades only hairpin clients (-IncludeLocal): internal hosts get through, outside clients keep their address' {
            $h = New-PortForward @script:At -Name nosnat-local -ExternalPort 8302 -InternalPort 7000 -NoSnat -IncludeLocal
            $n = New-PortForward @script:At -Name nosnat-plain -ExternalPort 8303 -InternalPort 7000 -NoSnat
            $h.Change | Should -Be 'Created'
            $n.Change | Should -Be 'Created'
            (Get-PortForward -NetworkNamespace $script:gw -Name nosnat-local).Status | Should -Be 'Complete'
            $hairpinRules = if ($Backend -eq 'Iptables') { @(Invoke-InGateway @('iptables', '-t', 'nat', '-S')) } else { @(Invoke-InGateway @('nft', 'list', 'table', 'inet', 'psnetfilter')) }
            @($hairpinRules | Where-Object { $_ -match 'psnf:v1:nosnat-local:hairpin' }).Count | Should -Be 1

            $s = Invoke-Probe @((T 8302), (T 8303)) -From Server
            $s[0].Reply | Should -BeExactly (Hello $script:gwIn tcp 7000) -Because 'the hairpin rule masquerades the internal client, so the reply goes back through the gateway'
            $s[1].Success | Should -BeFalse -Because 'without it the server answers itself directly and the connection never completes'
            $c = Invoke-Probe @((T 8302))
            $c[0].Reply | Should -BeExactly (Hello $script:client tcp 7000) -Because '-NoSnat still keeps outside clients'' addresses'
            (New-PortForward @script:At -Name nosnat-local -ExternalPort 8302 -InternalPort 7000 -NoSnat -IncludeLocal).Change | Should -Be 'Unchanged'
            Remove-PortForward -NetworkNamespace $script:gw -Name nosnat-local, nosnat-plain
        }
    }

    Context 'loopback target (-InternalAddress 127.0.0.1)' {
        It 'creates a forward to a server on the gateway''s 127.0.0.1, SnatMode None, route_localnet=1 on that interface only' {
            # Nothing answers the client on 8400 before the forward exists (the gateway server listens on 7100).
            (Invoke-Probe @((T 8400)))[0].Success | Should -BeFalse
            $f = New-PortForward -NetworkNamespace $script:gw -Name loop -InternalAddress 127.0.0.1 -InInterface $script:extIf -ExternalPort 8400 -InternalPort 7100
            $f.Change | Should -Be 'Created'
            $f.SnatMode | Should -Be 'None'
            $f.InternalAddress.ToString() | Should -Be '127.0.0.1'
            (Get-PortForward -NetworkNamespace $script:gw -Name loop).Status | Should -Be 'Complete'

            (Invoke-InGateway @('cat', "/proc/sys/net/ipv4/conf/$($script:extIf)/route_localnet")) | Should -Be '1'
            foreach ($other in 'all', 'default', 'lo', $script:intIf) {
                (Invoke-InGateway @('cat', "/proc/sys/net/ipv4/conf/$other/route_localnet")) | Should -Be '0' -Because "route_localnet is for $($script:extIf) only, not $other"
            }
        }

        It 'carries the client to the gateway''s loopback server, which sees the client''s own address' {
            $r = Invoke-Probe @((T 8400))
            $r[0].Reply | Should -BeExactly (Hello $script:client tcp 7100)
        }
    }

    Context 'counters' {
        It 'Packets and Bytes are 0 before traffic and grow with each probe' {
            $f = New-PortForward @script:At -Name cnt -ExternalPort 8800
            $f.Change | Should -Be 'Created'
            $g0 = Get-PortForward -NetworkNamespace $script:gw -Name cnt
            $g0.Packets | Should -Be 0
            $g0.Bytes | Should -Be 0

            (Invoke-Probe @((T 8800)))[0].Reply | Should -BeExactly (Hello $script:gwIn tcp 8800)
            $g1 = Get-PortForward -NetworkNamespace $script:gw -Name cnt
            $g1.Packets | Should -BeGreaterThan 0
            $g1.Bytes | Should -BeGreaterThan $g1.Packets -Because 'every packet has at least a 20-byte header'

            (Invoke-Probe @((T 8800)))[0].Reply | Should -BeExactly (Hello $script:gwIn tcp 8800)
            $g2 = Get-PortForward -NetworkNamespace $script:gw -Name cnt
            $g2.Packets | Should -BeGreaterThan $g1.Packets
            $g2.Bytes | Should -BeGreaterThan $g1.Bytes
        }
    }

    Context 'Test-PortForward: healthy forwards' {
        It 'finds nothing for a healthy forward, nor for every forward created so far (ranges, UDP, allow-lists, interfaces, local, loopback)' {
            $f = New-PortForward @script:At -Name healthy -ExternalPort 8500
            $f.Change | Should -Be 'Created'
            (Invoke-Probe @((T 8500)))[0].Reply | Should -BeExactly (Hello $script:gwIn tcp 8500)
            Assert-NoFinding healthy
            $all = @(Test-PortForward -NetworkNamespace $script:gw)
            $all.Count | Should -Be 0 -Because "a working lab has no finding (got: $(($all | ForEach-Object { "$($_.Forward)/$($_.Check)" }) -join ', '))"
        }
    }

    Context 'Test-PortForward: ForwardingDisabled' {
        AfterAll { $null = Invoke-InGateway @('sysctl', '-q', '-w', 'net.ipv4.ip_forward=1') -AllowFailure }

        It 'reports ForwardingDisabled (Error, for the namespace) when net.ipv4.ip_forward is 0, and the traffic stops' {
            $null = Invoke-InGateway @('sysctl', '-w', 'net.ipv4.ip_forward=0')
            $findings = Test-Gateway healthy
            $findings | Should -HaveCount 1
            $f = Assert-Finding $findings ForwardingDisabled Error $null
            $f.What | Should -Match 'net\.ipv4\.ip_forward'
            $f.Fix | Should -Match 'net\.ipv4\.ip_forward=1'
            (Invoke-Probe @((T 8500)) -TimeoutSeconds 2)[0].Success | Should -BeFalse
        }

        It 'is fixed as the finding says: New-PortForward (Unchanged) switches forwarding back on with a warning' {
            $again = @(Get-PortForward -NetworkNamespace $script:gw -Name healthy | New-PortForward -WarningVariable warn -WarningAction SilentlyContinue)
            $again | Should -HaveCount 1
            $again[0].Change | Should -Be 'Unchanged'
            ($warn -join ' ') | Should -Match 'ip_forward'
            (Invoke-InGateway @('sysctl', '-n', 'net.ipv4.ip_forward')) | Should -Be '1'
            Assert-NoFinding healthy
            (Invoke-Probe @((T 8500)))[0].Reply | Should -BeExactly (Hello $script:gwIn tcp 8500)
        }
    }

    # The iptables backend's own rules and checks.
    if ($Backend -eq 'Iptables') {
        Context 'Test-PortForward: BothBackends' {
            AfterAll {
                if ($script:OtherRule) { $null = Invoke-InGateway (@("iptables-$($script:OtherBackend)", '-D') + $script:OtherRule) -AllowFailure }
            }

            It 'reports BothBackends (Warning, for the namespace) while the other iptables backend holds a rule in the gateway' {
                $script:OtherRule = @('INPUT', '-s', '192.0.2.99/32', '-j', 'DROP')
                $null = Invoke-InGateway (@("iptables-$($script:OtherBackend)", '-A') + $script:OtherRule)
                $findings = Test-Gateway healthy
                $findings | Should -HaveCount 1
                $f = Assert-Finding $findings BothBackends Warning $null
                $f.What | Should -Match "iptables-$($script:OtherBackend)"
                $f.What | Should -Match '1 rule'
            }

            It 'finds nothing once that rule is deleted again' {
                $null = Invoke-InGateway (@("iptables-$($script:OtherBackend)", '-D') + $script:OtherRule)
                $script:OtherRule = $null
                Assert-NoFinding healthy
            }
        }
    }

    Context 'Test-PortForward: InternalUnreachable' {
        It 'reports InternalUnreachable (Error) for a forward to a port where nothing listens, and nothing with -NoConnect' {
            $f = New-PortForward @script:At -Name unreach -ExternalPort 8700 -InternalPort 7999
            $f.Change | Should -Be 'Created'
            (Invoke-Probe @((T 8700)))[0].Success | Should -BeFalse -Because 'nothing listens on 198.51.100.10:7999'
            $findings = Test-Gateway unreach
            $findings | Should -HaveCount 1
            $u = Assert-Finding $findings InternalUnreachable Error unreach
            $u.What | Should -Match ([regex]::Escape("$($script:srv):7999"))
            Assert-NoFinding unreach -NoConnect
        }
    }

    Context 'Test-PortForward: NoReturnRoute' -Skip:$NoConntrack {
        AfterAll {
            & $script:IpTool -n $script:lab.Server route replace default via $script:gwIn 2>$null
            $null = Invoke-InGateway @('conntrack', '-D', '-p', 'tcp', '--orig-port-dst', '8900') -AllowFailure
        }

        It 'carries a -NoSnat forward while the server routes back through the gateway' {
            $f = New-PortForward @script:At -Name noret -ExternalPort 8900 -NoSnat
            $f.SnatMode | Should -Be 'None'
            (Invoke-Probe @((T 8900)))[0].Reply | Should -BeExactly (Hello $script:client tcp 8900)
            Assert-NoFinding noret
        }

        It 'reports NoReturnRoute (Error) once the server has no route back and a client attempt went unreplied' {
            & $script:IpTool -n $script:lab.Server route del default
            $LASTEXITCODE | Should -Be 0
            (Invoke-Probe @((T 8900)) -TimeoutSeconds 2)[0].Success | Should -BeFalse -Because 'the server cannot answer 203.0.113.2 without a route'
            $findings = Test-Gateway noret
            $findings | Should -HaveCount 1
            $n = Assert-Finding $findings NoReturnRoute Error noret
            $n.What | Should -Match 'never got a reply'
        }

        It 'finds nothing again once the route is back and the unreplied entry is gone' {
            & $script:IpTool -n $script:lab.Server route replace default via $script:gwIn
            $null = Invoke-InGateway @('conntrack', '-D', '-p', 'tcp', '--orig-port-dst', '8900') -AllowFailure
            (Invoke-Probe @((T 8900)))[0].Reply | Should -BeExactly (Hello $script:client tcp 8900)
            Assert-NoFinding noret
        }
    }

    # The iptables backend's own rules and checks.
    if ($Backend -eq 'Iptables') {
        Context 'Test-PortForward: ForwardPolicyDrop' {
            AfterAll {
                $null = Invoke-InGateway @('iptables', '-P', 'FORWARD', 'ACCEPT') -AllowFailure
                if (-not ((Invoke-InGateway @('iptables', '-S', 'FORWARD')) -contains '-A FORWARD -j PSNF-FORWARD')) {
                    $null = Invoke-InGateway @('iptables', '-I', 'FORWARD', '1', '-j', 'PSNF-FORWARD') -AllowFailure
                }
            }

            It 'reports ForwardPolicyDrop (Error) when the FORWARD policy is DROP and the jump to PSNF-FORWARD was deleted by hand, and the traffic stops' {
                $null = Invoke-InGateway @('iptables', '-P', 'FORWARD', 'DROP')
                $null = Invoke-InGateway @('iptables', '-D', 'FORWARD', '-j', 'PSNF-FORWARD')
                $findings = Test-Gateway healthy
                # Two findings, both true: the policy drops it, and its accept rule is no longer reached (drift).
                @($findings.Check | Sort-Object) | Should -Be @('Drift', 'ForwardPolicyDrop')
                ($findings | Where-Object Check -eq 'Drift').What | Should -Match 'unreachable Forward'
                $p = Assert-Finding @($findings | Where-Object Check -eq 'ForwardPolicyDrop') ForwardPolicyDrop Error healthy
                $p.Why | Should -Match 'jump'
                (Invoke-Probe @((T 8500)) -TimeoutSeconds 2)[0].Success | Should -BeFalse -Because 'FORWARD drops the forwarded connection'
            }

            It 'is fixed as the finding says: Get-PortForward | New-PortForward -Force puts the jump back and the traffic through' {
                # The finding's Fix: "New-PortForward -Force for 'healthy' puts the accept rule and the jump back."
                $null = Get-PortForward -NetworkNamespace $script:gw -Name healthy | New-PortForward -Force
                @(Invoke-InGateway @('iptables', '-S', 'FORWARD')) | Should -Contain '-A FORWARD -j PSNF-FORWARD' -Because 'the fix the finding names must put the jump back'
                Assert-NoFinding healthy
                (Invoke-Probe @((T 8500)))[0].Reply | Should -BeExactly (Hello $script:gwIn tcp 8500)
            }
        }
    }

    # The iptables backend's own rules and checks.
    if ($Backend -eq 'Iptables') {
        Context 'drift: rules deleted or duplicated by hand' {
            AfterAll {
                if (-not ((Invoke-InGateway @('iptables', '-t', 'nat', '-S', 'PREROUTING')) -contains '-A PREROUTING -j PSNF-PREROUTING')) {
                    $null = Invoke-InGateway @('iptables', '-t', 'nat', '-I', 'PREROUTING', '1', '-j', 'PSNF-PREROUTING') -AllowFailure
                }
            }

            It 'a forward whose DNAT rule was deleted (iptables -D CHAIN N) is Incomplete: missing Dnat, reported as Drift (Error), and carries nothing' {
                $script:DriftDefinition = Format-Definition (New-PortForward @script:At -Name drift -ExternalPort 8600)
                (Invoke-Probe @((T 8600)))[0].Reply | Should -BeExactly (Hello $script:gwIn tcp 8600)

                Remove-RuleByHand nat (Find-ForwardRule nat drift dnat)
                $g = Get-PortForward -NetworkNamespace $script:gw -Name drift
                $g | Should -HaveCount 1
                $g.Status | Should -Be 'Incomplete: missing Dnat'
                @($g.MissingRules) | Should -Be @('Dnat')
                $findings = Test-Gateway drift
                $findings | Should -HaveCount 1
                $d = Assert-Finding $findings Drift Error drift
                $d.What | Should -Match 'missing Dnat'
                $d.Fix | Should -Match 'New-PortForward -Force'
                (Invoke-Probe @((T 8600)))[0].Success | Should -BeFalse

                # The same definition without -Force is refused as incomplete, and changes nothing.
                $before = Get-PSNetfilterLabDump -Namespace $script:gw
                New-PortForward @script:At -Name drift -ExternalPort 8600 -ErrorVariable err -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
                $err[0].FullyQualifiedErrorId | Should -BeExactly 'PortForwardIncomplete,PSNetfilter.Commands.NewPortForwardCommand'
                Get-PSNetfilterLabDump -Namespace $script:gw | Should -BeExactly $before
            }

            It 'Get-PortForward drift | New-PortForward -Force restores it whole (same definition, Complete) and the traffic works again' {
                $r = @(Get-PortForward -NetworkNamespace $script:gw -Name drift | New-PortForward -Force)
                $r | Should -HaveCount 1
                $r[0].Change | Should -Be 'Replaced'
                $g = Get-PortForward -NetworkNamespace $script:gw -Name drift
                $g.Status | Should -Be 'Complete'
                Format-Definition $g | Should -BeExactly $script:DriftDefinition
                foreach ($role in 'dnat', 'snat', 'fwd') {
                    $table = if ($role -eq 'fwd') { 'filter' } else { 'nat' }
                    $null = Find-ForwardRule $table drift $role   # exactly one each
                }
                Assert-NoFinding drift
                (Invoke-Probe @((T 8600)))[0].Reply | Should -BeExactly (Hello $script:gwIn tcp 8600)
            }

            It 'a duplicated FORWARD rule is Incomplete: duplicated Forward (Drift, Warning), and -Force leaves one copy' {
                $line = Find-ForwardRule filter drift fwd
                $spec = Split-RuleSpec $line
                $null = Invoke-InGateway (@('iptables', '-A') + $spec[1..($spec.Count - 1)])
                (Get-PortForward -NetworkNamespace $script:gw -Name drift).Status | Should -Be 'Incomplete: duplicated Forward'
                $findings = Test-Gateway drift
                $findings | Should -HaveCount 1
                $null = Assert-Finding $findings Drift Warning drift
                (Get-PortForward -NetworkNamespace $script:gw -Name drift | New-PortForward -Force).Change | Should -Be 'Replaced'
                (Get-PortForward -NetworkNamespace $script:gw -Name drift).Status | Should -Be 'Complete'
                $null = Find-ForwardRule filter drift fwd   # exactly one
                (Invoke-Probe @((T 8600)))[0].Reply | Should -BeExactly (Hello $script:gwIn tcp 8600)
            }

            It 'refuses to "repair" a forward whose allow-list went with its DNAT rule, and the full definition restores it' {
                # drift-src admits only 198.51.100.0/24: the server, not the client. Its DNAT rules are the only ones that
                # carry the allow-list, so once the DNAT rule is gone the piped repair must not recreate it open to any source.
                $created = New-PortForward @script:At -Name drift-src -ExternalPort 8601 -SourceAddress '198.51.100.0/24'
                $definition = Format-Definition $created
                (Invoke-Probe @((T 8601)))[0].Success | Should -BeFalse -Because 'the client is not on the allow-list'
                Remove-RuleByHand nat (Find-ForwardRule nat drift-src dnat)
                (Get-PortForward -NetworkNamespace $script:gw -Name drift-src).Status | Should -Match '^Incomplete: missing Dnat'
                $finding = Assert-Finding (Test-Gateway drift-src) Drift Error drift-src
                $finding.Fix | Should -Match 'full definition'

                $errs = $null
                $out = Get-PortForward -NetworkNamespace $script:gw -Name drift-src | New-PortForward -Force -ErrorVariable errs -ErrorAction SilentlyContinue
                $out | Should -BeNullOrEmpty
                @($errs).Count | Should -Be 1
                $errs[0].FullyQualifiedErrorId | Should -Be 'PortForwardDefinitionLost,PSNetfilter.Commands.NewPortForwardCommand'
                (Invoke-Probe @((T 8601)))[0].Success | Should -BeFalse -Because 'nothing was opened'

                (New-PortForward @script:At -Name drift-src -ExternalPort 8601 -SourceAddress '198.51.100.0/24' -Force).Change | Should -Be 'Replaced'
                $g = Get-PortForward -NetworkNamespace $script:gw -Name drift-src
                $g.Status | Should -Be 'Complete'
                Format-Definition $g | Should -BeExactly $definition
                (Invoke-Probe @((T 8601)))[0].Success | Should -BeFalse -Because 'after the repair the client must still be refused'
            }

            It 'deleting one of the DNAT rules of a two-network allow-list is drift (Incomplete, reported)' {
                $null = New-PortForward @script:At -Name drift-two -ExternalPort 8602 -SourceAddress '203.0.113.0/24', '198.51.100.0/24'
                (Invoke-Probe @((T 8602)))[0].Reply | Should -BeExactly (Hello $script:gwIn tcp 8602)
                Remove-RuleByHand nat (Find-ForwardRule nat drift-two dnat '203.0.113.0/24')
                (Invoke-Probe @((T 8602)))[0].Success | Should -BeFalse -Because 'the client''s network lost its DNAT rule'
                (Get-PortForward -NetworkNamespace $script:gw -Name drift-two).Status | Should -Match '^Incomplete: missing Dnat' -Because 'a rule of the forward is missing'
                $null = Assert-Finding (Test-Gateway drift-two) Drift Error drift-two
            }

            It 'deleting the module''s jump from nat PREROUTING is reported, and the documented repair restores the traffic' {
                (Invoke-Probe @((T 8600)))[0].Reply | Should -BeExactly (Hello $script:gwIn tcp 8600)
                $null = Invoke-InGateway @('iptables', '-t', 'nat', '-D', 'PREROUTING', '-j', 'PSNF-PREROUTING')
                (Invoke-Probe @((T 8600)))[0].Success | Should -BeFalse -Because 'no DNAT rule of any forward is reached'
                $findings = Test-Gateway drift
                $findings | Should -Not -BeNullOrEmpty -Because 'every forward is dead; Test-PortForward must say so'
                $null = Get-PortForward -NetworkNamespace $script:gw -Name drift | New-PortForward -Force
                @(Invoke-InGateway @('iptables', '-t', 'nat', '-S', 'PREROUTING')) | Should -Contain '-A PREROUTING -j PSNF-PREROUTING'
                (Invoke-Probe @((T 8600)))[0].Reply | Should -BeExactly (Hello $script:gwIn tcp 8600)
            }
        }
    }

    # The iptables backend's own rules and checks.
    if ($Backend -eq 'Iptables') {
        Context 'Test-PortForward: ForeignDnat (Docker publishes tcp 9000)' {
            AfterAll {
                $null = Invoke-InGateway @('iptables', '-t', 'nat', '-D', 'PREROUTING', '-j', 'DOCKER') -AllowFailure
            }

            It 'reports ForeignDnat as a Warning while the PSNF jump comes first, and the forward carries the traffic' {
                Import-PSNetfilterLabRuleset -Namespace $script:gw -Path (Join-Path $script:FixtureDir 'docker.v4.rules')
                $f = New-PortForward @script:At -Name docker-port -ExternalPort 9000
                $f.Change | Should -Be 'Created'
                @(Invoke-InGateway @('iptables', '-t', 'nat', '-S', 'PREROUTING') | Where-Object { $_.StartsWith('-A ') })[0] | Should -BeExactly '-A PREROUTING -j PSNF-PREROUTING'
                $findings = Test-Gateway docker-port
                $findings | Should -HaveCount 1
                $w = Assert-Finding $findings ForeignDnat Warning docker-port
                $w.What | Should -Match 'DOCKER'
                $w.What | Should -Match '9000'
                (Invoke-Probe @((T 9000)))[0].Reply | Should -BeExactly (Hello $script:gwIn tcp 9000)
            }

            It 'reports ForeignDnat as an Error once Docker''s chain is reached first (-I PREROUTING 1 -j DOCKER), and Docker takes the traffic' {
                $null = Invoke-InGateway @('iptables', '-t', 'nat', '-I', 'PREROUTING', '1', '-j', 'DOCKER')
                $findings = Test-Gateway docker-port
                $findings | Should -HaveCount 1
                $e = Assert-Finding $findings ForeignDnat Error docker-port
                $e.What | Should -Match 'DOCKER'
                (Invoke-Probe @((T 9000)) -TimeoutSeconds 2)[0].Success | Should -BeFalse -Because 'Docker DNATs it to 172.17.0.2, which does not exist in the lab'
            }
        }
    }
}
