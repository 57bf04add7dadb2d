<#
    Helpers for tests/pester/Ansible.Tests.ps1: a fleet of booted gateway containers (systemd-nspawn, an
    overlay each, each in its own cgroup and in its own lab gateway namespace) that Debian's ansible
    reaches with the community.docker.nsenter connection, and ansible-playbook runs whose PLAY RECAP is
    parsed per host.

    It builds on tests/pester/persistence/PersistenceTestHelpers.psm1 (processes, the bind mounts of pwsh
    and the module), which must be imported first, and on tests/support/BootedImage.psm1 (image, overlays,
    cgroups, containers). What differs is here: the image needs python3 for Ansible (its own cached rootfs),
    several containers run side by side (a cgroup each), /tmp is a tmpfs, and the boot does not wait inside
    Start (so the fleet boots in parallel).

    Everything these helpers create is named psnfa-* and is removed by the matching Remove-/Stop- helper,
    which is safe to call more than once and with $null.
#>

Set-StrictMode -Version 3.0

Import-Module (Join-Path $PSScriptRoot '../../support/BootedImage.psm1')

function New-PsnfaId { <# .SYNOPSIS 8 random hex digits. #> New-BootedImageId }

#region the image, cgroups and containers (tests/support/BootedImage.psm1)

function Get-PsnfaRootfs {
    <#
    .SYNOPSIS
        A minimal Debian rootfs like Get-PsnfpRootfs builds, plus python3 (Ansible runs its modules with it), built
        once into /var/cache/psnetfilter-test/rootfs-SUITE-py (Get-BootedImageRootfs).
    #>
    Get-BootedImageRootfs -Flavour 'py' -Include systemd, systemd-sysv, dbus, iptables, iproute2, procps, python3 `
        -Require '/usr/sbin/iptables', '/usr/bin/python3' -TimeoutSeconds 1200
}

function New-PsnfaOverlay {
    <# .SYNOPSIS An overlay of the rootfs for one gateway, psnfa-boot-<id> (Dir, Root, Mounted); throws without overlayfs. #>
    param([Parameter(Mandatory)][string]$Rootfs)
    New-BootedImageOverlay -Rootfs $Rootfs -Prefix 'psnfa'
}

function New-PsnfaCgroup {
    <# .SYNOPSIS A cgroup psnfa-<id> for one container (New-BootedImageCgroup). #>
    param([Parameter(Mandatory)][string]$Name)
    New-BootedImageCgroup -Name $Name -Prefix 'psnfa'
}

function Remove-PsnfaCgroup { param([AllowNull()]$Cgroup) Remove-BootedImageCgroup -Cgroup $Cgroup }

function Start-PsnfaContainer {
    <#
    .SYNOPSIS
        Starts systemd-nspawn -b on an overlay root into an existing named network namespace, in a cgroup of its
        own, with /tmp as a tmpfs and the given read-only binds. Does not wait for the boot (Wait-PsnfaContainer).
    #>
    param(
        [Parameter(Mandatory)][string]$Root,
        [Parameter(Mandatory)][string]$Namespace,
        [Parameter(Mandatory)][string]$LogPath,
        [Parameter(Mandatory)]$Cgroup,
        [string[]]$Bind = @(),
        [string]$Machine = ('psnfa-' + (New-PsnfaId))
    )
    Start-BootedImageContainer -Root $Root -Namespace $Namespace -LogPath $LogPath -Cgroup $Cgroup -Bind $Bind -Machine $Machine -Tmpfs
}

function Wait-PsnfaContainer {
    <# .SYNOPSIS Waits until the container's systemd runs (Wait-BootedImageContainer). #>
    param([Parameter(Mandatory)]$Container, [double]$TimeoutSeconds = 120)
    Wait-BootedImageContainer -Container $Container -TimeoutSeconds $TimeoutSeconds
}

function Stop-PsnfaContainer {
    <# .SYNOPSIS Powers a container off and removes its cgroups; $true when it shut down cleanly. Safe with $null. #>
    param([AllowNull()]$Container, [double]$TimeoutSeconds = 30)
    Stop-BootedImageContainer -Container $Container -TimeoutSeconds $TimeoutSeconds
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

Export-ModuleMember -Function New-PsnfaId, Get-PsnfaRootfs, New-PsnfaOverlay, New-PsnfaCgroup, Remove-PsnfaCgroup,
    Start-PsnfaContainer, Wait-PsnfaContainer, Stop-PsnfaContainer, ConvertFrom-PsnfaRecap, Invoke-PsnfaPlaybook
