<#
    The real-gateway lab (tests/pester/Gateways.Tests.ps1, tests/PSNetfilter.Tests/Golden/make-nftjson.ps1): a Debian
    trixie image with the real packet-filter managers (nftables.service, firewalld, dockerd, libvirt's network
    daemon, ufw), booted with systemd-nspawn into a gateway namespace of ours, with a client namespace outside
    (198.51.100.0/24) and a server namespace inside (192.0.2.0/24, or a namespace on virbr0 for libvirt).

    The image is built by the suite itself (tests/support/BootedImage.psm1) and cached under
    /var/cache/psnetfilter-test/rootfs-trixie-gateways.

    One change to the image, on purpose: the test kernel has no act_csum, and libvirt's nftables network backend
    fixes DHCP checksums with `tc filter add dev virbr0 ... action csum ip and udp`; that call fails and the network
    does not start. /usr/sbin/tc is diverted (dpkg-divert, the real one is /usr/sbin/tc.real) to a wrapper that
    succeeds for exactly that invocation (a `tc filter add` whose action is `csum`) and logs it to
    /var/log/h5l-tc-csum.log; every other call runs the real tc with the same arguments.

    Everything this module creates is named h5l-*; every Remove-/Stop- helper is safe with $null and more than once.
#>

Set-StrictMode -Version 3.0

Import-Module (Join-Path $PSScriptRoot '../../support/TestProcess.psm1')
Import-Module (Join-Path $PSScriptRoot '../../support/BootedImage.psm1')
Import-Module (Join-Path $PSScriptRoot '../../lab/PSNetfilterLab.psm1')

$script:Suite = 'trixie'
# debootstrap resolves no alternatives: libpam-systemd is named because polkitd (firewalld, libvirt) needs
# "default-logind | logind"; libvirt-daemon-system is left out because it pulls libvirt-daemon-driver-qemu, which
# needs "qemu-kvm | qemu-system". libvirtd with the network driver (and dnsmasq) is all the lab needs.
$script:Packages = @(
    'systemd', 'systemd-sysv', 'libpam-systemd', 'dbus', 'iproute2', 'procps', 'iptables', 'nftables',
    'firewalld', 'docker.io', 'libvirt-daemon', 'libvirt-daemon-driver-network', 'libvirt-clients', 'dnsmasq-base', 'ufw')

$script:TcWrapper = @'
#!/bin/sh
# Installed by the PSNetfilter gateway test lab (tests/pester/gateways/GatewayLab.psm1).
# The test kernel has no act_csum; libvirt's nftables network backend runs
#   tc filter add dev BRIDGE ... action csum ip and udp
# and fails without it. Exactly that call (a "filter add" whose action is csum) succeeds here and is logged;
# everything else runs the real tc unchanged.
case " $* " in
    *" filter add "*" action csum "*)
        echo "$(date -u +%FT%TZ) skipped: tc $*" >> /var/log/h5l-tc-csum.log
        exit 0 ;;
esac
exec /usr/sbin/tc.real "$@"
'@

function Get-H5lGatewayRootfs {
    <#
    .SYNOPSIS
        The cached trixie image with the real gateway components (see the module's header), built by debootstrap
        --variant=minbase --include=... on first use. Returns its path.
    #>
    Get-BootedImageRootfs -Suite $script:Suite -Flavour 'gateways' -Include $script:Packages -PackageCache -TimeoutSeconds 2400 -Require @(
        '/usr/sbin/nft', '/usr/sbin/firewalld', '/usr/sbin/dockerd', '/usr/sbin/libvirtd', '/usr/sbin/ufw', '/usr/sbin/tc.real', '/usr/bin/virsh') -Customize {
        param($root)
        Invoke-BootedImageProcess chroot -ArgumentList @($root, 'dpkg-divert', '--local', '--rename', '--divert', '/usr/sbin/tc.real', '--add', '/usr/sbin/tc') -Check | Out-Null
        [IO.File]::WriteAllText("$root/usr/sbin/tc", ($script:TcWrapper -replace "`r", '') + "`n")
        Invoke-BootedImageProcess chmod -ArgumentList @('0755', "$root/usr/sbin/tc") -Check | Out-Null
    }
}

# The services that start on their own in the image (their packages enable them); every boot starts with all of
# them off, and each scenario starts the one it is about.
$script:ManagedUnits = @('docker.service', 'docker.socket', 'containerd.service', 'firewalld.service', 'libvirtd.service',
    'libvirtd.socket', 'libvirtd-ro.socket', 'libvirtd-admin.socket', 'libvirt-guests.service', 'virtlogd.socket', 'virtlockd.socket',
    'virtnetworkd.service', 'virtnetworkd.socket', 'virtnetworkd-ro.socket', 'virtnetworkd-admin.socket', 'ufw.service', 'nftables.service')

#region namespaces

function Invoke-H5lIp {
    param([Parameter(ValueFromRemainingArguments)][string[]]$Arguments)
    Invoke-BootedImageProcess ip -ArgumentList $Arguments -Check | Out-Null
}

function New-H5lGatewayLab {
    <#
    .SYNOPSIS
        Three namespaces h5l<6 hex>-cl, -gw, -sv for one scenario, as an object the PSNetfilterLab helpers
        (Start-PSNetfilterLabServer, Invoke-PSNetfilterLabProbe, Remove-PSNetfilterLab) accept.
    .DESCRIPTION
        client 198.51.100.2/24 -- 198.51.100.1/24 gateway 192.0.2.1/24 -- 192.0.2.10/24 server (default via .1).
        With -GuestOnBridge the server's veth peer is left unaddressed in the gateway (Connect-H5lGuest attaches it
        to a bridge that a component creates later, e.g. libvirt's virbr0). Forwarding starts off in the gateway.
    #>
    param([switch]$GuestOnBridge)
    $id = -join ([System.Security.Cryptography.RandomNumberGenerator]::GetBytes(3) | ForEach-Object { $_.ToString('x2') })
    $lab = [pscustomobject]@{
        PSTypeName = 'PSNetfilterLab'; Id = $id
        Client = "h5l$id-cl"; Gateway = "h5l$id-gw"; Server = "h5l$id-sv"; Namespaces = [string[]]@("h5l$id-cl", "h5l$id-gw", "h5l$id-sv")
        ClientAddress = '198.51.100.2'; GatewayExternalAddress = '198.51.100.1'; GatewayInternalAddress = '192.0.2.1'; ServerAddress = '192.0.2.10'
        ClientInterface = "cl-$id"; GatewayExternalInterface = "gwx-$id"; GatewayInternalInterface = "gwi-$id"; ServerInterface = "sv-$id"
        Servers = [System.Collections.Generic.List[object]]::new(); LogDirectory = (Join-Path ([IO.Path]::GetTempPath()) "h5l-lab-$id")
        Overlay = $null; Container = $null; EtcNetns = $null
    }
    try {
        foreach ($ns in $lab.Namespaces) {
            Invoke-H5lIp netns add $ns
            Invoke-H5lIp -n $ns link set lo up
        }
        $gw = $lab.Gateway
        Invoke-H5lIp -n $gw link add $lab.GatewayExternalInterface type veth peer name $lab.ClientInterface netns $lab.Client
        Invoke-H5lIp -n $gw link add $lab.GatewayInternalInterface type veth peer name $lab.ServerInterface netns $lab.Server
        Invoke-H5lIp -n $gw addr add "$($lab.GatewayExternalAddress)/24" dev $lab.GatewayExternalInterface
        Invoke-H5lIp -n $lab.Client addr add "$($lab.ClientAddress)/24" dev $lab.ClientInterface
        Invoke-H5lIp -n $gw link set $lab.GatewayExternalInterface up
        Invoke-H5lIp -n $lab.Client link set $lab.ClientInterface up
        Invoke-H5lIp -n $lab.Server link set $lab.ServerInterface up
        if (-not $GuestOnBridge) {
            Invoke-H5lIp -n $gw addr add "$($lab.GatewayInternalAddress)/24" dev $lab.GatewayInternalInterface
            Invoke-H5lIp -n $gw link set $lab.GatewayInternalInterface up
            Invoke-H5lIp -n $lab.Server addr add "$($lab.ServerAddress)/24" dev $lab.ServerInterface
            Invoke-H5lIp -n $lab.Server route add default via $lab.GatewayInternalAddress
        }
        Invoke-BootedImageProcess ip -ArgumentList @('netns', 'exec', $gw, 'sysctl', '-qw', 'net.ipv4.ip_forward=0') -Check | Out-Null
    }
    catch {
        $err = $_
        Remove-H5lGatewayLab -Lab $lab
        throw $err
    }
    $lab
}

function Connect-H5lGuest {
    <#
    .SYNOPSIS
        Attaches the server's veth peer to a bridge in the gateway (libvirt's virbr0) and gives the server an
        address on the bridge's network with a default route via the bridge's address; updates $Lab.ServerAddress.
    #>
    param([Parameter(Mandatory)]$Lab, [Parameter(Mandatory)][string]$Bridge, [Parameter(Mandatory)][string]$Address,
        [Parameter(Mandatory)][int]$PrefixLength, [Parameter(Mandatory)][string]$Router)
    Invoke-H5lIp -n $Lab.Gateway link set $Lab.GatewayInternalInterface master $Bridge
    Invoke-H5lIp -n $Lab.Gateway link set $Lab.GatewayInternalInterface up
    Invoke-H5lIp -n $Lab.Server addr add "$Address/$PrefixLength" dev $Lab.ServerInterface
    Invoke-H5lIp -n $Lab.Server route add default via $Router
    $Lab.ServerAddress = $Address
    $Lab.GatewayInternalAddress = $Router
}

function Remove-H5lGatewayLab {
    <#
    .SYNOPSIS
        Powers the gateway off, removes its overlay, the lab's servers, namespaces and /etc/netns entries.
        Safe with $null and more than once; every step runs even when an earlier one fails.
    #>
    param([AllowNull()]$Lab)
    if (-not $Lab) { return }
    try { $null = Stop-BootedImageContainer -Container $Lab.Container } catch { Write-Warning "Stopping the gateway: $_" }
    $Lab.Container = $null
    try { Remove-BootedImageOverlay -Overlay $Lab.Overlay } catch { Write-Warning "Removing the overlay: $_" }
    $Lab.Overlay = $null
    try { Remove-PSNetfilterLab -Lab $Lab -ErrorAction Continue } catch { Write-Warning "Removing the namespaces: $_" }
    foreach ($ns in $Lab.Namespaces) {
        if ($ns -notlike 'h5l*') { continue }
        if (Test-Path -LiteralPath "/etc/netns/$ns") { Remove-Item -LiteralPath "/etc/netns/$ns" -Recurse -Force -ErrorAction SilentlyContinue }
    }
}

#endregion

#region the gateway

function Start-H5lGateway {
    <#
    .SYNOPSIS
        Boots the gateway image (an overlay of Get-H5lGatewayRootfs) into the lab's gateway namespace and waits
        for the boot. Every managed unit ($script:ManagedUnits) starts disabled; -Prepare gets the overlay's root
        before the boot to write the scenario's configuration. Sets $Lab.Overlay and $Lab.Container.
    #>
    param([Parameter(Mandatory)]$Lab, [scriptblock]$Prepare, [double]$TimeoutSeconds = 180)
    $rootfs = Get-H5lGatewayRootfs
    $Lab.Overlay = New-BootedImageOverlay -Rootfs $rootfs -Prefix 'h5l'
    $root = $Lab.Overlay.Root
    foreach ($link in Get-ChildItem -Path "$root/etc/systemd/system" -Recurse -Force -ErrorAction SilentlyContinue |
            Where-Object { $_.LinkType -and $script:ManagedUnits -contains $_.Name -and $_.DirectoryName -like '*.wants' }) {
        Remove-Item -LiteralPath $link.FullName -Force
    }
    if ($Prepare) { & $Prepare $root }
    $null = New-Item -ItemType Directory -Force -Path $Lab.LogDirectory
    $cg = New-BootedImageCgroup -Name "h5l-$($Lab.Id)" -Prefix 'h5l'
    $Lab.Container = Start-BootedImageContainer -Root $root -Namespace $Lab.Gateway -LogPath (Join-Path $Lab.LogDirectory 'nspawn.log') `
        -Machine "h5l-$($Lab.Id)" -Cgroup $cg -Capability @('CAP_NET_RAW') -Tmpfs
    $null = Wait-BootedImageContainer -Container $Lab.Container -TimeoutSeconds $TimeoutSeconds
    $Lab
}

function Invoke-H5lGateway {
    <# .SYNOPSIS A command inside the booted gateway (all its namespaces); -Check throws unless it exits 0. #>
    param([Parameter(Mandatory)]$Lab, [Parameter(Mandatory, Position = 0)][string[]]$ArgumentList, [double]$TimeoutSeconds = 120, [switch]$Check)
    Invoke-BootedImageContainer -Container $Lab.Container -ArgumentList $ArgumentList -TimeoutSeconds $TimeoutSeconds -Check:$Check
}

function Wait-H5lGatewayCondition {
    <# .SYNOPSIS Polls a scriptblock until it returns $true; throws with -Message after -TimeoutSeconds. #>
    param([Parameter(Mandatory)][scriptblock]$Condition, [Parameter(Mandatory)][string]$Message, [object[]]$Argument = @(), [double]$TimeoutSeconds = 60)
    $deadline = [DateTime]::UtcNow.AddSeconds($TimeoutSeconds)
    while (-not (& $Condition @Argument)) {
        if ([DateTime]::UtcNow -gt $deadline) { throw "Timed out after $TimeoutSeconds s: $Message" }
        Start-Sleep -Milliseconds 300
    }
}

function Get-H5lNftRuleset {
    <# .SYNOPSIS The gateway's ruleset, listed by the gateway's own nft: -Json gives `nft -j list ruleset`. #>
    param([Parameter(Mandatory)]$Lab, [switch]$Json)
    $a = if ($Json) { @('nft', '-j', 'list', 'ruleset') } else { @('nft', 'list', 'ruleset') }
    (Invoke-H5lGateway -Lab $Lab -ArgumentList $a -Check).StdOut
}

function Test-H5lForwardTraffic {
    <#
    .SYNOPSIS
        One HTTP request (TCP) and one UDP datagram from the client to the gateway's external address; returns
        Http and Udp (the reply line or $null) and Ok (both answered by the server).
    #>
    param([Parameter(Mandatory)]$Lab, [Parameter(Mandatory)][int]$TcpPort, [Parameter(Mandatory)][int]$UdpPort)
    $r = Invoke-PSNetfilterLabProbe -Lab $Lab -TimeoutSeconds 3 -Target @(
        @{ Protocol = 'Http'; Address = $Lab.GatewayExternalAddress; Port = $TcpPort },
        @{ Protocol = 'Udp'; Address = $Lab.GatewayExternalAddress; Port = $UdpPort })
    $http = ($r | Where-Object Protocol -eq 'Http').Reply
    $udp = ($r | Where-Object Protocol -eq 'Udp').Reply
    [pscustomobject]@{
        Http = $http; Udp = $udp
        HttpError = ($r | Where-Object Protocol -eq 'Http').Error; UdpError = ($r | Where-Object Protocol -eq 'Udp').Error
        Ok = [bool]($http -like 'hello from server*' -and $udp -like 'hello from server*')
    }
}

#endregion

#region scenarios

# A hand-written ruleset of the usual shape: the forward chain drops what is not a reply.
$script:HandWrittenRuleset = @'
#!/usr/sbin/nft -f
# Written by the PSNetfilter gateway test lab: a typical hand-written ruleset whose forward chain drops
# everything that is not a reply.
flush ruleset

table inet filter {
	chain input {
		type filter hook input priority filter; policy accept;
	}
	chain forward {
		type filter hook forward priority filter; policy drop;
		ct state established,related accept
	}
	chain output {
		type filter hook output priority filter; policy accept;
	}
}
'@

$script:LibvirtDefaultNetwork = @'
<network>
  <name>default</name>
  <forward mode='nat'/>
  <bridge name='virbr0' stp='on' delay='0'/>
  <ip address='192.168.122.1' netmask='255.255.255.0'>
    <dhcp>
      <range start='192.168.122.2' end='192.168.122.254'/>
    </dhcp>
  </ip>
</network>
'@

function Set-H5lConfKey {
    # Sets KEY=VALUE in a KEY=VALUE file (replacing a commented or set line, or appending).
    param([Parameter(Mandatory)][string]$Path, [Parameter(Mandatory)][string]$Key, [Parameter(Mandatory)][string]$Value)
    $lines = [System.Collections.Generic.List[string]]@(Get-Content -LiteralPath $Path)
    $at = -1
    for ($i = 0; $i -lt $lines.Count; $i++) { if ($lines[$i] -match "^\s*$([regex]::Escape($Key))\s*=") { $at = $i } }
    if ($at -ge 0) { $lines[$at] = "$Key=$Value" } else { $lines.Add("$Key=$Value") }
    [IO.File]::WriteAllText($Path, (($lines -join "`n") + "`n"))
}

function Start-H5lUnit {
    # systemctl start UNIT... in the gateway, then waits until each is active.
    param([Parameter(Mandatory)]$Lab, [Parameter(Mandatory)][string[]]$Unit)
    Invoke-H5lGateway -Lab $Lab -ArgumentList (@('systemctl', 'start') + $Unit) -TimeoutSeconds 180 -Check | Out-Null
    foreach ($u in $Unit) {
        Wait-H5lGatewayCondition -TimeoutSeconds 90 -Message "$u active in the gateway" -Argument $Lab, $u -Condition {
            param($l, $name) (Invoke-H5lGateway -Lab $l -ArgumentList @('systemctl', 'is-active', $name)).StdOut.Trim() -eq 'active'
        }
    }
}

function Wait-H5lFirewalld {
    param([Parameter(Mandatory)]$Lab)
    Wait-H5lGatewayCondition -TimeoutSeconds 120 -Message 'firewall-cmd --state says running' -Argument $Lab -Condition {
        param($l) (Invoke-H5lGateway -Lab $l -ArgumentList @('firewall-cmd', '--state') -TimeoutSeconds 30).StdOut.Trim() -eq 'running'
    }
}

$script:Scenarios = [ordered]@{
    'nftables-handwritten' = @{
        Title   = 'nftables.service with a hand-written ruleset (table inet filter, forward policy drop)'
        Prepare = { param($root) [IO.File]::WriteAllText("$root/etc/nftables.conf", ($script:HandWrittenRuleset -replace "`r", '') + "`n") }
        Start   = { param($lab) Start-H5lUnit -Lab $lab -Unit 'nftables.service' }
    }
    'nftables-stock'       = @{
        Title   = "nftables.service with Debian's stock /etc/nftables.conf (flush ruleset)"
        Prepare = $null
        Start   = { param($lab) Start-H5lUnit -Lab $lab -Unit 'nftables.service' }
        After   = @{ Name = 'reloaded'; Action = { param($lab) Invoke-H5lGateway -Lab $lab -ArgumentList @('systemctl', 'reload', 'nftables.service') -Check | Out-Null } }
    }
    'firewalld'            = @{
        Title   = 'firewalld, default configuration (nftables backend)'
        Prepare = $null
        Start   = { param($lab) Start-H5lUnit -Lab $lab -Unit 'firewalld.service'; Wait-H5lFirewalld -Lab $lab }
    }
    'firewalld-strict'     = @{
        Title   = 'firewalld with StrictForwardPorts=yes'
        Prepare = { param($root) Set-H5lConfKey -Path "$root/etc/firewalld/firewalld.conf" -Key 'StrictForwardPorts' -Value 'yes' }
        Start   = { param($lab) Start-H5lUnit -Lab $lab -Unit 'firewalld.service'; Wait-H5lFirewalld -Lab $lab }
    }
    'firewalld-iptables'   = @{
        Title   = 'firewalld with FirewallBackend=iptables'
        Prepare = { param($root) Set-H5lConfKey -Path "$root/etc/firewalld/firewalld.conf" -Key 'FirewallBackend' -Value 'iptables' }
        Start   = { param($lab) Start-H5lUnit -Lab $lab -Unit 'firewalld.service'; Wait-H5lFirewalld -Lab $lab }
        After   = @{ Name = 'reloaded'; Action = { param($lab) Invoke-H5lGateway -Lab $lab -ArgumentList @('firewall-cmd', '--reload') -TimeoutSeconds 120 -Check | Out-Null; Wait-H5lFirewalld -Lab $lab } }
    }
    'libvirt-nftables'     = @{
        Title         = 'libvirt 11 with firewall_backend = "nftables", default NAT network virbr0, a namespace as the guest'
        GuestOnBridge = $true
        Prepare       = {
            param($root)
            [IO.File]::WriteAllText("$root/etc/libvirt/network.conf", "firewall_backend = `"nftables`"`n")
            [IO.File]::WriteAllText("$root/root/default-network.xml", ($script:LibvirtDefaultNetwork -replace "`r", '') + "`n")
        }
        Start         = {
            param($lab)
            Start-H5lUnit -Lab $lab -Unit 'libvirtd.service'
            Invoke-H5lGateway -Lab $lab -ArgumentList @('virsh', '-c', 'network:///system', 'net-define', '/root/default-network.xml') -Check | Out-Null
            Invoke-H5lGateway -Lab $lab -ArgumentList @('virsh', '-c', 'network:///system', 'net-start', 'default') -TimeoutSeconds 120 -Check | Out-Null
            Connect-H5lGuest -Lab $lab -Bridge 'virbr0' -Address '192.168.122.10' -PrefixLength 24 -Router '192.168.122.1'
        }
    }
    'docker'               = @{
        Title   = 'dockerd (vfs storage driver) started with forwarding off'
        Prepare = {
            param($root)
            $null = New-Item -ItemType Directory -Force -Path "$root/etc/docker"
            [IO.File]::WriteAllText("$root/etc/docker/daemon.json", "{ `"storage-driver`": `"vfs`" }`n")
        }
        Start   = { param($lab) Start-H5lUnit -Lab $lab -Unit 'containerd.service', 'docker.service' }
        After   = @{ Name = 'restarted'; Action = { param($lab) Invoke-H5lGateway -Lab $lab -ArgumentList @('systemctl', 'restart', 'docker.service') -TimeoutSeconds 180 -Check | Out-Null } }
    }
    'ufw'                  = @{
        Title   = 'ufw enabled (default FORWARD policy DROP)'
        Prepare = $null
        Start   = { param($lab) Invoke-H5lGateway -Lab $lab -ArgumentList @('ufw', '--force', 'enable') -Check | Out-Null }
    }
}

function Get-H5lScenario {
    <# .SYNOPSIS The scenario names (without -Name), or one scenario: Name, Title, GuestOnBridge, Prepare, Start, After. #>
    param([string]$Name)
    if (-not $Name) { return @($script:Scenarios.Keys) }
    if (-not $script:Scenarios.Contains($Name)) { throw "Unknown gateway scenario '$Name' ($(@($script:Scenarios.Keys) -join ', '))." }
    $s = $script:Scenarios[$Name]
    [pscustomobject]@{
        Name = $Name; Title = $s.Title; GuestOnBridge = [bool]$s['GuestOnBridge']; Prepare = $s['Prepare']; Start = $s['Start']; After = $s['After']
    }
}

function New-H5lScenario {
    <#
    .SYNOPSIS
        One scenario end to end up to the forward: the namespaces, the hello server (TCP -TcpPort, UDP -UdpPort),
        the gateway booted with the scenario's configuration and component started, and two forwards of ours
        made with the module in the host's pwsh (New-PortForward -NetworkNamespace): NAME-tcp and NAME-udp from the
        gateway's external address to the server. Returns the lab with Scenario, Forwards and Warnings (what
        New-PortForward warned) added. On failure everything is removed again.
    #>
    param([Parameter(Mandatory)][string]$Name, [int]$TcpPort = 8080, [int]$UdpPort = 5353, [string]$ForwardName = 'h5l')
    $scenario = Get-H5lScenario -Name $Name
    $lab = New-H5lGatewayLab -GuestOnBridge:$scenario.GuestOnBridge
    try {
        $lab | Add-Member -NotePropertyMembers @{ Scenario = $scenario; TcpPort = $TcpPort; UdpPort = $UdpPort; Forwards = @("$ForwardName-tcp", "$ForwardName-udp"); Warnings = @() }
        $null = Start-H5lGateway -Lab $lab -Prepare $scenario.Prepare
        & $scenario.Start $lab
        $null = Start-PSNetfilterLabServer -Lab $lab -TcpPort $TcpPort -UdpPort $UdpPort -LifetimeSeconds 1800 -StartTimeoutSeconds 90
        $lab.Warnings = @(New-H5lForward -Lab $lab)
    }
    catch {
        $err = $_
        Remove-H5lGatewayLab -Lab $lab
        throw $err
    }
    $lab
}

function New-H5lForward {
    <# .SYNOPSIS (Re)creates the lab's two forwards (-Force) with New-PortForward; returns the warnings it wrote as strings. #>
    param([Parameter(Mandatory)]$Lab)
    $warnings = [System.Collections.Generic.List[string]]::new()
    foreach ($proto in 'Tcp', 'Udp') {
        $port = if ($proto -eq 'Tcp') { $Lab.TcpPort } else { $Lab.UdpPort }
        $name = $Lab.Forwards[[int]($proto -eq 'Udp')]
        $w = $null
        $null = New-PortForward -Name $name -Protocol $proto -ExternalAddress $Lab.GatewayExternalAddress -ExternalPort $port `
            -InternalAddress $Lab.ServerAddress -NetworkNamespace $Lab.Gateway -Force -WarningVariable w -WarningAction SilentlyContinue -ErrorAction Stop
        foreach ($x in @($w)) { if ($x) { $warnings.Add([string]$x.Message) } }
    }
    $warnings.ToArray()
}

function Get-H5lFindingText {
    <# .SYNOPSIS Test-PortForward's findings for the lab's forwards, every property as text (one string); '' when none. #>
    param([Parameter(Mandatory)]$Lab)
    $f = @(Test-PortForward -Name $Lab.Forwards -NetworkNamespace $Lab.Gateway -ErrorAction SilentlyContinue)
    if ($f.Count -eq 0) { return '' }
    ($f | Format-List -Property * | Out-String -Width 400).Trim()
}

#endregion

Export-ModuleMember -Function Get-H5lGatewayRootfs, New-H5lGatewayLab, Connect-H5lGuest, Remove-H5lGatewayLab, Start-H5lGateway,
    Invoke-H5lGateway, Wait-H5lGatewayCondition, Get-H5lNftRuleset, Test-H5lForwardTraffic, Start-H5lUnit, Wait-H5lFirewalld,
    Get-H5lScenario, New-H5lScenario, New-H5lForward, Get-H5lFindingText
