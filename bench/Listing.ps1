#Requires -Version 7.4
<#
.SYNOPSIS
    Listing benchmark: Get-PortForward on a gateway that also holds ~20,000 foreign kube-proxy-like rules,
    against a bare iptables-save + ip6tables-save of the same namespace (the floor). Prints ratios measured
    side by side in one run, and the extra memory one Get-PortForward takes.

.DESCRIPTION
    A fresh namespace (psnfb-*) gets tests/fixtures/foreign/kube-proxy.v4.rules plus generated kube-proxy
    style rules (KUBE-SVC-/KUBE-SEP-/KUBE-EXT- chains, ClusterIP and NodePort jumps, DNAT to endpoints,
    statistic --mode random, quoted comments, a few REJECT rules in filter) up to -ForeignRules rule lines,
    then -Forwards forwards made with New-PortForward. After warm-up calls, -Repeat rounds alternate:
      floor (seq):   iptables-save, then ip6tables-save, each entering the namespace as the module's tools
                     do (nsenter --net=/run/netns/NS)
      floor (par):   the two at once (the module runs its two reads at once)
      floor (par,-c): the two at once with -c, exactly the reads the module runs
      module:        Get-PortForward -NetworkNamespace NS (warm session, Stopwatch in this process)
    and the medians are compared. Memory: around one Get-PortForward, bytes allocated by this process
    ([GC]::GetTotalAllocatedBytes($true) after minus before), working-set delta and managed-heap delta.
    A second namespace with the same forwards and no foreign rules gives the baseline. Nothing here fails
    on a time: it prints figures.

.EXAMPLE
    cd /work/main && dotnet pwsh -NoProfile -File bench/Listing.ps1
#>
[CmdletBinding()]
param(
    # Foreign rule lines in the IPv4 ruleset (fixture + generated), roughly.
    [ValidateRange(0, 200000)][int]$ForeignRules = 20000,
    # Forwards made with New-PortForward in the same namespace.
    [ValidateRange(1, 5000)][int]$Forwards = 50,
    # Rounds; the median is reported.
    [ValidateRange(1, 101)][int]$Repeat = 15,
    # A built module folder; default out/PSNetfilter (built when missing).
    [string]$ModulePath
)

$ErrorActionPreference = 'Stop'
Set-StrictMode -Version 3.0
Import-Module (Join-Path $PSScriptRoot 'BenchCommon.psm1') -Force
$ModulePath = Initialize-Bench -ModulePath $ModulePath

$machine = Get-BenchMachine
Write-Host '== PSNetfilter listing benchmark =='
Write-BenchMachine -Machine $machine -ModulePath $ModulePath
Write-Host ''

$nsenter = Resolve-BenchTool nsenter
$save4 = Resolve-BenchTool iptables-save
$save6 = Resolve-BenchTool ip6tables-save
$restore4 = Resolve-BenchTool iptables-restore
$fixture = Join-Path (Get-BenchRepoRoot) 'tests/fixtures/foreign/kube-proxy.v4.rules'
$created = [System.Collections.Generic.List[string]]::new()

function Get-KubeHash([string]$Text) {
    # kube-proxy names chains by a base32 hash of the service/endpoint; 16 characters of it.
    $bytes = [System.Security.Cryptography.SHA256]::HashData([System.Text.Encoding]::UTF8.GetBytes($Text))
    $alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567'
    -join (0..15 | ForEach-Object { $alphabet[$bytes[$_] % 32] })
}

function New-KubeRuleset([int]$Target) {
    # Returns iptables-restore --noflush text that adds about $Target rules in new KUBE-* chains and
    # appends jumps to the fixture's KUBE-SERVICES / KUBE-NODEPORTS (declared there, so not re-declared:
    # --noflush would flush a chain the payload declares).
    $natChains = [System.Collections.Generic.List[string]]::new()
    $nat = [System.Collections.Generic.List[string]]::new()
    $filter = [System.Collections.Generic.List[string]]::new()
    $s = 0
    while ($nat.Count + $filter.Count -lt $Target) {
        $s++
        $svc = 'ns{0}/svc-{1}:http' -f ($s % 37), $s
        $svcChain = 'KUBE-SVC-' + (Get-KubeHash "svc:$svc")
        $cip = '10.96.{0}.{1}' -f (($s -shr 8) % 256), ($s % 256)
        $port = 80 + ($s % 7)
        $endpoints = 1 + ($s % 5)
        $natChains.Add($svcChain)
        $nat.Add("-A KUBE-SERVICES -d $cip/32 -p tcp -m comment --comment `"$svc cluster IP`" -m tcp --dport $port -j $svcChain")
        $nat.Add("-A $svcChain ! -s 10.244.0.0/16 -d $cip/32 -p tcp -m comment --comment `"$svc cluster IP`" -m tcp --dport $port -j KUBE-MARK-MASQ")
        for ($e = 0; $e -lt $endpoints; $e++) {
            $ep = '10.244.{0}.{1}' -f ((($s * 5) + $e) % 250 + 1), (($s + $e * 31) % 250 + 2)
            $sepChain = 'KUBE-SEP-' + (Get-KubeHash "sep:$svc/$ep/$e")
            $natChains.Add($sepChain)
            $left = $endpoints - $e
            if ($left -gt 1) {
                $prob = (1.0 / $left).ToString('0.00000000000', [cultureinfo]::InvariantCulture)
                $nat.Add("-A $svcChain -m comment --comment `"$svc -> ${ep}:8080`" -m statistic --mode random --probability $prob -j $sepChain")
            }
            else {
                $nat.Add("-A $svcChain -m comment --comment `"$svc -> ${ep}:8080`" -j $sepChain")
            }
            $nat.Add("-A $sepChain -s $ep/32 -m comment --comment `"$svc`" -j KUBE-MARK-MASQ")
            $nat.Add("-A $sepChain -p tcp -m comment --comment `"$svc`" -m tcp -j DNAT --to-destination ${ep}:8080")
        }
        if ($s % 4 -eq 0) {
            $extChain = 'KUBE-EXT-' + (Get-KubeHash "svc:$svc")
            $natChains.Add($extChain)
            $nodePort = 30000 + ($s % 2700)
            $nat.Add("-A KUBE-NODEPORTS -p tcp -m comment --comment `"$svc`" -m tcp --dport $nodePort -j $extChain")
            $nat.Add("-A $extChain -m comment --comment `"masquerade traffic for $svc external destinations`" -j KUBE-MARK-MASQ")
            $nat.Add("-A $extChain -j $svcChain")
        }
        if ($s % 25 -eq 0) {
            $vip = '10.97.{0}.{1}' -f (($s -shr 8) % 256), ($s % 256)
            $filter.Add("-A KUBE-SERVICES -d $vip/32 -p tcp -m comment --comment `"$svc has no endpoints`" -m tcp --dport $port -j REJECT --reject-with icmp-port-unreachable")
        }
    }
    $sb = [System.Text.StringBuilder]::new()
    [void]$sb.Append("*nat`n")
    foreach ($c in $natChains) { [void]$sb.Append(":$c - [0:0]`n") }
    foreach ($l in $nat) { [void]$sb.Append($l).Append("`n") }
    [void]$sb.Append("COMMIT`n*filter`n")
    foreach ($l in $filter) { [void]$sb.Append($l).Append("`n") }
    [void]$sb.Append("COMMIT`n")
    [pscustomobject]@{ Text = $sb.ToString(); Rules = $nat.Count + $filter.Count; Services = $s; Chains = $natChains.Count }
}

function Get-RuleLines([string]$Ns) {
    $text = (Invoke-InBenchNamespace -Namespace $Ns -FilePath $save4).StdOut
    [pscustomobject]@{
        All    = @($text -split "`n" | Where-Object { $_.StartsWith('-A ') }).Count
        Module = @($text -split "`n" | Where-Object { $_.StartsWith('-A PSNF') -or $_ -match '-j PSNF-' }).Count
        Bytes  = $text.Length
    }
}

function Add-Forwards([string]$Ns) {
    $items = 1..$Forwards | ForEach-Object {
        [pscustomobject]@{ Name = "lf$_"; ExternalPort = 40000 + $_ * 3; InternalAddress = '198.51.100.10'; SnatAddress = '198.51.100.1'; ExternalAddress = '203.0.113.1' }
    }
    $out = @($items | New-PortForward -NetworkNamespace $Ns -WarningAction SilentlyContinue)
    if ($out.Count -ne $Forwards) { throw "bench: New-PortForward made $($out.Count) forwards, expected $Forwards." }
}

function Measure-Listing([string]$Ns, [int]$Rounds) {
    $seq = [System.Collections.Generic.List[double]]::new()
    $par = [System.Collections.Generic.List[double]]::new()
    $parC = [System.Collections.Generic.List[double]]::new()
    $get = [System.Collections.Generic.List[double]]::new()
    $alloc = [System.Collections.Generic.List[double]]::new()
    $ws = [System.Collections.Generic.List[double]]::new()
    $heap = [System.Collections.Generic.List[double]]::new()
    $me = [System.Diagnostics.Process]::GetCurrentProcess()
    # warm-up: JIT, page cache, nft caches
    for ($i = 0; $i -lt 3; $i++) {
        $null = Get-PortForward -NetworkNamespace $Ns
        [void](Invoke-BenchProcessSet -Command @(, @($nsenter, "--net=/run/netns/$Ns", $save4)))
    }
    for ($i = 0; $i -lt $Rounds; $i++) {
        $a = Invoke-BenchProcess -FilePath $nsenter -ArgumentList @("--net=/run/netns/$Ns", $save4) -Check
        $b = Invoke-BenchProcess -FilePath $nsenter -ArgumentList @("--net=/run/netns/$Ns", $save6) -Check
        $seq.Add($a.Elapsed.TotalMilliseconds + $b.Elapsed.TotalMilliseconds)

        $p = Invoke-BenchProcessSet -Command @(@($nsenter, "--net=/run/netns/$Ns", $save4), @($nsenter, "--net=/run/netns/$Ns", $save6))
        $par.Add($p.Elapsed.TotalMilliseconds)
        $p = Invoke-BenchProcessSet -Command @(@($nsenter, "--net=/run/netns/$Ns", $save4, '-c'), @($nsenter, "--net=/run/netns/$Ns", $save6, '-c'))
        $parC.Add($p.Elapsed.TotalMilliseconds)

        [GC]::Collect(); [GC]::WaitForPendingFinalizers(); [GC]::Collect()
        $me.Refresh()
        $ws0 = $me.WorkingSet64
        $heap0 = [GC]::GetTotalMemory($false)
        $alloc0 = [GC]::GetTotalAllocatedBytes($true)
        $sw = [System.Diagnostics.Stopwatch]::StartNew()
        $list = @(Get-PortForward -NetworkNamespace $Ns)
        $sw.Stop()
        $alloc1 = [GC]::GetTotalAllocatedBytes($true)
        $heap1 = [GC]::GetTotalMemory($false)
        $me.Refresh()
        $ws1 = $me.WorkingSet64
        if ($list.Count -ne $Forwards) { throw "bench: Get-PortForward listed $($list.Count) forwards, expected $Forwards." }
        $get.Add($sw.Elapsed.TotalMilliseconds)
        $alloc.Add(($alloc1 - $alloc0) / 1MB)
        $ws.Add(($ws1 - $ws0) / 1MB)
        $heap.Add(($heap1 - $heap0) / 1MB)
        $list = $null
    }
    [pscustomobject]@{
        Seq      = Get-Median $seq.ToArray()
        Par      = Get-Median $par.ToArray()
        ParC     = Get-Median $parC.ToArray()
        Get      = Get-Median $get.ToArray()
        GetMin   = ($get | Measure-Object -Minimum).Minimum
        GetMax   = ($get | Measure-Object -Maximum).Maximum
        AllocMB  = Get-Median $alloc.ToArray()
        AllocMax = ($alloc | Measure-Object -Maximum).Maximum
        WsMB     = Get-Median $ws.ToArray()
        WsMax    = ($ws | Measure-Object -Maximum).Maximum
        HeapMB   = Get-Median $heap.ToArray()
    }
}

try {
    $busy = New-BenchNamespace -Role 'kube'; $created.Add($busy)
    $bare = New-BenchNamespace -Role 'bare'; $created.Add($bare)

    # foreign rules: the fixture, then the generated kube-proxy-like rules, each one iptables-restore --noflush
    [void](Invoke-InBenchNamespace -Namespace $busy -FilePath $restore4 -ArgumentList @('-w', '--noflush') -StandardInput ([IO.File]::ReadAllText($fixture)))
    $fixtureRules = (Get-RuleLines $busy).All
    $gen = New-KubeRuleset -Target ([Math]::Max(0, $ForeignRules - $fixtureRules))
    $sw = [System.Diagnostics.Stopwatch]::StartNew()
    [void](Invoke-InBenchNamespace -Namespace $busy -FilePath $restore4 -ArgumentList @('-w', '--noflush') -StandardInput $gen.Text -TimeoutSeconds 600)
    $sw.Stop()
    $foreign = Get-RuleLines $busy
    Write-Host ("Gateway {0}: {1} foreign rules ({2} generated for {3} services in {4} chains, loaded in {5}), {6:N0} bytes of iptables-save" -f
        $busy, $foreign.All, $gen.Rules, $gen.Services, $gen.Chains, (Format-Ms $sw.Elapsed.TotalMilliseconds), $foreign.Bytes)

    Add-Forwards $busy
    Add-Forwards $bare
    $after = Get-RuleLines $busy
    if ($after.All - $foreign.All -ne $after.Module) { throw 'bench: New-PortForward changed foreign rules.' }
    Write-Host ("Forwards: {0} in each namespace ({1} module rule lines incl. dispatch); baseline namespace {2} has no foreign rules" -f $Forwards, $after.Module, $bare)
    Write-Host ''

    Write-Host "Medians of $Repeat rounds (alternating floor / module):"
    $rows = foreach ($x in @(@{ Name = "$($after.All) rules (foreign + module)"; Ns = $busy }, @{ Name = 'no foreign rules (baseline)'; Ns = $bare })) {
        $m = Measure-Listing -Ns $x.Ns -Rounds $Repeat
        $m | Add-Member -NotePropertyName Name -NotePropertyValue $x.Name -PassThru
    }
    Write-Host ('  {0,-34} {1,12} {2,12} {3,14} {4,16}' -f 'namespace', 'save 4+6 seq', 'save 4+6 par', 'save -c 4+6 par', 'Get-PortForward')
    foreach ($r in $rows) {
        Write-Host ('  {0,-34} {1,12} {2,12} {3,14} {4,16}' -f $r.Name, (Format-Ms $r.Seq), (Format-Ms $r.Par), (Format-Ms $r.ParC), (Format-Ms $r.Get))
    }
    Write-Host ''
    Write-Host 'Memory around one Get-PortForward (median over the rounds; max in brackets):'
    foreach ($r in $rows) {
        Write-Host ('  {0,-34} allocated {1} MB [{2}], working set {3} MB [{4}], managed heap {5} MB' -f
            $r.Name, (Format-Number $r.AllocMB '0.0'), (Format-Number $r.AllocMax '0.0'), (Format-Number $r.WsMB '0.0'), (Format-Number $r.WsMax '0.0'), (Format-Number $r.HeapMB '0.0'))
    }

    $busyRow = $rows[0]
    Write-Host ''
    Write-Host 'Ratios (Get-PortForward time / floor time; lower is better):'
    $ratioSeq = $busyRow.Get / $busyRow.Seq
    $ratioPar = $busyRow.Get / $busyRow.Par
    $ratioParC = $busyRow.Get / $busyRow.ParC
    Write-BenchGoal -What "vs iptables-save + ip6tables-save, one after the other" -Ratio $ratioSeq -Goal '<= 1.5x' -Met ($ratioSeq -le 1.5)
    Write-BenchGoal -What "vs the same two run at once (stricter)" -Ratio $ratioPar -Goal '<= 1.5x' -Met ($ratioPar -le 1.5)
    Write-BenchGoal -What "vs the module's own reads (save -c, at once)" -Ratio $ratioParC -Goal '(info)' -Met $true
    Write-Host ('  {0,-58} {1,9}   goal {2,-8} {3}' -f 'extra memory: allocated by one Get-PortForward (max)', ("{0} MB" -f (Format-Number $busyRow.AllocMax '0.0')), '< 50 MB', $(if ($busyRow.AllocMax -lt 50) { 'met' } else { 'NOT met' }))
    Write-Host ('  {0,-58} {1,9}   goal {2,-8} {3}' -f 'extra memory: working-set growth (max)', ("{0} MB" -f (Format-Number $busyRow.WsMax '0.0')), '< 50 MB', $(if ($busyRow.WsMax -lt 50) { 'met' } else { 'NOT met' }))
    Write-Host ('  Get-PortForward minus the module''s own reads (parse, rebuild, output; medians, so noisy): {0} with foreign rules, {1} without' -f (Format-Ms ($busyRow.Get - $busyRow.ParC)), (Format-Ms ($rows[1].Get - $rows[1].ParC)))
}
finally {
    Remove-BenchNamespace -Name $created.ToArray()
    Write-Host "Cleaned up: $($created.Count) namespaces deleted."
}
