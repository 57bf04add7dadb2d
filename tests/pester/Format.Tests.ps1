# The default views (module/PSNetfilter.Format.ps1xml) of the built module, on a real forward read back from the
# kernel: a port range, a source allow-list, an interface and -IncludeLocal must all be visible in the list and
# the table, since a forward for 9000-9002 shown as "ExternalPort : 9000" with no restriction misleads.

BeforeDiscovery {
    $FormatSkipReason = $null
    if ($env:CI -ne 'true') {
        if ((& id -u) -ne '0') { $FormatSkipReason = 'needs root (creates a network namespace and netfilter rules)' }
        elseif (-not ((Get-Command iptables -ErrorAction SilentlyContinue) -or (Test-Path /usr/sbin/iptables))) { $FormatSkipReason = 'needs iptables' }
    }
}

Describe 'Default views of PortForward, <Backend> backend' -Skip:([bool]$FormatSkipReason) -ForEach @(@{ Backend = 'Iptables' }, @{ Backend = 'Nftables' }) {
    BeforeAll {
        # The same views for each backend: the forwards go to the one of this block (the module-wide preference).
        $global:PSNetfilterBackend = $Backend
        Import-Module (Join-Path $PSScriptRoot '../support/TestProcess.psm1') -Force
        $modulePath = if ($env:PSNETFILTER_TEST_MODULE) { $env:PSNETFILTER_TEST_MODULE } else { Join-Path $PSScriptRoot '../../out/PSNetfilter' }
        Import-Module (Join-Path $modulePath 'PSNetfilter.psd1') -Force
        $script:ns = 'h4mfmt' + (-join ([Security.Cryptography.RandomNumberGenerator]::GetBytes(4) | ForEach-Object { $_.ToString('x2') }))
        $ip = Resolve-TestTool ip
        Invoke-TestProcess $ip -ArgumentList @('netns', 'add', $script:ns) -Check | Out-Null
        Invoke-TestProcess $ip -ArgumentList @('-n', $script:ns, 'link', 'set', 'lo', 'up') -Check | Out-Null
        # A real interface for -InInterface (a veth pair; both ends stay in the namespace).
        Invoke-TestProcess $ip -ArgumentList @('-n', $script:ns, 'link', 'add', 'h4mfmt0', 'type', 'veth', 'peer', 'name', 'h4mfmt1') -Check | Out-Null
        Invoke-TestProcess $ip -ArgumentList @('-n', $script:ns, 'addr', 'add', '203.0.113.1/24', 'dev', 'h4mfmt0') -Check | Out-Null
        Invoke-TestProcess $ip -ArgumentList @('-n', $script:ns, 'link', 'set', 'h4mfmt0', 'up') -Check | Out-Null

        $null = New-PortForward -NetworkNamespace $script:ns -Name ranged -ExternalAddress 203.0.113.1 -ExternalPort 9000-9002 `
            -InternalAddress 198.51.100.10 -InternalPort 8000-8002 -SourceAddress 192.0.2.0/24, 198.51.100.7 -InInterface h4mfmt0 `
            -IncludeLocal -Masquerade -WarningAction SilentlyContinue -ErrorAction Stop
        $null = New-PortForward -NetworkNamespace $script:ns -Name plain -ExternalPort 8080 -InternalAddress 198.51.100.11 `
            -Masquerade -WarningAction SilentlyContinue -ErrorAction Stop
        $script:ranged = Get-PortForward -NetworkNamespace $script:ns -Name ranged -ErrorAction Stop
        $script:plain = Get-PortForward -NetworkNamespace $script:ns -Name plain -ErrorAction Stop
    }
    AfterAll {
        Remove-Variable -Name PSNetfilterBackend -Scope Global -ErrorAction SilentlyContinue
        if ($script:ns) { Invoke-TestProcess (Resolve-TestTool ip) -ArgumentList @('netns', 'del', $script:ns) | Out-Null }
    }

    It 'the list view shows port ranges, the allow-list, the interface and IncludeLocal' {
        $text = $script:ranged | Format-List | Out-String -Width 200
        $text | Should -Match '(?m)^ExternalPort\s+: 9000-9002\s*$'
        $text | Should -Match '(?m)^InternalPort\s+: 8000-8002\s*$'
        $text | Should -Match '(?m)^SourceAddress\s+: 192\.0\.2\.0/24, 198\.51\.100\.7/32\s*$'
        $text | Should -Match '(?m)^InInterface\s+: h4mfmt0\s*$'
        $text | Should -Match '(?m)^IncludeLocal\s+: True\s*$'
        $text | Should -Match "(?m)^Backend\s+: $($Backend.ToLowerInvariant())\s*`$"
    }

    It 'the list view shows a single port as a number and no restriction for an open forward' {
        $text = $script:plain | Format-List | Out-String -Width 200
        $text | Should -Match '(?m)^ExternalPort\s+: 8080\s*$'
        $text | Should -Match '(?m)^InternalPort\s+: 8080\s*$'
        $text | Should -Match '(?m)^SourceAddress\s+:\s*$'
        $text | Should -Match '(?m)^InInterface\s+:\s*$'
        $text | Should -Match '(?m)^IncludeLocal\s+: False\s*$'
    }

    It 'the default (table) view shows the ranges and the restrictions on the row of the forward' {
        $lines = @((@($script:plain, $script:ranged) | Out-String -Width 250) -split "`n")
        $lines | Where-Object { $_ -match '^\s*Name\s' } | Should -Match '\sRestriction\s'
        $row = @($lines | Where-Object { $_ -match '^ranged\s' })
        $row | Should -HaveCount 1
        $row[0] | Should -Match '203\.0\.113\.1:9000-9002 -> 198\.51\.100\.10:8000-8002\s+masquerade\s+from 192\.0\.2\.0/24,198\.51\.100\.7/32 in h4mfmt0 \+local\s+Complete'
        $plainRow = @($lines | Where-Object { $_ -match '^plain\s' })
        $plainRow[0] | Should -Match '\*:8080 -> 198\.51\.100\.11:8080\s+masquerade\s+Complete'
    }
}
