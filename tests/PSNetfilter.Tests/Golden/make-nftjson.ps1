<#
.SYNOPSIS
    Regenerates the golden `nft -j list ruleset` dumps in Golden/nftjson/ from the real-gateway lab.

.DESCRIPTION
    For each scenario of tests/pester/gateways/GatewayLab.psm1 (firewalld, libvirt, Docker, ufw, nftables.service
    with the stock and with a hand-written ruleset) this boots the cached Debian trixie gateway image (built by
    debootstrap on first use) into a fresh namespace h5l<id>-gw, starts the component, makes the lab's two
    forwards (TCP 8080 and UDP 5353 from 198.51.100.1 to the server) with the built module, and writes what the
    gateway's own nft prints:

        nftjson/<scenario>.json    nft -j list ruleset
        nftjson/<scenario>.nft     nft list ruleset

    Scenarios with a reload or restart (nftables-stock, firewalld-iptables, docker) also get
    <scenario>-<after>.json/.nft, taken after it. The files are exactly nft's output (the JSON on one line).
    Every namespace, overlay mount and container is removed afterwards, also on failure.

    Run as root from the repository root after ./build.ps1 Build:
        dotnet pwsh -NoProfile -NonInteractive -File tests/PSNetfilter.Tests/Golden/make-nftjson.ps1
.PARAMETER Scenario
    Only these scenarios (default: all).
.PARAMETER ModulePath
    The built module folder (default: out/PSNetfilter).
#>
[CmdletBinding()]
param(
    [string[]]$Scenario,
    [string]$ModulePath = (Join-Path $PSScriptRoot '../../../out/PSNetfilter')
)

$ErrorActionPreference = 'Stop'
Set-StrictMode -Version 3.0
foreach ($dir in '/usr/local/sbin', '/usr/sbin', '/sbin') {
    if (($env:PATH -split ':') -notcontains $dir) { $env:PATH = "$env:PATH`:$dir" }
}
Import-Module (Join-Path $ModulePath 'PSNetfilter.psd1') -Force
Import-Module (Join-Path $PSScriptRoot '../../pester/gateways/GatewayLab.psm1') -Force

$outDir = Join-Path $PSScriptRoot 'nftjson'
$null = New-Item -ItemType Directory -Force -Path $outDir
# -File passes "a,b" as one string.
$names = if ($Scenario) { @($Scenario -split "," | ForEach-Object { $_.Trim() } | Where-Object { $_ }) } else { Get-H5lScenario }

function Save-Ruleset($lab, [string]$baseName) {
    [IO.File]::WriteAllText((Join-Path $outDir "$baseName.json"), (Get-H5lNftRuleset -Lab $lab -Json))
    [IO.File]::WriteAllText((Join-Path $outDir "$baseName.nft"), (Get-H5lNftRuleset -Lab $lab))
    Write-Host "wrote nftjson/$baseName.json and .nft"
}

foreach ($name in $names) {
    $lab = $null
    try {
        $sw = [Diagnostics.Stopwatch]::StartNew()
        $lab = New-H5lScenario -Name $name
        Save-Ruleset $lab $name
        if ($lab.Scenario.After) {
            & $lab.Scenario.After.Action $lab
            Save-Ruleset $lab "$name-$($lab.Scenario.After.Name)"
        }
        Write-Host ("{0}: {1:n0} s" -f $name, $sw.Elapsed.TotalSeconds)
    }
    finally {
        Remove-H5lGatewayLab -Lab $lab
    }
}
