<#
    Helpers for tests/pester/Persistence.Tests.ps1: processes with exact argument lists, throw-away
    network namespaces (psnfp-<random>), iptables dumps for comparison, and a real boot of a minimal
    Debian image with systemd-nspawn (rootfs cached outside the repository, an overlay per boot).

    Everything these helpers create is named psnfp-* and is removed by the matching Remove-* helper,
    which is safe to call more than once and with $null.
#>

Set-StrictMode -Version 3.0

Import-Module (Join-Path $PSScriptRoot '../../support/TestProcess.psm1')

$script:CacheRoot = '/var/cache/psnetfilter-test'

#region processes

function Resolve-PsnfpTool {
    param([Parameter(Mandatory)][string]$Name)
    Resolve-TestTool -Name $Name
}

function Invoke-PsnfpProcess {
    <#
    .SYNOPSIS
        Runs one process with an exact argument list; returns ExitCode, StdOut, StdErr, Output (both), TimedOut.
    #>
    param(
        [Parameter(Mandatory)][string]$FilePath,
        [string[]]$ArgumentList = @(),
        [string]$StandardInput,
        [hashtable]$Environment = @{},
        [double]$TimeoutSeconds = 60,
        [switch]$Check
    )
    $merged = @{ LC_ALL = 'C' }
    foreach ($k in $Environment.Keys) { $merged[$k] = $Environment[$k] }
    $PSBoundParameters['Environment'] = $merged
    Invoke-TestProcess @PSBoundParameters
}

#endregion

#region namespaces and dumps

function New-PsnfpNamespace {
    <# .SYNOPSIS Creates an empty network namespace psnfp-<8 hex>[-Suffix] with loopback up; returns its name. #>
    param([string]$Suffix)
    $name = 'psnfp-' + (-join ([System.Security.Cryptography.RandomNumberGenerator]::GetBytes(4) | ForEach-Object { $_.ToString('x2') }))
    if ($Suffix) { $name += "-$Suffix" }
    Invoke-PsnfpProcess ip -ArgumentList @('netns', 'add', $name) -Check | Out-Null
    Invoke-PsnfpProcess ip -ArgumentList @('-n', $name, 'link', 'set', 'lo', 'up') -Check | Out-Null
    $name
}

function Remove-PsnfpNamespace {
    <# .SYNOPSIS Kills what still runs in the namespaces and deletes them (psnfp-* names only). #>
    param([AllowNull()][AllowEmptyCollection()][string[]]$Name)
    foreach ($n in @($Name | Where-Object { $_ })) {
        if ($n -notlike 'psnfp*') { throw "Refusing to delete namespace '$n': not a psnfp test namespace." }
        if (-not (Test-Path -LiteralPath "/run/netns/$n")) { continue }
        $pids = (Invoke-PsnfpProcess ip -ArgumentList @('netns', 'pids', $n)).StdOut
        foreach ($p in ($pids -split '\s+' | Where-Object { $_ -match '^\d+$' })) {
            Stop-Process -Id ([int]$p) -Force -ErrorAction SilentlyContinue
        }
        Invoke-PsnfpProcess ip -ArgumentList @('netns', 'delete', $n) | Out-Null
    }
}

function Get-PsnfpDump {
    <#
    .SYNOPSIS
        iptables-save of the given tables of both families in a namespace, comments and counters stripped,
        as one string. -NoModule drops the module's lines (PSNF chains, rules in them, jumps to them).
    #>
    param(
        [Parameter(Mandatory)][string]$Namespace,
        [string[]]$Table = @('raw', 'mangle', 'nat', 'filter'),
        [ValidateSet('IPv4', 'IPv6')][string[]]$Family = @('IPv4', 'IPv6'),
        [switch]$NoModule
    )
    $parts = foreach ($f in $Family) {
        $tool = if ($f -eq 'IPv6') { 'ip6tables-save' } else { 'iptables-save' }
        foreach ($t in $Table) {
            $r = Invoke-PsnfpProcess ip -ArgumentList @('netns', 'exec', $Namespace, (Resolve-PsnfpTool $tool), '-t', $t) -Check
            $lines = $r.StdOut -split "`r?`n" | Where-Object { $_ -and -not $_.StartsWith('#') } | ForEach-Object {
                $_ -replace '^\[\d+:\d+\]\s+', '' -replace '\s*\[\d+:\d+\]\s*$', ''
            }
            if ($NoModule) { $lines = $lines | Where-Object { $_ -notmatch 'PSNF-' } }
            "### $f $t"
            $lines
        }
    }
    ($parts -join "`n")
}

function Get-PsnfpModuleLines {
    <# .SYNOPSIS The module's lines (PSNF-) of one family's nat and filter tables, as an array. #>
    param([Parameter(Mandatory)][string]$Namespace, [ValidateSet('IPv4', 'IPv6')][string]$Family = 'IPv4')
    @((Get-PsnfpDump -Namespace $Namespace -Table nat, filter -Family $Family) -split "`n" | Where-Object { $_ -match 'PSNF-' })
}

function Get-PsnfpTaggedCount {
    <# .SYNOPSIS How many rules are tagged with forward NAME (psnf:v1:NAME:...) in a namespace, both families. #>
    param([Parameter(Mandatory)][string]$Namespace, [Parameter(Mandatory)][string]$Name)
    $dump = Get-PsnfpDump -Namespace $Namespace -Table nat, filter
    @($dump -split "`n" | Where-Object { $_.Contains("psnf:v1:${Name}:") }).Count
}

#endregion

#region systemd-analyze

function Test-PsnfpUnitFile {
    <#
    .SYNOPSIS
        systemd-analyze verify --man=no of a unit file; returns ExitCode and Output (empty when clean).
    .DESCRIPTION
        Without -Root the file is copied into a temporary folder under its own name and checked against this
        machine (ExecStart= programs must exist here). With -Root, -Path is the unit's path inside the image
        (/etc/systemd/system/NAME.service) and everything is checked inside it.
    #>
    param([Parameter(Mandatory)][string]$Path, [string]$Root)
    if ($Root) {
        $r = Invoke-PsnfpProcess systemd-analyze -ArgumentList @('verify', '--man=no', "--root=$Root", $Path) -TimeoutSeconds 60
        return [pscustomobject]@{ ExitCode = $r.ExitCode; Output = $r.Output.Trim() }
    }
    $dir = Join-Path ([IO.Path]::GetTempPath()) ('psnfp-verify-' + [guid]::NewGuid().ToString('n'))
    $null = New-Item -ItemType Directory -Path $dir
    try {
        $copy = Join-Path $dir (Split-Path -Leaf $Path)
        Copy-Item -LiteralPath $Path -Destination $copy
        $r = Invoke-PsnfpProcess systemd-analyze -ArgumentList @('verify', '--man=no', $copy) -TimeoutSeconds 60
        [pscustomobject]@{ ExitCode = $r.ExitCode; Output = $r.Output.Trim() }
    }
    finally {
        Remove-Item -LiteralPath $dir -Recurse -Force -ErrorAction SilentlyContinue
    }
}

#endregion

#region tools

function Install-PsnfpPackage {
    <#
    .SYNOPSIS
        apt-get install -y of the packages whose command is missing (as root); throws when it cannot.
        -Command maps command -> package.
    #>
    param([Parameter(Mandatory)][hashtable]$Command)
    $missing = @($Command.Keys | Where-Object { -not (Get-Command $_ -ErrorAction SilentlyContinue) -and -not (Test-Path "/usr/sbin/$_") -and -not (Test-Path "/usr/bin/$_") } | ForEach-Object { $Command[$_] } | Select-Object -Unique)
    if ($missing.Count -eq 0) { return }
    if ((& id -u) -ne '0') { throw "Missing packages $($missing -join ', '): install them as root (apt-get install -y $($missing -join ' '))." }
    $env:DEBIAN_FRONTEND = 'noninteractive'
    $r = Invoke-PsnfpProcess apt-get -ArgumentList (@('install', '-y', '--no-install-recommends') + $missing) -TimeoutSeconds 600
    if ($r.ExitCode -ne 0) {
        Invoke-PsnfpProcess apt-get -ArgumentList @('update') -TimeoutSeconds 600 -Check | Out-Null
        Invoke-PsnfpProcess apt-get -ArgumentList (@('install', '-y', '--no-install-recommends') + $missing) -TimeoutSeconds 600 -Check | Out-Null
    }
}

#endregion

#region the image

function Get-PsnfpAptSource {
    <#
    .SYNOPSIS The Debian mirror and suite apt uses here (deb822 .sources or one-line .list files).
    #>
    $release = @{}
    foreach ($line in Get-Content -LiteralPath /etc/os-release) {
        if ($line -match '^([A-Z_]+)=(.*)$') { $release[$Matches[1]] = $Matches[2].Trim('"') }
    }
    $suite = $release['VERSION_CODENAME']
    if (-not $suite) { throw 'Cannot tell the Debian suite from /etc/os-release (VERSION_CODENAME).' }
    $files = @(Get-Item -Path /etc/apt/sources.list, /etc/apt/sources.list.d/*.sources, /etc/apt/sources.list.d/*.list -ErrorAction SilentlyContinue)
    foreach ($file in $files) {
        $text = Get-Content -LiteralPath $file.FullName -Raw
        if (-not $text) { continue }
        if ($file.Name.EndsWith('.sources')) {
            foreach ($stanza in ($text -split "(\r?\n){2,}")) {
                $uri = [regex]::Match($stanza, '(?m)^URIs:\s*(\S+)').Groups[1].Value
                $suites = [regex]::Match($stanza, '(?m)^Suites:\s*(.+)$').Groups[1].Value -split '\s+'
                if ($uri -and ($suites -contains $suite) -and $uri -match '/debian/?$') { return [pscustomobject]@{ Mirror = $uri; Suite = $suite } }
            }
        }
        else {
            foreach ($m in [regex]::Matches($text, '(?m)^\s*deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)')) {
                if ($m.Groups[2].Value -eq $suite -and $m.Groups[1].Value -match '/debian/?$') { return [pscustomobject]@{ Mirror = $m.Groups[1].Value; Suite = $suite } }
            }
        }
    }
    [pscustomobject]@{ Mirror = 'http://deb.debian.org/debian'; Suite = $suite }
}

function Get-PsnfpRootfs {
    <#
    .SYNOPSIS
        A minimal Debian rootfs with systemd, dbus, iptables, nftables, iproute2 and procps, built once with
        debootstrap (--variant=minbase) under /var/cache/psnetfilter-test, outside the repository. It is built in
        a temporary folder and renamed when complete, so an interrupted build is never reused. nftables.service
        is installed but not enabled (Debian does not enable it); a test that wants it enables it in its overlay.
    #>
    $src = Get-PsnfpAptSource
    $final = Join-Path $script:CacheRoot "rootfs-$($src.Suite)-nft"
    $complete = { param($dir) (Test-Path -LiteralPath "$dir/usr/lib/systemd/systemd") -and (Test-Path -LiteralPath "$dir/usr/sbin/iptables") -and (Test-Path -LiteralPath "$dir/usr/sbin/nft") -and (Test-Path -LiteralPath "$dir/etc/os-release") }
    if ((Test-Path -LiteralPath $final) -and (& $complete $final)) { return $final }
    $null = New-Item -ItemType Directory -Force -Path $script:CacheRoot
    # Leftovers of interrupted builds are never used; remove them.
    Get-ChildItem -LiteralPath $script:CacheRoot -Directory -Filter ".rootfs-$($src.Suite)-nft.tmp.*" -Force -ErrorAction SilentlyContinue |
        ForEach-Object { Remove-Item -LiteralPath $_.FullName -Recurse -Force -ErrorAction SilentlyContinue }
    if (Test-Path -LiteralPath $final) { Remove-Item -LiteralPath $final -Recurse -Force }
    $tmp = Join-Path $script:CacheRoot (".rootfs-$($src.Suite)-nft.tmp." + [guid]::NewGuid().ToString('n').Substring(0, 8))
    $null = New-Item -ItemType Directory -Path $tmp
    try {
        $r = Invoke-PsnfpProcess debootstrap -TimeoutSeconds 900 -ArgumentList @(
            '--variant=minbase', '--include=systemd,systemd-sysv,dbus,iptables,nftables,iproute2,procps',
            $src.Suite, "$tmp/rootfs", $src.Mirror)
        if ($r.ExitCode -ne 0 -or -not (& $complete "$tmp/rootfs")) {
            throw "debootstrap of $($src.Suite) from $($src.Mirror) failed (exit $($r.ExitCode)): $(($r.Output -split "`n" | Select-Object -Last 15) -join "`n")"
        }
        Move-Item -LiteralPath "$tmp/rootfs" -Destination $final
    }
    finally {
        Remove-Item -LiteralPath $tmp -Recurse -Force -ErrorAction SilentlyContinue
    }
    $final
}

function New-PsnfpOverlay {
    <#
    .SYNOPSIS
        A writable copy of the rootfs for one boot: an overlay mount (lower = the cached rootfs) in a new
        temporary folder, or a reflink/plain copy when overlayfs is not available. Returns Dir, Root, Mounted.
    #>
    param([Parameter(Mandatory)][string]$Rootfs)
    $dir = Join-Path ([IO.Path]::GetTempPath()) ('psnfp-boot-' + [guid]::NewGuid().ToString('n').Substring(0, 8))
    $null = New-Item -ItemType Directory -Path "$dir/upper", "$dir/work", "$dir/merged"
    $r = Invoke-PsnfpProcess mount -ArgumentList @('-t', 'overlay', 'overlay', '-o', "lowerdir=$Rootfs,upperdir=$dir/upper,workdir=$dir/work", "$dir/merged")
    if ($r.ExitCode -eq 0) {
        return [pscustomobject]@{ Dir = $dir; Root = "$dir/merged"; Mounted = $true }
    }
    Write-Warning "overlay mount failed ($($r.Output.Trim())): copying the rootfs instead."
    Remove-Item -LiteralPath "$dir/merged" -Force
    Invoke-PsnfpProcess cp -ArgumentList @('-a', '--reflink=auto', $Rootfs, "$dir/merged") -TimeoutSeconds 300 -Check | Out-Null
    [pscustomobject]@{ Dir = $dir; Root = "$dir/merged"; Mounted = $false }
}

function Remove-PsnfpOverlay {
    <# .SYNOPSIS Unmounts (retrying, lazily as a last resort) and deletes a boot overlay. #>
    param([AllowNull()]$Overlay)
    if (-not $Overlay) { return }
    if ($Overlay.Mounted) {
        for ($i = 0; $i -lt 20 -and (Test-PsnfpMounted $Overlay.Root); $i++) {
            Invoke-PsnfpProcess umount -ArgumentList @($Overlay.Root) | Out-Null
            if (Test-PsnfpMounted $Overlay.Root) { Start-Sleep -Milliseconds 250 }
        }
        if (Test-PsnfpMounted $Overlay.Root) { Invoke-PsnfpProcess umount -ArgumentList @('-l', $Overlay.Root) | Out-Null }
    }
    if (-not (Test-PsnfpMounted $Overlay.Root)) {
        Remove-Item -LiteralPath $Overlay.Dir -Recurse -Force -ErrorAction SilentlyContinue
    }
}

function Test-PsnfpMounted {
    param([Parameter(Mandatory)][string]$Path)
    $escaped = $Path -replace ' ', '\040'
    [bool](Get-Content -LiteralPath /proc/mounts | Where-Object { ($_ -split ' ')[1] -eq $escaped -or ($_ -split ' ')[1].StartsWith("$escaped/") })
}

#endregion

#region the container

function Start-PsnfpContainer {
    <#
    .SYNOPSIS
        Boots the image with systemd-nspawn into an existing named network namespace and waits until its
        systemd reports running (or degraded). Returns NspawnPid, SystemdPid, Log, State.
    .DESCRIPTION
        systemd is not PID 1 on the test machine, so nspawn gets --register=no --keep-unit. The namespace is
        joined with --network-namespace-path, so the container needs CAP_NET_ADMIN for iptables, and
        SYSTEMD_NSPAWN_API_VFS_WRITABLE=network so /proc/sys/net is writable (the unit sets ip_forward). The
        container's systemd is the child of nspawn whose exe is /usr/lib/systemd/systemd; it is polled with
        `nsenter -t PID -a systemctl is-system-running` (bounded) rather than systemctl --wait.
    #>
    param(
        [Parameter(Mandatory)][string]$Root,
        [Parameter(Mandatory)][string]$Namespace,
        [Parameter(Mandatory)][string]$LogPath,
        # Read-only bind mounts, HOST:CONTAINER.
        [string[]]$Bind = @(),
        [double]$TimeoutSeconds = 90
    )
    $nspawn = Resolve-PsnfpTool systemd-nspawn
    $psi = [System.Diagnostics.ProcessStartInfo]::new('/bin/sh')
    $machine = 'psnfp-' + [guid]::NewGuid().ToString('n').Substring(0, 8)
    foreach ($a in @('-c', 'log="$1"; shift; exec "$@" >"$log" 2>&1 </dev/null', 'sh', $LogPath,
            $nspawn, '-q', '-b', '-D', $Root, "--machine=$machine", '--register=no', '--keep-unit',
            "--network-namespace-path=/run/netns/$Namespace", '--capability=CAP_NET_ADMIN', '--console=passive') + @($Bind | ForEach-Object { "--bind-ro=$_" })) {
        $psi.ArgumentList.Add($a)
    }
    $psi.UseShellExecute = $false
    $psi.Environment['SYSTEMD_NSPAWN_API_VFS_WRITABLE'] = 'network'
    $proc = [System.Diagnostics.Process]::Start($psi)
    $container = [pscustomobject]@{ NspawnPid = $proc.Id; SystemdPid = $null; Log = $LogPath; State = $null; Process = $proc }
    $deadline = [DateTime]::UtcNow.AddSeconds($TimeoutSeconds)
    while (-not $container.SystemdPid) {
        if ($proc.HasExited) { throw "systemd-nspawn exited with code $($proc.ExitCode): $(Get-Content -LiteralPath $LogPath -Raw -ErrorAction SilentlyContinue)" }
        if ([DateTime]::UtcNow -gt $deadline) { throw "The container's systemd did not appear within $TimeoutSeconds s." }
        foreach ($child in Get-ChildItem -Path /proc -Directory -ErrorAction SilentlyContinue | Where-Object Name -Match '^\d+$') {
            try {
                $status = [IO.File]::ReadAllText("/proc/$($child.Name)/status")
                if ($status -notmatch "(?m)^PPid:\s+$($proc.Id)\s*$") { continue }
                $exe = (Get-Item -LiteralPath "/proc/$($child.Name)/exe" -Force).LinkTarget
                if ($exe -and $exe.EndsWith('/usr/lib/systemd/systemd')) { $container.SystemdPid = [int]$child.Name; break }
            }
            catch { }
        }
        if (-not $container.SystemdPid) { Start-Sleep -Milliseconds 100 }
    }
    while ($true) {
        $r = Invoke-PsnfpContainer -Container $container -ArgumentList @('systemctl', 'is-system-running') -TimeoutSeconds 10
        $state = $r.StdOut.Trim()
        if ($state -in 'running', 'degraded') { $container.State = $state; break }
        if ($proc.HasExited) { throw "The container stopped while booting (state '$state'): $(Get-Content -LiteralPath $LogPath -Raw -ErrorAction SilentlyContinue)" }
        if ([DateTime]::UtcNow -gt $deadline) { throw "The container did not finish booting within $TimeoutSeconds s (state '$state')." }
        Start-Sleep -Milliseconds 200
    }
    $container
}

function Invoke-PsnfpContainer {
    <# .SYNOPSIS Runs a command in all namespaces of the container's systemd (nsenter -t PID -a). #>
    param([Parameter(Mandatory)]$Container, [Parameter(Mandatory)][string[]]$ArgumentList, [double]$TimeoutSeconds = 60, [switch]$Check)
    Invoke-PsnfpProcess nsenter -ArgumentList (@('-t', "$($Container.SystemdPid)", '-a') + $ArgumentList) -TimeoutSeconds $TimeoutSeconds -Check:$Check
}

function Get-PsnfpPwshBinds {
    <#
    .SYNOPSIS
        The bind mounts that let the container run the pwsh running this test and the built module
        (read-only, under /opt/psnfp), and the command line that starts that pwsh inside the container.
    #>
    param([Parameter(Mandatory)][string]$ModulePath)
    $processPath = [Environment]::ProcessPath
    $binds = [System.Collections.Generic.List[string]]::new()
    $binds.Add("$((Resolve-Path -LiteralPath $ModulePath).ProviderPath):/opt/psnfp/PSNetfilter")
    $binds.Add("$($PSHOME):/opt/psnfp/pwsh")
    if ([IO.Path]::GetFileNameWithoutExtension($processPath) -eq 'dotnet') {
        $binds.Add("$(Split-Path -Parent $processPath):/opt/psnfp/dotnet")
        $command = @('/opt/psnfp/dotnet/dotnet', '/opt/psnfp/pwsh/pwsh.dll')
    }
    else {
        $command = @('/opt/psnfp/pwsh/pwsh')
    }
    [pscustomobject]@{ Bind = $binds.ToArray(); Command = $command; Module = '/opt/psnfp/PSNetfilter/PSNetfilter.psd1' }
}

function Invoke-PsnfpContainerPwsh {
    <#
    .SYNOPSIS
        Runs a PowerShell script inside the container (its systemd, its file system, its namespaces) and returns
        what the script's last pipeline output as objects (JSON between markers), with the raw output.
    #>
    param([Parameter(Mandatory)]$Container, [Parameter(Mandatory)]$Pwsh, [Parameter(Mandatory)][string]$Script, [double]$TimeoutSeconds = 180)
    $wrapped = "`$ErrorActionPreference = 'Stop'; Import-Module '$($Pwsh.Module)'; `$psnfpResult = & { $Script }; '<<<PSNFP-JSON'; ConvertTo-Json -InputObject `$psnfpResult -Depth 4 -Compress; 'PSNFP-JSON>>>'"
    $argList = @('/usr/bin/env', 'HOME=/root', 'DOTNET_SYSTEM_GLOBALIZATION_INVARIANT=1', 'NO_COLOR=1', 'POWERSHELL_TELEMETRY_OPTOUT=1',
        'POWERSHELL_UPDATECHECK=Off', 'DOTNET_CLI_TELEMETRY_OPTOUT=1') + $Pwsh.Command + @('-NoProfile', '-NonInteractive', '-Command', $wrapped)
    $r = Invoke-PsnfpContainer -Container $Container -ArgumentList $argList -TimeoutSeconds $TimeoutSeconds
    $m = [regex]::Match($r.StdOut, '<<<PSNFP-JSON\r?\n(.*)\r?\nPSNFP-JSON>>>', 'Singleline')
    if ($r.ExitCode -ne 0 -or -not $m.Success) {
        throw "pwsh in the container failed (exit $($r.ExitCode)): $($r.Output)"
    }
    [pscustomobject]@{ Result = ($m.Groups[1].Value | ConvertFrom-Json); Output = $r.Output }
}

function Stop-PsnfpContainer {
    <#
    .SYNOPSIS
        Powers the container off (systemctl poweroff, which runs the units' ExecStop), waits for nspawn to
        exit, and kills it when it does not. Returns $true when it shut down cleanly. Safe with $null.
    #>
    param([AllowNull()]$Container, [double]$TimeoutSeconds = 30)
    if (-not $Container) { return $false }
    $proc = $Container.Process
    if ($proc.HasExited) { return $true }
    $clean = $false
    if ($Container.SystemdPid) {
        Invoke-PsnfpContainer -Container $Container -ArgumentList @('systemctl', 'poweroff') -TimeoutSeconds 10 | Out-Null
        $clean = $proc.WaitForExit([int]($TimeoutSeconds * 1000))
    }
    if (-not $proc.HasExited) {
        # nspawn turns SIGTERM into a clean shutdown request; then force it.
        Stop-Process -Id $proc.Id -ErrorAction SilentlyContinue
        if (-not $proc.WaitForExit(10000)) {
            Stop-Process -Id $proc.Id -Force -ErrorAction SilentlyContinue
            [void]$proc.WaitForExit(10000)
        }
    }
    $clean
}

#endregion

Export-ModuleMember -Function Resolve-PsnfpTool, Invoke-PsnfpProcess, New-PsnfpNamespace, Remove-PsnfpNamespace,
    Get-PsnfpDump, Get-PsnfpModuleLines, Get-PsnfpTaggedCount, Test-PsnfpUnitFile, Install-PsnfpPackage,
    Get-PsnfpAptSource, Get-PsnfpRootfs, New-PsnfpOverlay, Remove-PsnfpOverlay, Test-PsnfpMounted,
    Start-PsnfpContainer, Invoke-PsnfpContainer, Stop-PsnfpContainer, Get-PsnfpPwshBinds, Invoke-PsnfpContainerPwsh
