# Process helpers shared by the lab, the test helpers and the benchmarks: one process, an exact argument list
# (never a shell string), bounded in time, with its output captured.
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
        (wall time until it exited and all output was read). -Check throws unless it exited 0.
    #>
    param(
        [Parameter(Mandatory)][string]$FilePath,
        [string[]]$ArgumentList = @(),
        [string]$StandardInput,
        [hashtable]$Environment = @{},
        [double]$TimeoutSeconds = 60,
        [switch]$Check
    )
    $psi = [System.Diagnostics.ProcessStartInfo]::new($(if ($FilePath.Contains('/')) { $FilePath } else { Resolve-TestTool $FilePath }))
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

Export-ModuleMember -Function Resolve-TestTool, Invoke-TestProcess
