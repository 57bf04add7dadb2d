<#
    A child process for tests/pester/Reliability.Tests.ps1: imports the module, says it is ready, waits for
    a start barrier (a file), then pipes every item of -ItemsFile into ONE New-PortForward (or
    Remove-PortForward) call for -Namespace, and writes what happened to -ResultFile as JSON:
    { Pid, Mode, StartTicks, EndTicks, Output: [{Name, Change}], Errors: [{Id, Message}], Terminating }.
    StartTicks/EndTicks are UTC ticks right after the barrier and right after the call.
#>
[CmdletBinding()]
param(
    [Parameter(Mandatory)][string]$ModulePath,
    [Parameter(Mandatory)][string]$Namespace,
    [Parameter(Mandatory)][ValidateSet('Add', 'Remove')][string]$Mode,
    [Parameter(Mandatory)][string]$ItemsFile,
    [Parameter(Mandatory)][string]$ResultFile,
    [string]$ReadyFile,
    [string]$BarrierFile,
    [int]$BarrierTimeoutSeconds = 180
)

$ErrorActionPreference = 'Stop'
Set-StrictMode -Version 3.0
$result = [ordered]@{
    Pid         = $PID
    Mode        = $Mode
    StartTicks  = 0L
    EndTicks    = 0L
    Output      = @()
    Errors      = @()
    Terminating = $null
}
$exit = 0
try {
    Import-Module (Join-Path $ModulePath 'PSNetfilter.psd1')
    $items = @(Get-Content -Raw -LiteralPath $ItemsFile | ConvertFrom-Json)
    # Warm up (JIT, backend detection, one read of the namespace: Get-PortForward takes no lock) so that
    # after the barrier all processes reach the read-plan-apply cycle at nearly the same moment.
    # Only with a barrier: without one (the lock tests) nothing may run before the call itself.
    $null = Get-Command New-PortForward, Remove-PortForward
    if ($BarrierFile) { $null = Get-PortForward -NetworkNamespace $Namespace -WarningAction SilentlyContinue }
    if ($ReadyFile) { [IO.File]::WriteAllText($ReadyFile, "$PID") }
    if ($BarrierFile) {
        $deadline = [DateTime]::UtcNow.AddSeconds($BarrierTimeoutSeconds)
        while (-not [IO.File]::Exists($BarrierFile)) {
            if ([DateTime]::UtcNow -gt $deadline) { throw "The start barrier $BarrierFile did not appear within $BarrierTimeoutSeconds s." }
            [Threading.Thread]::Sleep(2)
        }
    }
    $result.StartTicks = [DateTime]::UtcNow.Ticks
    $errs = $null
    $out = if ($Mode -eq 'Add') {
        @($items | New-PortForward -NetworkNamespace $Namespace -ErrorVariable errs -ErrorAction SilentlyContinue)
    }
    else {
        @($items | Remove-PortForward -NetworkNamespace $Namespace -PassThru -ErrorVariable errs -ErrorAction SilentlyContinue)
    }
    $result.EndTicks = [DateTime]::UtcNow.Ticks
    $result.Output = @($out | ForEach-Object { [ordered]@{ Name = $_.Name; Change = "$($_.Change)" } })
    $result.Errors = @($errs | Where-Object { $_ } | ForEach-Object { [ordered]@{ Id = "$($_.FullyQualifiedErrorId)"; Message = "$_" } })
}
catch {
    $result.EndTicks = [DateTime]::UtcNow.Ticks
    $result.Terminating = "[$($_.FullyQualifiedErrorId)] $_"
    $exit = 1
}
finally {
    [IO.File]::WriteAllText($ResultFile, ($result | ConvertTo-Json -Depth 5))
}
exit $exit
