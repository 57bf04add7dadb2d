#Requires -Version 7.4
<#
.SYNOPSIS
    The iptables and the nftables backend side by side, in one run: a pipeline of N forwards, one forward, and
    Get-PortForward beside many foreign rules, against the seed's four iptables processes per forward and a bare
    iptables-save. Prints ratios; nothing here fails on a time.

.DESCRIPTION
    (a) N forwards piped into one New-PortForward -Backend Iptables | Nftables, each run in a fresh namespace,
        the backends alternating (median of -Repeat warm runs, after a warm-up), and the seed's 4 x N iptables
        processes once (Invoke-BenchSeed).
    (b) One New-PortForward per backend, warm, median of -Repeat, vs the seed's 4 calls for one forward.
    (c) Get-PortForward of one namespace holding N forwards of the backend and -ForeignRules generated
        iptables rules of another program, vs a bare `iptables-save` of the same namespace: flat means the
        listing does not grow with the foreign rules.
    Every namespace is psnfb-* and deleted at the end.

.EXAMPLE
    dotnet pwsh -NoProfile -File bench/Backends.ps1
.EXAMPLE
    dotnet pwsh -NoProfile -File bench/Backends.ps1 -Count 200 -Repeat 3
#>
[CmdletBinding()]
param(
    [ValidateRange(1, 5000)][int]$Count = 1000,
    [ValidateRange(1, 21)][int]$Repeat = 5,
    [ValidateRange(0, 100000)][int]$ForeignRules = 20000,
    [string]$ModulePath
)

$ErrorActionPreference = 'Stop'
Set-StrictMode -Version 3.0
Import-Module (Join-Path $PSScriptRoot 'BenchCommon.psm1') -Force
$ModulePath = Initialize-Bench -ModulePath $ModulePath

Write-Host '== PSNetfilter backends benchmark =='
Write-BenchMachine -Machine (Get-BenchMachine) -ModulePath $ModulePath
Write-Host ''

$ext = '203.0.113.1'; $int = '198.51.100.10'; $snat = '198.51.100.1'
$created = [System.Collections.Generic.List[string]]::new()
$tmp = Join-Path ([IO.Path]::GetTempPath()) ("psnfb-backends-{0}" -f [Environment]::ProcessId)
$backends = 'Iptables', 'Nftables'

function New-Ns([string]$Role) { $n = New-BenchNamespace -Role $Role; $created.Add($n); $n }

function Measure-Ms([scriptblock]$Block) {
    $sw = [System.Diagnostics.Stopwatch]::StartNew()
    $null = & $Block
    $sw.Elapsed.TotalMilliseconds
}

function Get-Items([int]$N, [int]$Base) {
    1..$N | ForEach-Object { [pscustomobject]@{ Name = "f$_"; ExternalPort = $Base + $_; InternalAddress = $int; SnatAddress = $snat; ExternalAddress = $ext } }
}

$null = New-Item -ItemType Directory -Force -Path $tmp
try {
    foreach ($b in $backends) {
        # warm-up: JIT both backends' paths
        $w = New-Ns 'warm'
        $null = Get-Items 3 9000 | New-PortForward -NetworkNamespace $w -Backend $b -WarningAction SilentlyContinue
        $null = Get-PortForward -NetworkNamespace $w | Remove-PortForward
    }

    Write-Host "(a) $Count forwards in one pipeline, median of $Repeat warm runs per backend (alternating), vs the seed's $(4 * $Count) iptables processes"
    $items = @(Get-Items $Count 10000)
    $add = @{ Iptables = [Collections.Generic.List[double]]::new(); Nftables = [Collections.Generic.List[double]]::new() }
    for ($i = 0; $i -lt $Repeat; $i++) {
        foreach ($b in $backends) {
            $ns = New-Ns 'bulk'
            $add[$b].Add((Measure-Ms { $items | New-PortForward -NetworkNamespace $ns -Backend $b -WarningAction SilentlyContinue }))
            $got = @(Get-PortForward -NetworkNamespace $ns)
            if ($got.Count -ne $Count -or @($got | Where-Object Backend -ne $b.ToLowerInvariant()).Count -ne 0) { throw "bench: $b holds $($got.Count) forwards; expected $Count." }
            Remove-BenchNamespace -Name $ns
        }
    }
    $nsSeed = New-Ns 'seed'
    $seed = Invoke-BenchSeed -Namespace $nsSeed -Port ([int[]](1..$Count | ForEach-Object { 10000 + $_ })) -Verb '-A' -ExternalAddress $ext -InternalAddress $int -SnatAddress $snat -WorkDirectory $tmp
    $bulk = @{}
    foreach ($b in $backends) {
        $bulk[$b] = Get-Median $add[$b].ToArray()
        Write-Host ('    {0,-9} New-PortForward x{1}  median {2,9}   seed/module {3}' -f $b, $Count, (Format-Ms $bulk[$b]), (Format-Ratio ($seed / $bulk[$b])))
    }
    Write-Host ('    seed      iptables -A x{0}           {1,9}' -f (4 * $Count), (Format-Ms $seed))
    Write-Host ('    iptables / nftables: {0}' -f (Format-Ratio ($bulk.Iptables / $bulk.Nftables)))

    Write-Host ''
    Write-Host "(b) one forward, warm, median of $(3 * $Repeat) per side (alternating)"
    $one = @{}
    $ones = @{ Iptables = New-Ns 'one'; Nftables = New-Ns 'one' }
    $t = @{ Iptables = [Collections.Generic.List[double]]::new(); Nftables = [Collections.Generic.List[double]]::new(); Seed = [Collections.Generic.List[double]]::new() }
    $nsSeedOne = New-Ns 'seed1'
    for ($i = 0; $i -lt 3 * $Repeat; $i++) {
        foreach ($b in $backends) {
            $t[$b].Add((Measure-Ms { New-PortForward -NetworkNamespace $ones[$b] -Name web -ExternalPort 8080 -InternalAddress $int -SnatAddress $snat -ExternalAddress $ext -Backend $b -WarningAction SilentlyContinue }))
            $null = Remove-PortForward web -NetworkNamespace $ones[$b]
        }
        $t.Seed.Add((Invoke-BenchSeed -Namespace $nsSeedOne -Port 8080 -Verb '-A' -ExternalAddress $ext -InternalAddress $int -SnatAddress $snat -WorkDirectory $tmp))
        $null = Invoke-BenchSeed -Namespace $nsSeedOne -Port 8080 -Verb '-D' -ExternalAddress $ext -InternalAddress $int -SnatAddress $snat -WorkDirectory $tmp
    }
    $seedOne = Get-Median $t.Seed.ToArray()
    foreach ($b in $backends) {
        $one[$b] = Get-Median $t[$b].ToArray()
        Write-Host ('    {0,-9} New-PortForward (1)  median {1,9}   module/seed {2}' -f $b, (Format-Ms $one[$b]), (Format-Ratio ($one[$b] / $seedOne)))
    }
    Write-Host ('    seed      4 x iptables -A     median {0,9}' -f (Format-Ms $seedOne))

    if ($ForeignRules -gt 0) {
        Write-Host ''
        Write-Host "(c) Get-PortForward of 100 forwards beside 0 and $ForeignRules foreign iptables rules, median of $(3 * $Repeat), vs a bare iptables-save"
        $iptablesSave = Resolve-BenchTool iptables-save
        $iptablesRestore = Resolve-BenchTool iptables-restore
        foreach ($foreign in 0, $ForeignRules) {
            foreach ($b in $backends) {
                $ns = New-Ns 'list'
                if ($foreign -gt 0) {
                    $rules = [Text.StringBuilder]::new("*filter`n:KUBE-SVC - [0:0]`n")
                    for ($r = 0; $r -lt $foreign; $r++) { $null = $rules.Append("-A KUBE-SVC -d 10.$([int]($r / 65536) % 256).$([int]($r / 256) % 256).$($r % 256)/32 -p tcp --dport 80 -j ACCEPT`n") }
                    $null = $rules.Append("COMMIT`n")
                    $null = Invoke-InBenchNamespace -Namespace $ns -FilePath $iptablesRestore -ArgumentList @('--noflush') -StandardInput $rules.ToString()
                }
                $null = Get-Items 100 20000 | New-PortForward -NetworkNamespace $ns -Backend $b -WarningAction SilentlyContinue
                $get = [Collections.Generic.List[double]]::new(); $save = [Collections.Generic.List[double]]::new()
                for ($i = 0; $i -lt 3 * $Repeat; $i++) {
                    $get.Add((Measure-Ms { Get-PortForward -NetworkNamespace $ns }))
                    $save.Add((Invoke-InBenchNamespace -Namespace $ns -FilePath $iptablesSave).Elapsed.TotalMilliseconds)
                }
                $g = Get-Median $get.ToArray(); $s = Get-Median $save.ToArray()
                Write-Host ('    {0,-9} foreign {1,6}: Get-PortForward {2,9}   iptables-save {3,9}   Get/save {4}' -f $b, $foreign, (Format-Ms $g), (Format-Ms $s), (Format-Ratio ($g / $s)))
                Remove-BenchNamespace -Name $ns
            }
        }
    }
}
finally {
    Remove-BenchNamespace -Name $created.ToArray()
    Remove-Item -LiteralPath $tmp -Recurse -Force -ErrorAction SilentlyContinue
}
