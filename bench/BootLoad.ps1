#Requires -Version 7.4
<#
.SYNOPSIS
    Boot of a set of nftables forwards: the unit's `apply.sh start` against a bare `nft -f` of the same
    forwards.nft. Prints ratios measured side by side in one run.

.DESCRIPTION
    The set: -Count forwards of the nftables backend (tcp 203.0.113.1:PORT -> 198.51.100.10:PORT, SNAT to
    198.51.100.1; map forwards, three elements each), rendered by PSNetfilter.Core's BootScript exactly as
    Install-PortForwardService writes them (the script's PSNF_NFT_FILE pointed at this run's copy). Per round, in
    fresh namespaces (psnfb-*), in alternating order:
      (a) boot:  `nsenter --net=/run/netns/NS sh apply.sh start` on an empty namespace (what the unit does at boot:
                 one `nft list table` that fails, then `nft -f forwards.nft`, and the sysctl);
      (b) bare:  `nsenter --net=/run/netns/NS nft -f forwards.nft` on an empty namespace;
      (c) again: `sh apply.sh start` once more over the identical live forwards of (a) (a reload: listing, the
                 throwaway-namespace load that learns nft's printing, the comparison; nothing applied).
    Medians over -Repeat rounds; each run is checked to hold 3 x Count elements (outside the timing). Nothing here
    fails on a time: it prints figures.

.EXAMPLE
    dotnet pwsh -NoProfile -File bench/BootLoad.ps1
.EXAMPLE
    dotnet pwsh -NoProfile -File bench/BootLoad.ps1 -Count 10000 -Repeat 5
#>
[CmdletBinding()]
param(
    [ValidateRange(1, 20000)][int]$Count = 1000,
    [ValidateRange(1, 51)][int]$Repeat = 9,
    # A built module folder; default out/PSNetfilter (built when missing).
    [string]$ModulePath
)

$ErrorActionPreference = 'Stop'
Set-StrictMode -Version 3.0
Import-Module (Join-Path $PSScriptRoot 'BenchCommon.psm1') -Force
$ModulePath = Initialize-Bench -ModulePath $ModulePath -Tool @{ nft = 'nftables'; nsenter = 'util-linux'; unshare = 'util-linux' }
Add-Type -Path (Join-Path $ModulePath 'PSNetfilter.Core.dll')

$machine = Get-BenchMachine
Write-Host '== PSNetfilter boot of nftables forwards =='
Write-BenchMachine -Machine $machine -ModulePath $ModulePath
$nft = Resolve-BenchTool nft
$nsenter = Resolve-BenchTool nsenter
$sh = Resolve-BenchTool sh
Write-Host "nft     : $((Invoke-BenchProcess -FilePath $nft -ArgumentList @('--version')).StdOut.Trim())"
Write-Host "set     : $Count forwards, rounds: $Repeat"
Write-Host ''

$created = [System.Collections.Generic.List[string]]::new()
$tmp = Join-Path ([IO.Path]::GetTempPath()) ("psnfb-boot-{0}" -f [Environment]::ProcessId)
$null = New-Item -ItemType Directory -Force -Path $tmp
try {
    $defs = [System.Collections.Generic.List[System.ValueTuple[PSNetfilter.PortForwardDefinition, string]]]::new()
    foreach ($i in 1..$Count) {
        $d = [PSNetfilter.PortForwardDefinition]::Create("f$i", [PSNetfilter.Protocol]::Tcp, [Net.IPAddress]::Parse('203.0.113.1'), 10000 + $i,
            [Net.IPAddress]::Parse('198.51.100.10'), 10000 + $i, [PSNetfilter.SnatMode]::Snat, [Net.IPAddress]::Parse('198.51.100.1'), $null, $null)
        $defs.Add([System.ValueTuple[PSNetfilter.PortForwardDefinition, string]]::new($d, 'nftables'))
    }
    $set = [PSNetfilter.Core.Persistence.BootSet]::new('psnfbench.service', [NullString]::Value, $defs)
    $paths = [PSNetfilter.Core.Persistence.ServicePaths]::new('/', 'psnfbench.service')
    $nftFile = Join-Path $tmp 'forwards.nft'
    $scriptFile = Join-Path $tmp 'apply.sh'
    foreach ($f in [PSNetfilter.Core.Backends.BootScript]::Files($set)) {
        $text = $f.Item2.Replace("PSNF_NFT_FILE='$($paths.NftFile)'", "PSNF_NFT_FILE='$nftFile'")
        [IO.File]::WriteAllText($(if ($f.Item1 -eq $paths.NftFile) { $nftFile } else { $scriptFile }), $text)
    }
    Write-Host ("files   : forwards.nft {0:n0} lines, apply.sh {1:n0} lines" -f @(Get-Content $nftFile).Count, @(Get-Content $scriptFile).Count)

    function New-Ns([string]$Role) { $n = New-BenchNamespace -Role $Role; $created.Add($n); $n }
    function Remove-Ns([string]$Name) { Remove-BenchNamespace -Name $Name; [void]$created.Remove($Name) }
    function Assert-Loaded([string]$Ns) {
        $json = (Invoke-InBenchNamespace -Namespace $Ns -FilePath $nft -ArgumentList @('-j', 'list', 'table', 'inet', 'psnetfilter')).StdOut
        $n = 0
        foreach ($i in (ConvertFrom-Json $json -Depth 30).nftables) {
            foreach ($k in 'map', 'set') { if ($i.PSObject.Properties[$k] -and $i.$k.PSObject.Properties['elem']) { $n += @($i.$k.elem).Count } }
        }
        if ($n -ne 3 * $Count) { throw "bench: namespace $Ns holds $n elements; expected $(3 * $Count)." }
    }
    function Measure-Boot {
        $ns = New-Ns 'boot'
        $r = Invoke-BenchProcess -FilePath $nsenter -ArgumentList @("--net=/run/netns/$ns", '--', $sh, $scriptFile, 'start') -Check -TimeoutSeconds 600
        if ($r.StdOut -notmatch 'loaded whole') { throw "bench: apply.sh did not take the boot path: $($r.StdOut)" }
        Assert-Loaded $ns
        $again = Invoke-BenchProcess -FilePath $nsenter -ArgumentList @("--net=/run/netns/$ns", '--', $sh, $scriptFile, 'start') -Check -TimeoutSeconds 600
        if ($again.StdOut -notmatch '0 live parts of them replaced') { throw "bench: the second start replaced something: $($again.StdOut)" }
        Assert-Loaded $ns
        Remove-Ns $ns
        @($r.Elapsed.TotalMilliseconds, $again.Elapsed.TotalMilliseconds)
    }
    function Measure-Bare {
        $ns = New-Ns 'bare'
        $r = Invoke-BenchProcess -FilePath $nsenter -ArgumentList @("--net=/run/netns/$ns", '--', $nft, '-f', $nftFile) -Check -TimeoutSeconds 600
        Assert-Loaded $ns
        Remove-Ns $ns
        $r.Elapsed.TotalMilliseconds
    }

    $boot = [System.Collections.Generic.List[double]]::new()
    $again = [System.Collections.Generic.List[double]]::new()
    $bare = [System.Collections.Generic.List[double]]::new()
    $cold = $null
    foreach ($round in 1..$Repeat) {
        if ($round % 2) { $b = Measure-Boot; $bare.Add((Measure-Bare)) } else { $bare.Add((Measure-Bare)); $b = Measure-Boot }
        $boot.Add($b[0]); $again.Add($b[1])
        if (-not $cold) { $cold = @($b[0], $bare[0]) }
    }
    $mb = Get-Median $boot; $ma = Get-Median $again; $mr = Get-Median $bare
    Write-Host ''
    Write-Host ('(a) apply.sh start, empty namespace   median {0,10}   cold {1}' -f (Format-Ms $mb), (Format-Ms $cold[0]))
    Write-Host ('(b) bare nft -f forwards.nft          median {0,10}   cold {1}' -f (Format-Ms $mr), (Format-Ms $cold[1]))
    Write-Host ('(c) apply.sh start over identical     median {0,10}' -f (Format-Ms $ma))
    Write-Host ''
    Write-BenchGoal -What "boot: apply.sh start / bare nft -f ($Count forwards)" -Ratio ($mb / $mr) -Goal '<= 1.2x' -Met (($mb / $mr) -le 1.2)
    Write-BenchGoal -What "reload over identical / bare nft -f (for information)" -Ratio ($ma / $mr) -Goal 'none' -Met $true
}
finally {
    foreach ($n in @($created)) { Remove-BenchNamespace -Name $n }
    Remove-Item -LiteralPath $tmp -Recurse -Force -ErrorAction SilentlyContinue
}
