#Requires -Version 7.4
<#
.SYNOPSIS
    Where the time of New-PortForward goes: a pipeline of N forwards and one forward, each in a fresh namespace,
    broken down by the module's own "Timing:" lines of -Debug (binding between items, ProcessRecord, resolve,
    lock and read, plan, script rendering, the nft transaction, record of intent, forwarding check, results,
    check of other tables). Medians of -Repeat warm runs. Nothing here fails on a time.

.EXAMPLE
    dotnet pwsh -NoProfile -File bench/AddProfile.ps1 -Backend Nftables -Count 1000 -Repeat 7
#>
[CmdletBinding()]
param(
    [ValidateRange(1, 20000)][int]$Count = 1000,
    [ValidateRange(1, 21)][int]$Repeat = 7,
    [ValidateSet('Iptables', 'Nftables')][string]$Backend = 'Nftables',
    # Give every namespace the external address 203.0.113.1 (on lo), as a real gateway has it; without it, every
    # forward gets the ExternalAddressNotLocal warning, as in bench/Backends.ps1.
    [switch]$LocalExternalAddress,
    [string]$ModulePath
)

$ErrorActionPreference = 'Stop'
Set-StrictMode -Version 3.0
Import-Module (Join-Path $PSScriptRoot 'BenchCommon.psm1') -Force
$ModulePath = Initialize-Bench -ModulePath $ModulePath

Write-Host '== PSNetfilter New-PortForward profile =='
Write-BenchMachine -Machine (Get-BenchMachine) -ModulePath $ModulePath
Write-Host ''

$created = [System.Collections.Generic.List[string]]::new()
function New-Ns([string]$Role) {
    $n = New-BenchNamespace -Role $Role
    $created.Add($n)
    if ($LocalExternalAddress) { $null = Invoke-BenchProcess -FilePath (Resolve-BenchTool ip) -ArgumentList @('-n', $n, 'addr', 'add', '203.0.113.1/32', 'dev', 'lo') -Check }
    $n
}

function Get-Items([int]$N, [int]$Base) {
    1..$N | ForEach-Object { [pscustomobject]@{ Name = "f$_"; ExternalPort = $Base + $_; InternalAddress = '198.51.100.10'; SnatAddress = '198.51.100.1'; ExternalAddress = '203.0.113.1' } }
}

function Invoke-Profiled([scriptblock]$Block) {
    # Runs the block with -Debug lines captured; returns the wall time and every "Timing:" figure by its label.
    $DebugPreference = 'Continue'
    $sw = [System.Diagnostics.Stopwatch]::StartNew()
    $debug = @(& $Block 5>&1 | Where-Object { $_ -is [System.Management.Automation.DebugRecord] -and $_.Message.StartsWith('Timing:') })
    $sw.Stop()
    $phases = [ordered]@{ 'total (wall)' = $sw.Elapsed.TotalMilliseconds }
    foreach ($d in $debug) {
        $m = $d.Message
        if ($m -match 'item\(s\) in ([\d.]+) ms: ([\d.]+) ms in ProcessRecord') {
            $phases['items: ProcessRecord'] = [double]$Matches[2]
            $phases['items: between (binder, upstream)'] = [double]$Matches[1] - [double]$Matches[2]
            continue
        }
        foreach ($x in [regex]::Matches($m, '([A-Za-z][A-Za-z ,]*?) (?:in )?([\d.]+) ms')) {
            $label = $x.Groups[1].Value.Trim().TrimStart(',').Trim() -replace '^(Timing: )?(\d+ request\(s\): )?', ''
            $phases[$label] = [double]$x.Groups[2].Value
        }
    }
    $phases
}

try {
    $warm = New-Ns 'warm'
    $null = Get-Items 3 9000 | New-PortForward -NetworkNamespace $warm -Backend $Backend -WarningAction SilentlyContinue
    $null = Get-PortForward -NetworkNamespace $warm | Remove-PortForward

    $items = @(Get-Items $Count 10000)
    $bulk = [System.Collections.Generic.List[object]]::new(); $one = [System.Collections.Generic.List[object]]::new()
    $nsOne = New-Ns 'one'
    for ($i = 0; $i -lt $Repeat; $i++) {
        $ns = New-Ns 'bulk'
        $bulk.Add((Invoke-Profiled { $items | New-PortForward -NetworkNamespace $ns -Backend $Backend -WarningAction SilentlyContinue }))
        Remove-BenchNamespace -Name $ns
        for ($k = 0; $k -lt 3; $k++) {
            $one.Add((Invoke-Profiled { New-PortForward -NetworkNamespace $nsOne -Name web -ExternalPort 8080 -InternalAddress 198.51.100.10 -SnatAddress 198.51.100.1 -ExternalAddress 203.0.113.1 -Backend $Backend -WarningAction SilentlyContinue }))
            $null = Remove-PortForward web -NetworkNamespace $nsOne
        }
    }
    foreach ($set in @(@("$Count forwards in one pipeline, median of $Repeat", $bulk), @("one forward, median of $(3 * $Repeat)", $one))) {
        Write-Host "$($set[0]) ($Backend backend):"
        $labels = @($set[1] | ForEach-Object { $_.Keys } | Select-Object -Unique)
        foreach ($l in $labels) {
            $v = @($set[1] | ForEach-Object { if ($_.Contains($l)) { $_[$l] } })
            Write-Host ('    {0,-44} {1,10}' -f $l, (Format-Ms (Get-Median $v)))
        }
        Write-Host ''
    }
    Write-Host "  load average at the end: $((Get-Content -LiteralPath /proc/loadavg).Trim())"
}
finally {
    Remove-BenchNamespace -Name $created.ToArray()
}
