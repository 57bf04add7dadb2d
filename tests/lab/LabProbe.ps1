<#
.SYNOPSIS
    Probe client used by Invoke-PSNetfilterLabProbe (runs inside a lab namespace).

.DESCRIPTION
    Takes a base64-encoded JSON array of targets ({Protocol: Tcp|Udp|Http, Address, Port})
    and probes them all, in parallel, each bounded by -TimeoutSeconds per step:

      Tcp   connect, send "probe\n", read one line (until newline or close)
      Udp   send one datagram "probe\n", wait for one reply datagram
      Http  GET http://<address>:<port>/ (no proxy), reply = first line of the body

    Writes one JSON array to stdout: {Index, Protocol, Address, Port, Reply, Success,
    Error, HttpStatus, ElapsedMs} per target, in input order. Never throws for network
    errors: they end up in Error (a SocketError name such as ConnectionRefused,
    NetworkUnreachable or TimedOut).
#>
[CmdletBinding()]
param(
    [Parameter(Mandatory)]
    [string]$TargetsBase64,
    [ValidateRange(0.1, 120)]
    [double]$TimeoutSeconds = 3
)

$ErrorActionPreference = 'Stop'

$targets = @([System.Text.Encoding]::UTF8.GetString([Convert]::FromBase64String($TargetsBase64)) | ConvertFrom-Json)

$probeCode = {
    param($Target, [int]$Index, [double]$TimeoutSeconds)

    $ms = [int][Math]::Ceiling($TimeoutSeconds * 1000)
    $sw = [System.Diagnostics.Stopwatch]::StartNew()
    $ascii = [System.Text.Encoding]::ASCII
    $result = [ordered]@{
        Index      = $Index
        Protocol   = [string]$Target.Protocol
        Address    = [string]$Target.Address
        Port       = [int]$Target.Port
        Reply      = $null
        Success    = $false
        Error      = $null
        HttpStatus = $null
        ElapsedMs  = 0
    }

    function Get-ErrorName([System.Exception]$Exception) {
        $e = $Exception
        while ($e) {
            if ($e -is [System.Net.Sockets.SocketException]) { return $e.SocketErrorCode.ToString() }
            if ($e -is [System.Threading.Tasks.TaskCanceledException] -or $e -is [System.TimeoutException] -or $e -is [System.OperationCanceledException]) { return 'TimedOut' }
            if ($e -is [System.AggregateException] -and $e.InnerExceptions.Count -gt 0) { $e = $e.InnerExceptions[0]; continue }
            $e = $e.InnerException
        }
        return "$($Exception.GetType().Name): $($Exception.Message)"
    }

    $socket = $null
    $client = $null
    try {
        $ip = [System.Net.IPAddress]::Parse(([string]$Target.Address).Trim('[', ']'))
        $endPoint = [System.Net.IPEndPoint]::new($ip, [int]$Target.Port)
        switch ([string]$Target.Protocol) {
            'Tcp' {
                $socket = [System.Net.Sockets.Socket]::new($ip.AddressFamily, [System.Net.Sockets.SocketType]::Stream, [System.Net.Sockets.ProtocolType]::Tcp)
                $connect = $socket.ConnectAsync($endPoint)
                if (-not $connect.Wait($ms)) { $result.Error = 'TimedOut'; break }
                [void]$socket.Send($ascii.GetBytes("probe`n"))
                $socket.ReceiveTimeout = $ms
                $data = [System.IO.MemoryStream]::new()
                $buf = [byte[]]::new(4096)
                $deadline = [DateTime]::UtcNow.AddMilliseconds($ms)
                while ([DateTime]::UtcNow -lt $deadline) {
                    $n = $socket.Receive($buf)
                    if ($n -le 0) { break }
                    $data.Write($buf, 0, $n)
                    if ([Array]::IndexOf($buf, [byte]10, 0, $n) -ge 0) { break }
                }
                $text = $ascii.GetString($data.ToArray())
                if ($text) { $result.Reply = ($text -split "`r?`n")[0] }
                else { $result.Error = 'NoReply' }
            }
            'Udp' {
                $socket = [System.Net.Sockets.Socket]::new($ip.AddressFamily, [System.Net.Sockets.SocketType]::Dgram, [System.Net.Sockets.ProtocolType]::Udp)
                $socket.Connect($endPoint)   # connected, so ICMP port unreachable is reported
                $socket.ReceiveTimeout = $ms
                [void]$socket.Send($ascii.GetBytes("probe`n"))
                $buf = [byte[]]::new(65536)
                $n = $socket.Receive($buf)
                $result.Reply = ($ascii.GetString($buf, 0, $n) -split "`r?`n")[0]
            }
            'Http' {
                $handler = [System.Net.Http.SocketsHttpHandler]::new()
                $handler.UseProxy = $false          # never go through a proxy: lab traffic only
                $handler.AllowAutoRedirect = $false
                $handler.ConnectTimeout = [TimeSpan]::FromMilliseconds($ms)
                $client = [System.Net.Http.HttpClient]::new($handler)
                $client.Timeout = [TimeSpan]::FromMilliseconds(2 * $ms)
                $hostPart = if ($ip.AddressFamily -eq [System.Net.Sockets.AddressFamily]::InterNetworkV6) { "[$ip]" } else { "$ip" }
                $response = $client.GetAsync("http://${hostPart}:$([int]$Target.Port)/").GetAwaiter().GetResult()
                $result.HttpStatus = [int]$response.StatusCode
                $body = $response.Content.ReadAsStringAsync().GetAwaiter().GetResult()
                if ($body) { $result.Reply = ($body -split "`r?`n")[0] }
                if (-not $response.IsSuccessStatusCode) { $result.Error = "Http$([int]$response.StatusCode)" }
            }
            default { $result.Error = "UnknownProtocol: $($Target.Protocol)" }
        }
    }
    catch {
        $result.Error = Get-ErrorName $_.Exception
    }
    finally {
        if ($socket) { $socket.Dispose() }
        if ($client) { $client.Dispose() }
    }
    if ($result.Reply -and -not $result.Error) { $result.Success = $true }
    elseif ($result.Reply -eq '') { $result.Reply = $null }
    $result.ElapsedMs = [int]$sw.ElapsedMilliseconds
    [pscustomobject]$result
}

if ($targets.Count -le 1) {
    $results = @(for ($i = 0; $i -lt $targets.Count; $i++) { & $probeCode $targets[$i] $i $TimeoutSeconds })
}
else {
    $code = $probeCode.ToString()
    $indexed = for ($i = 0; $i -lt $targets.Count; $i++) { [pscustomobject]@{ I = $i; T = $targets[$i] } }
    $results = @($indexed | ForEach-Object -ThrottleLimit ([Math]::Min(32, $targets.Count)) -Parallel {
            $sb = [scriptblock]::Create($using:code)
            & $sb $_.T $_.I $using:TimeoutSeconds
        } | Sort-Object Index)
}

ConvertTo-Json -InputObject @($results) -Depth 3 -Compress
