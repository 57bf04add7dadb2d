# A UDP stream for the stale-connection tests: -Receive logs "<unix ms> <payload>" for every datagram that
# arrives on -Port; -Send sends a numbered datagram every -IntervalMs from the fixed -SourcePort to
# -Address:-Port (one flow, as a game or VoIP client does). Both stop after -LifetimeSeconds.
param(
    [switch]$Receive,
    [switch]$Send,
    [Parameter(Mandatory)][int]$Port,
    [string]$Log,
    [string]$Address,
    [int]$SourcePort = 40000,
    [int]$IntervalMs = 100,
    [int]$LifetimeSeconds = 120
)
$ErrorActionPreference = 'Stop'
$deadline = [DateTime]::UtcNow.AddSeconds($LifetimeSeconds)
if ($Receive) {
    $udp = [System.Net.Sockets.UdpClient]::new([System.Net.IPEndPoint]::new([System.Net.IPAddress]::Any, $Port))
    $udp.Client.ReceiveTimeout = 500
    $writer = [System.IO.StreamWriter]::new($Log, $true)
    $writer.AutoFlush = $true
    $writer.WriteLine("ready")
    $from = [System.Net.IPEndPoint]::new([System.Net.IPAddress]::Any, 0)
    while ([DateTime]::UtcNow -lt $deadline) {
        try { $data = $udp.Receive([ref]$from) } catch [System.Net.Sockets.SocketException] { continue }
        $writer.WriteLine("$([DateTimeOffset]::UtcNow.ToUnixTimeMilliseconds()) $([System.Text.Encoding]::ASCII.GetString($data))")
    }
}
elseif ($Send) {
    $udp = [System.Net.Sockets.UdpClient]::new([System.Net.IPEndPoint]::new([System.Net.IPAddress]::Any, $SourcePort))
    $target = [System.Net.IPEndPoint]::new([System.Net.IPAddress]::Parse($Address), $Port)
    $i = 0
    while ([DateTime]::UtcNow -lt $deadline) {
        $bytes = [System.Text.Encoding]::ASCII.GetBytes("$i")
        try { [void]$udp.Send($bytes, $bytes.Length, $target) } catch [System.Net.Sockets.SocketException] { }
        $i++
        Start-Sleep -Milliseconds $IntervalMs
    }
}
