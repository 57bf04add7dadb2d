# Tab completion through TabExpansion2, as the console runs it: -NetworkNamespace offers the names `ip netns`
# lists, -Name (and every other parameter with the forward-name completer) offers the forwards of the
# -NetworkNamespace given on the line. Works only in network namespaces it creates (psnfh + random hex) and
# deletes again. Needs root; outside CI it is skipped when not root.

BeforeDiscovery {
    $isRoot = (& id -u) -eq '0'
    $CompletionSkipReason = $null
    if ($env:CI -ne 'true' -and -not $isRoot) { $CompletionSkipReason = 'needs root (creates network namespaces and forwards)' }
    $CompletionTitle = if ($CompletionSkipReason) { "Tab completion (skipped: $CompletionSkipReason)" } else { 'Tab completion' }

    $moduleDir = if ($env:PSNETFILTER_TEST_MODULE) { $env:PSNETFILTER_TEST_MODULE } else { Join-Path $PSScriptRoot '../../out/PSNetfilter' }
    Import-Module (Join-Path $moduleDir 'PSNetfilter.psd1') -Force
    # Every parameter that has one of the module's completers, so new cmdlets are covered without editing this file.
    $WithCompleter = {
        param([string]$CompleterName)
        foreach ($c in Get-Command -Module PSNetfilter -CommandType Cmdlet | Sort-Object Name) {
            foreach ($p in $c.Parameters.Values | Sort-Object Name) {
                if ($p.Attributes | Where-Object { $_ -is [System.Management.Automation.ArgumentCompleterAttribute] -and $_.Type -and $_.Type.Name -eq $CompleterName }) {
                    @{ Cmdlet = $c.Name; Parameter = $p.Name }
                }
            }
        }
    }
    $NamespaceParameters = @(& $WithCompleter 'NetworkNamespaceCompleter')
    $NameParameters = @(& $WithCompleter 'PortForwardNameCompleter')
}

Describe $CompletionTitle -Skip:([bool]$CompletionSkipReason) {
    BeforeAll {
        foreach ($dir in '/usr/local/sbin', '/usr/sbin', '/sbin') {
            if (($env:PATH -split ':') -notcontains $dir) { $env:PATH = "$env:PATH`:$dir" }
        }
        $moduleDir = if ($env:PSNETFILTER_TEST_MODULE) { $env:PSNETFILTER_TEST_MODULE } else { Join-Path $PSScriptRoot '../../out/PSNetfilter' }
        Import-Module (Join-Path $moduleDir 'PSNetfilter.psd1') -Force

        function Get-Completion([string]$Line, [int]$Cursor = -1) {
            if ($Cursor -lt 0) { $Cursor = $Line.Length }
            @((TabExpansion2 -inputScript $Line -cursorColumn $Cursor).CompletionMatches)
        }

        $script:Namespaces = [System.Collections.Generic.List[string]]::new()
        function New-TestNamespace {
            $name = 'psnfh' + [guid]::NewGuid().ToString('n').Substring(0, 8)
            & ip netns add $name
            if ($LASTEXITCODE -ne 0) { throw "ip netns add $name failed" }
            $script:Namespaces.Add($name)
            $name
        }

        $script:Ns = New-TestNamespace
        $script:Empty = New-TestNamespace
        # Names unique to this run, so that nothing else on the machine can match the prefix.
        $script:Tag = [guid]::NewGuid().ToString('n').Substring(0, 6)
        $script:Web1 = "web1-$($script:Tag)"
        $script:Web2 = "web2-$($script:Tag)"
        $script:Other = "other-$($script:Tag)"
        $common = @{ SnatAddress = '198.51.100.1'; InternalAddress = '198.51.100.10'; NetworkNamespace = $script:Ns; WarningAction = 'SilentlyContinue'; ErrorAction = 'Stop' }
        $null = New-PortForward -Name $script:Web1 -ExternalPort 8080 @common
        $null = New-PortForward -Name $script:Web2 -ExternalPort 8081 @common
        $null = New-PortForward -Name $script:Other -ExternalPort 8082 @common
    }

    AfterAll {
        foreach ($n in $script:Namespaces) { & ip netns del $n 2>$null }
    }

    It 'created the forwards the completion tests use' {
        @(Get-PortForward -NetworkNamespace $script:Ns | ForEach-Object Name | Sort-Object) |
            Should -Be @($script:Other, $script:Web1, $script:Web2 | Sort-Object)
    }

    It 'gives every -NetworkNamespace parameter the namespace completer' {
        foreach ($c in Get-Command -Module PSNetfilter -CommandType Cmdlet) {
            $p = $c.Parameters['NetworkNamespace']
            if (-not $p) { continue }
            $completer = $p.Attributes | Where-Object { $_ -is [System.Management.Automation.ArgumentCompleterAttribute] }
            "$($completer.Type.Name)" | Should -Be 'NetworkNamespaceCompleter' -Because "$($c.Name) -NetworkNamespace should complete namespace names"
        }
    }

    It 'offers the namespace it created for Get-PortForward -NetworkNamespace PREFIX' {
        $prefix = $script:Ns.Substring(0, 9)
        $found = Get-Completion "Get-PortForward -NetworkNamespace $prefix"
        $found.CompletionText | Should -Contain $script:Ns
        ($found | Where-Object CompletionText -eq $script:Ns).ResultType | Should -Be 'ParameterValue'
        $found | ForEach-Object { $_.CompletionText | Should -BeLike "$prefix*" }
    }

    It 'offers the namespace after an opening quote' {
        $found = Get-Completion "Get-PortForward -NetworkNamespace '$($script:Ns.Substring(0, 9))"
        $found.CompletionText | Should -Contain $script:Ns
    }

    It 'offers no namespace for a prefix nothing has' {
        Get-Completion "Get-PortForward -NetworkNamespace psnfh-none-$($script:Tag)" | Should -BeNullOrEmpty
    }

    It 'completes <Cmdlet> -<Parameter> with the namespace names' -ForEach $NamespaceParameters {
        $found = Get-Completion "$Cmdlet -$Parameter $($script:Ns.Substring(0, 9))"
        $found.CompletionText | Should -Contain $script:Ns
    }

    It 'offers the forwards of the namespace for Get-PortForward -NetworkNamespace NS -Name PREFIX' {
        $found = Get-Completion "Get-PortForward -NetworkNamespace $($script:Ns) -Name web"
        @($found.CompletionText | Sort-Object) | Should -Be @($script:Web1, $script:Web2 | Sort-Object)
        $found | ForEach-Object { $_.ResultType | Should -Be 'ParameterValue' }
        ($found | Where-Object CompletionText -eq $script:Web1).ToolTip | Should -BeLike "*$($script:Web1)*8080*"
    }

    It 'offers every forward for an empty -Name' {
        $found = Get-Completion "Get-PortForward -NetworkNamespace $($script:Ns) -Name "
        @($found.CompletionText | Sort-Object) | Should -Be @($script:Other, $script:Web1, $script:Web2 | Sort-Object)
    }

    It 'uses a -NetworkNamespace that comes after the cursor' {
        $line = "Get-PortForward -Name oth -NetworkNamespace $($script:Ns)"
        $found = Get-Completion $line ("Get-PortForward -Name oth".Length)
        $found.CompletionText | Should -Be @($script:Other)
    }

    It 'offers none of them in another namespace' {
        Get-Completion "Get-PortForward -NetworkNamespace $($script:Empty) -Name web" | Should -BeNullOrEmpty
    }

    It 'offers nothing, and does not fail, for a namespace that does not exist' {
        Get-Completion "Get-PortForward -NetworkNamespace psnfh-gone-$($script:Tag) -Name web" | Should -BeNullOrEmpty
    }

    It 'completes <Cmdlet> -<Parameter> with the forward names of the namespace' -ForEach $NameParameters {
        $found = Get-Completion "$Cmdlet -NetworkNamespace $($script:Ns) -$Parameter web1"
        $found.CompletionText | Should -Be @($script:Web1)
    }
}
