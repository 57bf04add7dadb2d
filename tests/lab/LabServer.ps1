<#
.SYNOPSIS
    Small dual-stack TCP/UDP/HTTP echo-style server used by the PSNetfilter lab.

.DESCRIPTION
    Started by Start-PSNetfilterLabServer inside a lab network namespace (never run it
    in the root namespace by hand). Listens on every given TCP and UDP port with an
    IPv6 dual-mode socket bound to ::, and answers:

      * every UDP datagram with one line
          hello from server; you are <remote address> proto udp port <local port>
      * every TCP connection with the same line (proto tcp), then closes it;
      * a TCP request starting with "GET " with a minimal HTTP/1.0 200 OK response
        whose body is that line.

    The remote address is printed as IPv4 when it is IPv4-mapped. The server exits by
    itself after -LifetimeSeconds (default 600 s).
#>
[CmdletBinding()]
param(
    # Comma-separated port lists (strings, since pwsh -File passes arguments as text).
    [string]$TcpPort = '',
    [string]$UdpPort = '',
    [ValidateRange(1, 86400)]
    [int]$LifetimeSeconds = 600
)

$ErrorActionPreference = 'Stop'
Set-StrictMode -Version 3.0

$tcpPorts = @($TcpPort -split '[,\s]+' | Where-Object { $_ } | ForEach-Object { [int]$_ })
$udpPorts = @($UdpPort -split '[,\s]+' | Where-Object { $_ } | ForEach-Object { [int]$_ })
if (-not $tcpPorts -and -not $udpPorts) {
    throw 'LabServer: give at least one -TcpPort or -UdpPort.'
}

$Sockets = [System.Net.Sockets.Socket]
$AF = [System.Net.Sockets.AddressFamily]
$ascii = [System.Text.Encoding]::ASCII

function Write-Log([string]$Message) {
    [Console]::Out.WriteLine(('{0:HH:mm:ss.fff} {1}' -f [DateTime]::Now, $Message))
    [Console]::Out.Flush()
}

function Format-Remote([System.Net.IPAddress]$Address) {
    if ($Address.IsIPv4MappedToIPv6) { $Address = $Address.MapToIPv4() }
    # Drop any scope id (link-local) so the line stays simple.
    $Address.ToString() -replace '%.*$', ''
}

function Get-HelloLine([System.Net.IPAddress]$Remote, [string]$Proto, [int]$LocalPort) {
    "hello from server; you are $(Format-Remote $Remote) proto $Proto port $LocalPort"
}

function New-DualModeSocket([System.Net.Sockets.SocketType]$Type, [System.Net.Sockets.ProtocolType]$Proto, [int]$Port) {
    $s = [System.Net.Sockets.Socket]::new($AF::InterNetworkV6, $Type, $Proto)
    $s.DualMode = $true
    if ($Type -eq [System.Net.Sockets.SocketType]::Stream) {
        $s.SetSocketOption([System.Net.Sockets.SocketOptionLevel]::Socket, [System.Net.Sockets.SocketOptionName]::ReuseAddress, $true)
    }
    $s.Bind([System.Net.IPEndPoint]::new([System.Net.IPAddress]::IPv6Any, $Port))
    if ($Type -eq [System.Net.Sockets.SocketType]::Stream) { $s.Listen(128) }
    $s
}

$tcpListeners = @{}   # socket -> port
$udpSockets = @{}     # socket -> port
foreach ($p in $tcpPorts) { $tcpListeners[(New-DualModeSocket Stream Tcp $p)] = $p }
foreach ($p in $udpPorts) { $udpSockets[(New-DualModeSocket Dgram Udp $p)] = $p }
Write-Log "listening tcp=[$($tcpPorts -join ',')] udp=[$($udpPorts -join ',')] lifetime=${LifetimeSeconds}s pid=$PID"

# Accepted TCP connections waiting for their request (or for a short grace period).
$pending = [System.Collections.Generic.List[object]]::new()
$graceMs = 500
$maxRequest = 16384
$deadline = [DateTime]::UtcNow.AddSeconds($LifetimeSeconds)
$buffer = [byte[]]::new(65536)
$conn = $null

function Complete-Tcp($Conn, [bool]$Http) {
    $sock = $Conn.Socket
    try {
        $line = Get-HelloLine $Conn.Remote 'tcp' $Conn.Port
        if ($Http) {
            $body = "$line`n"
            $reply = "HTTP/1.0 200 OK`r`nContent-Type: text/plain`r`nContent-Length: $($ascii.GetByteCount($body))`r`nConnection: close`r`n`r`n$body"
        }
        else {
            $reply = "$line`n"
        }
        [void]$sock.Send($ascii.GetBytes($reply))
        $sock.Shutdown([System.Net.Sockets.SocketShutdown]::Send)
        # Drain what the client still sends so closing does not turn into a reset.
        $sock.ReceiveTimeout = 200
        try {
            while ($sock.Poll(200000, [System.Net.Sockets.SelectMode]::SelectRead)) {
                if ($sock.Receive($buffer) -le 0) { break }
            }
        }
        catch { }
        Write-Log "tcp $(Format-Remote $Conn.Remote) -> port $($Conn.Port) $(if ($Http) { 'http' } else { 'line' })"
    }
    catch {
        Write-Log "tcp reply failed: $($_.Exception.Message)"
    }
    finally {
        $sock.Close()
    }
}

while ([DateTime]::UtcNow -lt $deadline) {
    $read = [System.Collections.Generic.List[System.Net.Sockets.Socket]]::new()
    foreach ($s in $tcpListeners.Keys) { $read.Add($s) }
    foreach ($s in $udpSockets.Keys) { $read.Add($s) }
    foreach ($c in $pending) { $read.Add($c.Socket) }

    try { [System.Net.Sockets.Socket]::Select($read, $null, $null, 200000) }
    catch { Write-Log "select failed: $($_.Exception.Message)"; Start-Sleep -Milliseconds 50; continue }

    foreach ($s in $read) {
        try {
            if ($tcpListeners.ContainsKey($s)) {
                $c = $s.Accept()
                $pending.Add([pscustomobject]@{
                        Socket = $c
                        Remote = ([System.Net.IPEndPoint]$c.RemoteEndPoint).Address
                        Port   = $tcpListeners[$s]
                        Data   = [System.IO.MemoryStream]::new()
                        Since  = [DateTime]::UtcNow
                    })
            }
            elseif ($udpSockets.ContainsKey($s)) {
                do {
                    [System.Net.EndPoint]$from = [System.Net.IPEndPoint]::new([System.Net.IPAddress]::IPv6Any, 0)
                    [void]$s.ReceiveFrom($buffer, [ref]$from)
                    $line = Get-HelloLine $from.Address 'udp' $udpSockets[$s]
                    [void]$s.SendTo($ascii.GetBytes("$line`n"), $from)
                    Write-Log "udp $(Format-Remote $from.Address) -> port $($udpSockets[$s])"
                } while ($s.Available -gt 0)
            }
            else {
                $conn = $null
                foreach ($c in $pending) { if ([object]::ReferenceEquals($c.Socket, $s)) { $conn = $c; break } }
                if (-not $conn) { continue }
                $n = $s.Receive($buffer)
                if ($n -gt 0) { $conn.Data.Write($buffer, 0, $n) }
                $text = $ascii.GetString($conn.Data.ToArray())
                $decided = $null
                if ($text.StartsWith('GET ')) {
                    if ($text.Contains("`r`n`r`n") -or $text.Contains("`n`n") -or $text.Length -ge $maxRequest -or $n -le 0) { $decided = 'http' }
                }
                elseif ($n -le 0 -or -not 'GET '.StartsWith($text)) {
                    $decided = 'line'
                }
                if ($decided) {
                    [void]$pending.Remove($conn)
                    Complete-Tcp $conn ($decided -eq 'http')
                }
            }
        }
        catch {
            Write-Log "error: $($_.Exception.Message)"
            if ($conn -and $pending.Contains($conn)) { [void]$pending.Remove($conn); $conn.Socket.Close() }
        }
        finally { $conn = $null }
    }

    # Clients that connected but sent nothing (or not enough) get the plain line.
    $now = [DateTime]::UtcNow
    foreach ($c in @($pending)) {
        if (($now - $c.Since).TotalMilliseconds -ge $graceMs) {
            [void]$pending.Remove($c)
            $isHttp = $ascii.GetString($c.Data.ToArray()).StartsWith('GET ')
            Complete-Tcp $c $isHttp
        }
    }
}

Write-Log 'lifetime over, exiting'
foreach ($c in $pending) { $c.Socket.Close() }
foreach ($s in $tcpListeners.Keys) { $s.Close() }
foreach ($s in $udpSockets.Keys) { $s.Close() }
