# Tests of the network-namespace lab itself (tests/lab/PSNetfilterLab.psm1), with plain
# routing only: no PSNetfilter module and no iptables rules are involved.

BeforeDiscovery {
    $isRoot = (& id -u) -eq '0'
    $hasIp = [bool](Get-Command ip -ErrorAction SilentlyContinue) -or (Test-Path /usr/sbin/ip) -or (Test-Path /sbin/ip)
    $LabSkipReason = $null
    if ($env:CI -ne 'true') {
        # In CI (as root) these tests must run; elsewhere they need root and iproute2.
        if (-not $isRoot) { $LabSkipReason = 'needs root (creates network namespaces)' }
        elseif (-not $hasIp) { $LabSkipReason = 'needs iproute2 (ip)' }
    }
    $LabTitle = if ($LabSkipReason) { "PSNetfilter lab (skipped: $($LabSkipReason))" } else { 'PSNetfilter lab' }
}

Describe $LabTitle -Skip:([bool]$LabSkipReason) {
    BeforeAll {
        Import-Module (Join-Path $PSScriptRoot '../lab/PSNetfilterLab.psm1') -Force
        $script:TcpPort = 8080
        $script:UdpPort = 5353
        $script:lab = $null
        $script:lab = New-PSNetfilterLab -Prefix 'psnf-t'
        $null = Start-PSNetfilterLabServer -Lab $script:lab -TcpPort $script:TcpPort -UdpPort $script:UdpPort
        # A second server in the gateway namespace, so the server side can reach the gateway too.
        $null = Start-PSNetfilterLabServer -Lab $script:lab -In Gateway -TcpPort 7070
    }

    AfterAll {
        if ($script:lab) {
            Remove-PSNetfilterLab -Lab $script:lab
        }
    }

    It 'creates three uniquely named namespaces' {
        $names = @(& ip netns list | ForEach-Object { ($_ -split '\s+')[0] })
        foreach ($ns in $script:lab.Client, $script:lab.Gateway, $script:lab.Server) {
            $ns | Should -Match '^psnf-t[0-9a-f]{6}-(cl|gw|sv)$'
            $names | Should -Contain $ns
        }
        @($script:lab.Client, $script:lab.Gateway, $script:lab.Server | Select-Object -Unique).Count | Should -Be 3
    }

    It 'keeps veth names within 15 characters' {
        foreach ($name in $script:lab.ClientInterface, $script:lab.GatewayExternalInterface, $script:lab.GatewayInternalInterface, $script:lab.ServerInterface) {
            $name.Length | Should -BeLessOrEqual 15
        }
    }

    It 'gives the client no route to the server networks' {
        $v4 = (& ip -n $script:lab.Client route show) -join "`n"
        $v6 = (& ip -n $script:lab.Client -6 route show) -join "`n"
        $v4 | Should -Not -Match '198\.51\.100\.'
        $v4 | Should -Not -Match 'default'
        $v6 | Should -Not -Match '2001:db8:2:'
        $v6 | Should -Not -Match 'default'
    }

    It 'turns IPv6 duplicate address detection off (addresses usable at once)' {
        foreach ($ns in $script:lab.Namespaces) {
            (& ip netns exec $ns cat /proc/sys/net/ipv6/conf/all/accept_dad) | Should -Be '0'
            (& ip -n $ns -6 addr show tentative) | Should -BeNullOrEmpty
        }
    }

    It 'enables forwarding on the gateway by default' {
        (& ip netns exec $script:lab.Gateway cat /proc/sys/net/ipv4/ip_forward) | Should -Be '1'
        (& ip netns exec $script:lab.Gateway cat /proc/sys/net/ipv6/conf/all/forwarding) | Should -Be '1'
    }

    It 'lets the gateway reach the server over TCP and UDP, IPv4 and IPv6' {
        $results = Invoke-PSNetfilterLabProbe -Lab $script:lab -From Gateway -Target @(
            @{ Protocol = 'Tcp'; Address = '198.51.100.10'; Port = $script:TcpPort }
            @{ Protocol = 'Udp'; Address = '198.51.100.10'; Port = $script:UdpPort }
            @{ Protocol = 'Tcp'; Address = '[2001:db8:2::10]'; Port = $script:TcpPort }
            @{ Protocol = 'Udp'; Address = '2001:db8:2::10'; Port = $script:UdpPort }
        )
        $results.Count | Should -Be 4
        $results[0].Reply | Should -Be "hello from server; you are 198.51.100.1 proto tcp port $($script:TcpPort)"
        $results[1].Reply | Should -Be "hello from server; you are 198.51.100.1 proto udp port $($script:UdpPort)"
        $results[2].Reply | Should -Be "hello from server; you are 2001:db8:2::1 proto tcp port $($script:TcpPort)"
        $results[3].Reply | Should -Be "hello from server; you are 2001:db8:2::1 proto udp port $($script:UdpPort)"
        $results | ForEach-Object { $_.Success | Should -BeTrue }
    }

    It 'answers HTTP GET with an HTTP/1.0 200 response' {
        $r = Invoke-PSNetfilterLabProbe -Lab $script:lab -From Gateway -Protocol Http -Address 198.51.100.10 -Port $script:TcpPort -Detailed
        $r.HttpStatus | Should -Be 200
        $r.Reply | Should -Be "hello from server; you are 198.51.100.1 proto tcp port $($script:TcpPort)"
    }

    It 'returns the reply string for a single probe' {
        Invoke-PSNetfilterLabProbe -Lab $script:lab -From Gateway -Protocol Tcp -Address 198.51.100.10 -Port $script:TcpPort |
            Should -Be "hello from server; you are 198.51.100.1 proto tcp port $($script:TcpPort)"
    }

    It 'does not let the client reach the server directly (no route)' {
        Invoke-PSNetfilterLabProbe -Lab $script:lab -Protocol Tcp -Address 198.51.100.10 -Port $script:TcpPort | Should -BeNullOrEmpty
        $results = Invoke-PSNetfilterLabProbe -Lab $script:lab -Target @(
            @{ Protocol = 'Tcp'; Address = '198.51.100.10'; Port = $script:TcpPort }
            @{ Protocol = 'Udp'; Address = '198.51.100.10'; Port = $script:UdpPort }
            @{ Protocol = 'Tcp'; Address = '2001:db8:2::10'; Port = $script:TcpPort }
        )
        foreach ($r in $results) {
            $r.Success | Should -BeFalse
            $r.Reply | Should -BeNullOrEmpty
            $r.Error | Should -Be 'NetworkUnreachable'
        }
    }

    It 'lets the client reach the gateway external address (refused: nothing listens there)' {
        $r = Invoke-PSNetfilterLabProbe -Lab $script:lab -Protocol Tcp -Address 203.0.113.1 -Port $script:TcpPort -Detailed
        $r.Success | Should -BeFalse
        $r.Error | Should -Be 'ConnectionRefused'
    }

    It 'lets the server reach the gateway (IPv4 and IPv6)' {
        $results = Invoke-PSNetfilterLabProbe -Lab $script:lab -From Server -Target @(
            @{ Protocol = 'Tcp'; Address = '198.51.100.1'; Port = 7070 }
            @{ Protocol = 'Tcp'; Address = '2001:db8:2::1'; Port = 7070 }
        )
        $results[0].Reply | Should -Be 'hello from server; you are 198.51.100.10 proto tcp port 7070'
        $results[1].Reply | Should -Be 'hello from server; you are 2001:db8:2::10 proto tcp port 7070'
    }

    It 'routes the server''s replies via the gateway (default routes)' {
        # Gateway's external address is on a network the server is not attached to.
        $r = Invoke-PSNetfilterLabProbe -Lab $script:lab -From Server -Target @(
            @{ Protocol = 'Tcp'; Address = '203.0.113.1'; Port = 7070 }
            @{ Protocol = 'Tcp'; Address = '2001:db8:1::1'; Port = 7070 }
        )
        $r[0].Reply | Should -Be 'hello from server; you are 198.51.100.10 proto tcp port 7070'
        $r[1].Reply | Should -Be 'hello from server; you are 2001:db8:2::10 proto tcp port 7070'
    }

    It 'refuses to probe addresses outside the lab' {
        { Invoke-PSNetfilterLabProbe -Lab $script:lab -Protocol Tcp -Address 192.168.2.10 -Port 80 } | Should -Throw '*not a lab address*'
    }

    It 'loads rulesets with --noflush and dumps them without comments or counters' {
        $file = Join-Path ([IO.Path]::GetTempPath()) "psnf-lab-test-$($script:lab.Id).rules"
        try {
            Set-Content -LiteralPath $file -Value @(
                '*filter'
                ':LAB-TEST - [0:0]'
                '-A LAB-TEST -s 203.0.113.2/32 -j ACCEPT'
                'COMMIT'
            )
            Import-PSNetfilterLabRuleset -Namespace $script:lab.Gateway -Path $file
            # Without --noflush this would wipe the filter table and fail (LAB-TEST gone).
            Set-Content -LiteralPath $file -Value @('*filter', '-A LAB-TEST -s 203.0.113.3/32 -j ACCEPT', 'COMMIT')
            Import-PSNetfilterLabRuleset -Namespace $script:lab.Gateway -Path $file
            $dump = Get-PSNetfilterLabDump -Namespace $script:lab.Gateway -Table filter
            $dump | Should -BeOfType [string]
            $lines = $dump -split "`n"
            $lines | Should -Contain ':LAB-TEST -'
            $lines | Should -Contain '-A LAB-TEST -s 203.0.113.2/32 -j ACCEPT'
            $lines | Should -Contain '-A LAB-TEST -s 203.0.113.3/32 -j ACCEPT'
            $lines | Where-Object { $_ -match '^#' -or $_ -match '\[\d+:\d+\]' } | Should -BeNullOrEmpty
            Set-Content -LiteralPath $file -Value @('*filter', '-A NO-SUCH-CHAIN -j ACCEPT', 'COMMIT')
            { Import-PSNetfilterLabRuleset -Namespace $script:lab.Gateway -Path $file } | Should -Throw '*failed*'
        }
        finally {
            Remove-Item -LiteralPath $file -ErrorAction SilentlyContinue
        }
    }

    It 'removes its namespaces and servers, and can be removed twice' {
        $pids = @($script:lab.Servers | ForEach-Object ProcessId)
        $pids.Count | Should -Be 2
        Remove-PSNetfilterLab -Lab $script:lab
        Remove-PSNetfilterLab -Lab $script:lab
        $names = @(& ip netns list | ForEach-Object { ($_ -split '\s+')[0] })
        foreach ($ns in $script:lab.Namespaces) { $names | Should -Not -Contain $ns }
        foreach ($p in $pids) { Get-Process -Id $p -ErrorAction SilentlyContinue | Should -BeNullOrEmpty }
    }
}

Describe 'PSNetfilter lab without forwarding' -Skip:([bool]$LabSkipReason) {
    BeforeAll {
        Import-Module (Join-Path $PSScriptRoot '../lab/PSNetfilterLab.psm1') -Force
        $script:lab2 = $null
        $script:lab2 = New-PSNetfilterLab -Prefix 'psnf-t' -Forwarding $false
    }
    AfterAll {
        if ($script:lab2) { Remove-PSNetfilterLab -Lab $script:lab2 }
    }

    It 'switches gateway forwarding off with -Forwarding $false' {
        (& ip netns exec $script:lab2.Gateway cat /proc/sys/net/ipv4/ip_forward) | Should -Be '0'
        (& ip netns exec $script:lab2.Gateway cat /proc/sys/net/ipv6/conf/all/forwarding) | Should -Be '0'
    }
}
