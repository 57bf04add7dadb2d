# build.ps1 and the test and benchmark helpers install packages through Invoke-AptGet (build/AptGet.ps1). While
# another package manager holds the package lock, a plain apt-get fails at once; Invoke-AptGet says that it waits,
# waits a bounded time, and then installs. A real process holds the real dpkg frontend lock here (an fcntl lock,
# as apt and dpkg take it) for a few seconds; the install is of a package that is already installed and marked
# manual, so nothing on the machine changes.

BeforeDiscovery {
    $AptSkipReason = $null
    if ((& id -u) -ne '0') { $AptSkipReason = 'needs root (takes the dpkg lock)' }
    elseif (-not (Get-Command apt-get -CommandType Application -ErrorAction SilentlyContinue) -or -not (Test-Path -LiteralPath /var/lib/dpkg/lock-frontend)) {
        $AptSkipReason = 'needs apt-get and dpkg'
    }
}

Describe 'Invoke-AptGet waits for another package manager' -Skip:([bool]$AptSkipReason) {
    BeforeAll {
        Import-Module (Join-Path $PSScriptRoot '../support/TestProcess.psm1') -Force
        # A package this machine has installed on purpose: re-installing it changes nothing (not even its mark).
        $manual = @((Invoke-TestProcess apt-mark -ArgumentList @('showmanual') -Check).StdOut -split "`n" | ForEach-Object Trim)
        $script:Package = @('iptables', 'iproute2', 'procps', 'util-linux') | Where-Object { $manual -contains $_ } | Select-Object -First 1

        function script:Start-LockHolder([double]$Seconds) {
            # A child pwsh that takes an fcntl write lock on the whole of /var/lib/dpkg/lock-frontend (waiting while
            # someone else has it), prints "locked", holds it for -Seconds and exits (which releases it).
            $script = @"
`$deadline = [DateTime]::UtcNow.AddSeconds(300)
`$fs = [IO.File]::Open('/var/lib/dpkg/lock-frontend', 'Open', 'ReadWrite', 'ReadWrite')
while (`$true) {
    try { `$fs.Lock(0, 0); break } catch [System.IO.IOException] { if ([DateTime]::UtcNow -gt `$deadline) { throw }; Start-Sleep -Milliseconds 200 }
}
[Console]::Out.WriteLine('locked'); [Console]::Out.Flush()
Start-Sleep -Milliseconds $([int]($Seconds * 1000))
"@
            $pwsh = Get-TestPwshInvocation
            $psi = [Diagnostics.ProcessStartInfo]::new($pwsh[0])
            foreach ($a in @($pwsh | Select-Object -Skip 1) + @('-NoProfile', '-NonInteractive', '-Command', $script)) { $psi.ArgumentList.Add($a) }
            $psi.RedirectStandardOutput = $true
            $psi.RedirectStandardError = $true
            $psi.UseShellExecute = $false
            $p = [Diagnostics.Process]::Start($psi)
            $line = $p.StandardOutput.ReadLineAsync()
            if (-not $line.Wait(320000) -or $line.Result -ne 'locked') {
                try { $p.Kill($true) } catch { }
                throw "The lock holder did not take the lock: $($line.Result) $($p.StandardError.ReadToEnd())"
            }
            $p
        }
    }

    It 'a plain apt-get fails at once; Invoke-AptGet says it waits, gives up after its bound, or waits and installs' {
        if (-not $script:Package) { Set-ItResult -Skipped -Because 'none of iptables, iproute2, procps, util-linux is marked manually installed here'; return }
        $holder = Start-LockHolder -Seconds 7
        try {
            $held = [Diagnostics.Stopwatch]::StartNew()
            @(Get-AptLockHolder | Where-Object Path -eq '/var/lib/dpkg/lock-frontend' | ForEach-Object ProcessId) | Should -Contain $holder.Id

            # What build.ps1 did before: apt-get on its own fails at once.
            $plain = Invoke-TestProcess apt-get -ArgumentList @('install', '-y', '--no-install-recommends', $script:Package) -Environment @{ DEBIAN_FRONTEND = 'noninteractive' } -TimeoutSeconds 60
            $plain.ExitCode | Should -Not -Be 0
            $plain.Output | Should -Match '/var/lib/dpkg/lock-frontend'
            $holder.HasExited | Should -BeFalse -Because 'it failed while the lock was still held'

            # With a bound shorter than the hold: a line says it waits, and it gives up after the bound.
            $sw = [Diagnostics.Stopwatch]::StartNew()
            $out = @(Invoke-AptGet -ArgumentList @('install', '-y', '--no-install-recommends', $script:Package) -LockTimeoutSeconds 2 6>&1)
            $sw.Stop()
            $said = @($out | Where-Object { $_ -is [Management.Automation.InformationRecord] } | ForEach-Object { "$($_.MessageData)" })
            $result = @($out | Where-Object { $_ -isnot [Management.Automation.InformationRecord] })
            $said | Should -Contain "    Waiting for the package manager lock (/var/lib/dpkg/lock-frontend is held by process $($holder.Id) ($($holder.ProcessName))), up to 2 s more"
            $result[-1].ExitCode | Should -Not -Be 0
            $sw.Elapsed.TotalSeconds | Should -BeGreaterOrEqual 1.5
            $sw.Elapsed.TotalSeconds | Should -BeLessThan 6
            $holder.HasExited | Should -BeFalse

            # With the default bound: it waits until the holder is gone, then installs.
            $out = @(Invoke-AptGet -ArgumentList @('install', '-y', '--no-install-recommends', $script:Package) 6>&1)
            $held.Stop()
            $said = @($out | Where-Object { $_ -is [Management.Automation.InformationRecord] } | ForEach-Object { "$($_.MessageData)" })
            $result = @($out | Where-Object { $_ -isnot [Management.Automation.InformationRecord] })
            ($said -join "`n") | Should -Match ([regex]::Escape("Waiting for the package manager lock (/var/lib/dpkg/lock-frontend is held by process $($holder.Id)"))
            $result[-1].ExitCode | Should -Be 0 -Because ($said -join "`n")
            ($said -join "`n") | Should -Match "$([regex]::Escape($script:Package)) is already the newest version"
            $holder.WaitForExit(5000) | Should -BeTrue
            $held.Elapsed.TotalSeconds | Should -BeGreaterOrEqual 6 -Because 'it installed only once the holder let go'
        }
        finally {
            if (-not $holder.HasExited) { try { $holder.Kill($true) } catch { } }
            $holder.Dispose()
        }
    }
}
