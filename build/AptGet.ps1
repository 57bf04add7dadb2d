# Dot-sourced by build.ps1 and tests/support/TestProcess.psm1: apt-get that waits, for a bounded time and saying
# so, while another package manager (unattended-upgrades, another apt-get or dpkg) holds the package locks, instead
# of failing at once.

# The locks apt and dpkg take: the frontend and dpkg locks (install, remove), the lists lock (update) and the
# archives lock (downloads). apt and dpkg hold them with fcntl(2) locks on these files.
$script:AptLockFiles = @('/var/lib/dpkg/lock-frontend', '/var/lib/dpkg/lock', '/var/lib/apt/lists/lock', '/var/cache/apt/archives/lock')

function Get-AptLockHolder {
    <#
    .SYNOPSIS
        The package lock files that a process holds now: Path and ProcessId (0 when the kernel does not say, as
        for an open-file-description lock), read from /proc/locks, so the check itself never takes a lock.
    #>
    param([string[]]$Path = $script:AptLockFiles)
    $wanted = @{}
    foreach ($p in $Path) {
        $stat = (Get-Item -LiteralPath $p -ErrorAction SilentlyContinue).UnixStat
        if (-not $stat) { continue }
        # /proc/locks names a file "MAJOR:MINOR:INODE", major and minor in hex (the kernel's new_encode_dev split).
        $dev = [long]$stat.DeviceId
        $key = '{0:x2}:{1:x2}:{2}' -f (($dev -shr 8) -band 0xfff), (($dev -band 0xff) -bor (($dev -shr 12) -band 0xfff00)), $stat.Inode
        $wanted[$key] = $p
    }
    if ($wanted.Count -eq 0 -or -not (Test-Path -LiteralPath /proc/locks)) { return }
    foreach ($line in [IO.File]::ReadAllLines('/proc/locks')) {
        # "1: POSIX  ADVISORY  WRITE 5068 fe:00:408867 0 EOF"; a waiting request is shown as "1: -> POSIX ..." and
        # is not a holder.
        $f = -split $line
        if ($f.Count -lt 6 -or $f[1] -eq '->') { continue }
        if ($wanted.ContainsKey($f[5])) {
            [pscustomobject]@{ Path = $wanted[$f[5]]; ProcessId = [Math]::Max(0, [int]$f[4]) }
        }
    }
}

function Format-AptLockHolder([object[]]$Holder) {
    $first = $Holder[0]
    $who = if ($first.ProcessId -gt 0) {
        $comm = "/proc/$($first.ProcessId)/comm"
        $name = if (Test-Path -LiteralPath $comm) { (Get-Content -LiteralPath $comm -ErrorAction SilentlyContinue | Select-Object -First 1) } else { $null }
        "process $($first.ProcessId)$(if ($name) { " ($name)" })"
    }
    else { 'another process' }
    "$($first.Path) is held by $who"
}

function Invoke-AptGet {
    <#
    .SYNOPSIS
        apt-get ARGS (noninteractive), waiting up to -LockTimeoutSeconds while another package manager holds a
        package lock: a line says what it waits for, then apt-get runs with DPkg::Lock::Timeout set to the time left
        (for the dpkg locks taken between our check and its start); a failure that names a lock file is retried
        while time is left (apt-get update's lists lock has no timeout of its own). Every output line is written to
        the host with -Indent. Returns ExitCode and Output (the lines); -Check throws unless it exited 0.
    #>
    param(
        [Parameter(Mandatory)][string[]]$ArgumentList,
        [int]$LockTimeoutSeconds = 300,
        [string]$Indent = '    ',
        [switch]$Check
    )
    $apt = (Get-Command apt-get -CommandType Application -ErrorAction Stop | Select-Object -First 1).Source
    $deadline = [DateTime]::UtcNow.AddSeconds($LockTimeoutSeconds)
    $said = $null
    $previousFrontend = $env:DEBIAN_FRONTEND
    $env:DEBIAN_FRONTEND = 'noninteractive'
    try {
        while ($true) {
            $held = @(Get-AptLockHolder)
            $left = [int][Math]::Ceiling(($deadline - [DateTime]::UtcNow).TotalSeconds)
            if ($held.Count -gt 0 -and $left -gt 0) {
                $what = Format-AptLockHolder $held
                if ($what -ne $said) {
                    Write-Host "${Indent}Waiting for the package manager lock ($what), up to $left s more"
                    $said = $what
                }
                Start-Sleep -Milliseconds 500
                continue
            }
            $argv = @('-o', "DPkg::Lock::Timeout=$([Math]::Max(0, $left))") + $ArgumentList
            Write-Host "${Indent}apt-get $($argv -join ' ')"
            $lines = [System.Collections.Generic.List[string]]::new()
            & $apt @argv 2>&1 | ForEach-Object { $line = "$_"; $lines.Add($line); Write-Host "${Indent}$line" }
            $code = $LASTEXITCODE
            $lockFailure = $code -ne 0 -and (@($lines | Where-Object { $l = $_; @($script:AptLockFiles | Where-Object { $l.Contains($_) }).Count -gt 0 }).Count -gt 0)
            if ($lockFailure -and [DateTime]::UtcNow -lt $deadline) {
                Write-Host "${Indent}Waiting for the package manager lock (apt-get could not take it), up to $([int]($deadline - [DateTime]::UtcNow).TotalSeconds) s more"
                $said = $null
                Start-Sleep -Seconds 1
                continue
            }
            $result = [pscustomobject]@{ ExitCode = $code; Output = $lines.ToArray() }
            if ($Check -and $code -ne 0) {
                throw "'apt-get $($ArgumentList -join ' ')' failed with exit code $code$(if ($lockFailure) { " (the package manager lock was still held after $LockTimeoutSeconds s)" })."
            }
            return $result
        }
    }
    finally {
        $env:DEBIAN_FRONTEND = $previousFrontend
    }
}
