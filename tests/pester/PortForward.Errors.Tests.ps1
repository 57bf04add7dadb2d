# Bad input to New-PortForward, Get-PortForward and Remove-PortForward: each gets an ErrorRecord with a stable
# FullyQualifiedErrorId and the right ErrorCategory, and changes nothing. Every case runs against the gateway
# of a lab (tests/lab/PSNetfilterLab.psm1) that already holds two forwards ('keep', 'keep6'); the gateway's
# iptables-save and ip6tables-save dumps are taken before and after each case and must be identical.
# Also: a CSV pipeline with one bad row among good ones, not being root, and iptables not being installed.

BeforeDiscovery {
    $isRoot = (& id -u) -eq '0'
    $hasIp = [bool](Get-Command ip -ErrorAction SilentlyContinue) -or (Test-Path /usr/sbin/ip) -or (Test-Path /sbin/ip)
    $hasIptables = [bool](Get-Command iptables -ErrorAction SilentlyContinue) -or (Test-Path /usr/sbin/iptables) -or (Test-Path /sbin/iptables)
    $ErrorsSkipReason = $null
    if ($env:CI -ne 'true') {
        # In CI (as root) these tests must run; elsewhere they need root, iproute2 and iptables.
        if (-not $isRoot) { $ErrorsSkipReason = 'needs root (creates network namespaces and netfilter rules)' }
        elseif (-not $hasIp) { $ErrorsSkipReason = 'needs iproute2 (ip)' }
        elseif (-not $hasIptables) { $ErrorsSkipReason = 'needs iptables' }
    }
    $ErrorsTitle = if ($ErrorsSkipReason) { "PortForward bad input (skipped: $ErrorsSkipReason)" } else { 'PortForward bad input' }

    $setpriv = Get-Command setpriv -CommandType Application -ErrorAction SilentlyContinue | Select-Object -First 1
    $NotRootSkipReason = if (-not $setpriv) { 'setpriv (util-linux) is not installed, so no unprivileged child can be started' } else { $null }
    $unshare = Get-Command unshare -CommandType Application -ErrorAction SilentlyContinue | Select-Object -First 1
    $NoIptablesSkipReason = if (-not $unshare) { 'unshare (util-linux) is not installed, so iptables cannot be hidden in a private mount namespace' } else { $null }

    # A New-PortForward that would succeed; each case spoils one thing.
    $good = @{ ExternalAddress = '203.0.113.1'; ExternalPort = 9090; InternalAddress = '198.51.100.10' }
    function New-Case([string]$Title, [string]$Command, [hashtable]$Change, [string]$ErrorId, [string]$Category) {
        $p = if ($Command -eq 'New-PortForward') { $good.Clone() } else { @{} }
        foreach ($k in $Change.Keys) { $p[$k] = $Change[$k] }
        @{ Title = $Title; Command = $Command; Params = $p; ErrorId = $ErrorId; Category = $Category }
    }
    $nosuch = 'psnfn-e-no-such-namespace'
    $BadInputCases = @(
        # ports
        New-Case 'ExternalPort 0' New-PortForward @{ ExternalPort = 0 } ParameterArgumentValidationError InvalidData
        New-Case 'ExternalPort 65536' New-PortForward @{ ExternalPort = 65536 } ParameterArgumentValidationError InvalidData
        New-Case 'InternalPort 0' New-PortForward @{ InternalPort = 0 } ParameterArgumentValidationError InvalidData
        New-Case 'InternalPort 65536' New-PortForward @{ InternalPort = 65536 } ParameterArgumentValidationError InvalidData
        New-Case 'Get-PortForward -ExternalPort 65536' Get-PortForward @{ ExternalPort = 65536 } ParameterArgumentValidationError InvalidData
        # addresses that do not parse
        New-Case "InternalAddress 'abc'" New-PortForward @{ InternalAddress = 'abc' } InvalidAddress InvalidArgument
        New-Case "InternalAddress '1.2.3.4/24'" New-PortForward @{ InternalAddress = '1.2.3.4/24' } InvalidAddress InvalidArgument
        New-Case "InternalAddress '10.1'" New-PortForward @{ InternalAddress = '10.1' } InvalidAddress InvalidArgument
        New-Case "InternalAddress ' '" New-PortForward @{ InternalAddress = ' ' } InvalidAddress InvalidArgument
        New-Case "InternalAddress '0.0.0.0'" New-PortForward @{ InternalAddress = '0.0.0.0' } InvalidAddress InvalidArgument
        New-Case "InternalAddress 'fe80::1%eth0'" New-PortForward @{ InternalAddress = 'fe80::1%eth0' } InvalidAddress InvalidArgument
        # -InternalAddress is mandatory: PowerShell itself refuses an empty string before the cmdlet runs.
        New-Case "InternalAddress ''" New-PortForward @{ InternalAddress = '' } ParameterArgumentValidationErrorEmptyStringNotAllowed InvalidData
        New-Case "ExternalAddress 'abc'" New-PortForward @{ ExternalAddress = 'abc' } InvalidAddress InvalidArgument
        New-Case "ExternalAddress ''" New-PortForward @{ ExternalAddress = '' } InvalidAddress InvalidArgument
        New-Case "ExternalAddress '1.2.3.4/24'" New-PortForward @{ ExternalAddress = '1.2.3.4/24' } InvalidAddress InvalidArgument
        New-Case "ExternalAddress '10.1'" New-PortForward @{ ExternalAddress = '10.1' } InvalidAddress InvalidArgument
        New-Case "ExternalAddress '224.0.0.1' (multicast)" New-PortForward @{ ExternalAddress = '224.0.0.1' } InvalidAddress InvalidArgument
        New-Case "SnatAddress 'abc'" New-PortForward @{ SnatAddress = 'abc' } InvalidAddress InvalidArgument
        New-Case "SnatAddress '1.2.3.4/24'" New-PortForward @{ SnatAddress = '1.2.3.4/24' } InvalidAddress InvalidArgument
        New-Case "SnatAddress '10.1'" New-PortForward @{ SnatAddress = '10.1' } InvalidAddress InvalidArgument
        New-Case "Get-PortForward -InternalAddress '10.1'" Get-PortForward @{ InternalAddress = '10.1' } InvalidAddress InvalidArgument
        # families mixed
        New-Case 'IPv6 ExternalAddress, IPv4 InternalAddress' New-PortForward @{ ExternalAddress = '2001:db8:1::1' } AddressFamilyMismatch InvalidArgument
        New-Case 'IPv4 ExternalAddress, IPv6 InternalAddress' New-PortForward @{ InternalAddress = '2001:db8:2::10' } AddressFamilyMismatch InvalidArgument
        New-Case 'IPv6 SnatAddress, IPv4 InternalAddress' New-PortForward @{ SnatAddress = '2001:db8:2::1' } AddressFamilyMismatch InvalidArgument
        # protocol
        New-Case "Protocol 'Icmp'" New-PortForward @{ Protocol = 'Icmp' } CannotConvertArgumentNoMessage InvalidArgument
        # network namespaces
        New-Case 'New: a namespace that does not exist' New-PortForward @{ NetworkNamespace = $nosuch } NetworkNamespaceNotFound ObjectNotFound
        New-Case 'Get: a namespace that does not exist' Get-PortForward @{ NetworkNamespace = $nosuch } NetworkNamespaceNotFound ObjectNotFound
        New-Case 'Remove: a namespace that does not exist' Remove-PortForward @{ NetworkNamespace = $nosuch; Name = 'keep' } NetworkNamespaceNotFound ObjectNotFound
        New-Case "New: a namespace path '/run/netns/x'" New-PortForward @{ NetworkNamespace = '/run/netns/x' } InvalidNetworkNamespace InvalidArgument
        New-Case "Get: a namespace path '/run/netns/x'" Get-PortForward @{ NetworkNamespace = '/run/netns/x' } InvalidNetworkNamespace InvalidArgument
        New-Case "Remove: a namespace path '/run/netns/x'" Remove-PortForward @{ NetworkNamespace = '/run/netns/x'; Name = 'keep' } InvalidNetworkNamespace InvalidArgument
        New-Case "New: namespace '..'" New-PortForward @{ NetworkNamespace = '..' } InvalidNetworkNamespace InvalidArgument
        # names (they end up inside the iptables-restore input)
        New-Case 'a name with a single quote' New-PortForward @{ Name = "we'b" } InvalidName InvalidArgument
        New-Case 'a name with a double quote' New-PortForward @{ Name = 'we"b' } InvalidName InvalidArgument
        New-Case 'a name with a newline' New-PortForward @{ Name = "web`n-A FORWARD -j ACCEPT" } InvalidName InvalidArgument
        New-Case 'a name with a space' New-PortForward @{ Name = 'we b' } InvalidName InvalidArgument
        New-Case 'a name of 65 characters' New-PortForward @{ Name = 'a' * 65 } InvalidName InvalidArgument
        New-Case 'a name with a colon (the tag separator)' New-PortForward @{ Name = 'web:dnat' } InvalidName InvalidArgument
        New-Case 'Remove: a name with a quote' Remove-PortForward @{ Name = "ke'ep" } InvalidName InvalidArgument
        New-Case 'Remove: a name of 65 characters' Remove-PortForward @{ Name = 'k' * 65 } InvalidName InvalidArgument
        # names that match nothing
        New-Case 'Remove-PortForward -Name nothere' Remove-PortForward @{ Name = 'nothere' } PortForwardNotFound ObjectNotFound
        New-Case 'Get-PortForward -Name nothere' Get-PortForward @{ Name = 'nothere' } PortForwardNotFound ObjectNotFound
        # source NAT options
        New-Case '-Masquerade with -NoSnat' New-PortForward @{ Masquerade = $true; NoSnat = $true } ConflictingSnatOptions InvalidArgument
        New-Case '-SnatAddress with -Masquerade' New-PortForward @{ SnatAddress = '198.51.100.1'; Masquerade = $true } ConflictingSnatOptions InvalidArgument
        New-Case '-SnatAddress with -NoSnat' New-PortForward @{ SnatAddress = '198.51.100.1'; NoSnat = $true } ConflictingSnatOptions InvalidArgument
        # description (stored in the kernel's 256-byte rule comment)
        New-Case 'a description of 129 bytes' New-PortForward @{ Description = 'd' * 129 } DescriptionTooLong InvalidArgument
    )
}

BeforeAll {
    $modulePath = if ($env:PSNETFILTER_TEST_MODULE) { $env:PSNETFILTER_TEST_MODULE } else { Join-Path $PSScriptRoot '../../out/PSNetfilter' }
    $script:ModulePath = (Resolve-Path -LiteralPath $modulePath -ErrorAction SilentlyContinue).ProviderPath
    if (-not $script:ModulePath) { $script:ModulePath = $modulePath }
    $script:ModuleManifest = Join-Path $script:ModulePath 'PSNetfilter.psd1'

    $script:CommandClass = @{
        'New-PortForward'    = 'PSNetfilter.Commands.NewPortForwardCommand'
        'Get-PortForward'    = 'PSNetfilter.Commands.GetPortForwardCommand'
        'Remove-PortForward' = 'PSNetfilter.Commands.RemovePortForwardCommand'
    }

    function script:Get-FullDump([string]$Namespace) {
        # Both iptables families; for the nftables backend the whole nftables ruleset too (nft -s: no counters;
        # standard output only, nft warns about iptables-nft's tables on standard error).
        $dump = "### IPv4`n" + (Get-PSNetfilterLabDump -Namespace $Namespace -Family IPv4) + "`n### IPv6`n" + (Get-PSNetfilterLabDump -Namespace $Namespace -Family IPv6)
        if ($Backend -eq 'Nftables') {
            $nft = @(& ip netns exec $Namespace nft -s list ruleset 2>$null)
            if ($LASTEXITCODE -ne 0) { throw "nft -s list ruleset in $Namespace failed (exit $LASTEXITCODE)" }
            $dump += "`n### nft`n" + ($nft -join "`n")
        }
        $dump
    }

    function script:Assert-GatewayDump([string]$Expected, [string]$Because = 'nothing may change') {
        # The last step of a test: compare the gateway's dump, and keep it for AfterEach (saves a dump).
        $script:LastDump = Get-FullDump $script:gw
        $script:LastDump | Should -BeExactly $Expected -Because $Because
    }

    function script:Invoke-Captured([scriptblock]$ScriptBlock) {
        # Runs a command and sorts what it produced: objects, and error records whether they were written
        # (non-terminating) or thrown (terminating errors, parameter binding errors).
        $ErrorActionPreference = 'Continue'
        $output = [System.Collections.Generic.List[object]]::new()
        $errors = [System.Collections.Generic.List[System.Management.Automation.ErrorRecord]]::new()
        try {
            & $ScriptBlock 2>&1 | ForEach-Object {
                if ($_ -is [System.Management.Automation.ErrorRecord]) { $errors.Add($_) } else { $output.Add($_) }
            }
        }
        catch {
            $errors.Add($_)
        }
        [pscustomobject]@{ Output = $output.ToArray(); Errors = $errors.ToArray() }
    }

    function script:Invoke-Child([string[]]$ArgumentList, [hashtable]$Environment = @{}, [string]$WorkingDirectory) {
        # A child process with the usual child environment (tests/support/TestProcess.psm1), plus $Environment.
        Invoke-TestProcess -FilePath $ArgumentList[0] -ArgumentList @($ArgumentList | Select-Object -Skip 1) -Environment ((Get-TestChildEnvironment) + $Environment) -WorkingDirectory $WorkingDirectory -TimeoutSeconds 120
    }

    # The script a child pwsh runs: import the module, call the cmdlets on the lab gateway, and print every
    # error record as one JSON array on stdout.
    $script:ChildScript = @'
param([string]$Manifest, [string]$Namespace, [string]$Mode)
$ErrorActionPreference = 'Continue'
$records = [System.Collections.Generic.List[object]]::new()
function Add-Record($Command, $e) {
    $records.Add([ordered]@{
        Command           = $Command
        Id                = $e.FullyQualifiedErrorId
        Category          = $e.CategoryInfo.Category.ToString()
        Message           = $e.Exception.Message
        RecommendedAction = if ($e.ErrorDetails) { $e.ErrorDetails.RecommendedAction } else { $null }
    })
}
$visible = @()
if ($Mode -eq 'NoIptables') {
    $visible = @(foreach ($d in @($env:PATH -split ':') + '/usr/sbin', '/sbin', '/usr/bin', '/bin', '/usr/local/sbin', '/usr/local/bin') {
        if ($d -and (Test-Path -LiteralPath (Join-Path $d 'iptables'))) { Join-Path $d 'iptables' }
    })
}
Import-Module $Manifest
$calls = [ordered]@{
    'Get-PortForward'    = { Get-PortForward -NetworkNamespace $Namespace }
    'New-PortForward'    = { New-PortForward -NetworkNamespace $Namespace -Name child -ExternalAddress 203.0.113.1 -ExternalPort 9191 -InternalAddress 198.51.100.10 -NoSnat }
    'Remove-PortForward' = { Remove-PortForward -NetworkNamespace $Namespace -Name keep }
}
foreach ($c in $calls.Keys) {
    try {
        & $calls[$c] 2>&1 | ForEach-Object { if ($_ -is [System.Management.Automation.ErrorRecord]) { Add-Record $c $_ } }
    }
    catch {
        Add-Record $c $_
    }
}
[Console]::Out.WriteLine((ConvertTo-Json -InputObject @{ Uid = (& id -u); Visible = $visible; Errors = @($records) } -Depth 4 -Compress))
'@
}

Describe "$ErrorsTitle, <Backend> backend" -Skip:([bool]$ErrorsSkipReason) -ForEach @(@{ Backend = 'Iptables' }, @{ Backend = 'Nftables' }) {
    BeforeAll {
        # The same cases for each backend: the module-wide preference here, the environment for the child pwsh.
        $global:PSNetfilterBackend = $Backend
        $env:PSNETFILTER_BACKEND = $Backend
        Import-Module (Join-Path $PSScriptRoot '../lab/PSNetfilterLab.psm1') -Force
        Import-Module (Join-Path $PSScriptRoot '../support/TestProcess.psm1') -Force
        if (-not (Test-Path -LiteralPath $script:ModuleManifest)) {
            throw "The built module was not found at '$($script:ModuleManifest)'. Build it (./build.ps1 Build) and set PSNETFILTER_TEST_MODULE to out/PSNetfilter."
        }
        Import-Module $script:ModuleManifest -Force
        $script:lab = $null
        $script:lab = New-PSNetfilterLab -Prefix 'psnfn-e'
        $script:gw = $script:lab.Gateway
        # One forward per family already there, so that "changes nothing" also covers the module's own chains.
        # (The IPv6 one also makes the ip6tables nat and filter tables exist: iptables-nft creates a table
        # with its built-in chains the first time a payload names it, and they stay when the module's own
        # chains are deleted again, so a fresh namespace would not come back to an empty IPv6 dump.)
        $keep = New-PortForward -NetworkNamespace $script:gw -Name keep -ExternalAddress 203.0.113.1 -ExternalPort 8080 -InternalAddress 198.51.100.10
        $keep6 = New-PortForward -NetworkNamespace $script:gw -Name keep6 -ExternalAddress 2001:db8:1::1 -ExternalPort 8080 -InternalAddress 2001:db8:2::10
        if ($keep.Change -ne 'Created' -or $keep6.Change -ne 'Created') { throw "could not create the 'keep' and 'keep6' forwards" }
        if ($keep.Backend -ne $Backend.ToLowerInvariant()) { throw "'keep' went to the $($keep.Backend) backend, not $Backend" }
        $script:Initial = Get-FullDump $script:gw
    }

    AfterAll {
        Remove-Variable -Name PSNetfilterBackend -Scope Global -ErrorAction SilentlyContinue
        Remove-Item -LiteralPath Env:PSNETFILTER_BACKEND -ErrorAction SilentlyContinue
        if ($script:lab) { Remove-PSNetfilterLab -Lab $script:lab }
    }

    BeforeEach {
        $script:LastDump = $null
    }

    AfterEach {
        # A case that wrongly succeeded must not spoil the next one: put back the initial state.
        $now = if ($null -ne $script:LastDump) { $script:LastDump } elseif ($script:lab) { Get-FullDump $script:gw } else { $script:Initial }
        if ($script:lab -and $now -cne $script:Initial) {
            Get-PortForward -NetworkNamespace $script:gw -ErrorAction SilentlyContinue | Where-Object Name -notin 'keep', 'keep6' |
                Remove-PortForward -ErrorAction SilentlyContinue
        }
    }

    Context 'bad input gets a clear error with a stable id and changes nothing' {
        It '<Title>: <ErrorId> (<Category>)' -ForEach $BadInputCases {
            $params = $Params.Clone()
            if (-not $params.ContainsKey('NetworkNamespace')) { $params['NetworkNamespace'] = $script:gw }
            $before = Get-FullDump $script:gw
            $r = Invoke-Captured { & $Command @params }
            $r.Output | Should -BeNullOrEmpty
            $r.Errors | Should -HaveCount 1
            $e = $r.Errors[0]
            $e.FullyQualifiedErrorId | Should -BeExactly "$ErrorId,$($script:CommandClass[$Command])"
            $e.CategoryInfo.Category | Should -Be $Category
            $e.Exception.Message | Should -Not -BeNullOrEmpty
            Assert-GatewayDump $before -Because 'bad input must change nothing'
        }

        It 'reports -Protocol Icmp as a parameter binding error' {
            $r = Invoke-Captured { New-PortForward -NetworkNamespace $script:gw -Protocol Icmp -ExternalPort 9090 -InternalAddress 198.51.100.10 }
            $r.Errors | Should -HaveCount 1
            $r.Errors[0].Exception | Should -BeOfType [System.Management.Automation.ParameterBindingException]
            $r.Errors[0].Exception.Message | Should -Match 'Tcp, Udp'
        }

        It 'names the offending value in the message (<Value>)' -ForEach @(
            @{ Value = '10.1'; Pattern = "InternalAddress '10\.1'" }
            @{ Value = '1.2.3.4/24'; Pattern = 'prefix length' }
        ) {
            $r = Invoke-Captured { New-PortForward -NetworkNamespace $script:gw -ExternalPort 9090 -InternalAddress $Value }
            $r.Errors | Should -HaveCount 1
            $r.Errors[0].Exception.Message | Should -Match $Pattern
        }

        It 'shows a newline in a name escaped, never raw, in the message' {
            $r = Invoke-Captured { New-PortForward -NetworkNamespace $script:gw -Name "a`nb" -ExternalPort 9090 -InternalAddress 198.51.100.10 }
            $r.Errors | Should -HaveCount 1
            $r.Errors[0].Exception.Message | Should -Not -Match "`n"
            $r.Errors[0].Exception.Message | Should -Match ([regex]::Escape('a\u000ab'))
        }

        It 'accepts a name of exactly 64 characters (the limit) and removes it again' {
            $name = 'n' * 64
            $f = New-PortForward -NetworkNamespace $script:gw -Name $name -ExternalAddress 203.0.113.1 -ExternalPort 9092 -InternalAddress 198.51.100.10
            $f.Name | Should -BeExactly $name
            (Get-PortForward -NetworkNamespace $script:gw -Name $name).Status | Should -Be 'Complete'
            Remove-PortForward -NetworkNamespace $script:gw -Name $name
            Assert-GatewayDump $script:Initial
        }

        It 'reports a literal name that matches nothing but still removes the names that do match' {
            $null = New-PortForward -NetworkNamespace $script:gw -Name temp -ExternalAddress 203.0.113.1 -ExternalPort 9093 -InternalAddress 198.51.100.10
            $r = Invoke-Captured { Remove-PortForward -NetworkNamespace $script:gw -Name nothere, temp }
            $r.Errors | Should -HaveCount 1
            $r.Errors[0].FullyQualifiedErrorId | Should -BeExactly 'PortForwardNotFound,PSNetfilter.Commands.RemovePortForwardCommand'
            $r.Errors[0].CategoryInfo.Category | Should -Be 'ObjectNotFound'
            $r.Errors[0].TargetObject | Should -Be 'nothere'
            Assert-GatewayDump $script:Initial
        }

        It 'treats a wildcard that matches nothing as no error and no change' {
            $r = Invoke-Captured { Remove-PortForward -NetworkNamespace $script:gw -Name 'nothere*' }
            $r.Errors | Should -HaveCount 0
            $r = Invoke-Captured { Get-PortForward -NetworkNamespace $script:gw -Name 'nothere*' }
            $r.Errors | Should -HaveCount 0
            $r.Output | Should -BeNullOrEmpty
            Assert-GatewayDump $script:Initial
        }
    }

    Context 'conflicts with existing forwards' {
        It 'refuses another name on an external endpoint in use (<Title>) with ExternalEndpointInUse and changes nothing' -ForEach @(
            @{ Title = 'same address and port'; Params = @{ ExternalAddress = '203.0.113.1' } }
            @{ Title = 'any local address, same port'; Params = @{} }
        ) {
            $before = Get-FullDump $script:gw
            $p = $Params.Clone()
            $r = Invoke-Captured { New-PortForward -NetworkNamespace $script:gw -Name other -ExternalPort 8080 -InternalAddress 198.51.100.10 -InternalPort 8081 @p }
            $r.Output | Should -BeNullOrEmpty
            $r.Errors | Should -HaveCount 1
            $r.Errors[0].FullyQualifiedErrorId | Should -BeExactly 'ExternalEndpointInUse,PSNetfilter.Commands.NewPortForwardCommand'
            $r.Errors[0].CategoryInfo.Category | Should -Be 'ResourceExists'
            $r.Errors[0].Exception.Message | Should -Match "'keep'"
            Assert-GatewayDump $before
        }

        It 'refuses a second, different definition of one name within the same pipeline (PortForwardExists)' {
            $items = @(
                [pscustomobject]@{ Name = 'twice'; ExternalAddress = '203.0.113.1'; ExternalPort = 9094; InternalAddress = '198.51.100.10' }
                [pscustomobject]@{ Name = 'twice'; ExternalAddress = '203.0.113.1'; ExternalPort = 9094; InternalAddress = '198.51.100.11' }
            )
            $r = Invoke-Captured { $items | New-PortForward -NetworkNamespace $script:gw }
            $r.Errors | Should -HaveCount 1
            $r.Errors[0].FullyQualifiedErrorId | Should -BeExactly 'PortForwardExists,PSNetfilter.Commands.NewPortForwardCommand'
            $r.Errors[0].CategoryInfo.Category | Should -Be 'ResourceExists'
            $r.Output | Should -HaveCount 1
            $r.Output[0].InternalAddress.ToString() | Should -Be '198.51.100.10'
            Remove-PortForward -NetworkNamespace $script:gw -Name twice
            Assert-GatewayDump $script:Initial
        }
    }

    Context 'a CSV pipeline with one bad row among good rows' {
        It 'creates the good rows and gives the bad row its own error' {
            $csvPath = Join-Path $TestDrive 'mixed.csv'
            @(
                'Name,Protocol,ExternalAddress,ExternalPort,InternalAddress,Description'
                'good-a,Tcp,203.0.113.1,9101,198.51.100.10,first'
                'bad-row,Tcp,203.0.113.1,9102,10.1,broken address'
                'good-b,Udp,203.0.113.1,9103,198.51.100.10,'
                'good-c,Tcp,2001:db8:1::1,9104,2001:db8:2::10,IPv6'
            ) | Set-Content -LiteralPath $csvPath -Encoding utf8

            $r = Invoke-Captured { Import-Csv -LiteralPath $csvPath | New-PortForward -NetworkNamespace $script:gw }
            $r.Errors | Should -HaveCount 1
            $r.Errors[0].FullyQualifiedErrorId | Should -BeExactly 'InvalidAddress,PSNetfilter.Commands.NewPortForwardCommand'
            $r.Errors[0].CategoryInfo.Category | Should -Be 'InvalidArgument'
            $r.Errors[0].TargetObject | Should -Be '10.1'
            @($r.Output.Name | Sort-Object) | Should -Be @('good-a', 'good-b', 'good-c')
            $r.Output | ForEach-Object { $_.Change | Should -Be 'Created' }

            $now = @(Get-PortForward -NetworkNamespace $script:gw)
            @($now.Name | Sort-Object) | Should -Be @('good-a', 'good-b', 'good-c', 'keep', 'keep6')
            $now | ForEach-Object { $_.Status | Should -Be 'Complete' }
            Get-FullDump $script:gw | Should -Not -Match 'bad-row'

            Remove-PortForward -NetworkNamespace $script:gw -Name good-*
            Assert-GatewayDump $script:Initial
        }

        It 'skips a row whose port is out of range (a binding error for that row) and creates the others' {
            $csvPath = Join-Path $TestDrive 'badport.csv'
            @(
                'Name,Protocol,ExternalAddress,ExternalPort,InternalAddress'
                'good-d,Tcp,203.0.113.1,9105,198.51.100.10'
                'bad-port,Tcp,203.0.113.1,70000,198.51.100.10'
                'good-e,Tcp,203.0.113.1,9106,198.51.100.10'
            ) | Set-Content -LiteralPath $csvPath -Encoding utf8

            $r = Invoke-Captured { Import-Csv -LiteralPath $csvPath | New-PortForward -NetworkNamespace $script:gw }
            $r.Errors | Should -HaveCount 1
            $r.Errors[0].FullyQualifiedErrorId | Should -BeExactly 'ParameterArgumentValidationError,PSNetfilter.Commands.NewPortForwardCommand'
            @($r.Output.Name | Sort-Object) | Should -Be @('good-d', 'good-e')
            Remove-PortForward -NetworkNamespace $script:gw -Name good-*
            Assert-GatewayDump $script:Initial
        }
    }

    Context 'the environment' {
        It 'says NotRoot to an unprivileged user (Get, New and Remove) and changes nothing' -Skip:([bool]$NotRootSkipReason) {
            # setpriv drops to nobody; CAP_DAC_READ_SEARCH (ambient) only lets that user read the pwsh and the
            # module below root-only folders such as ~/.nuget: the effective uid is not 0, so the module must refuse.
            $home65534 = Join-Path $TestDrive 'nobody-home'
            $null = New-Item -ItemType Directory -Force -Path $home65534
            & chown 65534:65534 $home65534
            $scriptPath = Join-Path $TestDrive 'child-notroot.ps1'
            Set-Content -LiteralPath $scriptPath -Value $script:ChildScript -Encoding utf8
            $before = Get-FullDump $script:gw

            $setpriv = (Get-Command setpriv -CommandType Application | Select-Object -First 1).Source
            $argv = @($setpriv, '--reuid=65534', '--regid=65534', '--clear-groups', '--inh-caps=+dac_read_search', '--ambient-caps=+dac_read_search') +
                (Get-TestPwshInvocation) + @('-NoProfile', '-NonInteractive', '-File', $scriptPath, '-Manifest', $script:ModuleManifest, '-Namespace', $script:gw, '-Mode', 'NotRoot')
            $res = Invoke-Child -ArgumentList $argv -Environment @{ HOME = $home65534; XDG_CONFIG_HOME = $home65534; XDG_DATA_HOME = $home65534; XDG_CACHE_HOME = $home65534 } -WorkingDirectory $home65534
            $res.StdOut | Should -Not -BeNullOrEmpty -Because "the child must report its errors (stderr: $($res.StdErr))"
            $report = $res.StdOut | ConvertFrom-Json
            $report.Uid | Should -Be '65534'
            $errors = @($report.Errors)
            $errors | Should -HaveCount 3
            foreach ($cmd in 'Get-PortForward', 'New-PortForward', 'Remove-PortForward') {
                $e = @($errors | Where-Object Command -EQ $cmd)
                $e | Should -HaveCount 1 -Because "$cmd must fail exactly once"
                $e[0].Id | Should -BeExactly "NotRoot,$($script:CommandClass[$cmd])"
                $e[0].Category | Should -Be 'PermissionDenied'
                $e[0].Message | Should -Match 'root'
            }
            Assert-GatewayDump $before
        }

        # The iptables backend's: the nftables backend runs nft in-process (libnftables) and needs no iptables.
        It 'names the package to install when iptables is missing (ToolNotInstalled)' -Skip:([bool]$NoIptablesSkipReason -or $Backend -ne 'Iptables') {
            # PATH alone cannot hide iptables: the module also looks in /usr/sbin, /sbin and the other standard
            # folders. So the child runs in a private mount namespace (unshare --mount) with empty tmpfs mounted
            # over the sbin folders; nothing outside that child's mount namespace changes.
            $scriptPath = Join-Path $TestDrive 'child-noiptables.ps1'
            Set-Content -LiteralPath $scriptPath -Value $script:ChildScript -Encoding utf8
            $before = Get-FullDump $script:gw
            $unshare = (Get-Command unshare -CommandType Application | Select-Object -First 1).Source
            $hide = 'for d in /usr/sbin /sbin /usr/local/sbin; do if [ -d "$d" ] && [ ! -L "$d" ]; then mount -t tmpfs -o size=64k,mode=755 psnfn-empty "$d" || exit 97; fi; done; exec "$@"'
            $argv = @($unshare, '--mount', '--propagation', 'private', '--', '/bin/sh', '-c', $hide, 'sh') +
                (Get-TestPwshInvocation) + @('-NoProfile', '-NonInteractive', '-File', $scriptPath, '-Manifest', $script:ModuleManifest, '-Namespace', $script:gw, '-Mode', 'NoIptables')
            $res = Invoke-Child -ArgumentList $argv -Environment @{ PATH = '/usr/bin:/bin' }
            $res.ExitCode | Should -Not -Be 97 -Because "hiding the sbin folders must work (stderr: $($res.StdErr))"
            $res.StdOut | Should -Not -BeNullOrEmpty -Because "the child must report its errors (stderr: $($res.StdErr))"
            $report = $res.StdOut | ConvertFrom-Json
            @($report.Visible) | Should -BeNullOrEmpty -Because 'iptables must not be found anywhere the module looks'
            $errors = @($report.Errors)
            foreach ($cmd in 'Get-PortForward', 'New-PortForward', 'Remove-PortForward') {
                $e = @($errors | Where-Object Command -EQ $cmd)
                $e | Should -HaveCount 1 -Because "$cmd must fail exactly once"
                $e[0].Id | Should -BeExactly "ToolNotInstalled,$($script:CommandClass[$cmd])"
                $e[0].Category | Should -Be 'NotInstalled'
                $e[0].Message | Should -Match "'iptables'"
                $e[0].Message | Should -Match 'apt-get install iptables'
                $e[0].RecommendedAction | Should -Be 'apt-get install iptables'
            }
            Assert-GatewayDump $before
        }
    }
}
