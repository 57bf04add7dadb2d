<#
    BenchCommon: helpers shared by the bench/*.ps1 scripts.

    - Initialize-Bench: root check, PATH with sbin, quiet children, apt-get install of missing tools,
      import of the built module (built with build.ps1 when out/PSNetfilter is missing).
    - Get-BenchMachine / Write-BenchMachine: the machine the figures were taken on.
    - Invoke-BenchProcess: one process with an exact argument list (never a shell string), a timeout,
      stdout/stderr drained.
    - New-BenchNamespace / Remove-BenchNamespace: bare namespaces named psnfb-<6 hex>-<role>.
    - Get-Median, Format-Ms, Format-Ratio, Write-BenchTable.

    Timing is always taken in-process with System.Diagnostics.Stopwatch. Nothing here asserts a time:
    the scripts print figures and ratios, they never fail on them.
#>

Set-StrictMode -Version 3.0

Import-Module (Join-Path $PSScriptRoot '../tests/support/TestProcess.psm1')

$script:RepoRoot = Split-Path -Parent $PSScriptRoot
$script:Invariant = [System.Globalization.CultureInfo]::InvariantCulture
$script:ChildEnvironment = (Get-TestChildEnvironment) + @{ LC_ALL = 'C' }

function Get-BenchRepoRoot { $script:RepoRoot }

function Resolve-BenchTool {
    param([Parameter(Mandatory)][string]$Name)
    Resolve-TestTool -Name $Name
}

function Invoke-BenchProcess {
    <#
    .SYNOPSIS
        Runs one process (exact argument list) and returns ExitCode, StdOut, StdErr, TimedOut, Elapsed.
        Elapsed is the wall time from start to exit with all output read, taken with a Stopwatch.
    #>
    param(
        [Parameter(Mandatory)][string]$FilePath,
        [string[]]$ArgumentList = @(),
        [string]$StandardInput,
        [double]$TimeoutSeconds = 120,
        [switch]$Check
    )
    Invoke-TestProcess @PSBoundParameters -Environment $script:ChildEnvironment
}

function Invoke-BenchProcessSet {
    <#
    .SYNOPSIS
        Starts several processes at once (each an argument list, first item the program), drains their
        output and waits for all. Returns Elapsed (wall time of the set), ExitCodes and the outputs' lengths.
    #>
    param([Parameter(Mandatory)][object[]]$Command, [double]$TimeoutSeconds = 120)
    $sw = [System.Diagnostics.Stopwatch]::StartNew()
    $procs = foreach ($c in $Command) {
        $psi = [System.Diagnostics.ProcessStartInfo]::new([string]$c[0])
        foreach ($a in @($c | Select-Object -Skip 1)) { $psi.ArgumentList.Add([string]$a) }
        $psi.UseShellExecute = $false
        $psi.RedirectStandardOutput = $true
        $psi.RedirectStandardError = $true
        foreach ($k in $script:ChildEnvironment.Keys) { $psi.Environment[$k] = $script:ChildEnvironment[$k] }
        $p = [System.Diagnostics.Process]::Start($psi)
        [pscustomobject]@{ Process = $p; Out = $p.StandardOutput.ReadToEndAsync(); Err = $p.StandardError.ReadToEndAsync() }
    }
    $codes = @(); $lengths = @()
    foreach ($x in $procs) {
        try {
            if (-not $x.Process.WaitForExit([int]($TimeoutSeconds * 1000))) { try { $x.Process.Kill($true) } catch { } }
            $x.Process.WaitForExit()
            $lengths += $x.Out.GetAwaiter().GetResult().Length
            [void]$x.Err.GetAwaiter().GetResult()
            $codes += $x.Process.ExitCode
        }
        finally { $x.Process.Dispose() }
    }
    $sw.Stop()
    [pscustomobject]@{ Elapsed = $sw.Elapsed; ExitCodes = $codes; OutputLengths = $lengths }
}

function Invoke-InBenchNamespace {
    # ip netns exec NS TOOL ARGS..., checked unless -AllowFailure; returns the process result.
    param(
        [Parameter(Mandatory)][string]$Namespace,
        [Parameter(Mandatory)][string]$FilePath,
        [string[]]$ArgumentList = @(),
        [string]$StandardInput,
        [double]$TimeoutSeconds = 120,
        [switch]$AllowFailure
    )
    $params = @{} + $PSBoundParameters
    $params.Remove('AllowFailure')
    Invoke-TestInNamespace @params -TimeoutSeconds $TimeoutSeconds -Environment $script:ChildEnvironment -Check:(-not $AllowFailure)
}

function Test-BenchIsRoot {
    try { return ((& id -u) -eq '0') } catch { return $false }
}

function Install-BenchPackage {
    <#
    .SYNOPSIS
        apt-get install of the Debian packages whose tools are missing. -Tool maps a command to its package.
    #>
    param([Parameter(Mandatory)][hashtable]$Tool)
    $missing = @($Tool.Keys | Where-Object {
            -not (Get-Command $_ -CommandType Application -ErrorAction SilentlyContinue) -and
            -not (Test-Path -LiteralPath "/usr/sbin/$_") -and -not (Test-Path -LiteralPath "/sbin/$_")
        })
    if ($missing.Count -eq 0) { return }
    $packages = @($missing | ForEach-Object { $Tool[$_] } | Sort-Object -Unique)
    if (-not (Get-Command apt-get -CommandType Application -ErrorAction SilentlyContinue)) {
        throw "bench: missing $($missing -join ', ') and no apt-get to install $($packages -join ' ')."
    }
    Write-Host "bench: installing $($packages -join ' ') (missing: $($missing -join ', '))"
    # Invoke-AptGet (tests/support/TestProcess.psm1) waits, bounded and saying so, for another package manager's lock.
    $update = Invoke-AptGet -ArgumentList @('update')
    if ($update.ExitCode -ne 0) { Write-Warning "apt-get update failed (exit $($update.ExitCode))." }
    $null = Invoke-AptGet -ArgumentList (@('install', '-y', '--no-install-recommends') + $packages) -Check
}

function Initialize-Bench {
    <#
    .SYNOPSIS
        Root check, PATH, tools, and the built module imported into this session. Returns the module folder.
    .PARAMETER ModulePath
        A built module folder (default: out/PSNetfilter of this repository, built with build.ps1 when missing).
    .PARAMETER Tool
        Extra command -> Debian package pairs to install when missing (iperf3 = 'iperf3').
    #>
    param([string]$ModulePath, [hashtable]$Tool = @{})
    $ErrorActionPreference = 'Stop'
    if ($PSVersionTable.Platform -ne 'Unix' -or -not (Test-BenchIsRoot)) {
        throw 'bench: run as root on Linux (network namespaces and iptables need it).'
    }
    foreach ($dir in '/usr/local/sbin', '/usr/sbin', '/sbin') {
        if (($env:PATH -split ':') -notcontains $dir) { $env:PATH = "$env:PATH`:$dir" }
    }
    $env:NO_COLOR = '1'
    if ($PSStyle) { $PSStyle.OutputRendering = 'PlainText' }

    $tools = @{
        ip = 'iproute2'; ss = 'iproute2'; iptables = 'iptables'; 'iptables-save' = 'iptables'; 'iptables-restore' = 'iptables'
        'ip6tables-save' = 'iptables'; sysctl = 'procps'
    }
    foreach ($k in $Tool.Keys) { $tools[$k] = $Tool[$k] }
    Install-BenchPackage -Tool $tools

    if (-not $ModulePath) {
        $ModulePath = Join-Path $script:RepoRoot 'out/PSNetfilter'
        if (-not (Test-Path -LiteralPath (Join-Path $ModulePath 'PSNetfilter.psd1'))) {
            Write-Host 'bench: out/PSNetfilter is missing: building it (build.ps1 Build)'
            $pwsh = Get-TestPwshInvocation
            $r = Invoke-BenchProcess -FilePath $pwsh[0] -ArgumentList (@($pwsh | Select-Object -Skip 1) + @('-NoProfile', '-NonInteractive', '-File', (Join-Path $script:RepoRoot 'build.ps1'), 'Build')) -TimeoutSeconds 600
            if ($r.ExitCode -ne 0) { throw "bench: build.ps1 Build failed:`n$($r.StdOut)`n$($r.StdErr)" }
        }
    }
    $ModulePath = (Resolve-Path -LiteralPath $ModulePath).ProviderPath
    Import-Module (Join-Path $ModulePath 'PSNetfilter.psd1') -Force -Global -ErrorAction Stop
    $leftover = @(Get-BenchNamespaceList | Where-Object { $_ -like 'psnfb*' })
    if ($leftover.Count -gt 0) {
        Write-Warning "Namespaces left by an earlier, interrupted bench run: $($leftover -join ', '). Delete them with 'ip netns delete NAME'."
    }
    $ModulePath
}

function Get-BenchMachine {
    <#
    .SYNOPSIS
        nproc, CPU model, kernel, iptables version and backend, memory, load, PowerShell/.NET, module commit.
    #>
    $cpu = (Get-Content -LiteralPath /proc/cpuinfo -ErrorAction SilentlyContinue | Where-Object { $_ -like 'model name*' } | Select-Object -First 1)
    $cpu = if ($cpu) { ($cpu -split ':', 2)[1].Trim() } else { 'unknown' }
    $ipt = (Invoke-BenchProcess -FilePath (Resolve-BenchTool iptables) -ArgumentList @('-V')).StdOut.Trim()
    $backend = if ($ipt -match 'nf_tables') { 'nf_tables' } elseif ($ipt -match 'legacy') { 'legacy' } else { 'unknown' }
    if ($env:PSNETFILTER_IPTABLES_BACKEND) { $backend += " (PSNETFILTER_IPTABLES_BACKEND=$($env:PSNETFILTER_IPTABLES_BACKEND))" }
    $mem = (Get-Content -LiteralPath /proc/meminfo | Where-Object { $_ -like 'MemTotal*' } | Select-Object -First 1) -replace '\s+', ' '
    $os = 'unknown'
    if (Test-Path -LiteralPath /etc/os-release) {
        $pretty = Get-Content -LiteralPath /etc/os-release | Where-Object { $_ -like 'PRETTY_NAME=*' } | Select-Object -First 1
        if ($pretty) { $os = ($pretty -split '=', 2)[1].Trim('"') }
    }
    $commit = 'unknown'
    $git = Get-Command git -CommandType Application -ErrorAction SilentlyContinue | Select-Object -First 1
    if ($git) {
        $r = Invoke-BenchProcess -FilePath $git.Source -ArgumentList @('-C', $script:RepoRoot, 'describe', '--always', '--dirty')
        if ($r.ExitCode -eq 0) { $commit = $r.StdOut.Trim() }
    }
    [pscustomobject]@{
        Nproc      = [Environment]::ProcessorCount
        Cpu        = $cpu
        Kernel     = (Invoke-BenchProcess -FilePath (Resolve-BenchTool uname) -ArgumentList @('-r')).StdOut.Trim()
        Os         = $os
        Memory     = ($mem -replace '^MemTotal: ', '')
        Iptables   = $ipt
        Backend    = $backend
        PowerShell = $PSVersionTable.PSVersion.ToString()
        Dotnet     = [System.Runtime.InteropServices.RuntimeInformation]::FrameworkDescription
        LoadAvg    = (Get-Content -LiteralPath /proc/loadavg).Trim()
        Commit     = $commit
    }
}

function Write-BenchMachine {
    param([Parameter(Mandatory)]$Machine, [string]$ModulePath)
    Write-Host "Machine : $($Machine.Nproc) CPUs ($($Machine.Cpu)), $($Machine.Memory), kernel $($Machine.Kernel), $($Machine.Os)"
    Write-Host "Netfilter: $($Machine.Iptables), backend $($Machine.Backend)"
    Write-Host "Runtime : PowerShell $($Machine.PowerShell), $($Machine.Dotnet); repository $($Machine.Commit)"
    if ($ModulePath) { Write-Host "Module  : $ModulePath" }
    Write-Host "Load    : $($Machine.LoadAvg) (/proc/loadavg at start; other work on the machine adds noise)"
}

function Get-BenchNamespaceList {
    $r = Invoke-BenchProcess -FilePath (Resolve-BenchTool ip) -ArgumentList @('netns', 'list')
    @($r.StdOut -split "`n" | ForEach-Object { ($_ -split '\s+')[0] } | Where-Object { $_ })
}

function New-BenchNamespace {
    <#
    .SYNOPSIS
        Creates a bare namespace psnfb-<6 hex>-<Role> with loopback up; returns its name.
    #>
    param([Parameter(Mandatory)][ValidatePattern('^[a-z0-9]{1,8}$')][string]$Role)
    $id = -join ([System.Security.Cryptography.RandomNumberGenerator]::GetBytes(3) | ForEach-Object { $_.ToString('x2') })
    $name = "psnfb-$id-$Role"
    $ip = Resolve-BenchTool ip
    [void](Invoke-BenchProcess -FilePath $ip -ArgumentList @('netns', 'add', $name) -Check)
    try {
        [void](Invoke-BenchProcess -FilePath $ip -ArgumentList @('-n', $name, 'link', 'set', 'lo', 'up') -Check)
    }
    catch {
        Remove-BenchNamespace -Name $name
        throw
    }
    $name
}

function Remove-BenchNamespace {
    <#
    .SYNOPSIS
        Kills what still runs inside the namespace (only processes the bench started there) and deletes it.
    #>
    param([string[]]$Name)
    $ip = Resolve-BenchTool ip
    $present = Get-BenchNamespaceList
    foreach ($n in $Name) {
        if (-not $n -or $n -notlike 'psnfb*' -or $present -notcontains $n) { continue }
        $pids = (Invoke-BenchProcess -FilePath $ip -ArgumentList @('netns', 'pids', $n)).StdOut
        foreach ($p in ($pids -split '\s+' | Where-Object { $_ -match '^\d+$' })) {
            Stop-Process -Id ([int]$p) -Force -ErrorAction SilentlyContinue
        }
        $r = Invoke-BenchProcess -FilePath $ip -ArgumentList @('netns', 'delete', $n)
        if ($r.ExitCode -ne 0) { Write-Warning "bench: could not delete namespace ${n}: $($r.StdErr.Trim())" }
    }
}

function Invoke-BenchSeed {
    <#
    .SYNOPSIS
        The seed note's four rules per forward (FORWARD accept both ways, PREROUTING DNAT, POSTROUTING SNAT), one
        iptables process each, run by /bin/sh -e; returns the elapsed milliseconds (sh start included, ~1 ms).
        Each process enters the namespace as the module's own tools do (nsenter --net), so neither side pays more
        per process for the lab than the other. -Verb is -A or -D.
    #>
    param(
        [Parameter(Mandatory)][string]$Namespace, [Parameter(Mandatory)][int[]]$Port, [Parameter(Mandatory)][ValidateSet('-A', '-D')][string]$Verb,
        [Parameter(Mandatory)][string]$ExternalAddress, [Parameter(Mandatory)][string]$InternalAddress, [Parameter(Mandatory)][string]$SnatAddress,
        [Parameter(Mandatory)][string]$WorkDirectory
    )
    $enter = "$(Resolve-BenchTool nsenter) --net=/run/netns/$Namespace"
    $iptables = Resolve-BenchTool iptables
    $lines = foreach ($p in $Port) {
        "$enter $iptables $Verb FORWARD -p tcp -d $InternalAddress --dport $p -j ACCEPT"
        "$enter $iptables $Verb FORWARD -p tcp -s $InternalAddress --sport $p -j ACCEPT"
        "$enter $iptables -t nat $Verb PREROUTING -p tcp -d $ExternalAddress --dport $p -j DNAT --to-destination ${InternalAddress}:$p"
        "$enter $iptables -t nat $Verb POSTROUTING -p tcp -d $InternalAddress --dport $p -j SNAT --to-source $SnatAddress"
    }
    $file = Join-Path $WorkDirectory ("seed-{0}-{1}.sh" -f $Namespace, $Verb.Trim('-'))
    [IO.File]::WriteAllText($file, ($lines -join "`n") + "`n")
    $r = Invoke-BenchProcess -FilePath (Resolve-BenchTool sh) -ArgumentList @('-e', $file) -TimeoutSeconds 1800 -Check
    $r.Elapsed.TotalMilliseconds
}

function Get-Median {
    param([Parameter(Mandatory)][AllowEmptyCollection()][AllowNull()][double[]]$Value)
    $s = @($Value | Where-Object { -not [double]::IsNaN($_) } | Sort-Object)
    if ($s.Count -eq 0) { return [double]::NaN }
    $m = [int][Math]::Floor($s.Count / 2)
    if ($s.Count % 2 -eq 1) { return [double]$s[$m] }
    return ([double]$s[$m - 1] + [double]$s[$m]) / 2
}

function Format-Ms {
    param([double]$Milliseconds)
    if ([double]::IsNaN($Milliseconds)) { return 'n/a' }
    if ($Milliseconds -ge 10000) { return $Milliseconds.ToString('0', $script:Invariant) + ' ms' }
    if ($Milliseconds -ge 100) { return $Milliseconds.ToString('0', $script:Invariant) + ' ms' }
    return $Milliseconds.ToString('0.0', $script:Invariant) + ' ms'
}

function Format-Number {
    param([double]$Value, [string]$Format = '0.00')
    if ([double]::IsNaN($Value) -or [double]::IsInfinity($Value)) { return 'n/a' }
    $Value.ToString($Format, $script:Invariant)
}

function Format-Ratio {
    param([double]$Value)
    if ([double]::IsNaN($Value) -or [double]::IsInfinity($Value)) { return 'n/a' }
    if ($Value -ge 10) { return $Value.ToString('0', $script:Invariant) + 'x' }
    return $Value.ToString('0.00', $script:Invariant) + 'x'
}

function Write-BenchGoal {
    # One line: what was measured, the ratio, the goal and whether it is met. Never throws.
    param([Parameter(Mandatory)][string]$What, [double]$Ratio, [Parameter(Mandatory)][string]$Goal, [bool]$Met)
    $verdict = if ([double]::IsNaN($Ratio)) { 'not measured' } elseif ($Met) { 'met' } else { 'NOT met' }
    Write-Host ('  {0,-58} {1,9}   goal {2,-8} {3}' -f $What, (Format-Ratio $Ratio), $Goal, $verdict)
}

Export-ModuleMember -Function Get-BenchRepoRoot, Invoke-BenchSeed, Resolve-BenchTool, Invoke-BenchProcess, Invoke-BenchProcessSet, Invoke-InBenchNamespace,
    Test-BenchIsRoot, Install-BenchPackage, Initialize-Bench, Get-TestPwshInvocation, Get-BenchMachine, Write-BenchMachine,
    Get-BenchNamespaceList, New-BenchNamespace, Remove-BenchNamespace, Get-Median, Format-Ms, Format-Number, Format-Ratio,
    Write-BenchGoal
