#Requires -Version 7.4
<#
.SYNOPSIS
    Datapath benchmark: bulk throughput (iperf3) and new-connection rate (bench/ConnRate) through a lab
    gateway, for the plain routed path, 1 forward, N forwards (dispatch tree, as the module lays them
    out) and N forwards laid out flat. Prints ratios measured side by side in one run.

.DESCRIPTION
    Four labs (tests/lab/PSNetfilterLab.psm1, namespaces psnfb<id>-cl/-gw/-sv) are built once, one per
    configuration, so the runs can be interleaved:
      routed  no rule at all on the gateway (no NAT, no conntrack); the client gets a route to
              198.51.100.0/24 via the gateway and talks to 198.51.100.10:5201 directly. The lab's limit.
      one     one forward, 203.0.113.1:MeasuredPort -> 198.51.100.10:5201, made with New-PortForward.
      tree    N forwards made with New-PortForward (one pipeline): external ports BasePort..BasePort+N-1,
              the measured one (MeasuredPort -> 5201) among them, so its neighbours share its dispatch
              chains down to the leaf.
      flat    the same N forwards: the tagged rules of the tree configuration, as iptables-save prints
              them, loaded by this script with one iptables-restore straight into PSNF-PREROUTING /
              PSNF-POSTROUTING / PSNF-FORWARD, in port order, with no dispatch tree. Get-PortForward reads
              them back as the same N forwards (checked), so only the layout differs.
    Phase 1: iperf3 -s in every server namespace; per round, every configuration in turn (the order rotates
    each round): iperf3 -c TARGET -p PORT -t Seconds. Phase 2: bench/ConnRate server in every server
    namespace (accepts, writes one byte, closes); per round, every configuration: ConnRate client with
    -Concurrency connections at a time for Seconds (after a 0.5 s warm-up), counting completed ones.
    Medians over -Repeat rounds. Traffic stays inside the lab namespaces; every process is bounded in time
    and killed by its id; the labs are removed in finally. Nothing here fails on a number: it prints them.

    -Backend Nftables measures the nftables backend instead (New-PortForward -Backend Nftables): four labs,
    routed, one, "maps" (N forwards, default 10,000: N elements in each of the exact (hash) twins dnat4x,
    snat4x and accept4x, the interval twins dnat4, snat4, accept4 empty; a lookup in each twin per packet) and
    "exact", the control: the maps lab's table as `nft list table` prints it, loaded by this script with
    `nft -f` after dropping `flags interval` from every declaration, so no container of it is an interval
    (pipapo) set, not even the empty twins; Get-PortForward reads it back as the same N forwards (checked).
    There is no flat layout: the table has no per-forward rule for these forwards.

.EXAMPLE
    cd /work/main && dotnet pwsh -NoProfile -File bench/Datapath.ps1
.EXAMPLE
    dotnet pwsh -NoProfile -File bench/Datapath.ps1 -Repeat 5 -Seconds 5
.EXAMPLE
    dotnet pwsh -NoProfile -File bench/Datapath.ps1 -Backend Nftables -Forwards 10000
#>
[CmdletBinding()]
param(
    # Forwards in the "tree" and "flat" (or, -Backend Nftables, "maps") configurations; default 1000, or
    # 10,000 with -Backend Nftables.
    [ValidateRange(2, 40000)][int]$Forwards,
    # The backend New-PortForward writes to.
    [ValidateSet('Iptables', 'Nftables')][string]$Backend = 'Iptables',
    # Rounds per phase; medians are reported.
    [ValidateRange(1, 15)][int]$Repeat = 5,
    # Length of one iperf3 run and of one connection-rate window.
    [ValidateRange(1, 30)][int]$Seconds = 5,
    # Connections in flight in the connection-rate client.
    [ValidateRange(1, 64)][int]$Concurrency = 4,
    # External ports of the N forwards start here; the measured one sits in the middle.
    [ValidateRange(1024, 60000)][int]$BasePort = 20000,
    # A built module folder; default out/PSNetfilter (built when missing).
    [string]$ModulePath
)

$ErrorActionPreference = 'Stop'
Set-StrictMode -Version 3.0
Import-Module (Join-Path $PSScriptRoot 'BenchCommon.psm1') -Force
$ModulePath = Initialize-Bench -ModulePath $ModulePath -Tool @{ iperf3 = 'iperf3'; nft = 'nftables' }
Import-Module (Join-Path (Get-BenchRepoRoot) 'tests/lab/PSNetfilterLab.psm1') -Force

$machine = Get-BenchMachine
Write-Host '== PSNetfilter datapath benchmark =='
Write-BenchMachine -Machine $machine -ModulePath $ModulePath
$iperfVersion = ((Invoke-BenchProcess -FilePath (Resolve-BenchTool iperf3) -ArgumentList @('--version')).StdOut -split "`n")[0].Trim()
Write-Host "Tools   : $iperfVersion; bench/ConnRate (.NET), concurrency $Concurrency"
Write-Host ''

$nft = $Backend -eq 'Nftables'
if (-not $PSBoundParameters.ContainsKey('Forwards')) { $Forwards = if ($nft) { 10000 } else { 1000 } }
if (-not $nft -and $Forwards -gt 4000) { throw 'bench: more than 4000 forwards are for -Backend Nftables (the flat layout would take minutes to load).' }
# The N-forward configuration: the dispatch tree of the iptables backend, the maps of the nftables backend.
$bulkName = if ($nft) { 'maps' } else { 'tree' }
$configs = if ($nft) { @('routed', 'one', 'maps', 'exact') } else { @('routed', 'one', 'tree', 'flat') }
if ($BasePort + $Forwards - 1 -gt 65535) { throw 'bench: BasePort + Forwards exceeds 65535.' }
$MeasuredPort = $BasePort + [int][Math]::Floor($Forwards / 2)
$ServerPort = 5201
$ipTool = Resolve-BenchTool ip
$ssTool = Resolve-BenchTool ss
$iperf = Resolve-BenchTool iperf3
$restore4 = Resolve-BenchTool iptables-restore
$save4 = Resolve-BenchTool iptables-save
$sh = Resolve-BenchTool sh
$dotnet = [Environment]::ProcessPath
if ([IO.Path]::GetFileNameWithoutExtension($dotnet) -ne 'dotnet') { $dotnet = (Get-Command dotnet -CommandType Application | Select-Object -First 1).Source }
$logDir = Join-Path ([IO.Path]::GetTempPath()) ("psnfb-datapath-{0}" -f [Environment]::ProcessId)
$labs = [ordered]@{}
$servers = [System.Collections.Generic.List[object]]::new()

# ---- the connection-rate tool ----
$connRateProject = Join-Path $PSScriptRoot 'ConnRate/ConnRate.csproj'
$build = Invoke-BenchProcess -FilePath $dotnet -ArgumentList @('build', $connRateProject, '-c', 'Release', '--nologo', '-v', 'q') -TimeoutSeconds 300
if ($build.ExitCode -ne 0) { throw "bench: building bench/ConnRate failed:`n$($build.StdOut)`n$($build.StdErr)" }
$connRate = Join-Path $PSScriptRoot 'ConnRate/bin/Release/net10.0/ConnRate.dll'

function Start-BenchServer {
    # Starts PROGRAM ARGS in a namespace, output to a log file; returns once the TCP port listens.
    param([string]$Namespace, [string[]]$Command, [int]$Port, [string]$Tag)
    $log = Join-Path $logDir "$Tag.log"
    $psi = [System.Diagnostics.ProcessStartInfo]::new($sh)
    foreach ($a in @('-c', 'log="$1"; shift; exec "$@" >"$log" 2>&1 </dev/null', 'sh', $log, $ipTool, 'netns', 'exec', $Namespace) + $Command) {
        $psi.ArgumentList.Add($a)
    }
    $psi.UseShellExecute = $false
    $psi.Environment['DOTNET_CLI_TELEMETRY_OPTOUT'] = '1'
    $proc = [System.Diagnostics.Process]::Start($psi)
    $servers.Add([pscustomobject]@{ Process = $proc; Namespace = $Namespace; Tag = $Tag })
    $deadline = [DateTime]::UtcNow.AddSeconds(20)
    while ($true) {
        if ($proc.HasExited) { throw "bench: server $Tag in $Namespace exited: $(Get-Content -Raw -LiteralPath $log -ErrorAction SilentlyContinue)" }
        $ss = Invoke-BenchProcess -FilePath $ipTool -ArgumentList @('netns', 'exec', $Namespace, $ssTool, '-Hltn', "sport = :$Port")
        if ($ss.StdOut.Trim()) { break }
        if ([DateTime]::UtcNow -gt $deadline) { throw "bench: server $Tag not listening on $Port in $Namespace after 20 s." }
        Start-Sleep -Milliseconds 100
    }
}

function Stop-BenchServers {
    foreach ($s in $servers) {
        # Only the processes this script started, by their id.
        try { if (-not $s.Process.HasExited) { $s.Process.Kill(); [void]$s.Process.WaitForExit(5000) } } catch { }
        $s.Process.Dispose()
    }
    $servers.Clear()
}

function New-FlatPayload {
    # The module's own tagged rules, exactly as the kernel holds them in the tree namespace (iptables-save),
    # moved straight into the hooked chains in external-port order: the same rules, no dispatch tree.
    param([string]$TreeNamespace)
    $text = (Invoke-InBenchNamespace -Namespace $TreeNamespace -FilePath $save4).StdOut
    $byChain = [ordered]@{ 'PSNF-PREROUTING' = [System.Collections.Generic.List[object]]::new(); 'PSNF-POSTROUTING' = [System.Collections.Generic.List[object]]::new(); 'PSNF-FORWARD' = [System.Collections.Generic.List[object]]::new() }
    foreach ($line in ($text -split "`n")) {
        if ($line -notmatch '^-A (PSNF-\S+) (.*psnf:v1:.*)$') { continue }
        $chain = $Matches[1]; $spec = $Matches[2]
        $hooked = switch -Wildcard ($chain) {
            'PSNF-PRE*' { 'PSNF-PREROUTING' }
            'PSNF-POST*' { 'PSNF-POSTROUTING' }
            'PSNF-F*' { 'PSNF-FORWARD' }
            default { throw "bench: unexpected module chain $chain (only PREROUTING, POSTROUTING and FORWARD forwards are used here)." }
        }
        $port = if ($hooked -eq 'PSNF-PREROUTING' -and $spec -match '--dport (\d+)') { [int]$Matches[1] } elseif ($spec -match '--ctorigdstport (\d+)') { [int]$Matches[1] } else { throw "bench: no port in $line" }
        $byChain[$hooked].Add([pscustomobject]@{ Port = $port; Line = "-A $hooked $spec" })
    }
    $sb = [System.Text.StringBuilder]::new()
    [void]$sb.Append("*nat`n:PSNF-PREROUTING - [0:0]`n:PSNF-POSTROUTING - [0:0]`n")
    [void]$sb.Append("-I PREROUTING 1 -j PSNF-PREROUTING`n-I POSTROUTING 1 -j PSNF-POSTROUTING`n")
    foreach ($c in 'PSNF-PREROUTING', 'PSNF-POSTROUTING') {
        foreach ($r in ($byChain[$c] | Sort-Object Port)) { [void]$sb.Append($r.Line).Append("`n") }
    }
    [void]$sb.Append("COMMIT`n*filter`n:PSNF-FORWARD - [0:0]`n-I FORWARD 1 -j PSNF-FORWARD`n")
    foreach ($r in ($byChain['PSNF-FORWARD'] | Sort-Object Port)) { [void]$sb.Append($r.Line).Append("`n") }
    [void]$sb.Append("COMMIT`n")
    $sb.ToString()
}

function Get-ModuleChainSummary([string]$Ns) {
    $text = (Invoke-InBenchNamespace -Namespace $Ns -FilePath $save4).StdOut
    $lines = @($text -split "`n")
    [pscustomobject]@{
        Chains = @($lines | Where-Object { $_ -match '^:PSNF-' }).Count
        Rules  = @($lines | Where-Object { $_ -match '^-A PSNF-' }).Count
        All    = @($lines | Where-Object { $_.StartsWith('-A ') }).Count
    }
}

function Get-RuleWalk {
    # How many module rules a packet of the measured connection is checked against, walking the module's
    # chains from the hooked one: dispatch jumps by port range, then the leaf rules in order up to the
    # forward's own rule (a static count from iptables-save, for the explanation next to the figures).
    param([string]$Ns, [int]$Port)
    $text = (Invoke-InBenchNamespace -Namespace $Ns -FilePath (Resolve-BenchTool iptables-save)).StdOut
    $rules = @{}
    foreach ($line in ($text -split "`n")) {
        if ($line -match '^-A (PSNF-\S+) (.*)$') {
            if (-not $rules.ContainsKey($Matches[1])) { $rules[$Matches[1]] = [System.Collections.Generic.List[string]]::new() }
            $rules[$Matches[1]].Add($Matches[2])
        }
    }
    $walk = {
        param([string]$Chain, [string]$Option)
        $n = 0
        if (-not $rules.ContainsKey($Chain)) { return [pscustomobject]@{ Checked = 0; Hit = $false } }
        foreach ($spec in $rules[$Chain]) {
            $n++
            if ($spec -notmatch "$Option (\d+)(?::(\d+))?") { continue }
            $lo = [int]$Matches[1]; $hi = if ($Matches[2]) { [int]$Matches[2] } else { $lo }
            if ($Port -lt $lo -or $Port -gt $hi) { continue }
            if ($spec -match '-j (PSNF-\S+)$') {
                $sub = & $walk $Matches[1] $Option
                $n += $sub.Checked
                if ($sub.Hit) { return [pscustomobject]@{ Checked = $n; Hit = $true } }
            }
            else {
                return [pscustomobject]@{ Checked = $n; Hit = $true }
            }
        }
        [pscustomobject]@{ Checked = $n; Hit = $false }
    }
    [pscustomobject]@{
        Pre  = (& $walk 'PSNF-PREROUTING' '--dport').Checked
        Post = (& $walk 'PSNF-POSTROUTING' '--ctorigdstport').Checked
        Fwd  = (& $walk 'PSNF-FORWARD' '--ctorigdstport').Checked
    }
}

function Invoke-Iperf($Lab) {
    $r = Invoke-BenchProcess -FilePath $ipTool -ArgumentList @('netns', 'exec', $Lab.Lab.Client, $iperf, '-c', $Lab.Address, '-p', "$($Lab.Port)", '-t', "$Seconds", '-J', '--connect-timeout', '3000') -TimeoutSeconds ($Seconds + 30)
    try { $j = $r.StdOut | ConvertFrom-Json } catch { $j = $null }
    if ($r.ExitCode -ne 0 -or -not $j -or ($j.PSObject.Properties.Name -contains 'error')) {
        $why = if ($j -and ($j.PSObject.Properties.Name -contains 'error')) { $j.error } else { $r.StdErr.Trim() }
        Write-Warning "iperf3 to $($Lab.Name) failed: $why"
        return [double]::NaN
    }
    [double]$j.end.sum_received.bits_per_second / 1e9
}

function Invoke-ConnRate($Lab) {
    $r = Invoke-BenchProcess -FilePath $ipTool -ArgumentList @('netns', 'exec', $Lab.Lab.Client, $dotnet, $connRate, 'client', '--address', $Lab.Address, '--port', "$($Lab.Port)", '--seconds', "$Seconds", '--warmup', '0.5', '--concurrency', "$Concurrency", '--timeout-ms', '2000') -TimeoutSeconds ($Seconds + 30)
    try { $j = $r.StdOut | ConvertFrom-Json } catch { $j = $null }
    if ($r.ExitCode -ne 0 -or -not $j) {
        Write-Warning "ConnRate to $($Lab.Name) failed: $($r.StdErr.Trim())"
        return [pscustomobject]@{ Rate = [double]::NaN; Failed = 0 }
    }
    [pscustomobject]@{ Rate = [double]$j.rate; Failed = [int]$j.failed }
}

$null = New-Item -ItemType Directory -Force -Path $logDir
try {
    # ---- the four configurations ----
    foreach ($name in $configs) {
        $lab = New-PSNetfilterLab -Prefix psnfb
        $labs[$name] = [pscustomobject]@{ Name = $name; Lab = $lab; Address = '203.0.113.1'; Port = $MeasuredPort; Throughput = [System.Collections.Generic.List[double]]::new(); Rate = [System.Collections.Generic.List[double]]::new(); Failed = 0 }
    }
    $routed = $labs['routed']
    [void](Invoke-BenchProcess -FilePath $ipTool -ArgumentList @('-n', $routed.Lab.Client, 'route', 'add', '198.51.100.0/24', 'via', '203.0.113.1') -Check)
    $routed.Address = '198.51.100.10'; $routed.Port = $ServerPort

    $null = New-PortForward -NetworkNamespace $labs['one'].Lab.Gateway -Backend $Backend -Name measured -ExternalAddress 203.0.113.1 -ExternalPort $MeasuredPort -InternalAddress 198.51.100.10 -InternalPort $ServerPort

    $items = foreach ($p in $BasePort..($BasePort + $Forwards - 1)) {
        $target = if ($p -eq $MeasuredPort) { $ServerPort } else { $p }
        $n = if ($p -eq $MeasuredPort) { 'measured' } else { "f$p" }
        [pscustomobject]@{ Name = $n; ExternalAddress = '203.0.113.1'; ExternalPort = $p; InternalAddress = '198.51.100.10'; InternalPort = $target }
    }
    $sw = [System.Diagnostics.Stopwatch]::StartNew()
    $made = @($items | New-PortForward -NetworkNamespace $labs[$bulkName].Lab.Gateway -Backend $Backend)
    $sw.Stop()
    if ($made.Count -ne $Forwards) { throw "bench: New-PortForward made $($made.Count) forwards, expected $Forwards." }
    $treeForwards = @(Get-PortForward -NetworkNamespace $labs[$bulkName].Lab.Gateway)
    foreach ($name in 'one', $bulkName) {
        $wrong = @(Get-PortForward -NetworkNamespace $labs[$name].Lab.Gateway | Where-Object Backend -ne $Backend.ToLowerInvariant())
        if ($wrong.Count -ne 0) { throw "bench: '$name' holds $($wrong.Count) forwards outside the $Backend backend." }
    }
    if (-not $nft) {
        $payload = New-FlatPayload -TreeNamespace $labs['tree'].Lab.Gateway
        [void](Invoke-InBenchNamespace -Namespace $labs['flat'].Lab.Gateway -FilePath $restore4 -ArgumentList @('-w', '--noflush') -StandardInput $payload)
        $flatForwards = @(Get-PortForward -NetworkNamespace $labs['flat'].Lab.Gateway)
        $key = { '{0}|{1}|{2}|{3}|{4}|{5}|{6}|{7}|{8}' -f $_.Name, $_.Protocol, $_.ExternalAddress, $_.ExternalPort, $_.InternalAddress, $_.InternalPort, $_.SnatMode, $_.SnatAddress, $_.Status }
        $same = $flatForwards.Count -eq $treeForwards.Count -and -not @(Compare-Object @($treeForwards | ForEach-Object $key) @($flatForwards | ForEach-Object $key))
        if (-not $same) { throw 'bench: the flat layout does not read back as the same forwards as the tree.' }
    }
    else {
        # The same table with hash sets only: every key here is exact (one address, one port), so no element needs an interval.
        $nftTool = Resolve-BenchTool nft
        $table = (Invoke-InBenchNamespace -Namespace $labs['maps'].Lab.Gateway -FilePath $nftTool -ArgumentList @('list', 'table', 'inet', 'psnetfilter')).StdOut
        $exactTable = $table -replace '(?m)^\s*flags interval\s*\n', '' -replace '(?m)^(\s*flags )interval,\s*', '$1'
        if ($exactTable -match 'interval') { throw 'bench: the exact table still declares an interval set.' }
        [void](Invoke-InBenchNamespace -Namespace $labs['exact'].Lab.Gateway -FilePath $nftTool -ArgumentList @('-f', '-') -StandardInput $exactTable -TimeoutSeconds 300)
        $exactForwards = @(Get-PortForward -NetworkNamespace $labs['exact'].Lab.Gateway)
        $key = { '{0}|{1}|{2}|{3}|{4}|{5}|{6}|{7}|{8}' -f $_.Name, $_.Protocol, $_.ExternalAddress, $_.ExternalPort, $_.InternalAddress, $_.InternalPort, $_.SnatMode, $_.SnatAddress, $_.Status }
        $same = $exactForwards.Count -eq $treeForwards.Count -and -not @(Compare-Object @($treeForwards | ForEach-Object $key) @($exactForwards | ForEach-Object $key))
        if (-not $same) { throw 'bench: the exact table does not read back as the same forwards as the maps.' }
    }

    Write-Host "Configurations (client -> gateway -> server, one lab each; backend $Backend):"
    Write-Host "  routed  client -> 198.51.100.10:$ServerPort via a route, gateway without any rule"
    Write-Host "  one     client -> 203.0.113.1:$MeasuredPort, 1 forward (New-PortForward)"
    if ($nft) {
        # A packet meets the table's fixed dispatch rules (one map lookup each) and the forwards' own rules, if any.
        $nftTool = Resolve-BenchTool nft
        foreach ($name in 'one', 'maps', 'exact') {
            $rules = 0; $dispatch = 0
            foreach ($chain in 'prerouting', 'postrouting', 'forward') {
                $text = (Invoke-InBenchNamespace -Namespace $labs[$name].Lab.Gateway -FilePath $nftTool -ArgumentList @('list', 'chain', 'inet', 'psnetfilter', $chain)).StdOut
                $dispatch += @($text -split "`n" | Where-Object { $_ -match 'comment "psnf:v1:@' }).Count
                $rules += @($text -split "`n" | Where-Object { $_ -match 'comment "psnf:v1:[^@]' }).Count
            }
            if ($name -eq 'maps') {
                Write-Host ("  maps    client -> 203.0.113.1:{0}, {1} forwards on ports {2}-{3} (one pipeline, {4}), map elements" -f $MeasuredPort, $Forwards, $BasePort, ($BasePort + $Forwards - 1), (Format-Ms $sw.Elapsed.TotalMilliseconds))
            }
            if ($name -eq 'exact') {
                Write-Host "  exact   the same $Forwards forwards, the same table without any 'flags interval' (the empty interval twins hashes too)"
            }
            Write-Host ("          {0}: {1} dispatch rules (map lookups) and {2} per-forward rules in prerouting, postrouting and forward" -f $name, $dispatch, $rules)
        }
    }
    else {
        $treeChains = Get-ModuleChainSummary $labs['tree'].Lab.Gateway
        $flatChains = Get-ModuleChainSummary $labs['flat'].Lab.Gateway
        Write-Host ("  tree    client -> 203.0.113.1:{0}, {1} forwards on ports {2}-{3} (one pipeline, {4}): {5} rules in {6} PSNF chains" -f $MeasuredPort, $Forwards, $BasePort, ($BasePort + $Forwards - 1), (Format-Ms $sw.Elapsed.TotalMilliseconds), $treeChains.Rules, $treeChains.Chains)
        Write-Host ("  flat    the same {0} forwards, flat: {1} rules in {2} PSNF chains; the measured forward's rules sit at position {3} of each" -f $Forwards, $flatChains.Rules, $flatChains.Chains, (@($treeForwards | Sort-Object ExternalPort | ForEach-Object ExternalPort).IndexOf($MeasuredPort) + 1))
        Write-Host "  module rules a packet of the measured connection is checked against (PREROUTING and POSTROUTING: first"
        Write-Host "  packet only, nat; FORWARD: every packet, both directions):"
        foreach ($name in 'one', 'tree', 'flat') {
            $w = Get-RuleWalk -Ns $labs[$name].Lab.Gateway -Port $MeasuredPort
            Write-Host ('    {0,-5} PREROUTING {1,4}   POSTROUTING {2,4}   FORWARD {3,4}' -f $name, $w.Pre, $w.Post, $w.Fwd)
        }
    }
    Write-Host ''

    $order = @($labs.Keys)
    # ---- phase 1: throughput ----
    foreach ($l in $labs.Values) { Start-BenchServer -Namespace $l.Lab.Server -Command @($iperf, '-s', '-p', "$ServerPort") -Port $ServerPort -Tag "iperf-$($l.Name)" }
    Write-Host "Throughput, iperf3 -t $Seconds (Gbit/s), $Repeat rounds:"
    for ($round = 0; $round -lt $Repeat; $round++) {
        $line = "  round $($round + 1):"
        for ($k = 0; $k -lt $order.Count; $k++) {
            $l = $labs[$order[($k + $round) % $order.Count]]
            $g = Invoke-Iperf $l
            $l.Throughput.Add($g)
            $line += ('  {0} {1}' -f $l.Name, (Format-Number $g '0.00'))
        }
        Write-Host $line
    }
    Stop-BenchServers

    # ---- phase 2: connection rate ----
    foreach ($l in $labs.Values) { Start-BenchServer -Namespace $l.Lab.Server -Command @($dotnet, $connRate, 'server', '--port', "$ServerPort", '--seconds', '900') -Port $ServerPort -Tag "connrate-$($l.Name)" }
    Write-Host "New connections, $Seconds s windows, $Concurrency in flight (connections/s), $Repeat rounds:"
    for ($round = 0; $round -lt $Repeat; $round++) {
        $line = "  round $($round + 1):"
        for ($k = 0; $k -lt $order.Count; $k++) {
            $l = $labs[$order[($k + $round) % $order.Count]]
            $c = Invoke-ConnRate $l
            $l.Rate.Add($c.Rate)
            $l.Failed += $c.Failed
            $line += ('  {0} {1}' -f $l.Name, (Format-Number $c.Rate '0'))
        }
        Write-Host $line
    }
    Stop-BenchServers

    # ---- the traffic went where it should ----
    foreach ($name in @($configs | Where-Object { $_ -ne 'routed' })) {
        $f = @(Get-PortForward -NetworkNamespace $labs[$name].Lab.Gateway -Name measured)
        if ($f.Count -ne 1 -or $f[0].Packets -eq 0) { Write-Warning "The measured forward in '$name' counted no packets: the traffic did not take it." }
    }
    if (-not $nft -and (Get-ModuleChainSummary $routed.Lab.Gateway).All -ne 0) { Write-Warning 'The routed gateway has rules.' }

    # ---- summary ----
    $med = @{}
    foreach ($l in $labs.Values) {
        $med[$l.Name] = [pscustomobject]@{
            Gbps   = Get-Median @($l.Throughput | Where-Object { -not [double]::IsNaN($_) })
            GbpsLo = ($l.Throughput | Measure-Object -Minimum).Minimum
            GbpsHi = ($l.Throughput | Measure-Object -Maximum).Maximum
            Rate   = Get-Median @($l.Rate | Where-Object { -not [double]::IsNaN($_) })
            RateLo = ($l.Rate | Measure-Object -Minimum).Minimum
            RateHi = ($l.Rate | Measure-Object -Maximum).Maximum
            Failed = $l.Failed
        }
    }
    Write-Host ''
    Write-Host "Medians of $Repeat rounds [min-max]:"
    Write-Host ('  {0,-8} {1,24} {2,28} {3,8}' -f 'config', 'throughput Gbit/s', 'new connections/s', 'failed')
    foreach ($name in $configs) {
        $m = $med[$name]
        Write-Host ('  {0,-8} {1,8} [{2}-{3}] {4,12} [{5}-{6}] {7,8}' -f $name, (Format-Number $m.Gbps '0.00'), (Format-Number $m.GbpsLo '0.00'), (Format-Number $m.GbpsHi '0.00'), (Format-Number $m.Rate '0'), (Format-Number $m.RateLo '0'), (Format-Number $m.RateHi '0'), $m.Failed)
    }
    Write-Host ''
    Write-Host 'Ratios (higher is better). "paired": the median of the per-round ratios; the two runs compared in a round are'
    Write-Host 'seconds apart and see about the same background load, so it is the steadier figure on a busy machine and the'
    Write-Host 'one the goals are judged on. The ratio of the medians is shown beside it.'
    $paired = {
        param([string]$A, [string]$B, [string]$What)
        $x = $labs[$A].$What; $y = $labs[$B].$What
        Get-Median @(for ($i = 0; $i -lt [Math]::Min($x.Count, $y.Count); $i++) { if ($y[$i] -gt 0 -and $x[$i] -gt 0) { $x[$i] / $y[$i] } })
    }
    # The goal is judged on the paired figure: the two runs of a pair are side by side in time.
    # Goals: issue 4 (iptables, 1000 forwards) >= 0.9x; issue 17 (nftables, 10,000 forwards) >= 0.97x.
    $goal = if ($nft) { 0.97 } else { 0.9 }
    $tr = & $paired $bulkName 'one' 'Throughput'
    $rr = & $paired $bulkName 'one' 'Rate'
    Write-BenchGoal -What "throughput  $Forwards forwards ($bulkName) / 1 forward, paired" -Ratio $tr -Goal ">= ${goal}x" -Met ($tr -ge $goal)
    Write-Host ('  {0,-58} {1,9}' -f '            ratio of the medians', (Format-Ratio ($med[$bulkName].Gbps / $med['one'].Gbps)))
    Write-BenchGoal -What "conn. rate  $Forwards forwards ($bulkName) / 1 forward, paired" -Ratio $rr -Goal ">= ${goal}x" -Met ($rr -ge $goal)
    Write-Host ('  {0,-58} {1,9}' -f '            ratio of the medians', (Format-Ratio ($med[$bulkName].Rate / $med['one'].Rate)))
    $pairs = if ($nft) {
        @(
            @('exact', 'one', "$Forwards forwards (exact) / 1 forward"),
            @('maps', 'exact', "$Forwards forwards: maps / exact"),
            @('one', 'routed', '1 forward / routed'),
            @('maps', 'routed', "$Forwards forwards (maps) / routed"))
    }
    else {
        @(
            @('flat', 'one', "$Forwards forwards (flat) / 1 forward"),
            @('one', 'routed', '1 forward / routed'),
            @('tree', 'routed', "$Forwards forwards (tree) / routed"),
            @('flat', 'routed', "$Forwards forwards (flat) / routed"),
            @('tree', 'flat', "$Forwards forwards: tree / flat"))
    }
    foreach ($pair in $pairs) {
        Write-Host ('  {0,-58} {1,9}   ratio of the medians {2}' -f "throughput  $($pair[2]), paired", (Format-Ratio (& $paired $pair[0] $pair[1] 'Throughput')), (Format-Ratio ($med[$pair[0]].Gbps / $med[$pair[1]].Gbps)))
        Write-Host ('  {0,-58} {1,9}   ratio of the medians {2}' -f "conn. rate  $($pair[2]), paired", (Format-Ratio (& $paired $pair[0] $pair[1] 'Rate')), (Format-Ratio ($med[$pair[0]].Rate / $med[$pair[1]].Rate)))
    }
    Write-Host "  load average at the end: $((Get-Content -LiteralPath /proc/loadavg).Trim())"
}
finally {
    Stop-BenchServers
    foreach ($l in $labs.Values) { Remove-PSNetfilterLab -Lab $l.Lab -ErrorAction Continue }
    Remove-Item -LiteralPath $logDir -Recurse -Force -ErrorAction SilentlyContinue
    Write-Host "Cleaned up: $($labs.Count) labs ($(3 * $labs.Count) namespaces) removed."
}
