<#
    Helpers for tests/pester/Persistence.Tests.ps1: processes with exact argument lists, throw-away
    network namespaces (psnfp-<random>), iptables dumps for comparison, and a real boot of a minimal
    Debian image with systemd-nspawn (rootfs cached outside the repository, an overlay per boot). The image,
    overlay and container work is tests/support/BootedImage.psm1, shared with the Ansible and gateway suites;
    the psnfp names below are that module's functions with this suite's image and prefix.

    Everything these helpers create is named psnfp-* and is removed by the matching Remove-* helper,
    which is safe to call more than once and with $null.
#>

Set-StrictMode -Version 3.0

Import-Module (Join-Path $PSScriptRoot '../../support/TestProcess.psm1')
Import-Module (Join-Path $PSScriptRoot '../../support/BootedImage.psm1')

#region processes

function Resolve-PsnfpTool {
    param([Parameter(Mandatory)][string]$Name)
    Resolve-TestTool -Name $Name
}

function Invoke-PsnfpProcess {
    <#
    .SYNOPSIS
        Runs one process with an exact argument list (LC_ALL=C); returns ExitCode, StdOut, StdErr, Output (both), TimedOut.
    #>
    param(
        [Parameter(Mandatory)][string]$FilePath,
        [string[]]$ArgumentList = @(),
        [string]$StandardInput,
        [hashtable]$Environment = @{},
        [double]$TimeoutSeconds = 60,
        [switch]$Check
    )
    Invoke-BootedImageProcess @PSBoundParameters
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
    # Invoke-AptGet waits (bounded, saying so) while another package manager holds the lock.
    $r = Invoke-AptGet -ArgumentList (@('install', '-y', '--no-install-recommends') + $missing)
    if ($r.ExitCode -ne 0) {
        $null = Invoke-AptGet -ArgumentList @('update') -Check
        $null = Invoke-AptGet -ArgumentList (@('install', '-y', '--no-install-recommends') + $missing) -Check
    }
}

#endregion

#region the image and the container (tests/support/BootedImage.psm1)

function Get-PsnfpAptSource { <# .SYNOPSIS The Debian mirror and suite apt uses here. #> Get-BootedImageAptSource }

function Get-PsnfpRootfs {
    <#
    .SYNOPSIS
        A minimal Debian rootfs of this machine's suite with systemd, dbus, iptables, nftables, iproute2 and procps,
        built once with debootstrap (--variant=minbase) into /var/cache/psnetfilter-test/rootfs-SUITE-nft
        (Get-BootedImageRootfs). nftables.service is installed but not enabled (Debian does not enable it); a test
        that wants it enables it in its overlay.
    #>
    Get-BootedImageRootfs -Flavour 'nft' -Include systemd, systemd-sysv, dbus, iptables, nftables, iproute2, procps -Require '/usr/sbin/iptables', '/usr/sbin/nft' -TimeoutSeconds 900
}

function New-PsnfpOverlay {
    <# .SYNOPSIS A writable overlay (or copy) of the rootfs for one boot, psnfp-boot-<id>: Dir, Root, Mounted. #>
    param([Parameter(Mandatory)][string]$Rootfs)
    New-BootedImageOverlay -Rootfs $Rootfs -Prefix 'psnfp' -AllowCopy
}

function Remove-PsnfpOverlay { <# .SYNOPSIS Unmounts and deletes a boot overlay. #> param([AllowNull()]$Overlay) Remove-BootedImageOverlay -Overlay $Overlay }

function Test-PsnfpMounted { param([Parameter(Mandatory)][string]$Path) Test-BootedImageMounted -Path $Path }

function Start-PsnfpContainer {
    <#
    .SYNOPSIS
        Boots the image with systemd-nspawn into an existing named network namespace (in this process's cgroup)
        and waits until its systemd reports running (or degraded). Returns NspawnPid, SystemdPid, Log, State.
    #>
    param(
        [Parameter(Mandatory)][string]$Root,
        [Parameter(Mandatory)][string]$Namespace,
        [Parameter(Mandatory)][string]$LogPath,
        # Read-only bind mounts, HOST:CONTAINER.
        [string[]]$Bind = @(),
        [double]$TimeoutSeconds = 90
    )
    $container = Start-BootedImageContainer -Root $Root -Namespace $Namespace -LogPath $LogPath -Bind $Bind -Machine ('psnfp-' + (New-BootedImageId))
    Wait-BootedImageContainer -Container $container -TimeoutSeconds $TimeoutSeconds
}

function Invoke-PsnfpContainer {
    <# .SYNOPSIS Runs a command in all namespaces of the container's systemd (nsenter -t PID -a). #>
    param([Parameter(Mandatory)]$Container, [Parameter(Mandatory)][string[]]$ArgumentList, [double]$TimeoutSeconds = 60, [switch]$Check)
    Invoke-BootedImageContainer @PSBoundParameters
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
    <# .SYNOPSIS Powers the container off (Stop-BootedImageContainer); $true when it shut down cleanly. Safe with $null. #>
    param([AllowNull()]$Container, [double]$TimeoutSeconds = 30)
    Stop-BootedImageContainer -Container $Container -TimeoutSeconds $TimeoutSeconds
}

#endregion

Export-ModuleMember -Function Resolve-PsnfpTool, Invoke-PsnfpProcess, New-PsnfpNamespace, Remove-PsnfpNamespace,
    Get-PsnfpDump, Get-PsnfpModuleLines, Get-PsnfpTaggedCount, Test-PsnfpUnitFile, Install-PsnfpPackage,
    Get-PsnfpAptSource, Get-PsnfpRootfs, New-PsnfpOverlay, Remove-PsnfpOverlay, Test-PsnfpMounted,
    Start-PsnfpContainer, Invoke-PsnfpContainer, Stop-PsnfpContainer, Get-PsnfpPwshBinds, Invoke-PsnfpContainerPwsh
