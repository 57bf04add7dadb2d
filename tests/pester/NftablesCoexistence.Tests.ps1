# Forwards beside other nftables tables, in the real kernel (tests/lab/PSNetfilterLab.psm1):
#
#     client 203.0.113.2 -> gateway 203.0.113.1 | 198.51.100.1 -> server 198.51.100.10
#
# A hand-written `table inet filter` whose forward chain has policy drop (the ruleset of the real-gateways issue)
# drops what PSNetfilter's iptables rules accept: every base chain on a hook sees the packet. The traffic proves it
# (no reply), Test-PortForward and New-PortForward name the table, the chain and the policy, and the rule their Fix
# proposes, applied as written, lets exactly that forward through. A foreign jump inserted above PSNetfilter's
# FORWARD jump is reported with what sits above it.

BeforeDiscovery {
    $isRoot = (& id -u) -eq '0'
    $hasNft = [bool](Get-Command nft -ErrorAction SilentlyContinue) -or (Test-Path /usr/sbin/nft)
    $SkipReason = $null
    if ($env:CI -ne 'true') {
        if (-not $isRoot) { $SkipReason = 'needs root (creates network namespaces and netfilter rules)' }
        elseif (-not $hasNft) { $SkipReason = 'needs nft (apt-get install nftables)' }
    }
    $Title = if ($SkipReason) { "Forwards beside other nftables tables (skipped: $SkipReason)" } else { 'Forwards beside other nftables tables' }
}

BeforeAll {
    $modulePath = if ($env:PSNETFILTER_TEST_MODULE) { $env:PSNETFILTER_TEST_MODULE } else { Join-Path $PSScriptRoot '../../out/PSNetfilter' }
    Import-Module (Join-Path $PSScriptRoot '../lab/PSNetfilterLab.psm1') -Force
    Import-Module (Join-Path $modulePath 'PSNetfilter.psd1') -Force
    $script:Golden = Join-Path $PSScriptRoot '../PSNetfilter.Tests/Golden/nftjson'
}

Describe "$Title, <Backend> backend" -Skip:([bool]$SkipReason) -ForEach @(@{ Backend = 'Iptables' }, @{ Backend = 'Nftables' }) {
    BeforeAll {
        $global:PSNetfilterBackend = $Backend # the same tests for each backend (the module-wide preference)
        $script:lab = New-PSNetfilterLab -Prefix 'psnfn'
        $script:gw = $script:lab.Gateway
        $null = Start-PSNetfilterLabServer -Lab $script:lab -TcpPort 8080, 8081 -UdpPort 5353

        function script:Invoke-GatewayTool([string]$Tool, [string[]]$Arguments) {
            $out = & ip netns exec $script:gw $Tool @Arguments 2>&1
            if ($LASTEXITCODE -ne 0) { throw "$Tool $($Arguments -join ' ') failed in $($script:gw) ($LASTEXITCODE): $out" }
            $out
        }
        function script:Test-Carries([string]$Protocol, [int]$Port) {
            $null -ne (Invoke-PSNetfilterLabProbe -Lab $script:lab -Protocol $Protocol -Address $script:lab.GatewayExternalAddress -Port $Port -TimeoutSeconds 2)
        }

        $script:web = New-PortForward -Name web -ExternalAddress $script:lab.GatewayExternalAddress -ExternalPort 8080 -InternalAddress $script:lab.ServerAddress -NetworkNamespace $script:gw -WarningVariable beforeWarnings -WarningAction SilentlyContinue
        $script:beforeWarnings = $beforeWarnings
    }

    AfterAll {
        Remove-Variable -Name PSNetfilterBackend -Scope Global -ErrorAction SilentlyContinue
        if ($script:lab) { Remove-PSNetfilterLab -Lab $script:lab }
    }

    It 'carries traffic and warns of nothing while no other table exists' {
        # The first connection of the file also waits for the lab's server to be up: a second try on a loaded
        # machine (a positive proof needs one connection that got through).
        ((Test-Carries Tcp 8080) -or (Test-Carries Tcp 8080)) | Should -BeTrue
        $script:beforeWarnings | Should -BeNullOrEmpty
        @(Test-PortForward web -NetworkNamespace $script:gw -NoConnect | Where-Object Check -eq 'ForeignTableDrop') | Should -BeNullOrEmpty
    }

    It 'names the hand-written policy-drop chain that now drops the traffic, with the command that lets it through' {
        Invoke-GatewayTool nft '-f', (Join-Path $script:Golden 'policy-drop.ruleset')
        Test-Carries Tcp 8080 | Should -BeFalse -Because 'the kernel drops it in inet filter forward'

        $finding = @(Test-PortForward web -NetworkNamespace $script:gw -NoConnect | Where-Object Check -eq 'ForeignTableDrop')
        $finding.Count | Should -Be 1
        $finding[0].Severity | Should -Be 'Error'
        $finding[0].Table | Should -Be 'inet filter'
        $finding[0].Chain | Should -Be 'forward'
        $finding[0].What | Should -BeLike '*chain forward (forward hook, priority 0)*drops new tcp packets to 198.51.100.10 port 8080 by its policy drop*'
        $finding[0].Fix | Should -BeLike "nft insert rule inet filter forward meta l4proto tcp ct status dnat ct original ip daddr $($script:lab.GatewayExternalAddress) ct original proto-dst 8080 ct reply ip saddr $($script:lab.ServerAddress) accept*"
        $script:webFix = $finding[0].Fix
    }

    It 'warns at creation with the same finding' {
        $null = New-PortForward -Name dns -Protocol Udp -ExternalAddress $script:lab.GatewayExternalAddress -ExternalPort 5353 -InternalAddress $script:lab.ServerAddress -NetworkNamespace $script:gw -WarningVariable w -WarningAction SilentlyContinue
        @($w).Count | Should -Be 1
        "$($w[0])" | Should -BeLike 'dns: Table inet filter, chain forward (forward hook, priority 0) of a hand-written nftables ruleset*drops new udp packets to 198.51.100.10 port 5353 by its policy drop*Fix: nft insert rule inet filter forward meta l4proto udp ct status dnat*'
        Get-PortForward dns -NetworkNamespace $script:gw | Should -Not -BeNullOrEmpty -Because 'a warning, not an error: the forward is made'
    }

    It 'carries the forward once the proposed rule is in place, and only that forward' {
        $rule = ($script:webFix -split '  \(')[0] -replace '^nft ', ''
        Invoke-GatewayTool nft $rule
        Test-Carries Tcp 8080 | Should -BeTrue
        @(Test-PortForward web -NetworkNamespace $script:gw -NoConnect | Where-Object Check -eq 'ForeignTableDrop') | Should -BeNullOrEmpty
        Test-Carries Udp 5353 | Should -BeFalse
        @(Test-PortForward dns -NetworkNamespace $script:gw -NoConnect | Where-Object Check -eq 'ForeignTableDrop').Count | Should -Be 1
    }

    # The iptables backend's own layout (the jump from filter/FORWARD to PSNF-FORWARD): no such test for nftables.
    if ($Backend -eq 'Iptables') {
        It 'says what sits above the FORWARD jump when another program moved in front of it' {
            Invoke-GatewayTool nft 'delete', 'table', 'inet', 'filter'
            foreach ($cmd in @(
                    @('-N', 'FOREIGN-USER'), @('-A', 'FOREIGN-USER', '-j', 'RETURN'),
                    @('-N', 'FOREIGN-ISOLATION'), @('-A', 'FOREIGN-ISOLATION', '-o', 'nosuch0', '-j', 'DROP'),
                    @('-I', 'FORWARD', '1', '-j', 'FOREIGN-ISOLATION'), @('-I', 'FORWARD', '1', '-j', 'FOREIGN-USER'))) {
                Invoke-GatewayTool iptables $cmd
            }
            Test-Carries Tcp 8080 | Should -BeTrue -Because 'the drop above the jump does not match this traffic'
            $finding = @(Test-PortForward web -NetworkNamespace $script:gw -NoConnect | Where-Object Check -eq 'ForwardJumpNotFirst')
            $finding.Count | Should -Be 1
            $finding[0].Severity | Should -Be 'Warning'
            $finding[0].What | Should -BeLike '*rule 3 of filter/FORWARD (IPv4); above it: -j FOREIGN-USER; -j FOREIGN-ISOLATION.'
            $finding[0].Why | Should -BeLike '*FOREIGN-ISOLATION: -o nosuch0 -j DROP*'
        }
    }
}

Describe "$Title - a flush of the whole ruleset, <Backend> backend" -Skip:([bool]$SkipReason) -ForEach @(@{ Backend = 'Iptables' }, @{ Backend = 'Nftables' }) {
    BeforeAll {
        $global:PSNetfilterBackend = $Backend # the same tests for each backend (the module-wide preference)
        $script:lab = New-PSNetfilterLab -Prefix 'psnfq'
        $script:gw = $script:lab.Gateway
        $null = Start-PSNetfilterLabServer -Lab $script:lab -TcpPort 8080
        $null = New-PortForward -Name 'wiped' -ExternalAddress $script:lab.GatewayExternalAddress -ExternalPort 8080 -InternalAddress $script:lab.ServerAddress -SourceAddress 203.0.113.0/24 -Description "it's here" -NetworkNamespace $script:gw
        $null = New-PortForward -Name 'kept' -ExternalPort 9999 -InternalAddress $script:lab.ServerAddress -NetworkNamespace $script:gw
        Remove-PortForward -Name 'kept' -NetworkNamespace $script:gw
    }

    AfterAll {
        Remove-Variable -Name PSNetfilterBackend -Scope Global -ErrorAction SilentlyContinue
        if ($script:lab) { Remove-PSNetfilterLab -Lab $script:lab }
    }

    It 'reports a forward that a flush of the ruleset wiped, with the command that makes it again' {
        Invoke-PSNetfilterLabProbe -Lab $script:lab -Protocol Tcp -Address $script:lab.GatewayExternalAddress -Port 8080 -TimeoutSeconds 2 | Should -Not -BeNullOrEmpty
        & ip netns exec $script:gw nft flush ruleset
        $LASTEXITCODE | Should -Be 0
        Invoke-PSNetfilterLabProbe -Lab $script:lab -Protocol Tcp -Address $script:lab.GatewayExternalAddress -Port 8080 -TimeoutSeconds 2 | Should -BeNullOrEmpty

        $listed = @(Get-PortForward -NetworkNamespace $script:gw -WarningVariable w -WarningAction SilentlyContinue)
        $listed | Should -BeNullOrEmpty -Because 'the record never makes a forward appear that the kernel does not have'
        @($w).Count | Should -Be 1 -Because 'a removed forward is not reported, only the wiped one'
        "$($w[0])" | Should -BeLike "Forward 'wiped' was created by PSNetfilter*none of its rules are in the kernel*flush*"

        $finding = @(Test-PortForward -NetworkNamespace $script:gw -NoConnect | Where-Object Check -eq 'Missing')
        $finding.Count | Should -Be 1
        $finding[0].Forward | Should -Be 'wiped'
        $finding[0].Severity | Should -Be 'Error'
        $finding[0].Fix | Should -Be "New-PortForward -Name 'wiped' -Protocol Tcp -ExternalAddress $($script:lab.GatewayExternalAddress) -ExternalPort 8080 -InternalAddress $($script:lab.ServerAddress) -InternalPort 8080 -SnatAddress $($script:lab.GatewayInternalAddress) -SourceAddress 203.0.113.0/24 -Description 'it''s here' -NetworkNamespace '$($script:gw)'"
        $script:repair = $finding[0].Fix
    }

    It 'carries traffic again once the proposed command has run, and reports nothing missing' {
        $null = Invoke-Expression $script:repair
        Invoke-PSNetfilterLabProbe -Lab $script:lab -Protocol Tcp -Address $script:lab.GatewayExternalAddress -Port 8080 -TimeoutSeconds 2 | Should -Not -BeNullOrEmpty
        (Get-PortForward wiped -NetworkNamespace $script:gw).Description | Should -Be "it's here"
        @(Test-PortForward -NetworkNamespace $script:gw -NoConnect | Where-Object Check -eq 'Missing') | Should -BeNullOrEmpty
    }

    It 'forgets a wiped forward that Remove-PortForward names, and then reports it no more' {
        $null = New-PortForward -Name 'gone' -ExternalPort 9100 -InternalAddress $script:lab.ServerAddress -NetworkNamespace $script:gw
        & ip netns exec $script:gw nft flush ruleset
        @(Test-PortForward -NetworkNamespace $script:gw -NoConnect | Where-Object Check -eq 'Missing').Forward | Should -Be @('gone', 'wiped')
        $removed = Remove-PortForward -Name 'gone' -NetworkNamespace $script:gw -PassThru -ErrorVariable e
        $e | Should -BeNullOrEmpty
        $removed.Name | Should -Be 'gone'
        $removed.Change | Should -Be 'Removed'
        @(Test-PortForward -NetworkNamespace $script:gw -NoConnect | Where-Object Check -eq 'Missing').Forward | Should -Be @('wiped')
        $null = Invoke-Expression $script:repair
    }

    It 'forgets nothing of a namespace that was deleted and made again under the same name' {
        $record = "/run/psnetfilter/intent/netns-$($script:gw).json"
        Test-Path $record | Should -BeTrue
        (Get-Content $record -Raw | ConvertFrom-Json).Forwards.Name | Should -Be @('wiped')
        # Same name, new namespace: the old record must not say its forward is missing here.
        & ip netns delete $script:gw
        & ip netns add $script:gw
        $null = Get-PortForward -NetworkNamespace $script:gw -WarningVariable w -WarningAction SilentlyContinue
        $w | Should -BeNullOrEmpty
        @(Test-PortForward -NetworkNamespace $script:gw -NoConnect) | Should -BeNullOrEmpty
    }
}

Describe "$Title - -AcceptInOtherTables, <Backend> backend" -Skip:([bool]$SkipReason) -ForEach @(@{ Backend = 'Iptables' }, @{ Backend = 'Nftables' }) {
    BeforeAll {
        $global:PSNetfilterBackend = $Backend # the same tests for each backend (the module-wide preference)
        $script:lab = New-PSNetfilterLab -Prefix 'psnfo'
        $script:gw = $script:lab.Gateway
        $null = Start-PSNetfilterLabServer -Lab $script:lab -TcpPort 8080, 8081
        & ip netns exec $script:gw nft -f (Join-Path $script:Golden 'policy-drop.ruleset')
        $script:foreignBefore = (& ip netns exec $script:gw nft list table inet filter) -join "`n"
        function script:Test-Carries([int]$Port) {
            $null -ne (Invoke-PSNetfilterLabProbe -Lab $script:lab -Protocol Tcp -Address $script:lab.GatewayExternalAddress -Port $Port -TimeoutSeconds 2)
        }
    }

    AfterAll {
        Remove-Variable -Name PSNetfilterBackend -Scope Global -ErrorAction SilentlyContinue
        if ($script:lab) { Remove-PSNetfilterLab -Lab $script:lab }
    }

    It 'is off by default: the forward is made, the hand-written table untouched, and a warning says why nothing gets through' {
        $null = New-PortForward -Name plain -ExternalAddress $script:lab.GatewayExternalAddress -ExternalPort 8081 -InternalAddress $script:lab.ServerAddress -NetworkNamespace $script:gw -WarningVariable w -WarningAction SilentlyContinue
        @($w).Count | Should -Be 1
        ((& ip netns exec $script:gw nft list table inet filter) -join "`n") | Should -BeExactly $script:foreignBefore
        Test-Carries 8081 | Should -BeFalse
    }

    It 'inserts one tagged accept rule for exactly that forward, which then carries traffic, and warns of nothing' {
        $null = New-PortForward -Name opened -ExternalAddress $script:lab.GatewayExternalAddress -ExternalPort 8080 -InternalAddress $script:lab.ServerAddress -NetworkNamespace $script:gw -AcceptInOtherTables -WarningVariable w -WarningAction SilentlyContinue
        $w | Should -BeNullOrEmpty
        $rules = @(& ip netns exec $script:gw nft list chain inet filter forward | Where-Object { $_ -match 'psnf:v1:' })
        $rules.Count | Should -Be 1
        $rules[0].Trim() | Should -BeLike "meta l4proto tcp ct status dnat ct original ip daddr $($script:lab.GatewayExternalAddress) ct original proto-dst 8080 ct reply ip saddr $($script:lab.ServerAddress) accept comment ""psnf:v1:opened:accept"""
        Test-Carries 8080 | Should -BeTrue
        Test-Carries 8081 | Should -BeFalse -Because 'the rule accepts only its own forward'
        @(Test-PortForward opened -NetworkNamespace $script:gw -NoConnect | Where-Object Check -eq 'ForeignTableDrop') | Should -BeNullOrEmpty
    }

    It 'does not add a second rule when run again' {
        $null = New-PortForward -Name opened -ExternalAddress $script:lab.GatewayExternalAddress -ExternalPort 8080 -InternalAddress $script:lab.ServerAddress -NetworkNamespace $script:gw -AcceptInOtherTables
        @(& ip netns exec $script:gw nft list chain inet filter forward | Where-Object { $_ -match 'psnf:v1:opened:accept' }).Count | Should -Be 1
    }

    It 'removes the rule with the forward, leaving the hand-written table as it was' {
        Remove-PortForward -Name opened, plain -NetworkNamespace $script:gw
        ((& ip netns exec $script:gw nft list table inet filter) -join "`n") | Should -BeExactly $script:foreignBefore
    }
}
