# The nftables backend (New-PortForward -Backend Nftables) in the real kernel (tests/lab/PSNetfilterLab.psm1):
#
#     client 203.0.113.2 / 2001:db8:1::2 -> gateway 203.0.113.1 | 198.51.100.1 -> server 198.51.100.10 / 2001:db8:2::10
#
# Forwards in table inet psnetfilter carry TCP and UDP, IPv4 and IPv6; Get-, Test- and Remove-PortForward see them
# beside forwards of the iptables backend; a forward moves from one backend to the other with New-PortForward
# -Backend and carries traffic afterwards, leaving nothing in the backend it left; other tables stay byte-identical.

BeforeDiscovery {
    $isRoot = (& id -u) -eq '0'
    $hasNft = [bool](Get-Command nft -ErrorAction SilentlyContinue) -or (Test-Path /usr/sbin/nft)
    $SkipReason = $null
    if ($env:CI -ne 'true') {
        if (-not $isRoot) { $SkipReason = 'needs root (creates network namespaces and netfilter rules)' }
        elseif (-not $hasNft) { $SkipReason = 'needs nft (apt-get install nftables)' }
    }
    $Title = if ($SkipReason) { "The nftables backend (skipped: $SkipReason)" } else { 'The nftables backend' }
}

BeforeAll {
    $modulePath = if ($env:PSNETFILTER_TEST_MODULE) { $env:PSNETFILTER_TEST_MODULE } else { Join-Path $PSScriptRoot '../../out/PSNetfilter' }
    Import-Module (Join-Path $PSScriptRoot '../lab/PSNetfilterLab.psm1') -Force
    Import-Module (Join-Path $modulePath 'PSNetfilter.psd1') -Force
}

Describe $Title -Skip:([bool]$SkipReason) {
    BeforeAll {
        $script:lab = New-PSNetfilterLab -Prefix 'psnfk'
        $script:gw = $script:lab.Gateway
        $null = Start-PSNetfilterLabServer -Lab $script:lab -TcpPort 8080, 8081 -UdpPort 5353

        function script:Invoke-Gw([string[]]$Arguments) {
            $out = & ip netns exec $script:gw @Arguments 2>&1
            if ($LASTEXITCODE -ne 0) { throw "$($Arguments -join ' ') failed in $($script:gw) ($LASTEXITCODE): $out" }
            $out -join "`n"
        }
        function script:Test-Carries([string]$Protocol, [int]$Port, [string]$Address = $script:lab.GatewayExternalAddress) {
            # A positive proof needs one connection that got through: a second try on a loaded machine.
            foreach ($try in 1, 2) {
                if ($null -ne (Invoke-PSNetfilterLabProbe -Lab $script:lab -Protocol $Protocol -Address $Address -Port $Port -TimeoutSeconds 2)) { return $true }
            }
            $false
        }
        function script:Get-ForeignRuleset {
            # nft list ruleset without our table and iptables-nft's own tables (Get-PsnfChains checks those)
            $text = Invoke-Gw nft, 'list', 'ruleset'
            ($text -split "(?m)^(?=table )" | Where-Object { $_ -notmatch '^table (inet psnetfilter|ip nat|ip filter|ip6 nat|ip6 filter) ' } | ForEach-Object { $_.TrimEnd() }) -join "`n"
        }
        function script:Get-PsnfChains { @((Invoke-Gw iptables-save) -split "`n" | Where-Object { $_ -match 'PSNF-' }) }

        # Another program's table at the same hooks (accepting), which must stay as it is.
        $script:foreignFile = Join-Path ([IO.Path]::GetTempPath()) ('psnfk-' + [guid]::NewGuid().ToString('N') + '.nft')
        Set-Content -LiteralPath $script:foreignFile -Value "table inet other {`n`tchain gate {`n`t`ttype filter hook forward priority filter; policy accept;`n`t`tct state established,related accept`n`t}`n`tchain pre {`n`t`ttype nat hook prerouting priority dstnat; policy accept;`n`t}`n}"
        Invoke-Gw nft, '-f', $script:foreignFile | Out-Null
        $script:foreign = Get-ForeignRuleset
    }

    AfterAll {
        if ($script:lab) { Remove-PSNetfilterLab -Lab $script:lab }
        if ($script:foreignFile) { Remove-Item -LiteralPath $script:foreignFile -ErrorAction SilentlyContinue }
    }

    It 'creates forwards in table inet psnetfilter only, in one transaction, and they carry TCP, UDP and IPv6' {
        $r = @(
            [pscustomobject]@{ Name = 'web'; ExternalAddress = $script:lab.GatewayExternalAddress; ExternalPort = 8080; InternalAddress = $script:lab.ServerAddress }
            [pscustomobject]@{ Name = 'dns'; Protocol = 'Udp'; ExternalPort = 5353; InternalAddress = $script:lab.ServerAddress; SnatMode = 'Masquerade' }
            [pscustomobject]@{ Name = 'web6'; ExternalAddress = $script:lab.GatewayExternalAddressV6; ExternalPort = 8081; InternalAddress = $script:lab.ServerAddressV6 }
        ) | New-PortForward -NetworkNamespace $script:gw -Backend Nftables -Verbose -ErrorAction Stop -WarningAction SilentlyContinue 4>&1
        $results = @($r | Where-Object { $_ -is [PSNetfilter.PortForward] })
        $verbose = @($r | Where-Object { $_ -is [System.Management.Automation.VerboseRecord] } | ForEach-Object Message)
        $results.Count | Should -Be 3
        $results.Change | Should -Be @('Created', 'Created', 'Created')
        $results.Backend | Should -Be @('nftables', 'nftables', 'nftables')
        @($verbose | Where-Object { $_ -like 'nft input*' }).Count | Should -Be 1 -Because 'the whole pipeline is one nft transaction'

        Test-Carries Tcp 8080 | Should -BeTrue
        Test-Carries Udp 5353 | Should -BeTrue
        Test-Carries Tcp 8081 -Address $script:lab.GatewayExternalAddressV6 | Should -BeTrue
        Get-PsnfChains | Should -BeNullOrEmpty -Because 'the nftables backend writes no iptables rule'
        Get-ForeignRuleset | Should -BeExactly $script:foreign
    }

    It 'reads them back whole, with their backend and counters, and Test-PortForward finds nothing wrong' {
        $all = @(Get-PortForward -NetworkNamespace $script:gw -ErrorAction Stop)
        $all.Name | Should -Be @('dns', 'web', 'web6')
        $all.Backend | Sort-Object -Unique | Should -Be 'nftables'
        $all.Status | Sort-Object -Unique | Should -Be 'Complete'
        ($all | Where-Object Name -eq 'web').Packets | Should -BeGreaterThan 0
        @(Test-PortForward -NetworkNamespace $script:gw -ErrorAction Stop) | Should -BeNullOrEmpty
    }

    It 'runs the same pipeline again and changes nothing' {
        $again = @(Get-PortForward -NetworkNamespace $script:gw | New-PortForward -NetworkNamespace $script:gw -ErrorAction Stop -WarningAction SilentlyContinue)
        $again.Change | Sort-Object -Unique | Should -Be 'Unchanged'
    }

    It 'keeps forwards of both backends side by side and refuses a second forward on the same endpoint' {
        $ipt = New-PortForward -Name other -ExternalPort 9090 -InternalAddress $script:lab.ServerAddress -NetworkNamespace $script:gw -Backend Iptables -ErrorAction Stop -WarningAction SilentlyContinue
        $ipt.Backend | Should -Be 'iptables'
        (Get-PortForward -NetworkNamespace $script:gw).Name | Should -Be @('dns', 'other', 'web', 'web6')
        $clash = New-PortForward -Name web2 -ExternalAddress $script:lab.GatewayExternalAddress -ExternalPort 8080 -InternalAddress $script:lab.ServerAddress -NetworkNamespace $script:gw -Backend Iptables -ErrorAction SilentlyContinue -ErrorVariable err -WarningAction SilentlyContinue
        $clash | Should -BeNullOrEmpty
        $err[0].FullyQualifiedErrorId | Should -BeLike 'ExternalEndpointInUse*'
    }

    It 'moves a forward to the iptables backend with -Backend, and it still carries traffic, with nothing left behind' {
        $moved = Get-PortForward web -NetworkNamespace $script:gw | New-PortForward -NetworkNamespace $script:gw -Backend Iptables -ErrorAction Stop -WarningAction SilentlyContinue
        $moved.Change | Should -Be 'Replaced'
        $moved.Backend | Should -Be 'iptables'
        (Get-PortForward web -NetworkNamespace $script:gw).Backend | Should -Be 'iptables'
        Test-Carries Tcp 8080 | Should -BeTrue
        (Invoke-Gw nft, 'list', 'table', 'inet', 'psnetfilter') | Should -Not -Match 'psnf:v1:web:'
        (Get-PsnfChains) -join "`n" | Should -Match 'psnf:v1:web:dnat'
    }

    It 'moves it back to the nftables backend, again carrying traffic, and the iptables chains go with the last forward there' {
        $null = Remove-PortForward other -NetworkNamespace $script:gw -ErrorAction Stop
        $moved = Get-PortForward web -NetworkNamespace $script:gw | New-PortForward -NetworkNamespace $script:gw -Backend Nftables -ErrorAction Stop -WarningAction SilentlyContinue
        $moved.Change | Should -Be 'Replaced'
        $moved.Backend | Should -Be 'nftables'
        Test-Carries Tcp 8080 | Should -BeTrue
        Get-PsnfChains | Should -BeNullOrEmpty
        Get-ForeignRuleset | Should -BeExactly $script:foreign
    }

    It 'takes the preference from $PSNetfilterBackend and refuses one that names no backend' {
        $PSNetfilterBackend = 'Iptables'
        try {
            (New-PortForward -Name pref -ExternalPort 9191 -InternalAddress $script:lab.ServerAddress -NetworkNamespace $script:gw -ErrorAction Stop -WarningAction SilentlyContinue).Backend | Should -Be 'iptables'
            $PSNetfilterBackend = 'Bogus'
            { New-PortForward -Name pref2 -ExternalPort 9192 -InternalAddress $script:lab.ServerAddress -NetworkNamespace $script:gw -WarningAction SilentlyContinue } |
                Should -Throw -ErrorId 'InvalidBackendPreference*'
        }
        finally { Remove-Variable PSNetfilterBackend -ErrorAction SilentlyContinue }
        Get-PortForward pref2 -NetworkNamespace $script:gw -ErrorAction SilentlyContinue | Should -BeNullOrEmpty -Because 'the refused command queued nothing'
        $null = Remove-PortForward pref -NetworkNamespace $script:gw -ErrorAction Stop
    }

    It 'persists a forward of the nftables backend as an nft file that its script loads' {
        $root = Join-Path ([IO.Path]::GetTempPath()) ('psnfk-root-' + [guid]::NewGuid().ToString('N'))
        $null = New-Item -ItemType Directory -Path $root
        try {
            $svc = Get-PortForward web -NetworkNamespace $script:gw | Install-PortForwardService -NetworkNamespace $script:gw -Root $root -NoStart -ErrorAction Stop
            $nft = @($svc.Files | Where-Object { $_ -like '*/forwards.nft' })
            $nft.Count | Should -Be 1
            $lines = @(Get-Content -LiteralPath $nft[0] | Where-Object { $_ -and $_ -notlike '#*' })
            $lines | Should -Not -BeNullOrEmpty
            $lines | ForEach-Object { $_ | Should -Match '^add \w+ inet psnetfilter( |$)' }
            $lines -match 'psnf:v1:web:' | Should -Not -BeNullOrEmpty
            $lines -match 'psnf:v1:dns:' | Should -BeNullOrEmpty -Because 'only the piped forward is saved'
            Get-Content -LiteralPath $svc.ScriptPath -Raw | Should -Match '(?m)^# psnf-backend: web nftables$'
        }
        finally { Remove-Item -LiteralPath $root -Recurse -Force }
    }

    It 'removes every forward, leaving our table without elements and the other tables as they were' {
        $gone = @(Remove-PortForward * -NetworkNamespace $script:gw -PassThru -ErrorAction Stop)
        $gone.Name | Should -Be @('dns', 'web', 'web6')
        Get-PortForward -NetworkNamespace $script:gw | Should -BeNullOrEmpty
        Test-Carries Tcp 8080 | Should -BeFalse
        (Invoke-Gw nft, 'list', 'table', 'inet', 'psnetfilter') | Should -Not -Match 'psnf:v1:[a-z]'
        Get-ForeignRuleset | Should -BeExactly $script:foreign
    }
}
