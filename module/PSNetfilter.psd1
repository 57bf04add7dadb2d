@{
    RootModule             = 'PSNetfilter.dll'
    ModuleVersion          = '0.1.0'
    CompatiblePSEditions   = @('Core')
    GUID                   = '5b0f3a52-8d7e-4c36-9e0b-2f6c1d4a7e91'
    Author                 = 'PSNetfilter contributors'
    CompanyName            = 'PSNetfilter contributors'
    Copyright              = '(c) 2026 PSNetfilter contributors. MIT License.'
    Description            = 'Port forwarding on Linux netfilter as PowerShell objects: DNAT, source NAT and FORWARD accepts applied atomically with iptables-restore, in chains of its own, beside the rules of Docker, libvirt and kube-proxy.'
    PowerShellVersion      = '7.4'
    FormatsToProcess       = @('PSNetfilter.Format.ps1xml')
    CmdletsToExport        = @('New-PortForward', 'Get-PortForward', 'Remove-PortForward', 'Install-PortForwardService', 'Uninstall-PortForwardService', 'Test-PortForward')
    FunctionsToExport      = @()
    VariablesToExport      = @()
    AliasesToExport        = @()
    PrivateData            = @{
        PSData = @{
            Tags         = @('Linux', 'netfilter', 'iptables', 'nftables', 'NAT', 'PortForwarding', 'Firewall', 'Networking', 'DNAT', 'SNAT', 'systemd', 'PSEdition_Core')
            LicenseUri   = 'https://opensource.org/licenses/MIT'
            ProjectUri   = 'https://github.com/PSNetfilter/PSNetfilter'
            ReleaseNotes = @'
0.1.0 - first release.
- New-PortForward, Get-PortForward, Remove-PortForward: DNAT, source NAT and FORWARD accept per forward, applied atomically with one iptables-restore per address family, in PSNF- chains of their own; -NetworkNamespace on every cmdlet.
- Port ranges, source allow-lists (-SourceAddress), -InInterface, -IncludeLocal, and forwards to the loopback address.
- Test-PortForward: diagnoses forwards that do not carry traffic (forwarding off, drift, FORWARD policy, foreign DNAT, unreachable internal host, missing return route) and says how to fix each problem.
- Install-PortForwardService, Uninstall-PortForwardService: persist selected forwards as a systemd oneshot unit that restores only them at boot.
- Get-Help for every cmdlet with examples; tab completion of -Name and -NetworkNamespace; -Verbose shows every process and iptables-restore payload.
Requires Linux, root, PowerShell 7.4 or later, iptables (nft or legacy), iproute2, and util-linux's nsenter for -NetworkNamespace.
'@
        }
    }
}
