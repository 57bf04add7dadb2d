<#
.SYNOPSIS
    Shows PSNetfilter forwarding a port on a gateway, inside a throw-away lab.

.DESCRIPTION
    Builds a lab of three network namespaces (client, gateway, server; see
    tests/lab/PSNetfilterLab.psm1), starts a small HTTP server on the server, and shows that
    the client cannot reach it until New-PortForward publishes it on the gateway's external
    address. Everything happens inside the lab's namespaces: the host's own network and
    firewall are never touched. Needs root, iproute2 and iptables.

    Exit code 0 when the fetch through the forward worked (and stopped working after
    Remove-PortForward), 1 otherwise.

.PARAMETER ModulePath
    Folder of the built module (default: out/PSNetfilter, made by ./build.ps1 Build).

.EXAMPLE
    dotnet tool restore && dotnet pwsh -NoProfile -File ./build.ps1 Demo
#>
[CmdletBinding()]
param(
    [string]$ModulePath = (Join-Path $PSScriptRoot '../out/PSNetfilter')
)

$ErrorActionPreference = 'Stop'
Set-StrictMode -Version 3.0

$repoRoot = (Resolve-Path (Join-Path $PSScriptRoot '..')).ProviderPath
$port = 8080

function Write-Step([string]$Message) {
    Write-Host ''
    Write-Host "### $Message" -ForegroundColor Cyan
}

function Write-Detail([string]$Message) {
    Write-Host "    $Message"
}

function Show-Probe([string]$What, $Result) {
    if ($Result.Success) {
        Write-Detail "$What -> $($Result.Reply)"
    }
    else {
        Write-Detail "$What -> no answer ($($Result.Error))"
    }
}

$manifest = Join-Path $ModulePath 'PSNetfilter.psd1'
if (-not (Test-Path -LiteralPath $manifest)) {
    Write-Host "PSNetfilter is not built: '$manifest' does not exist. Run ./build.ps1 Build first."
    exit 1
}
if ((& id -u) -ne '0') {
    Write-Host 'The demo creates network namespaces and firewall rules inside them: run it as root.'
    exit 1
}

Import-Module (Join-Path $repoRoot 'tests/lab/PSNetfilterLab.psm1') -Force

$lab = $null
$ok = $false
try {
    Write-Step 'Building a lab: client --- gateway --- server (three network namespaces)'
    $lab = New-PSNetfilterLab -Prefix 'psnf-demo-'
    Write-Detail "client  $($lab.Client): $($lab.ClientAddress)  (only knows 203.0.113.0/24)"
    Write-Detail "gateway $($lab.Gateway): external $($lab.GatewayExternalAddress), internal $($lab.GatewayInternalAddress)"
    Write-Detail "server  $($lab.Server): $($lab.ServerAddress)  (default route via the gateway)"

    Write-Step "Starting a web server on the server, port $port"
    $server = Start-PSNetfilterLabServer -Lab $lab -TcpPort $port
    Write-Detail "listening (pid $($server.ProcessId))"

    Write-Step 'The client cannot reach the server directly: it has no route to 198.51.100.0/24'
    $before = Invoke-PSNetfilterLabProbe -Lab $lab -Target @(
        @{ Protocol = 'Http'; Address = $lab.ServerAddress; Port = $port }
        @{ Protocol = 'Http'; Address = $lab.GatewayExternalAddress; Port = $port })
    Show-Probe "client: GET http://$($lab.ServerAddress):$port/" $before[0]
    Show-Probe "client: GET http://$($lab.GatewayExternalAddress):$port/" $before[1]
    if ($before[0].Success -or $before[1].Success) { throw 'The lab is broken: the client reached the server without a forward.' }

    Write-Step 'Import-Module PSNetfilter'
    Import-Module $manifest -Force
    Get-Command -Module PSNetfilter | Format-Table CommandType, Name, Version -AutoSize | Out-Host

    Write-Step "New-PortForward -Name web -ExternalAddress $($lab.GatewayExternalAddress) -ExternalPort $port -InternalAddress $($lab.ServerAddress) -NetworkNamespace $($lab.Gateway) -Verbose"
    $forward = New-PortForward -Name web -ExternalAddress $lab.GatewayExternalAddress -ExternalPort $port `
        -InternalAddress $lab.ServerAddress -NetworkNamespace $lab.Gateway -Verbose
    $forward | Format-List | Out-Host

    Write-Step "The client fetches http://$($lab.GatewayExternalAddress):$port/ through the gateway"
    $through = Invoke-PSNetfilterLabProbe -Lab $lab -Protocol Http -Address $lab.GatewayExternalAddress -Port $port -Detailed -TimeoutSeconds 5
    Show-Probe "client: GET http://$($lab.GatewayExternalAddress):$port/" $through
    if ($through.Success) {
        Write-Detail "The server saw the gateway's internal address ($($lab.GatewayInternalAddress)), not the client's:"
        Write-Detail 'the forward also source-NATs, so replies go back through the gateway.'
    }

    Write-Step "Get-PortForward -NetworkNamespace $($lab.Gateway)"
    Get-PortForward -NetworkNamespace $lab.Gateway | Format-Table -AutoSize | Out-Host

    Write-Step "The gateway's rules (iptables-save in $($lab.Gateway), counters stripped)"
    (Get-PSNetfilterLabDump -Namespace $lab.Gateway) -split "`n" | ForEach-Object { Write-Detail $_ }

    Write-Step "Remove-PortForward -Name web -NetworkNamespace $($lab.Gateway)"
    Remove-PortForward -Name web -NetworkNamespace $lab.Gateway
    $left = @(Get-PortForward -NetworkNamespace $lab.Gateway)
    Write-Detail "forwards left: $($left.Count)"

    Write-Step 'The client can no longer reach the server'
    $after = Invoke-PSNetfilterLabProbe -Lab $lab -Protocol Http -Address $lab.GatewayExternalAddress -Port $port -Detailed
    Show-Probe "client: GET http://$($lab.GatewayExternalAddress):$port/" $after

    $ok = $through.Success -and -not $after.Success
    Write-Host ''
    if ($ok) {
        Write-Host 'Demo finished: the forward worked while it existed, and only then.' -ForegroundColor Green
    }
    elseif (-not $through.Success) {
        Write-Host 'Demo FAILED: the fetch through the forward did not work.' -ForegroundColor Red
    }
    else {
        Write-Host 'Demo FAILED: the server was still reachable after Remove-PortForward.' -ForegroundColor Red
    }
}
catch {
    Write-Host ''
    Write-Host "Demo FAILED: $($_.Exception.Message)" -ForegroundColor Red
    if ($_.InvocationInfo) { Write-Host $_.InvocationInfo.PositionMessage }
    $ok = $false
}
finally {
    if ($lab) {
        Write-Step 'Cleaning up the lab'
        Remove-PSNetfilterLab -Lab $lab
        Write-Detail "namespaces $($lab.Namespaces -join ', ') deleted"
    }
}

exit ([int](-not $ok))
