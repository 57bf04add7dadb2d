<#
    Booted Debian images for the test suites (Persistence, Ansible, Gateways): a rootfs built once with
    debootstrap --variant=minbase (no recommends) and cached under /var/cache/psnetfilter-test, outside the
    repository; an overlay mount per boot; systemd-nspawn -b into an existing named network namespace
    (--register=no --keep-unit, because systemd is not PID 1 on the test machine), optionally in a cgroup of its
    own; commands run inside the booted container with nsenter; a clean poweroff.

    Each suite keeps its own names (psnfp-, psnfa-, h5l-) for what it creates; the prefix is passed in.
    Every Remove-/Stop- helper here is safe to call more than once and with $null.
#>

Set-StrictMode -Version 3.0

Import-Module (Join-Path $PSScriptRoot 'TestProcess.psm1')

$script:CacheRoot = '/var/cache/psnetfilter-test'

function Get-BootedImageCacheRoot { $script:CacheRoot }

function New-BootedImageId {
    <# .SYNOPSIS 8 random hex digits. #>
    -join ([System.Security.Cryptography.RandomNumberGenerator]::GetBytes(4) | ForEach-Object { $_.ToString('x2') })
}

function Invoke-BootedImageProcess {
    <# .SYNOPSIS Invoke-TestProcess with LC_ALL=C added to the environment. #>
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

#region the image

function Get-BootedImageAptSource {
    <#
    .SYNOPSIS
        The Debian mirror apt uses here (deb822 .sources or one-line .list files) and this machine's suite.
        -Suite asks for another suite from the same mirror (the mirror is taken from any Debian entry).
    #>
    param([string]$Suite)
    $release = @{}
    foreach ($line in Get-Content -LiteralPath /etc/os-release) {
        if ($line -match '^([A-Z_]+)=(.*)$') { $release[$Matches[1]] = $Matches[2].Trim('"') }
    }
    $hostSuite = $release['VERSION_CODENAME']
    if (-not $hostSuite) { throw 'Cannot tell the Debian suite from /etc/os-release (VERSION_CODENAME).' }
    $want = if ($Suite) { $Suite } else { $hostSuite }
    $files = @(Get-Item -Path /etc/apt/sources.list, /etc/apt/sources.list.d/*.sources, /etc/apt/sources.list.d/*.list -ErrorAction SilentlyContinue)
    foreach ($file in $files) {
        $text = Get-Content -LiteralPath $file.FullName -Raw
        if (-not $text) { continue }
        if ($file.Name.EndsWith('.sources')) {
            foreach ($stanza in ($text -split "(\r?\n){2,}")) {
                $uri = [regex]::Match($stanza, '(?m)^URIs:\s*(\S+)').Groups[1].Value
                $suites = [regex]::Match($stanza, '(?m)^Suites:\s*(.+)$').Groups[1].Value -split '\s+'
                if ($uri -and ($suites -contains $hostSuite) -and $uri -match '/debian/?$') { return [pscustomobject]@{ Mirror = $uri; Suite = $want } }
            }
        }
        else {
            foreach ($m in [regex]::Matches($text, '(?m)^\s*deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)')) {
                if ($m.Groups[2].Value -eq $hostSuite -and $m.Groups[1].Value -match '/debian/?$') { return [pscustomobject]@{ Mirror = $m.Groups[1].Value; Suite = $want } }
            }
        }
    }
    [pscustomobject]@{ Mirror = 'http://deb.debian.org/debian'; Suite = $want }
}

function Get-BootedImageRootfs {
    <#
    .SYNOPSIS
        A minimal Debian rootfs (debootstrap --variant=minbase --include=PACKAGES, no recommends), built once into
        /var/cache/psnetfilter-test/rootfs-SUITE[-FLAVOUR] and reused. Returns its path.
    .DESCRIPTION
        The build runs in a temporary folder and is renamed into place only when complete (every path in
        -Require exists), so an interrupted build is never reused; leftovers of interrupted builds are removed.
        -Customize is called with the finished rootfs path before the rename (files the image needs).
        A fresh build writes its duration in seconds to /var/cache/psnetfilter-test/rootfs-SUITE[-FLAVOUR].build-seconds.
    #>
    param(
        [Parameter(Mandatory)][string[]]$Include,
        [string]$Suite,
        [string]$Flavour,
        [string[]]$Require = @(),
        [scriptblock]$Customize,
        # Keep the downloaded .deb files in /var/cache/psnetfilter-test/debs-SUITE-FLAVOUR (debootstrap --cache-dir),
        # so a rebuild (a failed one, or after the image was deleted) does not download them again.
        [switch]$PackageCache,
        [double]$TimeoutSeconds = 1800
    )
    $src = Get-BootedImageAptSource -Suite $Suite
    $name = "rootfs-$($src.Suite)$(if ($Flavour) { "-$Flavour" })"
    $final = Join-Path $script:CacheRoot $name
    $required = @('/usr/lib/systemd/systemd', '/etc/os-release') + $Require
    # True when every required path exists under the folder; with -Missing, the paths that do not.
    $complete = {
        param($dir, [switch]$Missing)
        $absent = @($required | Where-Object { -not (Test-Path -LiteralPath "$dir$_") })
        if ($Missing) { $absent } else { $absent.Count -eq 0 }
    }
    if ((Test-Path -LiteralPath $final) -and (& $complete $final)) { return $final }
    $null = New-Item -ItemType Directory -Force -Path $script:CacheRoot
    # One builder per image at a time (several suites or people may start at once): an exclusive lock on
    # NAME.lock (flock underneath); whoever waited finds the image complete.
    $lock = $null
    $deadline = [DateTime]::UtcNow.AddSeconds($TimeoutSeconds)
    while (-not $lock) {
        try { $lock = [IO.File]::Open((Join-Path $script:CacheRoot "$name.lock"), 'OpenOrCreate', 'ReadWrite', 'None') }
        catch [IO.IOException] {
            if ([DateTime]::UtcNow -gt $deadline) { throw "Timed out waiting for another build of $name to finish." }
            Start-Sleep -Seconds 2
        }
    }
    try {
        if ((Test-Path -LiteralPath $final) -and (& $complete $final)) { return $final }
        New-BootedImageBuild -Name $name -Final $final -Src $src -Include $Include -Complete $complete -Customize $Customize -PackageCache:$PackageCache -TimeoutSeconds $TimeoutSeconds
    }
    finally { $lock.Dispose() }
}

function New-BootedImageBuild {
    # The build itself (Get-BootedImageRootfs holds the lock): a temporary folder .NAME.tmp.PID-ID, renamed when
    # complete. Leftovers of interrupted builds are removed: those whose PID is gone, or (older names without a
    # PID) not written to for three hours, so a build still running elsewhere is never touched.
    param($Name, $Final, $Src, $Include, $Complete, $Customize, [switch]$PackageCache, $TimeoutSeconds)
    foreach ($old in Get-ChildItem -LiteralPath $script:CacheRoot -Directory -Filter ".$Name.tmp.*" -Force -ErrorAction SilentlyContinue) {
        $owner = if ($old.Name -match '\.tmp\.(\d+)-[0-9a-f]+$') { [int]$Matches[1] } else { $null }
        $stale = if ($null -ne $owner) { -not (Test-Path -LiteralPath "/proc/$owner") } else { $old.LastWriteTimeUtc -lt [DateTime]::UtcNow.AddHours(-3) }
        if ($stale) { Remove-Item -LiteralPath $old.FullName -Recurse -Force -ErrorAction SilentlyContinue }
    }
    if (Test-Path -LiteralPath $Final) { Remove-Item -LiteralPath $Final -Recurse -Force }
    $tmp = Join-Path $script:CacheRoot (".$name.tmp.$PID-" + (New-BootedImageId))
    $null = New-Item -ItemType Directory -Path $tmp
    $sw = [System.Diagnostics.Stopwatch]::StartNew()
    try {
        $cacheArgs = @()
        if ($PackageCache) {
            $debs = Join-Path $script:CacheRoot ($Name -replace '^rootfs-', 'debs-')
            $null = New-Item -ItemType Directory -Force -Path $debs
            $cacheArgs = @("--cache-dir=$debs")
        }
        $r = Invoke-BootedImageProcess debootstrap -TimeoutSeconds $TimeoutSeconds -ArgumentList (@(
            '--variant=minbase', "--include=$($Include -join ',')") + $cacheArgs + @($Src.Suite, "$tmp/rootfs", $Src.Mirror))
        if ($r.ExitCode -ne 0) {
            throw "debootstrap of $($Src.Suite) ($Name) from $($Src.Mirror) failed (exit $($r.ExitCode)): $(($r.Output -split "`n" | Select-Object -Last 15) -join "`n")"
        }
        if ($Customize) { & $Customize "$tmp/rootfs" }
        if (-not (& $Complete "$tmp/rootfs")) {
            throw "The image $Name is incomplete after debootstrap of $($Src.Suite): missing $((& $Complete "$tmp/rootfs" -Missing) -join ', ')."
        }
        # apt's downloaded packages are not needed in the image.
        Get-ChildItem -LiteralPath "$tmp/rootfs/var/cache/apt/archives" -Filter '*.deb' -ErrorAction SilentlyContinue | Remove-Item -Force
        Move-Item -LiteralPath "$tmp/rootfs" -Destination $final
        $sw.Stop()
        Set-Content -LiteralPath (Join-Path $script:CacheRoot "$name.build-seconds") -Value ([int]$sw.Elapsed.TotalSeconds)
    }
    finally {
        Remove-Item -LiteralPath $tmp -Recurse -Force -ErrorAction SilentlyContinue
    }
    $final
}

function New-BootedImageOverlay {
    <#
    .SYNOPSIS
        A writable copy of a rootfs for one boot: an overlay mount (lower = the cached rootfs) in a new folder
        PREFIX-boot-<id> under the temporary folder. Returns Dir, Root, Mounted. Without overlayfs it copies the
        rootfs (-AllowCopy) or throws.
    #>
    param([Parameter(Mandatory)][string]$Rootfs, [Parameter(Mandatory)][string]$Prefix, [switch]$AllowCopy)
    $dir = Join-Path ([IO.Path]::GetTempPath()) ("$Prefix-boot-" + (New-BootedImageId))
    $null = New-Item -ItemType Directory -Path "$dir/upper", "$dir/work", "$dir/merged"
    $r = Invoke-BootedImageProcess mount -ArgumentList @('-t', 'overlay', 'overlay', '-o', "lowerdir=$Rootfs,upperdir=$dir/upper,workdir=$dir/work", "$dir/merged")
    if ($r.ExitCode -eq 0) { return [pscustomobject]@{ Dir = $dir; Root = "$dir/merged"; Mounted = $true } }
    if (-not $AllowCopy) {
        Remove-Item -LiteralPath $dir -Recurse -Force -ErrorAction SilentlyContinue
        throw "The overlay mount for a boot failed: $($r.Output.Trim())"
    }
    Write-Warning "overlay mount failed ($($r.Output.Trim())): copying the rootfs instead."
    Remove-Item -LiteralPath "$dir/merged" -Force
    Invoke-BootedImageProcess cp -ArgumentList @('-a', '--reflink=auto', $Rootfs, "$dir/merged") -TimeoutSeconds 300 -Check | Out-Null
    [pscustomobject]@{ Dir = $dir; Root = "$dir/merged"; Mounted = $false }
}

function Test-BootedImageMounted {
    param([Parameter(Mandatory)][string]$Path)
    $escaped = $Path -replace ' ', '\040'
    [bool](Get-Content -LiteralPath /proc/mounts | Where-Object { ($_ -split ' ')[1] -eq $escaped -or ($_ -split ' ')[1].StartsWith("$escaped/") })
}

function Remove-BootedImageOverlay {
    <# .SYNOPSIS Unmounts (retrying, lazily as a last resort) and deletes a boot overlay. Safe with $null. #>
    param([AllowNull()]$Overlay)
    if (-not $Overlay) { return }
    if ($Overlay.Mounted) {
        for ($i = 0; $i -lt 20 -and (Test-BootedImageMounted $Overlay.Root); $i++) {
            Invoke-BootedImageProcess umount -ArgumentList @($Overlay.Root) | Out-Null
            if (Test-BootedImageMounted $Overlay.Root) { Start-Sleep -Milliseconds 250 }
        }
        if (Test-BootedImageMounted $Overlay.Root) { Invoke-BootedImageProcess umount -ArgumentList @('-l', $Overlay.Root) | Out-Null }
    }
    if (-not (Test-BootedImageMounted $Overlay.Root)) {
        Remove-Item -LiteralPath $Overlay.Dir -Recurse -Force -ErrorAction SilentlyContinue
    }
}

#endregion

#region cgroups

function Get-BootedImageCgroupHierarchy {
    <#
    .SYNOPSIS
        The cgroup hierarchies a container's cgroup is created in: the cgroup2 mount (unified or hybrid) and
        the named systemd v1 hierarchy (legacy or hybrid), whichever exist.
    #>
    $dirs = [System.Collections.Generic.List[string]]::new()
    foreach ($line in Get-Content -LiteralPath /proc/self/mounts) {
        $f = $line -split ' '
        if ($f.Count -lt 4) { continue }
        if ($f[2] -eq 'cgroup2') { $dirs.Add($f[1]) }
        elseif ($f[2] -eq 'cgroup' -and ($f[3] -split ',') -contains 'name=systemd') { $dirs.Add($f[1]) }
    }
    @($dirs | Select-Object -Unique)
}

function New-BootedImageCgroup {
    <#
    .SYNOPSIS
        Creates a cgroup NAME below the cgroup this process is in, in every hierarchy systemd uses, for one
        container: systemd-nspawn --keep-unit runs the container in the cgroup it is started in, and two
        containers' systemd must not share one. Returns Name, Prefix and Paths.
    #>
    param([Parameter(Mandatory)][string]$Name, [Parameter(Mandatory)][string]$Prefix)
    if ($Name -notlike "$Prefix-*") { throw "Refusing to create cgroup '$Name': not a $Prefix test cgroup." }
    $own = @{}
    foreach ($line in Get-Content -LiteralPath /proc/self/cgroup) {
        $f = $line -split ':', 3
        if ($f[1] -eq '') { $own['cgroup2'] = $f[2] } elseif ($f[1] -eq 'name=systemd') { $own['systemd'] = $f[2] }
    }
    $paths = [System.Collections.Generic.List[string]]::new()
    foreach ($mount in Get-BootedImageCgroupHierarchy) {
        $isV2 = (Get-Content -LiteralPath /proc/self/mounts | Where-Object { ($_ -split ' ')[1] -eq $mount } | Select-Object -First 1) -match ' cgroup2 '
        $rel = if ($isV2) { $own['cgroup2'] } else { $own['systemd'] }
        if ($null -eq $rel) { continue }
        $dir = Join-Path (Join-Path $mount $rel.TrimStart('/')) $Name
        $null = New-Item -ItemType Directory -Force -Path $dir
        $paths.Add($dir)
    }
    if ($paths.Count -eq 0) { throw 'No cgroup hierarchy found for the containers (cgroup2 or name=systemd).' }
    [pscustomobject]@{ Name = $Name; Prefix = $Prefix; Paths = $paths.ToArray() }
}

function Remove-BootedImageCgroup {
    <#
    .SYNOPSIS
        Kills what is left in a container's cgroups and removes them, deepest first (the container's systemd
        creates children). Safe with $null and when they are gone.
    #>
    param([AllowNull()]$Cgroup)
    if (-not $Cgroup) { return }
    foreach ($path in $Cgroup.Paths) {
        if ((Split-Path -Leaf $path) -notlike "$($Cgroup.Prefix)-*") { throw "Refusing to remove cgroup '$path'." }
        if (-not (Test-Path -LiteralPath $path)) { continue }
        for ($attempt = 0; $attempt -lt 20; $attempt++) {
            $dirs = @(Get-ChildItem -LiteralPath $path -Directory -Recurse -Force -ErrorAction SilentlyContinue |
                    Sort-Object { $_.FullName.Length } -Descending | ForEach-Object FullName) + @($path)
            $left = $false
            foreach ($d in $dirs) {
                foreach ($p in @(Get-Content -LiteralPath "$d/cgroup.procs" -ErrorAction SilentlyContinue)) {
                    if ($p -match '^\d+$') { $left = $true; Stop-Process -Id ([int]$p) -Force -ErrorAction SilentlyContinue }
                }
            }
            if ($left) { Start-Sleep -Milliseconds 200 }
            foreach ($d in $dirs) {
                # rmdir, not Remove-Item: a cgroup's files cannot be deleted, only the (empty) directory.
                $null = Invoke-BootedImageProcess rmdir -ArgumentList @($d)
            }
            if (-not (Test-Path -LiteralPath $path)) { break }
            Start-Sleep -Milliseconds 250
        }
    }
}

#endregion

#region the container

function Start-BootedImageContainer {
    <#
    .SYNOPSIS
        Starts systemd-nspawn -b on a root into an existing named network namespace and returns at once
        (Wait-BootedImageContainer waits for the boot).
    .DESCRIPTION
        --register=no --keep-unit (systemd is not PID 1 here); the namespace is joined with
        --network-namespace-path, so the container needs CAP_NET_ADMIN (plus -Capability), and
        SYSTEMD_NSPAWN_API_VFS_WRITABLE=network makes /proc/sys/net writable. With -Cgroup a /bin/sh wrapper first
        moves itself into the container's cgroups and then execs nspawn, so the container's systemd owns a
        cgroup of its own. -Bind are read-only binds HOST:CONTAINER; -Tmpfs mounts /tmp as a tmpfs.
    #>
    param(
        [Parameter(Mandatory)][string]$Root,
        [Parameter(Mandatory)][string]$Namespace,
        [Parameter(Mandatory)][string]$LogPath,
        [Parameter(Mandatory)][string]$Machine,
        $Cgroup,
        [string[]]$Bind = @(),
        [string[]]$Capability = @(),
        [switch]$Tmpfs
    )
    $nspawn = Resolve-TestTool systemd-nspawn
    $join = if ($Cgroup) { (($Cgroup.Paths | ForEach-Object { "echo `$`$ > '$_/cgroup.procs' || exit 97" }) -join '; ') + '; ' } else { '' }
    $psi = [System.Diagnostics.ProcessStartInfo]::new('/bin/sh')
    $caps = (@('CAP_NET_ADMIN') + $Capability | Select-Object -Unique) -join ','
    $nspawnArgs = @($nspawn, '-q', '-b', '-D', $Root, "--machine=$Machine", '--register=no', '--keep-unit',
        "--network-namespace-path=/run/netns/$Namespace", "--capability=$caps", '--console=passive') +
        @(if ($Tmpfs) { '--tmpfs=/tmp' }) + @($Bind | ForEach-Object { "--bind-ro=$_" })
    foreach ($a in @('-c', "${join}log=`"`$1`"; shift; exec `"`$@`" >`"`$log`" 2>&1 </dev/null", 'sh', $LogPath) + $nspawnArgs) {
        $psi.ArgumentList.Add($a)
    }
    $psi.UseShellExecute = $false
    $psi.Environment['SYSTEMD_NSPAWN_API_VFS_WRITABLE'] = 'network'
    $proc = [System.Diagnostics.Process]::Start($psi)
    [pscustomobject]@{
        Machine = $Machine; Namespace = $Namespace; Root = $Root; NspawnPid = $proc.Id; SystemdPid = $null
        Log = $LogPath; State = $null; Process = $proc; Cgroup = $Cgroup; Started = [DateTime]::UtcNow
    }
}

function Wait-BootedImageContainer {
    <#
    .SYNOPSIS
        Waits until the container's systemd (the child of nspawn running /usr/lib/systemd/systemd) is found and
        `systemctl is-system-running` says running or degraded (polled through nsenter, bounded, rather than
        systemctl --wait). Sets SystemdPid and State; throws on timeout.
    #>
    param([Parameter(Mandatory)]$Container, [double]$TimeoutSeconds = 120)
    $proc = $Container.Process
    $deadline = [DateTime]::UtcNow.AddSeconds($TimeoutSeconds)
    while (-not $Container.SystemdPid) {
        if ($proc.HasExited) { throw "systemd-nspawn ($($Container.Machine)) exited with code $($proc.ExitCode): $(Get-Content -LiteralPath $Container.Log -Raw -ErrorAction SilentlyContinue)" }
        if ([DateTime]::UtcNow -gt $deadline) { throw "The systemd of $($Container.Machine) did not appear within $TimeoutSeconds s." }
        foreach ($child in Get-ChildItem -Path /proc -Directory -ErrorAction SilentlyContinue | Where-Object Name -Match '^\d+$') {
            try {
                $status = [IO.File]::ReadAllText("/proc/$($child.Name)/status")
                if ($status -notmatch "(?m)^PPid:\s+$($proc.Id)\s*$") { continue }
                $exe = (Get-Item -LiteralPath "/proc/$($child.Name)/exe" -Force).LinkTarget
                if ($exe -and $exe.EndsWith('/usr/lib/systemd/systemd')) { $Container.SystemdPid = [int]$child.Name; break }
            }
            catch { }
        }
        if (-not $Container.SystemdPid) { Start-Sleep -Milliseconds 100 }
    }
    while ($true) {
        $r = Invoke-BootedImageContainer -Container $Container -ArgumentList @('systemctl', 'is-system-running') -TimeoutSeconds 10
        $state = $r.StdOut.Trim()
        if ($state -in 'running', 'degraded') { $Container.State = $state; break }
        if ($proc.HasExited) { throw "$($Container.Machine) stopped while booting (state '$state'): $(Get-Content -LiteralPath $Container.Log -Raw -ErrorAction SilentlyContinue)" }
        if ([DateTime]::UtcNow -gt $deadline) {
            $jobs = (Invoke-BootedImageContainer -Container $Container -ArgumentList @('systemctl', 'list-jobs', '--no-legend', '--plain') -TimeoutSeconds 10).StdOut
            throw "$($Container.Machine) did not finish booting within $TimeoutSeconds s (state '$state'; jobs: $jobs)."
        }
        Start-Sleep -Milliseconds 200
    }
    $Container
}

function Invoke-BootedImageContainer {
    <# .SYNOPSIS Runs a command in all namespaces of the container's systemd (nsenter -t PID -a). #>
    param([Parameter(Mandatory)]$Container, [Parameter(Mandatory)][string[]]$ArgumentList, [string]$StandardInput, [double]$TimeoutSeconds = 60, [switch]$Check)
    $params = @{ FilePath = 'nsenter'; ArgumentList = (@('-t', "$($Container.SystemdPid)", '-a') + $ArgumentList); TimeoutSeconds = $TimeoutSeconds; Check = $Check }
    if ($PSBoundParameters.ContainsKey('StandardInput')) { $params.StandardInput = $StandardInput }
    Invoke-BootedImageProcess @params
}

function Stop-BootedImageContainer {
    <#
    .SYNOPSIS
        Powers the container off (systemctl poweroff, which runs the units' ExecStop), waits for nspawn to
        exit, kills it when it does not, and removes its cgroup (if it has one). Returns $true when it shut
        down cleanly. Safe with $null and more than once.
    #>
    param([AllowNull()]$Container, [double]$TimeoutSeconds = 30)
    if (-not $Container) { return $false }
    $proc = $Container.Process
    $clean = $proc.HasExited
    try {
        if (-not $proc.HasExited -and $Container.SystemdPid) {
            Invoke-BootedImageContainer -Container $Container -ArgumentList @('systemctl', 'poweroff') -TimeoutSeconds 10 | Out-Null
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
    }
    finally {
        if ($Container.PSObject.Properties['Cgroup'] -and $Container.Cgroup) { Remove-BootedImageCgroup $Container.Cgroup }
    }
    $clean
}

#endregion

Export-ModuleMember -Function Get-BootedImageCacheRoot, New-BootedImageId, Invoke-BootedImageProcess, Get-BootedImageAptSource,
    Get-BootedImageRootfs, New-BootedImageOverlay, Test-BootedImageMounted, Remove-BootedImageOverlay,
    Get-BootedImageCgroupHierarchy, New-BootedImageCgroup, Remove-BootedImageCgroup,
    Start-BootedImageContainer, Wait-BootedImageContainer, Invoke-BootedImageContainer, Stop-BootedImageContainer
