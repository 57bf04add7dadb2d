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
    CmdletsToExport        = @('New-PortForward', 'Get-PortForward', 'Remove-PortForward')
    FunctionsToExport      = @()
    VariablesToExport      = @()
    AliasesToExport        = @()
    PrivateData            = @{
        PSData = @{
            Tags         = @('Linux', 'netfilter', 'iptables', 'nftables', 'NAT', 'PortForwarding', 'Firewall', 'Networking', 'PSEdition_Core')
            LicenseUri   = 'https://opensource.org/licenses/MIT'
            ReleaseNotes = 'First release: New-PortForward, Get-PortForward, Remove-PortForward.'
        }
    }
}
