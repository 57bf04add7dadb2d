# The nftables backend beside iptables' own filter table, in the real kernel (tests/lab/PSNetfilterLab.psm1):
#
#     client 203.0.113.2 -> gateway 203.0.113.1 | 198.51.100.1 -> server 198.51.100.10  (and 2001:db8:1::/2::)
#
# Docker (started with forwarding off) and ufw set iptables' filter FORWARD policy to DROP. That chain is a base
# chain on the forward hook like the nftables backend's own, so its drop is final whatever table inet psnetfilter
# accepts: the iptables backend's forwards carry traffic there (their accept is in FORWARD), the nftables backend's
# must too. Where FORWARD drops, the nftables backend writes each forward's accept into it (PSNF-FORWARD, tag
# psnf:v1:NAME:nftfwd); where it does not, it writes nothing to iptables.

BeforeDiscovery {
    $isRoot = (& id -u) -eq '0'
    $hasTools = [bool](Get-Command nft -ErrorAction SilentlyContinue) -and [bool](Get-Command iptables -ErrorAction SilentlyContinue)
    $SkipReason = $null
    if ($env:CI -ne 'true') {
        if (-not $isRoot) { $SkipReason = 'needs root (creates network namespaces and netfilter rules)' }
        elseif (-not $hasTools) { $SkipReason = 'needs nft and iptables (apt-get install nftables iptables)' }
    }
    $Title = if ($SkipReason) { "nftables backend beside a dropping iptables FORWARD (skipped: $SkipReason)" } else { 'nftables backend beside a dropping iptables FORWARD' }
}

BeforeAll {
    $modulePath = if ($env:PSNETFILTER_TEST_MODULE) { $env:PSNETFILTER_TEST_MODULE } else { Join-Path $PSScriptRoot '../../out/PSNetfilter' }
    Import-Module (Join-Path $PSScriptRoot '../lab/PSNetfilterLab.psm1') -Force
    Import-Module (Join-Path $modulePath 'PSNetfilter.psd1') -Force

    function script:Invoke-GatewayTool([string]$Tool, [string[]]$Arguments) {
        $out = & ip netns exec $script:gw $Tool @Arguments 2>&1
        if ($LASTEXITCODE -ne 0) { throw "$Tool $($Arguments -join ' ') failed in $($script:gw) ($LASTEXITCODE): $out" }
        $out
    }
    # What iptables' tables hold in the gateway, without the comment and counter lines.
    function script:Get-IptablesDump([string]$Tool = 'iptables-save') {
        @(Invoke-GatewayTool $Tool @() | Where-Object { $_ -and $_ -notmatch '^#' })
    }
    function script:Test-Carries([string]$Protocol, [string]$Address, [int]$Port) {
        $null -ne (Invoke-PSNetfilterLabProbe -Lab $script:lab -Protocol $Protocol -Address $Address -Port $Port -TimeoutSeconds 2)
    }
}

Describe $Title -Skip:([bool]$SkipReason) {
    BeforeAll {
        $script:lab = New-PSNetfilterLab -Prefix 'psnfB'
        $script:gw = $script:lab.Gateway
        $null = Start-PSNetfilterLabServer -Lab $script:lab -TcpPort 8080, 8081, 8082
        $script:ns = @{ NetworkNamespace = $script:gw; Backend = 'Nftables' }
    }

    AfterAll {
        if ($script:lab) { Remove-PSNetfilterLab -Lab $script:lab }
    }

    It 'writes nothing to iptables where its FORWARD does not drop (a pure nftables gateway stays pure)' {
        $null = New-PortForward -Name pure -ExternalAddress $script:lab.GatewayExternalAddress -ExternalPort 8080 -InternalAddress $script:lab.ServerAddress @ns
        ((Test-Carries Tcp $script:lab.GatewayExternalAddress 8080) -or (Test-Carries Tcp $script:lab.GatewayExternalAddress 8080)) | Should -BeTrue
        @(Invoke-GatewayTool nft 'list', 'tables') | Should -Be @('table inet psnetfilter')
        Remove-PortForward -Name pure -NetworkNamespace $script:gw
        @(Invoke-GatewayTool nft 'list', 'tables') | Should -Be @('table inet psnetfilter')
    }

    It 'carries an IPv4 forward through iptables FORWARD policy DROP, with its accept in PSNF-FORWARD' {
        Invoke-GatewayTool iptables '-P', 'FORWARD', 'DROP'
        $null = New-PortForward -Name web -ExternalAddress $script:lab.GatewayExternalAddress -ExternalPort 8081 -InternalAddress $script:lab.ServerAddress @ns
        Test-Carries Tcp $script:lab.GatewayExternalAddress 8081 | Should -BeTrue
        $dump = Get-IptablesDump
        ($dump | Where-Object { $_ -like '-A FORWARD *' } | Select-Object -First 1) | Should -Be '-A FORWARD -j PSNF-FORWARD'
        @($dump | Where-Object { $_ -like '*"psnf:v1:web:nftfwd"*' -and $_ -like '*-j ACCEPT' }).Count | Should -Be 1
        @($dump | Where-Object { $_ -like '-A PSNF-PRE*' -or $_ -like '-A PSNF-POST*' }) | Should -BeNullOrEmpty -Because 'only the FORWARD accept goes to iptables'
    }

    It 'lists the forward once, in the nftables backend, complete, and Test-PortForward finds nothing wrong' {
        $all = @(Get-PortForward -NetworkNamespace $script:gw)
        @($all.Name) | Should -Be @('web')
        $all[0].Backend | Should -Be 'nftables'
        $all[0].Status | Should -Be 'Complete'
        @(Test-PortForward web -NetworkNamespace $script:gw -NoConnect | Where-Object Check -in 'IptablesForwardDrop', 'Drift', 'ForwardPolicyDrop') | Should -BeNullOrEmpty
    }

    It 'carries an IPv6 forward through ip6tables FORWARD policy DROP' {
        Invoke-GatewayTool ip6tables '-P', 'FORWARD', 'DROP'
        $null = New-PortForward -Name web6 -ExternalAddress $script:lab.GatewayExternalAddressV6 -ExternalPort 8081 -InternalAddress $script:lab.ServerAddressV6 @ns
        Test-Carries Tcp $script:lab.GatewayExternalAddressV6 8081 | Should -BeTrue
        @(Get-IptablesDump ip6tables-save | Where-Object { $_ -like '*"psnf:v1:web6:nftfwd"*' }).Count | Should -Be 1
        @(Get-IptablesDump | Where-Object { $_ -like '*psnf:v1:web6:*' }) | Should -BeNullOrEmpty
    }

    It 'replaces the accept with the forward (-Force), and -WhatIf changes nothing' {
        $before = Get-IptablesDump
        $null = New-PortForward -Name web -ExternalAddress $script:lab.GatewayExternalAddress -ExternalPort 8081 -InternalAddress $script:lab.ServerAddress -InternalPort 8082 -Force -WhatIf @ns
        Get-IptablesDump | Should -Be $before
        $null = New-PortForward -Name web -ExternalAddress $script:lab.GatewayExternalAddress -ExternalPort 8081 -InternalAddress $script:lab.ServerAddress -InternalPort 8082 -Force @ns
        $mirror = @(Get-IptablesDump | Where-Object { $_ -like '*"psnf:v1:web:nftfwd"*' })
        $mirror.Count | Should -Be 1
        $mirror[0] | Should -BeLike '*--ctreplsrcport 8082 *'
        (Invoke-PSNetfilterLabProbe -Lab $script:lab -Protocol Tcp -Address $script:lab.GatewayExternalAddress -Port 8081 -TimeoutSeconds 2) | Should -BeLike '*port 8082*'
    }

    It 'reports a forward made before the drop came (IptablesForwardDrop), and -Force puts its accept' {
        Invoke-GatewayTool iptables '-P', 'FORWARD', 'ACCEPT'
        $null = New-PortForward -Name late -ExternalAddress $script:lab.GatewayExternalAddress -ExternalPort 8080 -InternalAddress $script:lab.ServerAddress @ns
        @(Get-IptablesDump | Where-Object { $_ -like '*psnf:v1:late:*' }) | Should -BeNullOrEmpty -Because 'FORWARD did not drop when it was made'
        Invoke-GatewayTool iptables '-P', 'FORWARD', 'DROP' # "Docker started later"
        Test-Carries Tcp $script:lab.GatewayExternalAddress 8080 | Should -BeFalse

        $finding = @(Test-PortForward late -NetworkNamespace $script:gw -NoConnect | Where-Object Check -eq 'IptablesForwardDrop')
        $finding.Count | Should -Be 1
        $finding[0].Severity | Should -Be 'Error'
        $finding[0].What | Should -BeLike "*filter FORWARD chain (IPv4, iptables*) drops: its policy is DROP*"
        $finding[0].Fix | Should -BeLike "New-PortForward -Name 'late' *-NetworkNamespace '$($script:gw)' -Backend Nftables -Force *"
        (Get-PortForward late -NetworkNamespace $script:gw).Status | Should -BeLike '*missing Forward*'

        $fix = ($finding[0].Fix -split ' puts ')[0]
        $null = Invoke-Expression $fix
        Test-Carries Tcp $script:lab.GatewayExternalAddress 8080 | Should -BeTrue
        @(Test-PortForward late -NetworkNamespace $script:gw -NoConnect | Where-Object Check -eq 'IptablesForwardDrop') | Should -BeNullOrEmpty
    }

    It 'removes the accept with the forward, and the module chains with the last of them' {
        Remove-PortForward -Name late -NetworkNamespace $script:gw
        @(Get-IptablesDump | Where-Object { $_ -like '*psnf:v1:late:*' }) | Should -BeNullOrEmpty
        @(Get-IptablesDump | Where-Object { $_ -like '*psnf:v1:web:nftfwd*' }).Count | Should -Be 1
        Remove-PortForward -Name web, web6 -NetworkNamespace $script:gw
        @(Get-IptablesDump) + @(Get-IptablesDump ip6tables-save) | Where-Object { $_ -like '*PSNF*' } | Should -BeNullOrEmpty
        @(Get-IptablesDump | Where-Object { $_ -like ':FORWARD *' }) | Should -BeLike ':FORWARD DROP*' -Because 'the policy is not ours'
    }

    It 'moves a forward between the backends and leaves nothing behind' {
        $def = @{ Name = 'mv'; ExternalAddress = $script:lab.GatewayExternalAddress; ExternalPort = 8082; InternalAddress = $script:lab.ServerAddress; NetworkNamespace = $script:gw }
        $null = New-PortForward @def -Backend Iptables
        $null = New-PortForward @def -Backend Nftables
        (Get-PortForward mv -NetworkNamespace $script:gw).Backend | Should -Be 'nftables'
        $dump = Get-IptablesDump
        @($dump | Where-Object { $_ -like '*psnf:v1:mv:*' }) | Should -HaveCount 1
        @($dump | Where-Object { $_ -like '*psnf:v1:mv:nftfwd*' }) | Should -HaveCount 1
        Test-Carries Tcp $script:lab.GatewayExternalAddress 8082 | Should -BeTrue

        $null = New-PortForward @def -Backend Iptables
        @(Get-PortForward mv -NetworkNamespace $script:gw).Backend | Should -Be 'iptables'
        @(Get-IptablesDump | Where-Object { $_ -like '*psnf:v1:mv:nftfwd*' }) | Should -BeNullOrEmpty
        Test-Carries Tcp $script:lab.GatewayExternalAddress 8082 | Should -BeTrue
        Remove-PortForward -Name mv -NetworkNamespace $script:gw
        @(Get-IptablesDump | Where-Object { $_ -like '*PSNF*' }) | Should -BeNullOrEmpty
        @(Invoke-GatewayTool nft 'list', 'table', 'inet', 'psnetfilter' | Where-Object { $_ -like '*psnf:v1:mv:*' }) | Should -BeNullOrEmpty
    }
}
