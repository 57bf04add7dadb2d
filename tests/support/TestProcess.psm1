# Process helpers shared by the lab, the test helpers and the benchmarks: one process, an exact argument list
# (never a shell string), bounded in time, with its output captured; the same inside a namespace; and how to
# start a child pwsh; apt-get that waits for another package manager's lock.
Set-StrictMode -Version 3.0

function Resolve-TestTool {
    <#
    .SYNOPSIS
        The full path of a tool, from PATH or the sbin/bin folders (a non-login root shell may lack sbin).
    #>
    param(
        [Parameter(Mandatory)][string]$Name,
        [string]$Hint
    )
    $cmd = Get-Command -Name $Name -CommandType Application -ErrorAction SilentlyContinue | Select-Object -First 1
    if ($cmd) { return $cmd.Source }
    foreach ($dir in '/usr/sbin', '/sbin', '/usr/bin', '/bin', '/usr/local/sbin', '/usr/local/bin') {
        $candidate = Join-Path $dir $Name
        if (Test-Path -LiteralPath $candidate -PathType Leaf) { return $candidate }
    }
    throw "'$Name' was not found.$(if ($Hint) { " $Hint" })"
}

function Invoke-TestProcess {
    <#
    .SYNOPSIS
        Runs one process; returns Command, ExitCode, StdOut, StdErr, Output (both), TimedOut and Elapsed
        (wall time until it exited and all output was read). -Check throws unless it exited 0. -Environment
        adds to (or overrides) the inherited environment.
    #>
    param(
        [Parameter(Mandatory)][string]$FilePath,
        [string[]]$ArgumentList = @(),
        [string]$StandardInput,
        [hashtable]$Environment = @{},
        [string]$WorkingDirectory,
        [double]$TimeoutSeconds = 60,
        [switch]$Check
    )
    $psi = [System.Diagnostics.ProcessStartInfo]::new($(if ($FilePath.Contains('/')) { $FilePath } else { Resolve-TestTool $FilePath }))
    if ($WorkingDirectory) { $psi.WorkingDirectory = $WorkingDirectory }
    foreach ($a in $ArgumentList) { $psi.ArgumentList.Add($a) }
    $psi.UseShellExecute = $false
    $psi.RedirectStandardOutput = $true
    $psi.RedirectStandardError = $true
    $psi.RedirectStandardInput = $true
    foreach ($k in $Environment.Keys) { $psi.Environment[$k] = [string]$Environment[$k] }
    $sw = [System.Diagnostics.Stopwatch]::StartNew()
    $p = [System.Diagnostics.Process]::Start($psi)
    try {
        $out = $p.StandardOutput.ReadToEndAsync()
        $err = $p.StandardError.ReadToEndAsync()
        if ($PSBoundParameters.ContainsKey('StandardInput') -and $null -ne $StandardInput) {
            try { $p.StandardInput.Write($StandardInput) } catch { }
        }
        try { $p.StandardInput.Close() } catch { }
        $timedOut = -not $p.WaitForExit([int]($TimeoutSeconds * 1000))
        if ($timedOut) {
            try { $p.Kill($true) } catch { }
            [void]$p.WaitForExit(5000)
        }
        else {
            $p.WaitForExit()   # flush the async readers
        }
        $stdout = $out.GetAwaiter().GetResult()
        $stderr = $err.GetAwaiter().GetResult()
        $sw.Stop()
        $r = [pscustomobject]@{
            Command  = (@($psi.FileName) + $ArgumentList) -join ' '
            ExitCode = if ($timedOut) { -1 } else { $p.ExitCode }
            StdOut   = $stdout
            StdErr   = $stderr
            Output   = $stdout + $stderr
            TimedOut = $timedOut
            Elapsed  = $sw.Elapsed
        }
    }
    finally {
        $p.Dispose()
    }
    if ($Check -and $r.ExitCode -ne 0) {
        throw "'$($r.Command)' failed (exit $($r.ExitCode)$(if ($r.TimedOut) { ", timed out after $TimeoutSeconds s" })): $($r.Output.Trim())"
    }
    $r
}

function Invoke-TestInNamespace {
    <#
    .SYNOPSIS
        Invoke-TestProcess of `ip netns exec NAMESPACE TOOL ARGS...` (how an admin runs a tool in a namespace).
    #>
    param(
        [Parameter(Mandatory)][string]$Namespace,
        [Parameter(Mandatory)][string]$FilePath,
        [string[]]$ArgumentList = @(),
        [string]$StandardInput,
        [hashtable]$Environment = @{},
        [double]$TimeoutSeconds = 60,
        [switch]$Check
    )
    $params = @{
        FilePath       = (Resolve-TestTool ip)
        ArgumentList   = @('netns', 'exec', $Namespace, $FilePath) + $ArgumentList
        Environment    = $Environment
        TimeoutSeconds = $TimeoutSeconds
        Check          = $Check
    }
    if ($PSBoundParameters.ContainsKey('StandardInput')) { $params.StandardInput = $StandardInput }
    Invoke-TestProcess @params
}

function Get-TestChildEnvironment {
    <#
    .SYNOPSIS
        The environment for child pwsh processes and tools: no colours, telemetry, update checks or banners.
    #>
    @{
        NO_COLOR                    = '1'
        POWERSHELL_TELEMETRY_OPTOUT = '1'
        POWERSHELL_UPDATECHECK      = 'Off'
        DOTNET_CLI_TELEMETRY_OPTOUT = '1'
        DOTNET_NOLOGO               = '1'
    }
}

. (Join-Path $PSScriptRoot '../../build/PwshInvocation.ps1')
. (Join-Path $PSScriptRoot '../../build/AptGet.ps1') # Invoke-AptGet, Get-AptLockHolder (shared with build.ps1)

function Get-TestPwshInvocation {
    # The command line prefix that starts the pwsh running us (see build/PwshInvocation.ps1, shared with build.ps1).
    Get-PwshInvocation
}

Export-ModuleMember -Function Resolve-TestTool, Invoke-TestProcess, Invoke-TestInNamespace, Get-TestChildEnvironment, Get-TestPwshInvocation, Invoke-AptGet, Get-AptLockHolder
