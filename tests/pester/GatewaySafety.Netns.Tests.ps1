# Stale connections after a change (conntrack), and forwards that cannot work on their gateway, against the
# real kernel in namespaces of their own:
#
#     client 203.0.113.2 -- gateway 203.0.113.1 | 198.51.100.1 -- server A 198.51.100.10
#                                               | 192.0.2.1    -- server B 192.0.2.10
#
# A UDP stream from the client (one source port, a datagram every 100 ms) goes through a forward on the
# gateway; the servers log when each datagram arrives.

BeforeDiscovery {
    $SkipReason = $null
    if ($env:CI -ne 'true' -and (& id -u) -ne '0') { $SkipReason = 'needs root (creates network namespaces and netfilter rules)' }
    $Title = if ($SkipReason) { "Gateway safety in namespaces (skipped: $SkipReason)" } else { 'Gateway safety in namespaces' }
}

BeforeAll {
    $modulePath = if ($env:PSNETFILTER_TEST_MODULE) { $env:PSNETFILTER_TEST_MODULE } else { Join-Path $PSScriptRoot '../../out/PSNetfilter' }
    Import-Module (Join-Path $PSScriptRoot '../support/TestProcess.psm1') -Force
    Import-Module (Join-Path $modulePath 'PSNetfilter.psd1') -Force
    $script:Ip = Resolve-TestTool ip
    $script:StreamScript = Join-Path $PSScriptRoot '../lab/UdpStream.ps1'

    function script:Ip { $null = Invoke-TestProcess -FilePath $script:Ip -ArgumentList ([string[]]$args) -Check }

    function script:Start-Stream([string]$Namespace, [string[]]$Arguments) {
        # sh execs into ip netns exec, which execs into pwsh: the PID is the stream's own.
        $psi = [System.Diagnostics.ProcessStartInfo]::new('/bin/sh')
        foreach ($a in @('-c', 'exec "$@" >/dev/null 2>&1 </dev/null', 'sh', $script:Ip, 'netns', 'exec', $Namespace) + (Get-TestPwshInvocation) +
            @('-NoProfile', '-NonInteractive', '-File', $script:StreamScript) + $Arguments) {
            $psi.ArgumentList.Add($a)
        }
        $psi.UseShellExecute = $false
        $env = Get-TestChildEnvironment
        foreach ($k in $env.Keys) { $psi.Environment[$k] = $env[$k] }
        $p = [System.Diagnostics.Process]::Start($psi)
        $script:Processes.Add($p)
        $p
    }

    function script:Get-Arrival([string]$Log) {
        # The arrival times (unix ms) of the datagrams a server logged.
        if (-not (Test-Path -LiteralPath $Log)) { return , @() }
        , @(Get-Content -LiteralPath $Log | Where-Object { $_ -match '^\d+ \d+$' } | ForEach-Object { [long]($_ -split ' ')[0] })
    }

    function script:Wait-Arrival([string]$Log, [int]$Count, [int]$TimeoutSeconds = 30) {
        $deadline = [DateTime]::UtcNow.AddSeconds($TimeoutSeconds)
        while ((Get-Arrival $Log).Count -lt $Count) {
            if ([DateTime]::UtcNow -gt $deadline) { throw "fewer than $Count datagrams in $Log after $TimeoutSeconds s" }
            Start-Sleep -Milliseconds 100
        }
    }

    function script:Now { [DateTimeOffset]::UtcNow.ToUnixTimeMilliseconds() }

    function script:Get-GatewayState {
        # Both backends' rules in the gateway: iptables-save and the nftables ruleset without counters (nft -s).
        ((Invoke-TestInNamespace -Namespace $script:Gw -FilePath (Resolve-TestTool iptables-save) -Check).StdOut -replace '(?m)^#.*$') +
            (Invoke-TestInNamespace -Namespace $script:Gw -FilePath (Resolve-TestTool nft) -ArgumentList '-s', 'list', 'ruleset' -Check).StdOut
    }
}

Describe "$Title, <Backend> backend" -Skip:([bool]$SkipReason) -ForEach @(@{ Backend = 'Iptables' }, @{ Backend = 'Nftables' }) {
    BeforeAll {
        # The same tests for each backend: new forwards go to the one of this block (the module-wide preference).
        $global:PSNetfilterBackend = $Backend
        $script:Processes = [System.Collections.Generic.List[System.Diagnostics.Process]]::new()
        $id = -join ([System.Security.Cryptography.RandomNumberGenerator]::GetBytes(3) | ForEach-Object { $_.ToString('x2') })
        $script:Cl = "h3c$id-cl"; $script:Gw = "h3c$id-gw"; $script:Sa = "h3c$id-sa"; $script:Sb = "h3c$id-sb"
        $script:Namespaces = @($script:Cl, $script:Gw, $script:Sa, $script:Sb)
        $script:Logs = Join-Path ([IO.Path]::GetTempPath()) "h3c$id"
        $null = New-Item -ItemType Directory -Force -Path $script:Logs
        $script:LogA = Join-Path $script:Logs 'a.log'
        $script:LogB = Join-Path $script:Logs 'b.log'
        foreach ($ns in $script:Namespaces) { Ip netns add $ns; Ip -n $ns link set lo up }
        Ip -n $script:Gw link add gx type veth peer name cx netns $script:Cl
        Ip -n $script:Gw link add ga type veth peer name ax netns $script:Sa
        Ip -n $script:Gw link add gb type veth peer name bx netns $script:Sb
        Ip -n $script:Gw addr add 203.0.113.1/24 dev gx
        Ip -n $script:Gw addr add 198.51.100.1/24 dev ga
        Ip -n $script:Gw addr add 192.0.2.1/24 dev gb
        Ip -n $script:Cl addr add 203.0.113.2/24 dev cx
        Ip -n $script:Sa addr add 198.51.100.10/24 dev ax
        Ip -n $script:Sb addr add 192.0.2.10/24 dev bx
        foreach ($l in 'gx', 'ga', 'gb') { Ip -n $script:Gw link set $l up }
        Ip -n $script:Cl link set cx up; Ip -n $script:Sa link set ax up; Ip -n $script:Sb link set bx up
        Ip -n $script:Sa route add default via 198.51.100.1
        Ip -n $script:Sb route add default via 192.0.2.1
        # The gateway forwards, whatever the host's setting (a new namespace copies the host's IPv4 one).
        $null = Invoke-TestInNamespace -Namespace $script:Gw -FilePath /bin/sh -ArgumentList '-c', 'echo 1 > /proc/sys/net/ipv4/ip_forward' -Check
    }

    AfterAll {
        Remove-Variable -Name PSNetfilterBackend -Scope Global -ErrorAction SilentlyContinue
        foreach ($p in $script:Processes) { if (-not $p.HasExited) { $p.Kill() }; $p.Dispose() }
        foreach ($ns in $script:Namespaces) { $null = Invoke-TestProcess -FilePath $script:Ip -ArgumentList netns, delete, $ns }
        Remove-Item -LiteralPath $script:Logs -Recurse -Force -ErrorAction SilentlyContinue
    }

    Context 'a running UDP stream follows New-PortForward -Force and stops with Remove-PortForward' {
        BeforeAll {
            $plain = @(
                New-PortForward -NetworkNamespace $script:Gw -Name stream -Protocol Udp -ExternalAddress 203.0.113.1 -ExternalPort 5000 -InternalAddress 198.51.100.10 -WarningVariable w1
                New-PortForward -NetworkNamespace $script:Gw -Name keep -ExternalAddress 203.0.113.1 -ExternalPort 6000 -InternalAddress 198.51.100.10 -WarningVariable w2
            )
            $script:PlainWarnings = @($w1) + @($w2)
            $plain.Count | Should -Be 2
            $null = Start-Stream $script:Sa @('-Receive', '-Port', '5000', '-Log', $script:LogA)
            $null = Start-Stream $script:Sb @('-Receive', '-Port', '5000', '-Log', $script:LogB)
            # Both receivers are up before the first datagram, or it would be refused and logged nowhere.
            $deadline = [DateTime]::UtcNow.AddSeconds(30)
            while (-not ((Test-Path $script:LogA) -and (Test-Path $script:LogB))) {
                if ([DateTime]::UtcNow -gt $deadline) { throw 'the receivers did not start' }
                Start-Sleep -Milliseconds 100
            }
            $script:Sender = Start-Stream $script:Cl @('-Send', '-Address', '203.0.113.1', '-Port', '5000', '-SourcePort', '40000', '-IntervalMs', '100')
            Wait-Arrival $script:LogA 5
        }

        It 'warns about nothing for plain forwards on the gateway''s own address' {
            $script:PlainWarnings | Should -BeNullOrEmpty
        }

        It 'switches the stream to the new target within a second of the replace' {
            (Get-Arrival $script:LogB).Count | Should -Be 0
            $r = New-PortForward -NetworkNamespace $script:Gw -Name stream -Protocol Udp -ExternalAddress 203.0.113.1 -ExternalPort 5000 -InternalAddress 192.0.2.10 -Force
            $done = Now
            $r.Change | Should -Be 'Replaced'
            Start-Sleep -Seconds 3
            $script:Sender.HasExited | Should -BeFalse -Because 'the client still sends'
            $b = Get-Arrival $script:LogB
            $b.Count | Should -BeGreaterThan 10 -Because 'the stream reaches the new target'
            $b[0] | Should -BeLessOrEqual ($done + 1000) -Because 'the first datagram after the replace goes to the new target'
            @((Get-Arrival $script:LogA) | Where-Object { $_ -gt $done + 1000 }).Count | Should -Be 0 -Because 'the old target gets nothing a second after the replace'
        }

        It 'stops the stream within a second of the remove, while another forward stays' {
            Remove-PortForward -NetworkNamespace $script:Gw -Name stream
            $done = Now
            Start-Sleep -Seconds 3
            $script:Sender.HasExited | Should -BeFalse -Because 'the client still sends'
            @((Get-Arrival $script:LogB) | Where-Object { $_ -gt $done + 1000 }).Count | Should -Be 0 -Because 'the removed target gets nothing a second after the remove'
            @((Get-Arrival $script:LogA) | Where-Object { $_ -gt $done + 1000 }).Count | Should -Be 0
            (Get-PortForward -NetworkNamespace $script:Gw).Name | Should -Be 'keep'
        }

        AfterAll {
            if ($script:Sender -and -not $script:Sender.HasExited) { $script:Sender.Kill() }
            $null = Remove-PortForward -NetworkNamespace $script:Gw -Name * -ErrorAction SilentlyContinue
        }
    }

    Context 'forwards that cannot work on this gateway' {
        AfterEach {
            Remove-PortForward -NetworkNamespace $script:Gw -Name * -ErrorAction SilentlyContinue
        }

        It 'warns about <Check> with the reason and the fix, creates the forward, and Test-PortForward reports it' -ForEach @(
            @{ Check = 'CapturesGatewayPorts'; Name = 'wide'; Extra = @{ ExternalPort = '1-65535'; InternalAddress = '198.51.100.10' } }
            @{ Check = 'InterfaceNotFound'; Name = 'iface'; Extra = @{ ExternalAddress = '203.0.113.1'; ExternalPort = 7000; InternalAddress = '198.51.100.10'; InInterface = 'eth9' } }
            @{ Check = 'ExternalAddressNotLocal'; Name = 'far'; Extra = @{ Protocol = 'Udp'; ExternalAddress = '203.0.113.99'; ExternalPort = 7001; InternalAddress = '198.51.100.10' } }
            @{ Check = 'InternalAddressIsGateway'; Name = 'self'; Extra = @{ Protocol = 'Udp'; ExternalAddress = '203.0.113.1'; ExternalPort = 7002; InternalAddress = '198.51.100.1' } }
        ) {
            $f = New-PortForward -NetworkNamespace $script:Gw -Name $Name @Extra -WarningVariable warned -WarningAction SilentlyContinue
            $f.Change | Should -Be 'Created'
            $mine = @($warned | Where-Object { "$_" -like "*($Check)" })
            $mine.Count | Should -Be 1 -Because "New-PortForward warns once about $Check (got: $($warned -join ' | '))"
            "$($mine[0])" | Should -BeLike "Port forward '$Name':*"
            $finding = @(Test-PortForward -NetworkNamespace $script:Gw -Name $Name -NoConnect | Where-Object Check -eq $Check)
            $finding.Count | Should -Be 1
            $finding[0].Forward | Should -Be $Name
            $finding[0].Severity | Should -Be 'Warning'
            $finding[0].Fix | Should -Not -BeNullOrEmpty
        }

        It 'refuses a forward to its own external endpoint (ForwardToItself) and changes nothing' {
            $before = Get-GatewayState
            $err = $null
            $out = New-PortForward -NetworkNamespace $script:Gw -Name loop -ExternalAddress 198.51.100.1 -ExternalPort 7003 -InternalAddress 198.51.100.1 -ErrorVariable err -ErrorAction SilentlyContinue
            $out | Should -BeNullOrEmpty
            $err[0].FullyQualifiedErrorId | Should -BeLike 'ForwardToItself,*'
            Get-GatewayState | Should -Be $before
        }
    }
}
