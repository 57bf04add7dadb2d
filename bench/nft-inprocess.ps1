#Requires -Version 7.4
<#
.SYNOPSIS
    One nft transaction in-process (libnftables) against the same transaction as an nft process and against the
    seed's four iptables processes per forward. Prints ratios measured side by side in one run.

.DESCRIPTION
    The transaction: the dispatch of N forwards in a table of our own, `table inet psnfbench` with a DNAT map
    (address . protocol . port : address . port) and a SNAT set (address . port), N elements in each (2000 for
    1000 forwards), written as one script. Each run goes into a fresh namespace (psnfb-*), so every run does the
    same work: table, map, set and elements made in one transaction.

      (a) process:    `nsenter --net=/run/netns/NS nft -f -` with the script on stdin (process start included);
                      also, for information, the module's fallback path (ProcessNftRunner: the same nft through
                      the module's process funnel, CliWrap).
      (b) in-process: PSNetfilter.Core.Host.InProcessNftRunner.ApplyAsync: a thread enters the namespace (setns),
                      libnftables makes a context, runs the script from a memfd, frees the context. Also its floor:
                      the same call for a one-line script (`add table`), which is the fixed cost per call.
      (c) seed:       4 x N `nsenter --net=/run/netns/NS iptables ...` processes (FORWARD accept both ways,
                      PREROUTING DNAT, POSTROUTING SNAT), run by /bin/sh -e, as bench/Batching.ps1 runs the seed.

    Cold: the first run of each side in this session ((b) then includes loading libnftables and the JIT of the
    runner). Warm: the median of -Repeat runs of (a) and (b), alternated. The seed runs -SeedRepeat times (about
    40 s for 1000 forwards here). Timings are taken in this process with a Stopwatch. Nothing here fails on a
    time: it prints figures.

.EXAMPLE
    dotnet pwsh -NoProfile -File bench/nft-inprocess.ps1
.EXAMPLE
    dotnet pwsh -NoProfile -File bench/nft-inprocess.ps1 -Count 200 -Repeat 5
#>
[CmdletBinding()]
param(
    # Forwards: the transaction adds 2 x Count elements; the seed runs 4 x Count iptables processes.
    [ValidateRange(1, 5000)][int]$Count = 1000,
    # Warm runs of (a) and (b), each in a fresh namespace; the median is reported.
    [ValidateRange(1, 51)][int]$Repeat = 9,
    # Runs of the seed (c); the median is reported.
    [ValidateRange(1, 5)][int]$SeedRepeat = 1,
    # A built module folder; default out/PSNetfilter (built when missing).
    [string]$ModulePath
)

$ErrorActionPreference = 'Stop'
Set-StrictMode -Version 3.0
Import-Module (Join-Path $PSScriptRoot 'BenchCommon.psm1') -Force
$ModulePath = Initialize-Bench -ModulePath $ModulePath -Tool @{ nft = 'nftables'; nsenter = 'util-linux' }
Add-Type -Path (Join-Path $ModulePath 'PSNetfilter.Core.dll')

$machine = Get-BenchMachine
Write-Host '== PSNetfilter nft in-process benchmark =='
Write-BenchMachine -Machine $machine -ModulePath $ModulePath
$nft = Resolve-BenchTool nft
Write-Host "nft     : $((Invoke-BenchProcess -FilePath $nft -ArgumentList @('--version')).StdOut.Trim()); libnftables: $(if ([PSNetfilter.Core.Host.Libnftables]::IsAvailable) { [PSNetfilter.Core.Host.Libnftables]::LibraryName } else { [PSNetfilter.Core.Host.Libnftables]::UnavailableReason })"
Write-Host ''
if (-not [PSNetfilter.Core.Host.Libnftables]::IsAvailable) {
    throw "bench: libnftables is not available: $([PSNetfilter.Core.Host.Libnftables]::UnavailableReason)"
}

$ext = '203.0.113.1'
$int = '198.51.100.10'
$snat = '198.51.100.1'
$nsenter = Resolve-BenchTool nsenter
$iptables = Resolve-BenchTool iptables
$iptablesSave = Resolve-BenchTool iptables-save
$sh = Resolve-BenchTool sh
$ct = [System.Threading.CancellationToken]::None
$created = [System.Collections.Generic.List[string]]::new()
$tmp = Join-Path ([IO.Path]::GetTempPath()) ("psnfb-nftinproc-{0}" -f [Environment]::ProcessId)
$ports = [int[]](1..$Count | ForEach-Object { 10000 + $_ })

$script = (@(
        'add table inet psnfbench'
        'add map inet psnfbench dnat4 { type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service; }'
        'add set inet psnfbench snat4 { type ipv4_addr . inet_service; }'
        'add element inet psnfbench dnat4 { ' + (@($ports | ForEach-Object { "$ext . tcp . $_ : $int . $_" }) -join ', ') + ' }'
        'add element inet psnfbench snat4 { ' + (@($ports | ForEach-Object { "$int . $_" }) -join ', ') + ' }'
    ) -join "`n") + "`n"

function New-Ns([string]$Role) {
    $n = New-BenchNamespace -Role $Role
    $created.Add($n)
    $n
}

function Remove-Ns([string]$Name) {
    Remove-BenchNamespace -Name $Name
    [void]$created.Remove($Name)
}

function Assert-Elements([string]$Ns) {
    # The run did its work: both sets hold Count elements (checked outside the timing).
    $json = (Invoke-InBenchNamespace -Namespace $Ns -FilePath $nft -ArgumentList @('-j', 'list', 'table', 'inet', 'psnfbench')).StdOut
    $items = (ConvertFrom-Json $json -Depth 20).nftables
    $n = 0
    foreach ($i in $items) {
        foreach ($k in 'map', 'set') {
            if ($i.PSObject.Properties[$k]) { $n += @($i.$k.elem).Count }
        }
    }
    if ($n -ne 2 * $Count) { throw "bench: namespace $Ns holds $n elements; expected $(2 * $Count)." }
}

function Measure-Process {
    # (a): nft -f - as a process entered with nsenter, stdin the script.
    $ns = New-Ns 'nftproc'
    $r = Invoke-BenchProcess -FilePath $nsenter -ArgumentList @("--net=/run/netns/$ns", '--', $nft, '-f', '-') -StandardInput $script -Check
    Assert-Elements $ns
    Remove-Ns $ns
    $r.Elapsed.TotalMilliseconds
}

function Measure-Funnel {
    # (a2): the module's fallback: the same nft through ProcessNftRunner (NetfilterHost's funnel, CliWrap).
    $ns = New-Ns 'nftfun'
    $runner = [PSNetfilter.Core.Host.ProcessNftRunner]::new([PSNetfilter.Core.Host.NetfilterHost]::new($ns, $null, $null))
    $sw = [System.Diagnostics.Stopwatch]::StartNew()
    $null = $runner.ApplyAsync($script, $ct).GetAwaiter().GetResult()
    $sw.Stop()
    Assert-Elements $ns
    Remove-Ns $ns
    $sw.Elapsed.TotalMilliseconds
}

function Measure-InProcess([string]$Text = $script, [switch]$NoCheck) {
    # (b): libnftables on the namespace thread.
    $ns = New-Ns 'nftlib'
    $runner = [PSNetfilter.Core.Host.InProcessNftRunner]::new($ns, $null)
    $sw = [System.Diagnostics.Stopwatch]::StartNew()
    $null = $runner.ApplyAsync($Text, $ct).GetAwaiter().GetResult()
    $sw.Stop()
    if (-not $NoCheck) { Assert-Elements $ns }
    Remove-Ns $ns
    $sw.Elapsed.TotalMilliseconds
}

function Measure-Seed {
    # (c): the seed's four iptables processes per forward, one /bin/sh -e running them.
    $ns = New-Ns 'seed'
    $enter = "$nsenter --net=/run/netns/$ns"
    $lines = foreach ($p in $ports) {
        "$enter $iptables -A FORWARD -p tcp -d $int --dport $p -j ACCEPT"
        "$enter $iptables -A FORWARD -p tcp -s $int --sport $p -j ACCEPT"
        "$enter $iptables -t nat -A PREROUTING -p tcp -d $ext --dport $p -j DNAT --to-destination ${int}:$p"
        "$enter $iptables -t nat -A POSTROUTING -p tcp -d $int --dport $p -j SNAT --to-source $snat"
    }
    $file = Join-Path $tmp "seed-$ns.sh"
    [IO.File]::WriteAllText($file, ($lines -join "`n") + "`n")
    $r = Invoke-BenchProcess -FilePath $sh -ArgumentList @('-e', $file) -TimeoutSeconds 1800 -Check
    $rules = @((Invoke-InBenchNamespace -Namespace $ns -FilePath $iptablesSave).StdOut -split "`n" | Where-Object { $_.StartsWith('-A ') }).Count
    if ($rules -ne 4 * $Count) { throw "bench: the seed wrote $rules rules; expected $(4 * $Count)." }
    Remove-Ns $ns
    $r.Elapsed.TotalMilliseconds
}

$null = New-Item -ItemType Directory -Force -Path $tmp
try {
    Write-Host "One transaction of $(2 * $Count) elements ($Count forwards: a map and a set in table inet psnfbench), script $([Math]::Round($script.Length / 1024)) KiB"

    # ---- cold: the first run of each side in this session ----
    $coldLib = Measure-InProcess
    $coldProc = Measure-Process
    $coldFunnel = Measure-Funnel
    $coldFloor = Measure-InProcess -Text "add table inet psnfbench`n" -NoCheck

    # ---- warm: alternated, each run in a fresh namespace ----
    $proc = [System.Collections.Generic.List[double]]::new()
    $lib = [System.Collections.Generic.List[double]]::new()
    $funnel = [System.Collections.Generic.List[double]]::new()
    $floor = [System.Collections.Generic.List[double]]::new()
    for ($i = 0; $i -lt $Repeat; $i++) {
        $proc.Add((Measure-Process))
        $lib.Add((Measure-InProcess))
        $funnel.Add((Measure-Funnel))
        $floor.Add((Measure-InProcess -Text "add table inet psnfbench`n" -NoCheck))
    }
    $warmProc = Get-Median $proc.ToArray()
    $warmLib = Get-Median $lib.ToArray()
    $warmFunnel = Get-Median $funnel.ToArray()
    $warmFloor = Get-Median $floor.ToArray()

    Write-Host "(c) the seed: $(4 * $Count) iptables processes, $SeedRepeat run(s)"
    $seedRuns = [System.Collections.Generic.List[double]]::new()
    for ($i = 0; $i -lt $SeedRepeat; $i++) { $seedRuns.Add((Measure-Seed)) }
    $seed = Get-Median $seedRuns.ToArray()

    Write-Host ''
    Write-Host ('  {0,-62} {1,10} {2,10}' -f '', 'cold', "warm (median of $Repeat)")
    Write-Host ('  {0,-62} {1,10} {2,10}' -f '(a)  nsenter nft -f - (process)', (Format-Ms $coldProc), (Format-Ms $warmProc))
    Write-Host ('  {0,-62} {1,10} {2,10}' -f '(a2) ProcessNftRunner (module fallback: funnel, nsenter nft)', (Format-Ms $coldFunnel), (Format-Ms $warmFunnel))
    Write-Host ('  {0,-62} {1,10} {2,10}' -f '(b)  InProcessNftRunner (libnftables on the setns thread)', (Format-Ms $coldLib), (Format-Ms $warmLib))
    Write-Host ('  {0,-62} {1,10} {2,10}' -f '(b0) its floor: the same call for one line (add table)', (Format-Ms $coldFloor), (Format-Ms $warmFloor))
    Write-Host ('  {0,-62} {1,10}' -f "(c)  seed: $(4 * $Count) iptables processes", (Format-Ms $seed))
    Write-Host ''
    Write-Host 'Ratios (higher is better for the second named):'
    Write-Host ('  {0,-62} {1,10} {2,10}' -f '', 'cold', 'warm')
    Write-Host ('  {0,-62} {1,10} {2,10}' -f 'seed / (a) nft process', (Format-Ratio ($seed / $coldProc)), (Format-Ratio ($seed / $warmProc)))
    Write-Host ('  {0,-62} {1,10} {2,10}' -f 'seed / (b) in-process', (Format-Ratio ($seed / $coldLib)), (Format-Ratio ($seed / $warmLib)))
    Write-Host ('  {0,-62} {1,10} {2,10}' -f '(a) nft process / (b) in-process', (Format-Ratio ($coldProc / $coldLib)), (Format-Ratio ($warmProc / $warmLib)))
    Write-Host ('  {0,-62} {1,10} {2,10}' -f '(a2) module fallback / (b) in-process', (Format-Ratio ($coldFunnel / $coldLib)), (Format-Ratio ($warmFunnel / $warmLib)))
    Write-Host ('  per element, warm: (a) {0} us, (b) {1} us; (b) minus its one-line floor: {2} for {3} elements' -f
        (Format-Number (1000 * $warmProc / (2 * $Count)) '0.0'), (Format-Number (1000 * $warmLib / (2 * $Count)) '0.0'), (Format-Ms ($warmLib - $warmFloor)), (2 * $Count))
}
finally {
    Remove-BenchNamespace -Name $created.ToArray()
    Remove-Item -LiteralPath $tmp -Recurse -Force -ErrorAction SilentlyContinue
    Write-Host "Cleaned up: every namespace this run created is deleted."
}
