# Issue 14, items 3-6, against the real kernel in network namespaces it creates (h2b + random hex, each with a
# veth carrying 198.51.100.1/24 so the default SNAT address resolves) and deletes in AfterAll:
#   3. each piped item is bound on its own (mixed good and bad rows over every pipeline-bound parameter);
#   4. one name rule: case-insensitive and unique everywhere;
#   5. wildcards and odd names (InvalidNamePattern, InvalidName);
#   6. a piped forward acts on its own namespace (NetworkNamespaceMismatch).
# Needs root; outside CI it is skipped when not root.

BeforeDiscovery {
    $isRoot = (& id -u) -eq '0'
    $BindingSkipReason = $null
    if ($env:CI -ne 'true' -and -not $isRoot) { $BindingSkipReason = 'needs root (creates network namespaces and forwards)' }
    $BindingTitle = if ($BindingSkipReason) { "Binding and names (skipped: $BindingSkipReason)" } else { 'Binding and names' }
}

BeforeAll {
    foreach ($dir in '/usr/local/sbin', '/usr/sbin', '/sbin') {
        if (($env:PATH -split ':') -notcontains $dir) { $env:PATH = "$env:PATH`:$dir" }
    }
    $moduleDir = if ($env:PSNETFILTER_TEST_MODULE) { $env:PSNETFILTER_TEST_MODULE } else { Join-Path $PSScriptRoot '../../out/PSNetfilter' }
    Import-Module (Resolve-Path -LiteralPath (Join-Path $moduleDir 'PSNetfilter.psd1')).ProviderPath -Force

    $script:Namespaces = [System.Collections.Generic.List[string]]::new()
    function New-BindingNamespace {
        $name = 'h2b' + [guid]::NewGuid().ToString('n').Substring(0, 8)
        & ip netns add $name
        if ($LASTEXITCODE -ne 0) { throw "ip netns add $name failed" }
        $script:Namespaces.Add($name)
        foreach ($cmd in @(
                @('link', 'add', 'v0', 'type', 'veth', 'peer', 'name', 'v1'),
                @('link', 'set', 'lo', 'up'), @('link', 'set', 'v0', 'up'), @('link', 'set', 'v1', 'up'),
                @('addr', 'add', '198.51.100.1/24', 'dev', 'v0'))) {
            & ip -n $name @cmd
            if ($LASTEXITCODE -ne 0) { throw "ip -n $name $($cmd -join ' ') failed" }
        }
        $name
    }

    function Get-ErrorIds($Errors) { @($Errors | ForEach-Object { ($_.FullyQualifiedErrorId -split ',')[0] }) }
    $script:Quiet = @{ WarningAction = 'SilentlyContinue' }
}

AfterAll {
    foreach ($n in $script:Namespaces) { & ip netns del $n 2>$null }
}

Describe "$BindingTitle, <Backend> backend" -Skip:([bool]$BindingSkipReason) -ForEach @(@{ Backend = 'Iptables' }, @{ Backend = 'Nftables' }) {
    BeforeAll {
        # The same tests for each backend: new forwards go to the one of this block (the module-wide preference).
        $global:PSNetfilterBackend = $Backend
    }

    AfterAll {
        Remove-Variable -Name PSNetfilterBackend -Scope Global -ErrorAction SilentlyContinue
    }

    Context 'each piped item is bound on its own (item 3)' {
        BeforeAll {
            $script:Ns3 = New-BindingNamespace
            # Every pipeline-bound parameter of New-PortForward with a bad value, between two good rows; the last
            # row must get nothing of the rows before it (Udp, Masquerade, a description, bad values).
            $script:Rows = @(
                'Name,Protocol,ExternalAddress,ExternalPort,ExternalPortEnd,InternalAddress,InternalPort,InternalPortEnd,SourceAddress,InInterface,IncludeLocal,SnatAddress,SnatMode,Description'
                'g-udp,Udp,,7001,,198.51.100.10,,,,,,,Masquerade,first'
                'b-proto,sctp,,7002,,198.51.100.10,,,,,,,,'
                'b-proto-blank,,,7003,,198.51.100.10,,,,,,,,'
                'b-mode,Tcp,,7004,,198.51.100.10,,,,,,,Bogus,'
                'b-ext-addr,Tcp,203.0.113,7005,,198.51.100.10,,,,,,,,'
                'b-ext-port,Tcp,,abc,,198.51.100.10,,,,,,,,'
                'b-ext-end,Tcp,,7007,abc,198.51.100.10,,,,,,,,'
                'b-ext-end-range,Tcp,,7008,70000,198.51.100.10,,,,,,,,'
                'b-int-addr,Tcp,,7009,,198.51.100.300,,,,,,,,'
                'b-int-port,Tcp,,7010,,198.51.100.10,x,,,,,,,'
                'b-int-end,Tcp,,7011,,198.51.100.10,,0,,,,,,'
                'b-source,Tcp,,7012,,198.51.100.10,,,10.0.0.0/33,,,,,'
                'b-iface,Tcp,,7013,,198.51.100.10,,,,"a b",,,,'
                'b-local,Tcp,,7014,,198.51.100.10,,,,,maybe,,,'
                'b-snat,Tcp,,7015,,198.51.100.10,,,,,,198.51.100,,'
                '..,Tcp,,7016,,198.51.100.10,,,,,,,,'
                'g-after,Tcp,,7017,7018,198.51.100.11,9017,9018,198.51.100.0/24,v0,True,,,'
            )
        }

        It 'reports each bad row by itself, applies the good rows with their own values only (<Source>)' -ForEach @(
            @{ Source = 'ConvertFrom-Csv' }, @{ Source = 'Import-Csv' }
        ) {
            $items = if ($Source -eq 'Import-Csv') {
                $file = Join-Path $TestDrive 'rows.csv'
                Set-Content -LiteralPath $file -Value $script:Rows
                Import-Csv -LiteralPath $file
            } else { $script:Rows | ConvertFrom-Csv }
            $errs = $null
            $out = @($items | New-PortForward -NetworkNamespace $script:Ns3 -ErrorVariable errs -ErrorAction SilentlyContinue @Quiet)
            @($out.Name | Sort-Object) | Should -Be @('g-after', 'g-udp')
            # One error per bad row (15 rows), nothing else.
            @($errs).Count | Should -Be 15
            $ids = Get-ErrorIds $errs
            @($ids | Where-Object { $_ -eq 'InvalidPipelineValue' }).Count | Should -Be 4
            foreach ($case in @(
                    @('b-proto', 'Protocol', 'sctp'), @('b-proto-blank', 'Protocol', ''), @('b-mode', 'SnatMode', 'Bogus'),
                    @('b-ext-end', 'ExternalPortEnd', 'abc'))) {
                $hit = @($errs | Where-Object { $_.Exception.Message -like "Port forward '$($case[0])': the piped $($case[1]) '$($case[2])' *" })
                $hit.Count | Should -Be 1 -Because "row $($case[0]) names its forward, property and value"
            }
            foreach ($id in 'InvalidAddress', 'InvalidName', 'InvalidInterface') { $ids | Should -Contain $id }

            $live = Get-PortForward -NetworkNamespace $script:Ns3
            @($live.Name | Sort-Object) | Should -Be @('g-after', 'g-udp')
            $udp = $live | Where-Object Name -EQ 'g-udp'
            "$($udp.Protocol) $($udp.SnatMode) $($udp.Description)" | Should -Be 'Udp Masquerade first'
            $after = $live | Where-Object Name -EQ 'g-after'
            # Nothing of g-udp (Udp, Masquerade, description) or of the bad rows fills in g-after.
            "$($after.Protocol) $($after.SnatMode) $($after.SnatAddress) '$($after.Description)'" | Should -Be "Tcp Snat 198.51.100.1 ''"
            "$($after.ExternalPort)-$($after.ExternalPortEnd) $($after.InternalAddress):$($after.InternalPort)-$($after.InternalPortEnd)" | Should -Be '7017-7018 198.51.100.11:9017-9018'
            "$(@($after.SourceAddress) -join ',') $($after.InInterface) $($after.IncludeLocal)" | Should -Be '198.51.100.0/24 v0 True'
            Remove-PortForward -Name * -NetworkNamespace $script:Ns3
        }

        It 'does not let a bad value of one PSCustomObject fall back to a default after a good one' {
            $items = @(
                [pscustomobject]@{ Name = 'o-udp'; Protocol = 'Udp'; ExternalPort = 7101; InternalAddress = '198.51.100.10'; SnatMode = 'Masquerade' }
                [pscustomobject]@{ Name = 'o-sctp'; Protocol = 'sctp'; ExternalPort = 7102; InternalAddress = '198.51.100.10' }
                [pscustomobject]@{ Name = 'o-blank'; Protocol = ''; ExternalPort = 7103; InternalAddress = '198.51.100.10' }
                [pscustomobject]@{ Name = 'o-bogus'; SnatMode = 'Bogus'; ExternalPort = 7104; InternalAddress = '198.51.100.10' }
                [pscustomobject]@{ Name = 'o-plain'; ExternalPort = 7105; InternalAddress = '198.51.100.10' }
            )
            $errs = $null
            $out = @($items | New-PortForward -NetworkNamespace $script:Ns3 -ErrorVariable errs -ErrorAction SilentlyContinue @Quiet)
            @($out.Name) | Should -Be @('o-udp', 'o-plain')
            Get-ErrorIds $errs | Should -Be @('InvalidPipelineValue', 'InvalidPipelineValue', 'InvalidPipelineValue')
            $errs[0].Exception.Message | Should -BeLike "Port forward 'o-sctp': the piped Protocol 'sctp' *"
            $errs[2].Exception.Message | Should -BeLike "Port forward 'o-bogus': the piped SnatMode 'Bogus' *"
            $plain = Get-PortForward -NetworkNamespace $script:Ns3 -Name o-plain
            "$($plain.Protocol) $($plain.SnatMode)" | Should -Be 'Tcp Snat'
            @((Get-PortForward -NetworkNamespace $script:Ns3).Name | Sort-Object) | Should -Be @('o-plain', 'o-udp')
            Remove-PortForward -Name * -NetworkNamespace $script:Ns3
        }

        It 'binds Name per item in Get-, Test- and Remove-PortForward: a bad name is an error for that item only' {
            New-PortForward -NetworkNamespace $script:Ns3 -Name keep1 -ExternalPort 7201 -InternalAddress 198.51.100.10 @Quiet | Out-Null
            New-PortForward -NetworkNamespace $script:Ns3 -Name keep2 -ExternalPort 7202 -InternalAddress 198.51.100.10 @Quiet | Out-Null
            $rows = @(
                [pscustomobject]@{ Name = 'keep1'; NetworkNamespace = $script:Ns3 }
                [pscustomobject]@{ Name = 'd['; NetworkNamespace = $script:Ns3 }
                [pscustomobject]@{ Name = 'keep2'; NetworkNamespace = $script:Ns3 }
            )
            $errs = $null
            @(($rows | Get-PortForward -ErrorVariable errs -ErrorAction SilentlyContinue).Name) | Should -Be @('keep1', 'keep2')
            Get-ErrorIds $errs | Should -Be @('InvalidNamePattern')
            $errs = $null
            $rows | Test-PortForward -NoConnect -ErrorVariable errs -ErrorAction SilentlyContinue | Out-Null
            Get-ErrorIds $errs | Should -Be @('InvalidNamePattern')
            $errs = $null
            $rows | Remove-PortForward -ErrorVariable errs -ErrorAction SilentlyContinue
            Get-ErrorIds $errs | Should -Be @('InvalidNamePattern')
            Get-PortForward -NetworkNamespace $script:Ns3 | Should -BeNullOrEmpty
        }
    }

    Context 'one name rule: case-insensitive and unique (item 4)' {
        BeforeAll {
            $script:Ns4 = New-BindingNamespace
            New-PortForward -NetworkNamespace $script:Ns4 -Name web -ExternalPort 8080 -InternalAddress 198.51.100.10 @Quiet | Out-Null
        }

        It 'refuses Web beside web (PortForwardExists), even with the same definition, and changes nothing' {
            $before = ((& ip netns exec $script:Ns4 iptables-save -t nat | Where-Object { $_ -notmatch '^#' }) + (& ip netns exec $script:Ns4 nft -s list ruleset)) -join "`n"
            $errs = $null
            New-PortForward -NetworkNamespace $script:Ns4 -Name Web -ExternalPort 8080 -InternalAddress 198.51.100.10 -ErrorVariable errs -ErrorAction SilentlyContinue @Quiet | Should -BeNullOrEmpty
            Get-ErrorIds $errs | Should -Be @('PortForwardExists')
            $errs = $null
            New-PortForward -NetworkNamespace $script:Ns4 -Name WEB -ExternalPort 8081 -InternalAddress 198.51.100.10 -ErrorVariable errs -ErrorAction SilentlyContinue @Quiet | Should -BeNullOrEmpty
            Get-ErrorIds $errs | Should -Be @('PortForwardExists')
            $errs = $null
            @([pscustomobject]@{ Name = 'dup'; ExternalPort = 8090; InternalAddress = '198.51.100.10' }, [pscustomobject]@{ Name = 'DUP'; ExternalPort = 8091; InternalAddress = '198.51.100.10' }) |
                New-PortForward -NetworkNamespace $script:Ns4 -ErrorVariable errs -ErrorAction SilentlyContinue @Quiet | Out-Null
            Get-ErrorIds $errs | Should -Be @('PortForwardExists')
            Remove-PortForward -NetworkNamespace $script:Ns4 -Name dup
            (((& ip netns exec $script:Ns4 iptables-save -t nat | Where-Object { $_ -notmatch '^#' }) + (& ip netns exec $script:Ns4 nft -s list ruleset)) -join "`n") | Should -Be $before
            @((Get-PortForward -NetworkNamespace $script:Ns4).Name) | Should -Be @('web')
        }

        It 'finds web as WEB in Get, Test and Install, and removes it as WEB' {
            (Get-PortForward -NetworkNamespace $script:Ns4 -Name WEB).Name | Should -Be 'web'
            $errs = $null
            Test-PortForward -NetworkNamespace $script:Ns4 -Name WEB -NoConnect -ErrorVariable errs -ErrorAction SilentlyContinue | Out-Null
            $errs | Should -BeNullOrEmpty
            $root = Join-Path $TestDrive "root4-$Backend"
            New-Item -ItemType Directory -Path $root | Out-Null
            $svc = Install-PortForwardService -ForwardName WEB -NetworkNamespace $script:Ns4 -Root $root -NoStart @Quiet
            @($svc.Forwards.Name) | Should -Be @('web')
            $errs = $null
            Remove-PortForward -NetworkNamespace $script:Ns4 -Name WEB -ErrorVariable errs -ErrorAction SilentlyContinue
            $errs | Should -BeNullOrEmpty
            Get-PortForward -NetworkNamespace $script:Ns4 | Should -BeNullOrEmpty
        }

        It 'gives one not-found error, worded alike, in Get, Remove, Test and Install' {
            $messages = @(
                { Get-PortForward -NetworkNamespace $script:Ns4 -Name nosuch -ErrorAction Stop }
                { Remove-PortForward -NetworkNamespace $script:Ns4 -Name nosuch -ErrorAction Stop }
                { Test-PortForward -NetworkNamespace $script:Ns4 -Name nosuch -NoConnect -ErrorAction Stop }
                { Install-PortForwardService -ForwardName nosuch -NetworkNamespace $script:Ns4 -Root (New-Item -ItemType Directory -Force -Path (Join-Path $TestDrive 'none')).FullName -NoStart -ErrorAction Stop }
            ) | ForEach-Object {
                $caught = $null
                try { & $_ } catch { $caught = $_ }
                $caught.FullyQualifiedErrorId | Should -BeLike 'PortForwardNotFound,*'
                $caught.Exception.Message
            }
            @($messages | Sort-Object -Unique) | Should -Be @("No port forward named 'nosuch' exists in network namespace '$($script:Ns4)'. Get-PortForward lists them.")
        }
    }

    Context 'wildcards and odd names (item 5)' {
        BeforeAll { $script:Ns5 = New-BindingNamespace }

        It 'refuses an unreadable pattern with InvalidNamePattern in <Command>' -ForEach @(
            @{ Command = 'Get-PortForward' }, @{ Command = 'Remove-PortForward' }, @{ Command = 'Test-PortForward' }
        ) {
            $errs = $null
            & $Command -Name 'd[' -NetworkNamespace $script:Ns5 -ErrorVariable errs -ErrorAction SilentlyContinue | Out-Null
            Get-ErrorIds $errs | Should -Be @('InvalidNamePattern')
        }

        It 'refuses the name <Name> with InvalidName and creates nothing' -ForEach @(
            @{ Name = '.' }, @{ Name = '..' }, @{ Name = '-x' }, @{ Name = '--' }
        ) {
            $errs = $null
            New-PortForward -Name $Name -NetworkNamespace $script:Ns5 -ExternalPort 7301 -InternalAddress 198.51.100.10 -ErrorVariable errs -ErrorAction SilentlyContinue @Quiet | Should -BeNullOrEmpty
            Get-ErrorIds $errs | Should -Be @('InvalidName')
            Get-PortForward -NetworkNamespace $script:Ns5 | Should -BeNullOrEmpty
        }

        It 'still matches wildcards ignoring case ([a-c], ?, *)' {
            'ab1', 'cd2', 'Ab3' | ForEach-Object -Begin { $p = 7400 } -Process { $p++; New-PortForward -Name $_ -NetworkNamespace $script:Ns5 -ExternalPort $p -InternalAddress 198.51.100.10 @Quiet | Out-Null }
            @((Get-PortForward -NetworkNamespace $script:Ns5 -Name '[a]B?').Name) | Should -Be @('Ab3', 'ab1')
            Remove-PortForward -NetworkNamespace $script:Ns5 -Name 'C*'
            @((Get-PortForward -NetworkNamespace $script:Ns5).Name) | Should -Be @('Ab3', 'ab1')
            Remove-PortForward -NetworkNamespace $script:Ns5 -Name *
        }
    }

    Context 'a piped forward acts on its own namespace (item 6)' {
        BeforeAll {
            $script:G = New-BindingNamespace
            $script:P = New-BindingNamespace
            New-PortForward -NetworkNamespace $script:G -Name dup -ExternalPort 8500 -InternalAddress 198.51.100.10 @Quiet | Out-Null
            New-PortForward -NetworkNamespace $script:P -Name dup -ExternalPort 8600 -InternalAddress 198.51.100.20 @Quiet | Out-Null
        }

        It 'refuses an explicit other -NetworkNamespace in <Command> (NetworkNamespaceMismatch) and changes nothing' -ForEach @(
            @{ Command = 'Remove-PortForward' }, @{ Command = 'Test-PortForward' }
        ) {
            $errs = $null
            $extra = if ($Command -eq 'Test-PortForward') { @{ NoConnect = $true } } else { @{} }
            Get-PortForward -Name dup -NetworkNamespace $script:G | & $Command -NetworkNamespace $script:P @extra -ErrorVariable errs -ErrorAction SilentlyContinue | Out-Null
            Get-ErrorIds $errs | Should -Be @('NetworkNamespaceMismatch')
            (Get-PortForward -Name dup -NetworkNamespace $script:G).ExternalPort | Should -Be 8500
            (Get-PortForward -Name dup -NetworkNamespace $script:P).ExternalPort | Should -Be 8600
        }

        It 'refuses it in Install-PortForwardService and writes nothing' {
            $root = Join-Path $TestDrive 'root6'
            New-Item -ItemType Directory -Path $root | Out-Null
            $caught = $null
            try { Get-PortForward -Name dup -NetworkNamespace $script:G | Install-PortForwardService -NetworkNamespace $script:P -Root $root -NoStart -ErrorAction Stop @Quiet } catch { $caught = $_ }
            $caught.FullyQualifiedErrorId | Should -BeLike 'NetworkNamespaceMismatch,*'
            @(Get-ChildItem -LiteralPath $root -Recurse -File).Count | Should -Be 0
        }

        It 'removes the piped forward from its own namespace, given the same namespace or none' {
            Get-PortForward -Name dup -NetworkNamespace $script:G | Remove-PortForward -NetworkNamespace $script:G
            Get-PortForward -NetworkNamespace $script:G | Should -BeNullOrEmpty
            (Get-PortForward -Name dup -NetworkNamespace $script:P).ExternalPort | Should -Be 8600
            Get-PortForward -Name dup -NetworkNamespace $script:P | Remove-PortForward
            Get-PortForward -NetworkNamespace $script:P | Should -BeNullOrEmpty
        }
    }
}
