<#
    Helpers for tests/pester/Ansible.Tests.ps1: a fleet of booted gateway containers (systemd-nspawn, an
    overlay each, each in its own cgroup and in its own lab gateway namespace) that Debian's ansible
    reaches with the community.docker.nsenter connection, and ansible-playbook runs whose PLAY RECAP is
    parsed per host.

    It builds on tests/pester/persistence/PersistenceTestHelpers.psm1 (processes, overlays, the bind
    mounts of pwsh and the module, stopping a container), which must be imported first. What differs is
    here: the image needs python3 for Ansible (its own cached rootfs), several containers run side by
    side (a cgroup each), /tmp is a tmpfs, and the boot does not wait inside Start (so the fleet boots
    in parallel).

    Everything these helpers create is named psnfa-* and is removed by the matching Remove-/Stop- helper,
    which is safe to call more than once and with $null.
#>

Set-StrictMode -Version 3.0

$script:CacheRoot = '/var/cache/psnetfilter-test'
$script:Packages = 'systemd,systemd-sysv,dbus,iptables,iproute2,procps,python3'

function New-PsnfaId {
    <# .SYNOPSIS 8 random hex digits. #>
    -join ([System.Security.Cryptography.RandomNumberGenerator]::GetBytes(4) | ForEach-Object { $_.ToString('x2') })
}

#region the image

function Get-PsnfaRootfs {
    <#
    .SYNOPSIS
        A minimal Debian rootfs like Get-PsnfpRootfs builds, plus python3 (Ansible runs its modules with it),
        built once with debootstrap --variant=minbase into /var/cache/psnetfilter-test/rootfs-SUITE-py. It is
        built in a temporary folder and renamed when complete, so an interrupted build is never reused.
    #>
    $src = Get-PsnfpAptSource
    $name = "rootfs-$($src.Suite)-py"
    $final = Join-Path $script:CacheRoot $name
    $complete = {
        param($dir)
        (Test-Path -LiteralPath "$dir/usr/lib/systemd/systemd") -and (Test-Path -LiteralPath "$dir/usr/sbin/iptables") -and
        (Test-Path -LiteralPath "$dir/usr/bin/python3") -and (Test-Path -LiteralPath "$dir/etc/os-release")
    }
    if ((Test-Path -LiteralPath $final) -and (& $complete $final)) { return $final }
    $null = New-Item -ItemType Directory -Force -Path $script:CacheRoot
    Get-ChildItem -LiteralPath $script:CacheRoot -Directory -Filter ".$name.tmp.*" -Force -ErrorAction SilentlyContinue |
        ForEach-Object { Remove-Item -LiteralPath $_.FullName -Recurse -Force -ErrorAction SilentlyContinue }
    if (Test-Path -LiteralPath $final) { Remove-Item -LiteralPath $final -Recurse -Force }
    $tmp = Join-Path $script:CacheRoot (".$name.tmp." + (New-PsnfaId))
    $null = New-Item -ItemType Directory -Path $tmp
    try {
        $r = Invoke-PsnfpProcess debootstrap -TimeoutSeconds 1200 -ArgumentList @(
            '--variant=minbase', "--include=$script:Packages", $src.Suite, "$tmp/rootfs", $src.Mirror)
        if ($r.ExitCode -ne 0 -or -not (& $complete "$tmp/rootfs")) {
            throw "debootstrap of $($src.Suite) (with python3) from $($src.Mirror) failed (exit $($r.ExitCode)): $(($r.Output -split "`n" | Select-Object -Last 15) -join "`n")"
        }
        Move-Item -LiteralPath "$tmp/rootfs" -Destination $final
    }
    finally {
        Remove-Item -LiteralPath $tmp -Recurse -Force -ErrorAction SilentlyContinue
    }
    $final
}

function New-PsnfaOverlay {
    <#
    .SYNOPSIS
        A writable overlay of the rootfs for one gateway (lower = the cached rootfs), in a new folder
        psnfa-boot-<id> under the temporary folder; the same object as New-PsnfpOverlay (Dir, Root, Mounted), so
        Remove-PsnfpOverlay removes it. Throws when overlayfs cannot be mounted.
    #>
    param([Parameter(Mandatory)][string]$Rootfs)
    $dir = Join-Path ([IO.Path]::GetTempPath()) ('psnfa-boot-' + (New-PsnfaId))
    $null = New-Item -ItemType Directory -Path "$dir/upper", "$dir/work", "$dir/merged"
    $r = Invoke-PsnfpProcess mount -ArgumentList @('-t', 'overlay', 'overlay', '-o', "lowerdir=$Rootfs,upperdir=$dir/upper,workdir=$dir/work", "$dir/merged")
    if ($r.ExitCode -ne 0) {
        Remove-Item -LiteralPath $dir -Recurse -Force -ErrorAction SilentlyContinue
        throw "The overlay mount for a gateway failed: $($r.Output.Trim())"
    }
    [pscustomobject]@{ Dir = $dir; Root = "$dir/merged"; Mounted = $true }
}

#endregion

#region cgroups

function Get-PsnfaCgroupHierarchy {
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

function New-PsnfaCgroup {
    <#
    .SYNOPSIS
        Creates a cgroup psnfa-<id> below the cgroup this process is in, in every hierarchy systemd uses, for one
        container: systemd-nspawn --keep-unit runs the container in the cgroup it is started in, and two
        containers' systemd must not share one. Returns Name and Paths.
    #>
    param([Parameter(Mandatory)][string]$Name)
    if ($Name -notlike 'psnfa-*') { throw "Refusing to create cgroup '$Name': not a psnfa test cgroup." }
    $own = @{}
    foreach ($line in Get-Content -LiteralPath /proc/self/cgroup) {
        $f = $line -split ':', 3
        if ($f[1] -eq '') { $own['cgroup2'] = $f[2] } elseif ($f[1] -eq 'name=systemd') { $own['systemd'] = $f[2] }
    }
    $paths = [System.Collections.Generic.List[string]]::new()
    foreach ($mount in Get-PsnfaCgroupHierarchy) {
        $isV2 = (Get-Content -LiteralPath /proc/self/mounts | Where-Object { ($_ -split ' ')[1] -eq $mount } | Select-Object -First 1) -match ' cgroup2 '
        $rel = if ($isV2) { $own['cgroup2'] } else { $own['systemd'] }
        if ($null -eq $rel) { continue }
        $dir = Join-Path (Join-Path $mount $rel.TrimStart('/')) $Name
        $null = New-Item -ItemType Directory -Force -Path $dir
        $paths.Add($dir)
    }
    if ($paths.Count -eq 0) { throw 'No cgroup hierarchy found for the containers (cgroup2 or name=systemd).' }
    [pscustomobject]@{ Name = $Name; Paths = $paths.ToArray() }
}

function Remove-PsnfaCgroup {
    <#
    .SYNOPSIS
        Kills what is left in a container's cgroups and removes them, deepest first (the container's systemd
        creates children). Safe with $null and when they are gone.
    #>
    param([AllowNull()]$Cgroup)
    if (-not $Cgroup) { return }
    foreach ($path in $Cgroup.Paths) {
        if ((Split-Path -Leaf $path) -notlike 'psnfa-*') { throw "Refusing to remove cgroup '$path'." }
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
                $null = Invoke-PsnfpProcess rmdir -ArgumentList @($d)
            }
            if (-not (Test-Path -LiteralPath $path)) { break }
            Start-Sleep -Milliseconds 250
        }
    }
}

#endregion

#region the containers

function Start-PsnfaContainer {
    <#
    .SYNOPSIS
        Starts systemd-nspawn -b on an overlay root into an existing named network namespace, in a cgroup of its
        own, with /tmp as a tmpfs and the given read-only binds. Does not wait for the boot (Wait-PsnfaContainer).
    .DESCRIPTION
        As Start-PsnfpContainer does (--register=no --keep-unit, CAP_NET_ADMIN, the gateway namespace joined by
        path, SYSTEMD_NSPAWN_API_VFS_WRITABLE=network), but a /bin/sh wrapper first moves itself into the
        container's cgroups and then execs nspawn, so the container's systemd owns a cgroup of its own.
    #>
    param(
        [Parameter(Mandatory)][string]$Root,
        [Parameter(Mandatory)][string]$Namespace,
        [Parameter(Mandatory)][string]$LogPath,
        [Parameter(Mandatory)]$Cgroup,
        [string[]]$Bind = @(),
        [string]$Machine = ('psnfa-' + (New-PsnfaId))
    )
    $nspawn = Resolve-PsnfpTool systemd-nspawn
    $join = ($Cgroup.Paths | ForEach-Object { "echo `$`$ > '$_/cgroup.procs' || exit 97" }) -join '; '
    $psi = [System.Diagnostics.ProcessStartInfo]::new('/bin/sh')
    foreach ($a in @('-c', "$join; log=`"`$1`"; shift; exec `"`$@`" >`"`$log`" 2>&1 </dev/null", 'sh', $LogPath,
            $nspawn, '-q', '-b', '-D', $Root, "--machine=$Machine", '--register=no', '--keep-unit',
            "--network-namespace-path=/run/netns/$Namespace", '--capability=CAP_NET_ADMIN', '--console=passive',
            '--tmpfs=/tmp') + @($Bind | ForEach-Object { "--bind-ro=$_" })) {
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

function Wait-PsnfaContainer {
    <#
    .SYNOPSIS
        Waits until the container's systemd (the child of nspawn running /usr/lib/systemd/systemd) is found and
        `systemctl is-system-running` says running or degraded. Sets SystemdPid and State; throws on timeout.
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
        $r = Invoke-PsnfpContainer -Container $Container -ArgumentList @('systemctl', 'is-system-running') -TimeoutSeconds 10
        $state = $r.StdOut.Trim()
        if ($state -in 'running', 'degraded') { $Container.State = $state; break }
        if ($proc.HasExited) { throw "$($Container.Machine) stopped while booting (state '$state'): $(Get-Content -LiteralPath $Container.Log -Raw -ErrorAction SilentlyContinue)" }
        if ([DateTime]::UtcNow -gt $deadline) {
            $jobs = (Invoke-PsnfpContainer -Container $Container -ArgumentList @('systemctl', 'list-jobs', '--no-legend', '--plain') -TimeoutSeconds 10).StdOut
            throw "$($Container.Machine) did not finish booting within $TimeoutSeconds s (state '$state'; jobs: $jobs)."
        }
        Start-Sleep -Milliseconds 200
    }
    $Container
}

function Stop-PsnfaContainer {
    <#
    .SYNOPSIS
        Powers a container off (Stop-PsnfpContainer: systemctl poweroff, then SIGTERM, then SIGKILL) and removes
        its cgroups. Returns $true when it shut down cleanly. Safe with $null and more than once.
    #>
    param([AllowNull()]$Container, [double]$TimeoutSeconds = 30)
    if (-not $Container) { return $false }
    $clean = $false
    try { $clean = Stop-PsnfpContainer -Container $Container -TimeoutSeconds $TimeoutSeconds }
    finally { Remove-PsnfaCgroup $Container.Cgroup }
    $clean
}

#endregion

#region ansible

function ConvertFrom-PsnfaRecap {
    <#
    .SYNOPSIS
        The PLAY RECAP of ansible-playbook output as a hashtable host -> @{ ok; changed; unreachable; failed;
        skipped; rescued; ignored } (integers).
    #>
    param([Parameter(Mandatory)][AllowEmptyString()][string]$Output)
    $recap = @{}
    $text = $Output -replace "`e\[[0-9;]*m", ''
    $at = $text.LastIndexOf('PLAY RECAP')
    if ($at -lt 0) { return $recap }
    foreach ($line in ($text.Substring($at) -split "`r?`n" | Select-Object -Skip 1)) {
        if ($line -notmatch '^(\S+)\s+:\s+(.*)$') { continue }
        $hostName = $Matches[1]
        $counts = @{}
        foreach ($m in [regex]::Matches($Matches[2], '(\w+)=(\d+)')) { $counts[$m.Groups[1].Value] = [int]$m.Groups[2].Value }
        $recap[$hostName] = $counts
    }
    $recap
}

function Invoke-PsnfaPlaybook {
    <#
    .SYNOPSIS
        Runs ansible-playbook with an exact argument list and a clean, repeatable environment; returns ExitCode,
        Output and Recap (ConvertFrom-PsnfaRecap).
    #>
    param(
        [Parameter(Mandatory)][string]$Playbook,
        [Parameter(Mandatory)][string]$Inventory,
        [Parameter(Mandatory)][string]$WorkDir,
        [string[]]$ExtraArgument = @(),
        [double]$TimeoutSeconds = 300
    )
    $env = @{
        ANSIBLE_NOCOLOR              = '1'
        ANSIBLE_FORCE_COLOR          = '0'
        ANSIBLE_STDOUT_CALLBACK      = 'default'
        ANSIBLE_RETRY_FILES_ENABLED  = '0'
        ANSIBLE_LOCAL_TEMP           = (Join-Path $WorkDir 'ansible-local')
        ANSIBLE_HOME                 = (Join-Path $WorkDir 'ansible-home')
        ANSIBLE_FORKS                = '3'
        ANSIBLE_DEPRECATION_WARNINGS = '0'
        ANSIBLE_PYTHON_INTERPRETER   = '/usr/bin/python3'
        HOME                         = $WorkDir
        PYTHONDONTWRITEBYTECODE      = '1'
        LC_ALL                       = 'C.UTF-8'
        LANG                         = 'C.UTF-8'
    }
    $r = Invoke-PsnfpProcess ansible-playbook -ArgumentList (@('-i', $Inventory) + $ExtraArgument + @($Playbook)) -Environment $env -TimeoutSeconds $TimeoutSeconds
    [pscustomobject]@{ ExitCode = $r.ExitCode; Output = $r.Output; Recap = (ConvertFrom-PsnfaRecap -Output $r.StdOut); TimedOut = $r.TimedOut }
}

#endregion

Export-ModuleMember -Function New-PsnfaId, Get-PsnfaRootfs, New-PsnfaOverlay, Get-PsnfaCgroupHierarchy, New-PsnfaCgroup, Remove-PsnfaCgroup,
    Start-PsnfaContainer, Wait-PsnfaContainer, Stop-PsnfaContainer, ConvertFrom-PsnfaRecap, Invoke-PsnfaPlaybook
