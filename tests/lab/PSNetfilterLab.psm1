<#
    PSNetfilterLab: a throw-away lab of three Linux network namespaces for the PSNetfilter
    tests and demo.

        client (203.0.113.2, 2001:db8:1::2)
           |  veth, 203.0.113.0/24 + 2001:db8:1::/64
        gateway (external 203.0.113.1 / 2001:db8:1::1, internal 198.51.100.1 / 2001:db8:2::1)
           |  veth, 198.51.100.0/24 + 2001:db8:2::/64
        server (198.51.100.10, 2001:db8:2::10; default routes via the gateway)

    The client has only its connected networks, so it reaches the server only through a
    port forward on the gateway. Every command runs through `ip netns exec` / `ip -n`: the
    root namespace's links and iptables rules are never touched, and all traffic stays
    inside the lab's namespaces. Requires root, iproute2 and (for rulesets) iptables.
#>

Set-StrictMode -Version 3.0

$script:LabRoot = $PSScriptRoot
$script:ServerScript = Join-Path $PSScriptRoot 'LabServer.ps1'
$script:ProbeScript = Join-Path $PSScriptRoot 'LabProbe.ps1'

Import-Module (Join-Path $PSScriptRoot '../support/TestProcess.psm1')

# Child processes: no colours, no telemetry, no update checks.
$script:ChildEnvironment = Get-TestChildEnvironment

#region helpers (not exported)

function Resolve-LabTool {
    param([Parameter(Mandatory)][string]$Name)
    Resolve-TestTool -Name $Name -Hint 'Install it (apt-get install -y iptables iproute2) and run as root.'
}

function Invoke-LabProcess {
    # Runs one process with an exact argument list; returns ExitCode/StdOut/StdErr/TimedOut.
    param(
        [Parameter(Mandatory)][string]$FilePath,
        [string[]]$ArgumentList = @(),
        [string]$StandardInput,
        [double]$TimeoutSeconds = 60
    )
    Invoke-TestProcess @PSBoundParameters -Environment $script:ChildEnvironment
}

function Invoke-LabCommand {
    # Like Invoke-LabProcess, but throws on failure and returns stdout.
    param(
        [Parameter(Mandatory)][string]$FilePath,
        [string[]]$ArgumentList = @(),
        [string]$StandardInput,
        [double]$TimeoutSeconds = 60,
        [switch]$IgnoreError
    )
    $params = @{ FilePath = $FilePath; ArgumentList = $ArgumentList; TimeoutSeconds = $TimeoutSeconds }
    if ($PSBoundParameters.ContainsKey('StandardInput')) { $params.StandardInput = $StandardInput }
    $r = Invoke-LabProcess @params
    if (($r.ExitCode -ne 0) -and -not $IgnoreError) {
        $what = (@($FilePath) + $ArgumentList) -join ' '
        $why = if ($r.TimedOut) { "timed out after $TimeoutSeconds s" } else { "exit code $($r.ExitCode)" }
        throw "PSNetfilterLab: '$what' failed ($why): $($r.StdErr.Trim()) $($r.StdOut.Trim())".TrimEnd()
    }
    $r.StdOut
}

function Invoke-LabIp {
    param([Parameter(Mandatory, ValueFromRemainingArguments)][string[]]$Arguments)
    [void](Invoke-LabCommand -FilePath (Resolve-LabTool ip) -ArgumentList $Arguments)
}

function Invoke-InNamespace {
    # ip netns exec <ns> <tool> <args...>; returns stdout, throws on failure unless -IgnoreError.
    param(
        [Parameter(Mandatory)][string]$Namespace,
        [Parameter(Mandatory)][string]$FilePath,
        [string[]]$ArgumentList = @(),
        [string]$StandardInput,
        [double]$TimeoutSeconds = 60,
        [switch]$IgnoreError
    )
    $params = @{} + $PSBoundParameters
    $params.Remove('IgnoreError')
    (Invoke-TestInNamespace @params -Environment $script:ChildEnvironment -Check:(-not $IgnoreError)).StdOut
}

function Set-LabSysctl {
    # Writes /proc/sys/<key> inside the namespace (no dependency on procps' sysctl).
    param([Parameter(Mandatory)][string]$Namespace, [Parameter(Mandatory)][hashtable]$Setting)
    $script = ($Setting.Keys | Sort-Object | ForEach-Object {
            if ($_ -notmatch '^[A-Za-z0-9_./-]+$' -or $Setting[$_] -notmatch '^[0-9]+$') { throw "PSNetfilterLab: bad sysctl $_=$($Setting[$_])" }
            "echo $($Setting[$_]) > /proc/sys/$_"
        }) -join ' && '
    [void](Invoke-InNamespace -Namespace $Namespace -FilePath '/bin/sh' -ArgumentList @('-c', $script))
}

function Get-LabNamespaceList {
    $out = Invoke-LabCommand -FilePath (Resolve-LabTool ip) -ArgumentList @('netns', 'list') -IgnoreError
    @($out -split "`n" | ForEach-Object { ($_ -split '\s+')[0] } | Where-Object { $_ })
}

function Test-LabAddress {
    # Only loopback and documentation ranges (the lab's own networks) may be probed.
    param([Parameter(Mandatory)][string]$Address)
    $ip = $null
    if (-not [System.Net.IPAddress]::TryParse($Address.Trim('[', ']'), [ref]$ip)) { return $false }
    if ([System.Net.IPAddress]::IsLoopback($ip)) { return $true }
    $b = $ip.GetAddressBytes()
    if ($ip.AddressFamily -eq [System.Net.Sockets.AddressFamily]::InterNetwork) {
        return ($b[0] -eq 203 -and $b[1] -eq 0 -and $b[2] -eq 113) -or
               ($b[0] -eq 198 -and $b[1] -eq 51 -and $b[2] -eq 100) -or
               ($b[0] -eq 192 -and $b[1] -eq 0 -and $b[2] -eq 2)
    }
    # 2001:db8::/32
    return ($b[0] -eq 0x20 -and $b[1] -eq 0x01 -and $b[2] -eq 0x0d -and $b[3] -eq 0xb8)
}

function Get-LabNamespace {
    param([Parameter(Mandatory)]$Lab, [Parameter(Mandatory)][string]$Role)
    switch ($Role) {
        'Client' { $Lab.Client }
        'Gateway' { $Lab.Gateway }
        'Server' { $Lab.Server }
        default { throw "PSNetfilterLab: unknown role '$Role' (Client, Gateway or Server)." }
    }
}

function Test-LabServerProcess {
    # True when $ProcessId is alive and is one of our lab servers (guards against PID reuse).
    param([int]$ProcessId)
    $cmdline = "/proc/$ProcessId/cmdline"
    if (-not (Test-Path -LiteralPath $cmdline)) { return $false }
    try { $text = [IO.File]::ReadAllText($cmdline) } catch { return $false }
    return $text.Contains('LabServer.ps1')
}

#endregion

function New-PSNetfilterLab {
    <#
    .SYNOPSIS
        Creates a client / gateway / server lab of network namespaces.
    .DESCRIPTION
        Creates three namespaces named <Prefix><6 hex>-cl, -gw and -sv, joined by two veth
        pairs (client<->gateway on 203.0.113.0/24 + 2001:db8:1::/64, gateway<->server on
        198.51.100.0/24 + 2001:db8:2::/64). The client only has its connected networks; the
        server's default routes (v4 and v6) go via the gateway. Loopback is up everywhere and
        IPv6 duplicate address detection is off, so all addresses are usable at once.
        On failure, whatever was already created is removed again.
    .PARAMETER Prefix
        Start of the namespace names (default 'psnf-'); a random 6-hex-digit id follows.
    .PARAMETER Forwarding
        Whether the gateway forwards packets (net.ipv4.ip_forward and
        net.ipv6.conf.all.forwarding). Default $true.
    .OUTPUTS
        PSNetfilterLab: Id, Client, Gateway, Server, Namespaces, the addresses
        (ClientAddress[V6], GatewayExternalAddress[V6], GatewayInternalAddress[V6],
        ServerAddress[V6]), networks, interface names and Servers (started lab servers).
    .EXAMPLE
        $lab = New-PSNetfilterLab -Prefix psnf-t
        try { ... } finally { Remove-PSNetfilterLab -Lab $lab }
    #>
    [CmdletBinding()]
    param(
        [ValidatePattern('^[A-Za-z0-9][A-Za-z0-9._-]{0,39}$')]
        [string]$Prefix = 'psnf-',
        [bool]$Forwarding = $true
    )

    $ipTool = Resolve-LabTool ip
    $existing = Get-LabNamespaceList
    do {
        $id = -join ([System.Security.Cryptography.RandomNumberGenerator]::GetBytes(3) | ForEach-Object { $_.ToString('x2') })
        $names = "$Prefix$id-cl", "$Prefix$id-gw", "$Prefix$id-sv"
    } while (@($names | Where-Object { $existing -contains $_ }).Count -gt 0)

    $lab = [pscustomobject]@{
        PSTypeName               = 'PSNetfilterLab'
        Id                       = $id
        Client                   = $names[0]
        Gateway                  = $names[1]
        Server                   = $names[2]
        Namespaces               = [string[]]$names
        Forwarding               = $Forwarding
        ClientAddress            = '203.0.113.2'
        ClientAddressV6          = '2001:db8:1::2'
        GatewayExternalAddress   = '203.0.113.1'
        GatewayExternalAddressV6 = '2001:db8:1::1'
        GatewayInternalAddress   = '198.51.100.1'
        GatewayInternalAddressV6 = '2001:db8:2::1'
        ServerAddress            = '198.51.100.10'
        ServerAddressV6          = '2001:db8:2::10'
        ExternalNetwork          = '203.0.113.0/24'
        ExternalNetworkV6        = '2001:db8:1::/64'
        InternalNetwork          = '198.51.100.0/24'
        InternalNetworkV6        = '2001:db8:2::/64'
        ClientInterface          = "cl-$id"
        GatewayExternalInterface = "gwx-$id"
        GatewayInternalInterface = "gwi-$id"
        ServerInterface          = "sv-$id"
        Servers                  = [System.Collections.Generic.List[object]]::new()
        LogDirectory             = (Join-Path ([IO.Path]::GetTempPath()) "psnf-lab-$id")
    }

    try {
        Write-Verbose "Creating lab namespaces $($names -join ', ')"
        foreach ($ns in $lab.Namespaces) {
            Invoke-LabIp netns add $ns
            Invoke-LabIp -n $ns link set lo up
            Set-LabSysctl -Namespace $ns -Setting @{ 'net/ipv6/conf/all/accept_dad' = '0'; 'net/ipv6/conf/default/accept_dad' = '0' }
        }
        $cl = $lab.Client; $gw = $lab.Gateway; $sv = $lab.Server

        # veth pairs are created inside the gateway namespace, with the peer moved straight
        # into the client / server namespace: nothing appears in the root namespace.
        Invoke-LabIp -n $gw link add $lab.GatewayExternalInterface type veth peer name $lab.ClientInterface netns $cl
        Invoke-LabIp -n $gw link add $lab.GatewayInternalInterface type veth peer name $lab.ServerInterface netns $sv

        Invoke-LabIp -n $gw addr add "$($lab.GatewayExternalAddress)/24" dev $lab.GatewayExternalInterface
        Invoke-LabIp -n $gw addr add "$($lab.GatewayExternalAddressV6)/64" dev $lab.GatewayExternalInterface nodad
        Invoke-LabIp -n $gw addr add "$($lab.GatewayInternalAddress)/24" dev $lab.GatewayInternalInterface
        Invoke-LabIp -n $gw addr add "$($lab.GatewayInternalAddressV6)/64" dev $lab.GatewayInternalInterface nodad
        Invoke-LabIp -n $cl addr add "$($lab.ClientAddress)/24" dev $lab.ClientInterface
        Invoke-LabIp -n $cl addr add "$($lab.ClientAddressV6)/64" dev $lab.ClientInterface nodad
        Invoke-LabIp -n $sv addr add "$($lab.ServerAddress)/24" dev $lab.ServerInterface
        Invoke-LabIp -n $sv addr add "$($lab.ServerAddressV6)/64" dev $lab.ServerInterface nodad

        Invoke-LabIp -n $gw link set $lab.GatewayExternalInterface up
        Invoke-LabIp -n $gw link set $lab.GatewayInternalInterface up
        Invoke-LabIp -n $cl link set $lab.ClientInterface up
        Invoke-LabIp -n $sv link set $lab.ServerInterface up

        Invoke-LabIp -n $sv route add default via $lab.GatewayInternalAddress
        Invoke-LabIp -n $sv -6 route add default via $lab.GatewayInternalAddressV6

        $f = if ($Forwarding) { '1' } else { '0' }
        Set-LabSysctl -Namespace $gw -Setting @{ 'net/ipv4/ip_forward' = $f; 'net/ipv6/conf/all/forwarding' = $f }
    }
    catch {
        $err = $_
        Remove-PSNetfilterLab -Lab $lab -ErrorAction SilentlyContinue
        throw $err
    }
    $null = $ipTool
    $lab
}

function Remove-PSNetfilterLab {
    <#
    .SYNOPSIS
        Stops a lab's servers and deletes its namespaces. Safe to call more than once.
    .DESCRIPTION
        Kills the lab servers recorded on the lab object, then every process still inside
        one of the lab's namespaces, then deletes the namespaces (ones already gone are
        ignored) and the lab's log directory.
    .PARAMETER Lab
        The object returned by New-PSNetfilterLab. $null is accepted and ignored, so this can
        sit in an AfterAll / finally block even when creating the lab failed.
    #>
    [CmdletBinding()]
    param(
        [Parameter(Mandatory, ValueFromPipeline)]
        [AllowNull()]
        $Lab
    )
    process {
        if (-not $Lab) { return }
        foreach ($server in @($Lab.Servers | Where-Object { $_ })) {
            if (Test-LabServerProcess -ProcessId $server.ProcessId) {
                Write-Verbose "Stopping lab server $($server.ProcessId) in $($server.Namespace)"
                Stop-Process -Id $server.ProcessId -Force -ErrorAction SilentlyContinue
            }
        }
        if ($Lab.Servers -is [System.Collections.IList]) { $Lab.Servers.Clear() }

        $ipTool = Resolve-LabTool ip
        $present = Get-LabNamespaceList
        foreach ($ns in $Lab.Namespaces) {
            if ($present -notcontains $ns) { continue }
            # Anything still running inside our namespace (servers, stuck probes) is ours.
            $pids = Invoke-LabCommand -FilePath $ipTool -ArgumentList @('netns', 'pids', $ns) -IgnoreError
            foreach ($p in ($pids -split '\s+' | Where-Object { $_ -match '^\d+$' })) {
                Write-Verbose "Killing process $p left in $ns"
                Stop-Process -Id ([int]$p) -Force -ErrorAction SilentlyContinue
            }
            Write-Verbose "Deleting namespace $ns"
            $r = Invoke-LabProcess -FilePath $ipTool -ArgumentList @('netns', 'delete', $ns)
            if ($r.ExitCode -ne 0 -and (Get-LabNamespaceList) -contains $ns) {
                Write-Error "PSNetfilterLab: could not delete namespace ${ns}: $($r.StdErr.Trim())"
            }
        }
        if ($Lab.LogDirectory -and (Test-Path -LiteralPath $Lab.LogDirectory)) {
            Remove-Item -LiteralPath $Lab.LogDirectory -Recurse -Force -ErrorAction SilentlyContinue
        }
    }
}

function Start-PSNetfilterLabServer {
    <#
    .SYNOPSIS
        Starts the lab's hello server (one background process) in a lab namespace.
    .DESCRIPTION
        Runs tests/lab/LabServer.ps1 inside the server namespace (or -In another lab role).
        It listens dual-stack on every -TcpPort and -UdpPort and answers each TCP connection
        and UDP datagram with
            hello from server; you are <remote address> proto <tcp|udp> port <local port>
        (HTTP GET requests get an HTTP/1.0 200 response with that line as the body).
        Returns once all ports are listening (checked with `ss -ltnu` in the namespace,
        at most -StartTimeoutSeconds). The process is recorded on $Lab.Servers and killed
        by Remove-PSNetfilterLab; it also exits by itself after -LifetimeSeconds.
    .PARAMETER In
        Lab role to run the server in: Server (default), Gateway or Client.
    .OUTPUTS
        The server record: ProcessId, Namespace, TcpPort, UdpPort, LogPath.
    .EXAMPLE
        Start-PSNetfilterLabServer -Lab $lab -TcpPort 8080 -UdpPort 5353
    #>
    [CmdletBinding()]
    param(
        [Parameter(Mandatory)]$Lab,
        [ValidateRange(1, 65535)][int[]]$TcpPort = @(),
        [ValidateRange(1, 65535)][int[]]$UdpPort = @(),
        [ValidateSet('Client', 'Gateway', 'Server')][string]$In = 'Server',
        [ValidateRange(1, 86400)][int]$LifetimeSeconds = 600,
        [ValidateRange(1, 120)][int]$StartTimeoutSeconds = 60
    )
    if (-not $TcpPort -and -not $UdpPort) { throw 'Start-PSNetfilterLabServer: give -TcpPort and/or -UdpPort.' }
    $ns = Get-LabNamespace -Lab $Lab -Role $In
    $ipTool = Resolve-LabTool ip
    $ssTool = Resolve-LabTool ss
    $null = New-Item -ItemType Directory -Force -Path $Lab.LogDirectory
    $log = Join-Path $Lab.LogDirectory ("server-{0}-{1}.log" -f $In.ToLowerInvariant(), $Lab.Servers.Count)

    $serverArgs = @('-NoProfile', '-NonInteractive', '-File', $script:ServerScript, '-LifetimeSeconds', "$LifetimeSeconds")
    if ($TcpPort) { $serverArgs += @('-TcpPort', ($TcpPort -join ',')) }
    if ($UdpPort) { $serverArgs += @('-UdpPort', ($UdpPort -join ',')) }

    # sh execs into `ip netns exec`, which execs into pwsh: the PID we get is the server's.
    # Its output goes to a log file, never to our pipes.
    $psi = [System.Diagnostics.ProcessStartInfo]::new('/bin/sh')
    foreach ($a in @('-c', 'log="$1"; shift; exec "$@" >"$log" 2>&1 </dev/null', 'sh', $log, $ipTool, 'netns', 'exec', $ns) +
        (Get-TestPwshInvocation) + $serverArgs) {
        $psi.ArgumentList.Add($a)
    }
    $psi.UseShellExecute = $false
    foreach ($k in $script:ChildEnvironment.Keys) { $psi.Environment[$k] = $script:ChildEnvironment[$k] }
    $proc = [System.Diagnostics.Process]::Start($psi)
    $record = [pscustomobject]@{
        ProcessId = $proc.Id
        Namespace = $ns
        TcpPort   = [int[]]$TcpPort
        UdpPort   = [int[]]$UdpPort
        LogPath   = $log
    }
    $Lab.Servers.Add($record)

    $deadline = [DateTime]::UtcNow.AddSeconds($StartTimeoutSeconds)
    while ($true) {
        if ($proc.HasExited) {
            $text = if (Test-Path -LiteralPath $log) { Get-Content -LiteralPath $log -Raw } else { '' }
            throw "Start-PSNetfilterLabServer: the server in $ns exited with code $($proc.ExitCode): $text"
        }
        $ss = Invoke-LabProcess -FilePath $ipTool -ArgumentList @('netns', 'exec', $ns, $ssTool, '-Hltnu') -TimeoutSeconds 10
        $listening = @($ss.StdOut -split "`n" | Where-Object { $_ } | ForEach-Object {
                $f = $_ -split '\s+'
                if ($f.Count -ge 5 -and $f[4] -match ':(\d+)$') { '{0}/{1}' -f $f[0], $Matches[1] }
            })
        $missing = @(@($TcpPort | ForEach-Object { "tcp/$_" }) + @($UdpPort | ForEach-Object { "udp/$_" }) |
            Where-Object { $listening -notcontains $_ })
        if ($missing.Count -eq 0) { break }
        if ([DateTime]::UtcNow -gt $deadline) {
            $text = if (Test-Path -LiteralPath $log) { Get-Content -LiteralPath $log -Raw } else { '' }
            try { $proc.Kill() } catch { }
            throw "Start-PSNetfilterLabServer: $($missing -join ', ') not listening in $ns after $StartTimeoutSeconds s. Log: $text"
        }
        Start-Sleep -Milliseconds 100
    }
    Write-Verbose "Lab server $($proc.Id) listening in $ns (tcp $($TcpPort -join ','); udp $($UdpPort -join ','))"
    $record
}

function Invoke-PSNetfilterLabProbe {
    <#
    .SYNOPSIS
        Connects from a lab namespace to an address/port and returns the server's reply.
    .DESCRIPTION
        Runs tests/lab/LabProbe.ps1 inside the -From namespace (default Client).
        With -Protocol/-Address/-Port it returns the reply line as a string, or $null on
        timeout, refusal or no route (no exception). With -Target it probes all targets
        at once in one client process and returns one object per target:
        Protocol, Address, Port, Reply, Success, Error (e.g. ConnectionRefused,
        NetworkUnreachable, TimedOut), HttpStatus, ElapsedMs.
        Protocols: Tcp (connect, send a line, read a line), Udp (one datagram each way),
        Http (GET / without any proxy; Reply is the first body line).
        Only loopback and documentation addresses (203.0.113.0/24, 198.51.100.0/24,
        192.0.2.0/24, 2001:db8::/32) are accepted: the lab's own networks.
    .PARAMETER Target
        Hashtables/objects with Protocol, Address, Port.
    .PARAMETER Detailed
        With the single-target form, return the result object instead of the reply string.
    .EXAMPLE
        Invoke-PSNetfilterLabProbe -Lab $lab -Protocol Tcp -Address 203.0.113.1 -Port 8080
    .EXAMPLE
        Invoke-PSNetfilterLabProbe -Lab $lab -From Gateway -Target @(
            @{ Protocol = 'Tcp'; Address = '198.51.100.10'; Port = 8080 },
            @{ Protocol = 'Udp'; Address = '2001:db8:2::10'; Port = 5353 })
    #>
    [CmdletBinding(DefaultParameterSetName = 'Single')]
    param(
        [Parameter(Mandatory)]$Lab,
        [Parameter(Mandatory, ParameterSetName = 'Single')][ValidateSet('Tcp', 'Udp', 'Http')][string]$Protocol,
        [Parameter(Mandatory, ParameterSetName = 'Single')][string]$Address,
        [Parameter(Mandatory, ParameterSetName = 'Single')][ValidateRange(1, 65535)][int]$Port,
        [Parameter(ParameterSetName = 'Single')][switch]$Detailed,
        [Parameter(Mandatory, ParameterSetName = 'Target')][object[]]$Target,
        [ValidateSet('Client', 'Gateway', 'Server')][string]$From = 'Client',
        [ValidateRange(0.1, 60)][double]$TimeoutSeconds = 3
    )
    $items = [System.Collections.Generic.List[object]]::new()
    if ($PSCmdlet.ParameterSetName -eq 'Single') {
        $items.Add([ordered]@{ Protocol = $Protocol; Address = $Address; Port = $Port })
    }
    else {
        foreach ($t in $Target) {
            if ($null -eq $t) { continue }
            $isDict = $t -is [System.Collections.IDictionary]
            $proto = [string]$(if ($isDict) { $t['Protocol'] } else { $t.Protocol })
            $addr = [string]$(if ($isDict) { $t['Address'] } else { $t.Address })
            $prt = [int]$(if ($isDict) { $t['Port'] } else { $t.Port })
            $canonical = @('Tcp', 'Udp', 'Http') | Where-Object { $_ -eq $proto }   # case-insensitive
            if (-not $canonical) { throw "Invoke-PSNetfilterLabProbe: bad Protocol '$proto' (Tcp, Udp or Http)." }
            $items.Add([ordered]@{ Protocol = $canonical; Address = $addr; Port = $prt })
        }
    }
    foreach ($i in $items) {
        if (-not (Test-LabAddress $i.Address)) {
            throw "Invoke-PSNetfilterLabProbe: '$($i.Address)' is not a lab address (loopback, 203.0.113.0/24, 198.51.100.0/24, 192.0.2.0/24, 2001:db8::/32)."
        }
        if ($i.Port -lt 1 -or $i.Port -gt 65535) { throw "Invoke-PSNetfilterLabProbe: bad port $($i.Port)." }
    }
    if ($items.Count -eq 0) { return }

    $ns = Get-LabNamespace -Lab $Lab -Role $From
    $json = ConvertTo-Json -InputObject @($items.ToArray()) -Compress -Depth 3
    $b64 = [Convert]::ToBase64String([System.Text.Encoding]::UTF8.GetBytes($json))
    $argsList = @('netns', 'exec', $ns) + (Get-TestPwshInvocation) + @(
        '-NoProfile', '-NonInteractive', '-File', $script:ProbeScript,
        '-TargetsBase64', $b64, '-TimeoutSeconds', $TimeoutSeconds.ToString([cultureinfo]::InvariantCulture))
    # Each target takes at most ~2 timeouts (HTTP) and they run 32 at a time; add pwsh start-up.
    $bound = [Math]::Ceiling($items.Count / 32) * (2 * $TimeoutSeconds + 2) + 30
    $r = Invoke-LabProcess -FilePath (Resolve-LabTool ip) -ArgumentList $argsList -TimeoutSeconds $bound
    if ($r.ExitCode -ne 0) {
        throw "Invoke-PSNetfilterLabProbe: probe client in $ns failed (exit $($r.ExitCode)): $($r.StdErr.Trim())"
    }
    $results = @(($r.StdOut | ConvertFrom-Json) | ForEach-Object {
            [pscustomobject]@{
                PSTypeName = 'PSNetfilterLabProbeResult'
                Protocol   = $_.Protocol
                Address    = $_.Address
                Port       = [int]$_.Port
                Reply      = $_.Reply
                Success    = [bool]$_.Success
                Error      = $_.Error
                HttpStatus = $_.HttpStatus
                ElapsedMs  = [int]$_.ElapsedMs
                From       = $From
            }
        })
    if ($PSCmdlet.ParameterSetName -eq 'Single' -and -not $Detailed) {
        $res = $results[0]
        if ($res.Success) { return [string]$res.Reply }
        return $null
    }
    $results
}

function Import-PSNetfilterLabRuleset {
    <#
    .SYNOPSIS
        Loads an iptables-restore file into a namespace (with --noflush).
    .DESCRIPTION
        Runs `ip netns exec <Namespace> iptables-restore -w --noflush` (ip6tables-restore for
        -Family IPv6) with the file as standard input. Throws when the restore fails.
    .EXAMPLE
        Import-PSNetfilterLabRuleset -Namespace $lab.Gateway -Path tests/fixtures/docker.rules
    #>
    [CmdletBinding()]
    param(
        [Parameter(Mandatory)][string]$Namespace,
        [Parameter(Mandatory)][string]$Path,
        [ValidateSet('IPv4', 'IPv6')][string]$Family = 'IPv4'
    )
    $resolved = (Resolve-Path -LiteralPath $Path -ErrorAction Stop).ProviderPath
    $tool = if ($Family -eq 'IPv6') { 'ip6tables-restore' } else { 'iptables-restore' }
    $content = [IO.File]::ReadAllText($resolved)
    $r = Invoke-LabProcess -FilePath (Resolve-LabTool ip) -ArgumentList @('netns', 'exec', $Namespace, (Resolve-LabTool $tool), '-w', '--noflush') -StandardInput $content -TimeoutSeconds 60
    if ($r.ExitCode -ne 0) {
        throw "Import-PSNetfilterLabRuleset: $tool of '$resolved' into $Namespace failed (exit $($r.ExitCode)): $($r.StdErr.Trim())"
    }
}

function Get-PSNetfilterLabDump {
    <#
    .SYNOPSIS
        Returns a namespace's iptables-save output, ready for comparison.
    .DESCRIPTION
        Runs iptables-save (ip6tables-save for -Family IPv6, -t <Table> when given) inside the
        namespace and returns the text as ONE string with "`n" line ends and no trailing
        newline; '#' comment lines are removed and chain counters ("[0:0]") stripped.
    .EXAMPLE
        Get-PSNetfilterLabDump -Namespace $lab.Gateway -Table nat
    #>
    [CmdletBinding()]
    param(
        [Parameter(Mandatory)][string]$Namespace,
        [ValidateSet('IPv4', 'IPv6')][string]$Family = 'IPv4',
        [ValidatePattern('^[a-z]+$')][string]$Table
    )
    $tool = if ($Family -eq 'IPv6') { 'ip6tables-save' } else { 'iptables-save' }
    $toolArgs = @()
    if ($Table) { $toolArgs = @('-t', $Table) }
    $out = Invoke-InNamespace -Namespace $Namespace -FilePath (Resolve-LabTool $tool) -ArgumentList $toolArgs
    $lines = $out -split "`r?`n" | Where-Object { $_ -and -not $_.StartsWith('#') } | ForEach-Object {
        ($_ -replace '^\[\d+:\d+\]\s+', '' -replace '\s*\[\d+:\d+\]\s*$', '')
    }
    ($lines -join "`n")
}

Export-ModuleMember -Function New-PSNetfilterLab, Remove-PSNetfilterLab, Start-PSNetfilterLabServer,
    Invoke-PSNetfilterLabProbe, Import-PSNetfilterLabRuleset, Get-PSNetfilterLabDump
