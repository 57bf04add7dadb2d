#Requires -Version 7.4
<#
.SYNOPSIS
    Batching benchmark: a pipeline of forwards as one kernel transaction per family, against the seed's
    four iptables processes per forward. Prints ratios measured side by side in one run.

.DESCRIPTION
    (a) Bulk. In a fresh namespace each:
          module: 1..N | % { [pscustomobject]@{...} } | New-PortForward -NetworkNamespace $ns
                  (the session's first such pipeline, reported on its own since the JIT is still compiling
                  PowerShell's binder and the module; then -BulkRepeat warm runs, each in its own fresh
                  namespace, spread around the seed's; median)
          seed:   4 x N `nsenter --net=/run/netns/NS iptables ...` processes, entering the namespace the
                  way the module does (FORWARD accept both ways, PREROUTING
                  DNAT, POSTROUTING SNAT: the rules of the seed note), run by /bin/sh
        then removal: Get-PortForward | Remove-PortForward  vs  4 x N `iptables -D`.
    (b) Single. Median of -Repeat: one New-PortForward (and one Remove-PortForward) in a warm session
        vs the seed's 4 iptables calls (and 4 deletes) for one forward, alternating, each side in its own
        fresh namespace. Also reported: the same New-PortForward from a fresh pwsh process (start-up and
        module import included), which is what a one-off shell command costs.

    Module timings are taken in this process with a Stopwatch around the cmdlet call, after a warm-up
    call (JIT), so pwsh start-up is NOT included in (a) and (b); the seed timings are the wall time of
    the /bin/sh that runs its iptables processes. Every namespace is named psnfb-* and deleted at the
    end (try/finally). Nothing here fails on a time: it prints figures.

.EXAMPLE
    cd /work/main && dotnet pwsh -NoProfile -File bench/Batching.ps1
.EXAMPLE
    dotnet pwsh -NoProfile -File bench/Batching.ps1 -Count 200 -Repeat 9
#>
[CmdletBinding()]
param(
    # Forwards in the bulk test (a).
    [ValidateRange(1, 5000)][int]$Count = 1000,
    # Module runs of the bulk test (a), each in a fresh namespace; the median is reported (the seed runs once).
    [ValidateRange(1, 21)][int]$BulkRepeat = 5,
    # Iterations of the single-forward test (b); the median is reported.
    [ValidateRange(1, 101)][int]$Repeat = 15,
    # Fresh-process runs of the single New-PortForward (start-up included); 0 skips them.
    [ValidateRange(0, 20)][int]$ColdRepeat = 3,
    # A built module folder; default out/PSNetfilter (built when missing).
    [string]$ModulePath
)

$ErrorActionPreference = 'Stop'
Set-StrictMode -Version 3.0
Import-Module (Join-Path $PSScriptRoot 'BenchCommon.psm1') -Force
$ModulePath = Initialize-Bench -ModulePath $ModulePath

$machine = Get-BenchMachine
Write-Host '== PSNetfilter batching benchmark =='
Write-BenchMachine -Machine $machine -ModulePath $ModulePath
Write-Host ''

$ext = '203.0.113.1'
$int = '198.51.100.10'
$snat = '198.51.100.1'
$iptablesSave = Resolve-BenchTool iptables-save
$created = [System.Collections.Generic.List[string]]::new()
$tmp = Join-Path ([IO.Path]::GetTempPath()) ("psnfb-batching-{0}" -f [Environment]::ProcessId)

function New-Ns([string]$Role) {
    $n = New-BenchNamespace -Role $Role
    $created.Add($n)
    $n
}

function Invoke-Seed([string]$Ns, [int[]]$Ports, [string]$Verb) {
    Invoke-BenchSeed -Namespace $Ns -Port $Ports -Verb $Verb -ExternalAddress $ext -InternalAddress $int -SnatAddress $snat -WorkDirectory $tmp
}

function Get-RuleCount([string]$Ns, [string]$Pattern) {
    # Rules in the namespace's IPv4 ruleset (every table) whose line matches $Pattern.
    $text = (Invoke-InBenchNamespace -Namespace $Ns -FilePath $iptablesSave).StdOut
    @($text -split "`n" | Where-Object { $_.StartsWith('-A ') -and $_ -match $Pattern }).Count
}

function New-Item1([int]$Port, [string]$Name) {
    [pscustomobject]@{ Name = $Name; ExternalPort = $Port; InternalAddress = $int; SnatAddress = $snat; ExternalAddress = $ext }
}

function Measure-Ms([scriptblock]$Block) {
    $sw = [System.Diagnostics.Stopwatch]::StartNew()
    $null = & $Block
    $sw.Stop()
    $sw.Elapsed.TotalMilliseconds
}

$null = New-Item -ItemType Directory -Force -Path $tmp
try {
    # ---- warm-up: JIT the module's paths once (also reported: the first call of a session) ----
    $warm = New-Ns 'warm'
    $firstNew = Measure-Ms { New-PortForward -NetworkNamespace $warm -Name w1 -ExternalPort 9001 -InternalAddress $int -SnatAddress $snat -ExternalAddress $ext -WarningAction SilentlyContinue }
    $firstGet = Measure-Ms { Get-PortForward -NetworkNamespace $warm }
    $firstRemove = Measure-Ms { Remove-PortForward -NetworkNamespace $warm -Name w1 }
    1..3 | ForEach-Object {
        $null = @(New-Item1 9002 w2; New-Item1 9003 w3) | New-PortForward -NetworkNamespace $warm -WarningAction SilentlyContinue
        $null = Get-PortForward -NetworkNamespace $warm | Remove-PortForward
    }

    # ---- (a) bulk ----
    Write-Host "(a) $Count forwards: one pipeline vs the seed's $(4 * $Count) iptables processes"
    Write-Host "    module: the session's first pipeline of $Count, then the median of $BulkRepeat warm runs, each in a fresh namespace, spread before, between and after the seed's runs"
    $ports = [int[]](1..$Count | ForEach-Object { 10000 + $_ })
    $items = @($ports | ForEach-Object { New-Item1 $_ "f$_" })
    $bulkAdd = [System.Collections.Generic.List[double]]::new()
    $bulkRemove = [System.Collections.Generic.List[double]]::new()
    $bulkRun = {
        $ns = New-Ns 'mod'
        $sw = [System.Diagnostics.Stopwatch]::StartNew()
        $out = @($items | New-PortForward -NetworkNamespace $ns -WarningAction SilentlyContinue)
        $sw.Stop()
        $moduleRules = Get-RuleCount $ns 'psnf:v1:'
        if ($out.Count -ne $Count -or $moduleRules -ne 3 * $Count) {
            throw "bench: New-PortForward returned $($out.Count) forwards and wrote $moduleRules tagged rules; expected $Count and $(3 * $Count)."
        }
        $bulkAdd.Add($sw.Elapsed.TotalMilliseconds)
        $sw = [System.Diagnostics.Stopwatch]::StartNew()
        $null = Get-PortForward -NetworkNamespace $ns | Remove-PortForward
        $sw.Stop()
        $left = Get-RuleCount $ns 'psnf|PSNF'
        if ($left -ne 0) { throw "bench: $left module rules left after Get-PortForward | Remove-PortForward." }
        $bulkRemove.Add($sw.Elapsed.TotalMilliseconds)
        Remove-BenchNamespace -Name $ns
    }
    # The session's first pipeline of $Count: PowerShell's binder and this module's code are still being
    # compiled (tiered JIT) while it runs. Reported on its own; the median below is of warm runs.
    & $bulkRun
    $firstBulkAdd = $bulkAdd[0]; $firstBulkRemove = $bulkRemove[0]
    $bulkAdd.Clear(); $bulkRemove.Clear()
    $before = [int][Math]::Ceiling($BulkRepeat / 2)
    for ($i = 0; $i -lt $before - 1; $i++) { & $bulkRun }
    $nsSeed = New-Ns 'seed'
    $seedAdd = Invoke-Seed -Ns $nsSeed -Ports $ports -Verb '-A'
    $seedRules = Get-RuleCount $nsSeed '.'
    if ($seedRules -ne 4 * $Count) { throw "bench: the seed wrote $seedRules rules; expected $(4 * $Count)." }
    & $bulkRun
    $seedRemove = Invoke-Seed -Ns $nsSeed -Ports $ports -Verb '-D'
    $left = Get-RuleCount $nsSeed '.'
    if ($left -ne 0) { throw "bench: $left seed rules left after the deletes." }
    for ($i = $before; $i -lt $BulkRepeat; $i++) { & $bulkRun }
    $moduleAdd = Get-Median $bulkAdd.ToArray()
    $moduleRemove = Get-Median $bulkRemove.ToArray()
    $range = { param($l) '(runs: {0})' -f ((@($l) | ForEach-Object { (Format-Ms $_) -replace ' ms', '' }) -join ', ') + ' ms' }
    Write-Host ('    module  New-PortForward x{0,-5} first of session {1,8}  (then Get | Remove {2})' -f $Count, (Format-Ms $firstBulkAdd), (Format-Ms $firstBulkRemove))
    Write-Host ('    module  New-PortForward x{0,-5}            median {1,8}  {2}' -f $Count, (Format-Ms $moduleAdd), (& $range $bulkAdd))
    Write-Host ('    seed    iptables -A x{0,-5}                      {1,8}  ({2} rules)' -f (4 * $Count), (Format-Ms $seedAdd), $seedRules)
    Write-Host ('    module  Get-PortForward | Remove-PortForward median {0,8}  {1}' -f (Format-Ms $moduleRemove), (& $range $bulkRemove))
    Write-Host ('    seed    iptables -D x{0,-5}                      {1,8}' -f (4 * $Count), (Format-Ms $seedRemove))

    # ---- (b) single forward, warm ----
    Write-Host ''
    Write-Host "(b) one forward, warm session, median of $Repeat (alternating module / seed)"
    $nsOne = New-Ns 'one'
    $nsSeedOne = New-Ns 'seed1'
    $mAdd = [System.Collections.Generic.List[double]]::new()
    $mRemove = [System.Collections.Generic.List[double]]::new()
    $sAdd = [System.Collections.Generic.List[double]]::new()
    $sRemove = [System.Collections.Generic.List[double]]::new()
    for ($i = 0; $i -lt $Repeat; $i++) {
        $mAdd.Add((Measure-Ms { New-PortForward -NetworkNamespace $nsOne -Name web -ExternalPort 8080 -InternalAddress $int -SnatAddress $snat -ExternalAddress $ext -WarningAction SilentlyContinue }))
        $mRemove.Add((Measure-Ms { Remove-PortForward -NetworkNamespace $nsOne -Name web }))
        $sAdd.Add((Invoke-Seed -Ns $nsSeedOne -Ports 8080 -Verb '-A'))
        $sRemove.Add((Invoke-Seed -Ns $nsSeedOne -Ports 8080 -Verb '-D'))
    }
    if ((Get-RuleCount $nsOne 'psnf|PSNF') -ne 0 -or (Get-RuleCount $nsSeedOne '.') -ne 0) { throw 'bench: rules left after the single-forward runs.' }
    $mAddMed = Get-Median $mAdd.ToArray(); $mRemoveMed = Get-Median $mRemove.ToArray()
    $sAddMed = Get-Median $sAdd.ToArray(); $sRemoveMed = Get-Median $sRemove.ToArray()
    Write-Host ('    module  New-PortForward (1)         median {0,9}  (min {1}, max {2})' -f (Format-Ms $mAddMed), (Format-Ms ($mAdd | Measure-Object -Minimum).Minimum), (Format-Ms ($mAdd | Measure-Object -Maximum).Maximum))
    Write-Host ('    seed    4 x iptables -A             median {0,9}  (min {1}, max {2})' -f (Format-Ms $sAddMed), (Format-Ms ($sAdd | Measure-Object -Minimum).Minimum), (Format-Ms ($sAdd | Measure-Object -Maximum).Maximum))
    Write-Host ('    module  Remove-PortForward (1)      median {0,9}  (min {1}, max {2})' -f (Format-Ms $mRemoveMed), (Format-Ms ($mRemove | Measure-Object -Minimum).Minimum), (Format-Ms ($mRemove | Measure-Object -Maximum).Maximum))
    Write-Host ('    seed    4 x iptables -D             median {0,9}  (min {1}, max {2})' -f (Format-Ms $sRemoveMed), (Format-Ms ($sRemove | Measure-Object -Minimum).Minimum), (Format-Ms ($sRemove | Measure-Object -Maximum).Maximum))

    # Where the time of one New-PortForward goes: replay the processes it runs (taken from -Verbose), timed
    # alone, in the same order (the reads at once, as the module runs them; a family without module chains is
    # listed in-process instead of read, which -Verbose says and the replay leaves out).
    $anatomy = $null
    $v = @(New-PortForward -NetworkNamespace $nsOne -Name web -ExternalPort 8080 -InternalAddress $int -SnatAddress $snat -ExternalAddress $ext -WarningAction SilentlyContinue -Verbose 4>&1)
    $vr = @(Remove-PortForward -NetworkNamespace $nsOne -Name web -Verbose 4>&1)
    $running = @($v | Where-Object { $_ -is [System.Management.Automation.VerboseRecord] -and $_.Message -like 'Running: *' } | ForEach-Object { $_.Message.Substring(9) })
    $payloadOf = {
        param($records)
        $m = @($records | Where-Object { $_ -is [System.Management.Automation.VerboseRecord] -and $_.Message -match '^\S*restore payload \(IPv4\):' } | Select-Object -First 1)
        if ($m.Count -eq 0) { return $null }
        (($m[0].Message -split "`n" | Select-Object -Skip 1) -join "`n") + "`n"
    }
    $addPayload = & $payloadOf $v
    $removePayload = & $payloadOf $vr
    if ($running.Count -gt 0 -and $addPayload -and $removePayload -and -not ($running | Where-Object { $_ -match "'" })) {
        $nsAnat = New-Ns 'anat'
        $cmds = @($running | ForEach-Object { , @(($_ -split ' ') | ForEach-Object { if ($_ -eq $nsOne) { $nsAnat } else { $_ } }) })
        $saves = @($cmds | Where-Object { ($_ -join ' ') -match '-save' })
        $restores = @($cmds | Where-Object { ($_ -join ' ') -match '-restore' })
        $others = @($cmds | Where-Object { ($_ -join ' ') -notmatch '-save|-restore' })
        $tSave = [System.Collections.Generic.List[double]]::new(); $tRestore = [System.Collections.Generic.List[double]]::new(); $tOther = [System.Collections.Generic.List[double]]::new()
        for ($i = 0; $i -lt $Repeat; $i++) {
            $tSave.Add((Invoke-BenchProcessSet -Command $saves).Elapsed.TotalMilliseconds)
            $ms = 0.0
            foreach ($c in $restores) { $ms += (Invoke-BenchProcess -FilePath $c[0] -ArgumentList @($c | Select-Object -Skip 1) -StandardInput $addPayload -Check).Elapsed.TotalMilliseconds }
            $tRestore.Add($ms)
            $ms = 0.0
            foreach ($c in $others) { $ms += (Invoke-BenchProcess -FilePath $c[0] -ArgumentList @($c | Select-Object -Skip 1) -Check).Elapsed.TotalMilliseconds }
            $tOther.Add($ms)
            foreach ($c in $restores) { [void](Invoke-BenchProcess -FilePath $c[0] -ArgumentList @($c | Select-Object -Skip 1) -StandardInput $removePayload -Check) }
        }
        $anatomy = [pscustomobject]@{
            Processes = $running.Count
            Save      = Get-Median $tSave.ToArray()
            Restore   = Get-Median $tRestore.ToArray()
            Other     = Get-Median $tOther.ToArray()
            OtherText = (@($others | ForEach-Object { ($_ | Select-Object -Last 3) -join ' ' }) -join '; ')
        }
        $sum = $anatomy.Save + $anatomy.Restore + $anatomy.Other
        $readText = if ($saves.Count -eq 1) { 'the read ({0})' -f (($saves[0] | Select-Object -Last 2) -join ' ') } else { 'the {0} reads at once' -f $saves.Count }
        $listed = @($v | Where-Object { $_ -is [System.Management.Automation.VerboseRecord] -and $_.Message -like 'Listed the * chains in-process*' }).Count
        $listedText = if ($listed) { " (plus $listed family listed in-process, not replayed)" } else { '' }
        Write-Host ('    anatomy of New-PortForward (1): {0} processes{1}; replayed alone (median of {2}): {3} {4}, iptables-restore {5}, then {6} ({7}); sum {8} of the {9} measured' -f
            $anatomy.Processes, $listedText, $Repeat, $readText, (Format-Ms $anatomy.Save), (Format-Ms $anatomy.Restore), (Format-Ms $anatomy.Other), $anatomy.OtherText, (Format-Ms $sum), (Format-Ms $mAddMed))
    }

    $coldMed = [double]::NaN
    if ($ColdRepeat -gt 0) {
        $pwsh = Get-TestPwshInvocation
        $psd1 = Join-Path $ModulePath 'PSNetfilter.psd1'
        $cold = [System.Collections.Generic.List[double]]::new()
        for ($i = 0; $i -lt $ColdRepeat; $i++) {
            $cmd = "`$ErrorActionPreference='Stop'; Import-Module '$psd1'; `$null = New-PortForward -NetworkNamespace $nsOne -Name web -ExternalPort 8080 -InternalAddress $int -SnatAddress $snat -ExternalAddress $ext -WarningAction SilentlyContinue"
            $r = Invoke-BenchProcess -FilePath $pwsh[0] -ArgumentList (@($pwsh | Select-Object -Skip 1) + @('-NoProfile', '-NonInteractive', '-Command', $cmd)) -TimeoutSeconds 120 -Check
            $cold.Add($r.Elapsed.TotalMilliseconds)
            Remove-PortForward -NetworkNamespace $nsOne -Name web
        }
        $coldMed = Get-Median $cold.ToArray()
        Write-Host ('    module  fresh pwsh + Import-Module + New-PortForward (1): median {0} of {1} (start-up included)' -f (Format-Ms $coldMed), $ColdRepeat)
    }
    Write-Host ('    module  first New / Get / Remove of this session (JIT, before warm-up): {0} / {1} / {2}' -f (Format-Ms $firstNew), (Format-Ms $firstGet), (Format-Ms $firstRemove))

    # ---- summary ----
    Write-Host ''
    Write-Host 'Ratios (seed time / module time; higher is better for the module):'
    $rAdd = $seedAdd / $moduleAdd
    $rRemove = $seedRemove / $moduleRemove
    $rOne = $sAddMed / $mAddMed
    $rOneRemove = $sRemoveMed / $mRemoveMed
    Write-BenchGoal -What "add $Count (pipeline vs $(4 * $Count) iptables -A)" -Ratio $rAdd -Goal '>= 50x' -Met ($rAdd -ge 50)
    Write-Host ('  {0,-58} {1,9}   (JIT still compiling; for information)' -f "add $Count, the session's first pipeline", (Format-Ratio ($seedAdd / $firstBulkAdd)))
    Write-BenchGoal -What "remove $Count (Get | Remove vs $(4 * $Count) iptables -D)" -Ratio $rRemove -Goal '>= 50x' -Met ($rRemove -ge 50)
    Write-BenchGoal -What 'add 1, warm (New-PortForward vs 4 iptables -A)' -Ratio $rOne -Goal '>= 1x' -Met ($rOne -ge 1)
    Write-BenchGoal -What 'remove 1, warm (Remove-PortForward vs 4 iptables -D)' -Ratio $rOneRemove -Goal '(none)' -Met $true
    if (-not [double]::IsNaN($coldMed)) {
        Write-Host ('  {0,-58} {1,9}   (pwsh start-up included; for information)' -f 'add 1, fresh pwsh process vs 4 iptables -A', (Format-Ratio ($sAddMed / $coldMed)))
    }
    Write-Host ('  per forward: module {0} / seed {1} (add), module {2} / seed {3} (remove)' -f (Format-Ms ($moduleAdd / $Count)), (Format-Ms ($seedAdd / $Count)), (Format-Ms ($moduleRemove / $Count)), (Format-Ms ($seedRemove / $Count)))
}
finally {
    Remove-BenchNamespace -Name $created.ToArray()
    Remove-Item -LiteralPath $tmp -Recurse -Force -ErrorAction SilentlyContinue
    Write-Host "Cleaned up: all $($created.Count) namespaces this run created are deleted."
}
