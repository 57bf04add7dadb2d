# Reliability of the module against the real kernel (issue 7): concurrent writers, stopped pipelines,
# a kernel that refuses a rule, foreign and unreadable rules, and a lock holder that dies.
#
# Every test works in its own throw-away network namespace named 'psnfr' + 8 random hex digits
# (tests/pester/reliability/ReliabilityHelpers.psm1); AfterAll deletes them all, also after a failure.
# No interface is created and no packet is sent: forwards point at 198.51.100.10 with a fixed
# -SnatAddress, so no route is needed.
#
# Runs as root in CI ($env:CI -eq 'true', never skipped there); elsewhere it is skipped when not root
# or when a tool is missing.
#
# The whole file runs once per backend (Describe -ForEach; PSNETFILTER_BACKEND, the module-wide preference, reaches
# the runspaces and child processes). For the nftables backend the dumps carry `nft -s list ruleset` too
# (Get-RelDump): the tags are counted on the elements and rules of `table inet psnetfilter`, its dispatch rules
# stand for the jumps, and every other table must stay byte-identical. iptables-only, because what they test is
# the iptables backend's own mechanism: streaming to iptables-restore before its COMMIT, kernel refusals of
# iptables-restore payloads (mapping by payload line, the per-table commits and their rollback), rules added by
# hand to the PSNF- chains, and a stalled iptables-save under the lock.

BeforeDiscovery {
    $isRoot = (& id -u) -eq '0'
    $missingTools = @('ip', 'iptables', 'ip6tables', 'flock', 'stat') | Where-Object {
        -not (Get-Command $_ -CommandType Application -ErrorAction SilentlyContinue) -and
        -not (Test-Path "/usr/sbin/$_") -and -not (Test-Path "/sbin/$_") -and -not (Test-Path "/usr/bin/$_")
    }
    $RelSkipReason = $null
    if ($env:CI -ne 'true') {
        if (-not $isRoot) { $RelSkipReason = 'needs root (creates network namespaces and changes their netfilter rules)' }
        elseif ($missingTools) { $RelSkipReason = "needs $($missingTools -join ', ')" }
    }
    $RelTitle = if ($RelSkipReason) { "PSNetfilter reliability (skipped: $RelSkipReason)" } else { 'PSNetfilter reliability' }

    # Moments at which a large New-PortForward pipeline is stopped (StopProcessing, as Ctrl+C does).
    $StopMoments = @(
        @{ Moment = 'Queue'; Title = 'while the items are still being queued (ProcessRecord)'; Fraction = 0.0; Expect = 'None' }
        @{ Moment = 'Lock'; Title = 'while it waits for the namespace lock'; Fraction = 0.0; Expect = 'None' }
        @{ Moment = 'Plan'; Title = 'while it plans under the lock (first ShouldProcess message)'; Fraction = 0.0; Expect = 'Either' }
        # From the 34th forward on, the change streams to running iptables-restore processes (one per table),
        # which get their COMMIT only when the pipeline ends: stopped before that, nothing is applied.
        @{ Moment = 'Stream'; Title = 'while forwards stream to iptables-restore (before its COMMIT)'; Fraction = 0.0; Expect = 'None' }
        @{ Moment = 'Restore'; Title = 'once the backend has its whole input (iptables-restore COMMIT, nft input)'; Fraction = 0.0; Expect = 'All' }
        # Delays after EndProcessing started, as fractions of how long an uninterrupted EndProcessing takes
        # on this machine (measured first), so that the stops land in resolve/lock/read/plan/restore.
        @{ Moment = 'Delay'; Title = 'at once after EndProcessing started'; Fraction = 0.0; Expect = 'Either' }
        @{ Moment = 'Delay'; Title = '15 % into EndProcessing'; Fraction = 0.15; Expect = 'Either' }
        @{ Moment = 'Delay'; Title = '30 % into EndProcessing'; Fraction = 0.30; Expect = 'Either' }
        @{ Moment = 'Delay'; Title = '45 % into EndProcessing'; Fraction = 0.45; Expect = 'Either' }
        @{ Moment = 'Delay'; Title = '60 % into EndProcessing'; Fraction = 0.60; Expect = 'Either' }
        @{ Moment = 'Delay'; Title = '75 % into EndProcessing'; Fraction = 0.75; Expect = 'Either' }
        @{ Moment = 'Delay'; Title = '90 % into EndProcessing'; Fraction = 0.90; Expect = 'Either' }
    )
}

Describe "$RelTitle, <Backend> backend" -Skip:([bool]$RelSkipReason) -ForEach @(@{ Backend = 'Iptables' }, @{ Backend = 'Nftables' }) {
    BeforeAll {
        # The same tests for each backend: the module-wide preference, as the environment so that the runspaces
        # and child pwsh processes below (and Get-RelDump) see it too.
        $env:PSNETFILTER_BACKEND = $Backend
        foreach ($dir in '/usr/local/sbin', '/usr/sbin', '/sbin') {
            if (($env:PATH -split ':') -notcontains $dir) { $env:PATH = "$env:PATH`:$dir" }
        }
        Import-Module (Join-Path $PSScriptRoot 'reliability/ReliabilityHelpers.psm1') -Force
        $ModulePath = if ($env:PSNETFILTER_TEST_MODULE) { $env:PSNETFILTER_TEST_MODULE } else { [IO.Path]::GetFullPath((Join-Path $PSScriptRoot '../../out/PSNetfilter')) }
        Import-Module (Join-Path $ModulePath 'PSNetfilter.psd1') -Force
        $Fixtures = [IO.Path]::GetFullPath((Join-Path $PSScriptRoot '../fixtures/foreign'))
        $ChildScript = Join-Path $PSScriptRoot 'reliability/PortForwardChild.ps1'

        # Four child pwsh processes released together by a barrier file; returns their parsed results.
        function Invoke-ConcurrentChildren {
            param([string]$Namespace, [object[]]$Jobs)
            $dir = New-RelTempDirectory
            $barrier = Join-Path $dir 'go'
            $children = @()
            for ($i = 0; $i -lt $Jobs.Count; $i++) {
                $itemsFile = Join-Path $dir "items-$i.json"
                ConvertTo-Json -InputObject @($Jobs[$i].Items) -Depth 3 | Set-Content -LiteralPath $itemsFile
                $children += [pscustomobject]@{
                    Ready  = Join-Path $dir "ready-$i"
                    Result = Join-Path $dir "result-$i.json"
                    Child  = Start-RelChildPwsh -ScriptPath $ChildScript -ArgumentList @(
                        '-ModulePath', $ModulePath, '-Namespace', $Namespace, '-Mode', $Jobs[$i].Mode,
                        '-ItemsFile', $itemsFile, '-ResultFile', (Join-Path $dir "result-$i.json"),
                        '-ReadyFile', (Join-Path $dir "ready-$i"), '-BarrierFile', $barrier)
                }
            }
            $ready = Wait-RelCondition -TimeoutSeconds 180 -Condition {
                foreach ($c in $children) {
                    if ($c.Child.Process.HasExited) { throw "A child exited before the barrier: $(Get-RelChildText $c.Child)" }
                }
                @($children | Where-Object { Test-Path -LiteralPath $_.Ready }).Count -eq $children.Count
            }
            if (-not $ready) { throw 'The child processes did not get ready within 180 s.' }
            [IO.File]::WriteAllText($barrier, 'go')
            foreach ($c in $children) {
                if (-not $c.Child.Process.WaitForExit(180000)) { throw "A child did not finish within 180 s: $(Get-RelChildText $c.Child)" }
                $c.Child.Process.WaitForExit()
            }
            foreach ($c in $children) {
                $r = if (Test-Path -LiteralPath $c.Result) { Get-Content -Raw -LiteralPath $c.Result | ConvertFrom-Json } else { $null }
                [pscustomobject]@{ ExitCode = $c.Child.Process.ExitCode; Result = $r; Text = Get-RelChildText $c.Child }
            }
        }

        # A fresh namespace with all foreign IPv4 fixtures (and Docker's IPv6 one) loaded.
        function New-ForeignGateway {
            $ns = New-RelNamespace
            foreach ($f in 'docker.v4.rules', 'libvirt.v4.rules', 'kube-proxy.v4.rules', 'exotic.v4.rules') {
                Import-RelRules -Namespace $ns -Path (Join-Path $Fixtures $f)
            }
            Import-RelRules -Namespace $ns -Path (Join-Path $Fixtures 'docker.v6.rules') -Family IPv6
            $ns
        }

        $NewScript = 'param($Namespace, $Items) $Items | New-PortForward -NetworkNamespace $Namespace'
        $NewVerboseScript = 'param($Namespace, $Items) $Items | New-PortForward -NetworkNamespace $Namespace -Verbose'
        $RemoveScript = 'param($Namespace, $Names) $Names | ForEach-Object { [pscustomobject]@{ Name = $_ } } | Remove-PortForward -NetworkNamespace $Namespace -PassThru'
        $GetScript = 'param($Namespace) Get-PortForward -NetworkNamespace $Namespace'
    }

    AfterAll {
        Remove-Item -LiteralPath Env:PSNETFILTER_BACKEND -ErrorAction SilentlyContinue
        $left = @(Remove-RelResources)
        if ($left.Count -gt 0) { throw "Could not delete network namespaces: $($left -join ', ')" }
    }

    Context 'Concurrency: 4 processes, each adding 50 forwards to the same namespace at the same moment' {
        BeforeAll {
            $ns = New-RelNamespace
            Import-RelRules -Namespace $ns -Path (Join-Path $Fixtures 'docker.v4.rules')
            $foreignBefore = Get-RelForeignLines (Get-RelDump -Namespace $ns)
            $jobs = @(0..3 | ForEach-Object { @{ Mode = 'Add'; Items = @(New-RelForwardItem -Prefix "c$_-" -Count 50 -FirstPort (20000 + 100 * $_)) } })
            $expectedNames = @($jobs | ForEach-Object { $_.Items.Name } | Sort-Object)
            $children = @(Invoke-ConcurrentChildren -Namespace $ns -Jobs $jobs)
            $forwards = @(Get-PortForward -NetworkNamespace $ns -ErrorAction Stop)
            $dump = Get-RelDump -Namespace $ns
        }
        AfterAll { $null = Remove-RelResources }

        It 'every child succeeded: no error, 50 forwards Created each' {
            foreach ($c in $children) {
                $c.ExitCode | Should -Be 0 -Because $c.Text
                $c.Result.Terminating | Should -BeNullOrEmpty
                @($c.Result.Errors).Count | Should -Be 0 -Because (@($c.Result.Errors | ForEach-Object { "[$($_.Id)] $($_.Message)" }) -join ' | ')
                @($c.Result.Output).Count | Should -Be 50
                @($c.Result.Output | Where-Object Change -ne 'Created').Count | Should -Be 0
            }
        }

        It 'ran the four calls at the same time (each started before any finished)' {
            $latestStart = ($children.Result.StartTicks | Measure-Object -Maximum).Maximum
            $earliestEnd = ($children.Result.EndTicks | Measure-Object -Minimum).Minimum
            $spread = @($children.Result | ForEach-Object { '{0:n0}..{1:n0} ms' -f (($_.StartTicks - $latestStart) / 1e4), (($_.EndTicks - $latestStart) / 1e4) }) -join ', '
            Write-Host "    child call windows relative to the last start: $spread"
            $latestStart | Should -BeLessThan $earliestEnd -Because "call windows: $spread" 
        }

        It 'leaves exactly the 200 forwards, each Complete' {
            $forwards.Count | Should -Be 200
            @($forwards | ForEach-Object Name | Sort-Object) -join ',' | Should -BeExactly ($expectedNames -join ',')
            @($forwards | Where-Object { "$($_.Status)" -ne 'Complete' } | ForEach-Object Name) | Should -BeNullOrEmpty
        }

        It 'has each tag (dnat, snat, fwd) exactly once per forward, and each jump once' {
            Get-RelTagProblem -Lines $dump -Names $expectedNames | Should -BeNullOrEmpty
            $j = Get-RelJumpCount -Lines $dump
            $j.PreRouting | Should -Be 1
            $j.PostRouting | Should -Be 1
            $j.Forward | Should -Be 1
        }

        It 'keeps the Docker rules byte-identical' {
            (Get-RelForeignLines $dump) -join "`n" | Should -BeExactly ($foreignBefore -join "`n")
        }
    }

    Context 'Concurrency: 2 processes adding 50 each while 2 others remove 50 each' {
        BeforeAll {
            $ns = New-RelNamespace
            Import-RelRules -Namespace $ns -Path (Join-Path $Fixtures 'docker.v4.rules')
            $foreignBefore = Get-RelForeignLines (Get-RelDump -Namespace $ns)
            # 120 forwards first: two removers take 50 each, 20 must survive untouched.
            $pre = @(New-RelForwardItem -Prefix 'p-' -Count 120 -FirstPort 30000)
            $preResult = Invoke-RelPipeline -ModulePath $ModulePath -Script $NewScript -Parameters @{ Namespace = $ns; Items = $pre }
            $jobs = @(
                @{ Mode = 'Add'; Items = @(New-RelForwardItem -Prefix 'a0-' -Count 50 -FirstPort 21000) }
                @{ Mode = 'Remove'; Items = @($pre[0..49] | ForEach-Object { [pscustomobject]@{ Name = $_.Name } }) }
                @{ Mode = 'Add'; Items = @(New-RelForwardItem -Prefix 'a1-' -Count 50 -FirstPort 21100) }
                @{ Mode = 'Remove'; Items = @($pre[50..99] | ForEach-Object { [pscustomobject]@{ Name = $_.Name } }) }
            )
            $expectedNames = @(@($pre[100..119].Name) + @($jobs[0].Items.Name) + @($jobs[2].Items.Name) | Sort-Object)
            $children = @()
            if (@($preResult.Output).Count -eq 120) {
                $children = @(Invoke-ConcurrentChildren -Namespace $ns -Jobs $jobs)
            }
            $forwards = @(Get-PortForward -NetworkNamespace $ns -ErrorAction Stop)
            $dump = Get-RelDump -Namespace $ns
        }
        AfterAll { $null = Remove-RelResources }

        It 'pre-created the 120 forwards' {
            @($preResult.Output).Count | Should -Be 120 -Because (Format-RelResult $preResult)
        }

        It 'every child succeeded: 50 Created or 50 Removed each, no error' {
            $children.Count | Should -Be 4
            for ($i = 0; $i -lt 4; $i++) {
                $c = $children[$i]
                $c.ExitCode | Should -Be 0 -Because $c.Text
                @($c.Result.Errors).Count | Should -Be 0 -Because (@($c.Result.Errors | ForEach-Object { "[$($_.Id)] $($_.Message)" }) -join ' | ')
                @($c.Result.Output).Count | Should -Be 50
                $want = if ($jobs[$i].Mode -eq 'Add') { 'Created' } else { 'Removed' }
                @($c.Result.Output | Where-Object Change -ne $want).Count | Should -Be 0
                @($c.Result.Output | ForEach-Object Name | Sort-Object) -join ',' | Should -BeExactly (@($jobs[$i].Items.Name | Sort-Object) -join ',')
            }
        }

        It 'ran the four calls at the same time (each started before any finished)' {
            $children.Count | Should -Be 4
            $latestStart = ($children.Result.StartTicks | Measure-Object -Maximum).Maximum
            $spread = @($children.Result | ForEach-Object { '{0}: {1:n0}..{2:n0} ms' -f $_.Mode, (($_.StartTicks - $latestStart) / 1e4), (($_.EndTicks - $latestStart) / 1e4) }) -join ', '
            Write-Host "    child call windows relative to the last start: $spread"
            $latestStart | Should -BeLessThan ($children.Result.EndTicks | Measure-Object -Minimum).Minimum -Because "call windows: $spread" 
        }

        It 'leaves exactly the expected set: 20 untouched + 100 new, each Complete' {
            @($forwards | ForEach-Object Name | Sort-Object) -join ',' | Should -BeExactly ($expectedNames -join ',')
            @($forwards | Where-Object { "$($_.Status)" -ne 'Complete' } | ForEach-Object Name) | Should -BeNullOrEmpty
        }

        It 'has each tag exactly once per remaining forward (no rule of another forward deleted), each jump once' {
            Get-RelTagProblem -Lines $dump -Names $expectedNames | Should -BeNullOrEmpty
            $j = Get-RelJumpCount -Lines $dump
            "$($j.PreRouting)$($j.PostRouting)$($j.Forward)" | Should -Be '111'
        }

        It 'keeps the Docker rules byte-identical' {
            (Get-RelForeignLines $dump) -join "`n" | Should -BeExactly ($foreignBefore -join "`n")
        }
    }

    Context 'Interruption: stopping a pipeline of 2000 forwards' {
        BeforeAll {
            $Count = 2000
            # The producer is a script block stage: its Write-Information lines mark how far it got, and
            # 'producer-done' is written right before New-PortForward's EndProcessing starts.
            $StopScript = @'
param([string]$Namespace, [int]$Count, [int]$SleepMs, [bool]$VerboseOn)
$InformationPreference = 'Continue'
& {
    for ($i = 1; $i -le $Count; $i++) {
        if ($SleepMs -gt 0) { Start-Sleep -Milliseconds $SleepMs }
        if ($i % 100 -eq 0) { Write-Information "produced $i" }
        [pscustomobject]@{ Name = ('s{0:d4}' -f $i); ExternalPort = 10000 + $i; InternalAddress = '198.51.100.10'; SnatAddress = '198.51.100.1' }
    }
    Write-Information 'producer-done'
} | New-PortForward -NetworkNamespace $Namespace -Verbose:$VerboseOn
'@
            $AllNames = @(1..$Count | ForEach-Object { 's{0:d4}' -f $_ })
            $Outcomes = [System.Collections.Generic.List[string]]::new()

            function Wait-PipelineEvent {
                # Polls until -Condition is true; false when the pipeline ended first or -TimeoutSeconds passed.
                param($Pipeline, [scriptblock]$Condition, [double]$TimeoutSeconds = 120)
                $deadline = [DateTime]::UtcNow.AddSeconds($TimeoutSeconds)
                while ([DateTime]::UtcNow -lt $deadline) {
                    if (& $Condition) { return $true }
                    if ($Pipeline.Handle.IsCompleted) { return [bool](& $Condition) }
                    [Threading.Thread]::Sleep(1)
                }
                $false
            }

            # Whether a stream (read by index: it is being written on another thread) has a matching record.
            function Test-StreamMessage {
                param($Stream, [string]$Like)
                for ($k = 0; $k -lt $Stream.Count; $k++) {
                    $rec = $Stream[$k]
                    $text = if ($rec -is [System.Management.Automation.InformationRecord]) { "$($rec.MessageData)" } else { "$($rec.Message)" }
                    if ($text -like $Like) { return $true }
                }
                $false
            }

            function Test-Information {
                param($Pipeline, [string]$Text)
                Test-StreamMessage $Pipeline.PowerShell.Streams.Information $Text
            }

            # Starts the big pipeline, stops it at the given moment, and returns everything the checks need.
            function Invoke-StoppedRun {
                param([string]$Moment, [double]$Fraction)
                $DelayMs = [int]($Fraction * $EndProcessingMs)
                $ns = New-RelNamespace
                $holder = $null
                if ($Moment -eq 'Lock') { $holder = Start-RelLockHolder -Namespace $ns }
                $inode = Get-RelNamespaceInode -Namespace $ns
                $params = @{ Namespace = $ns; Count = $Count; SleepMs = $(if ($Moment -in 'Queue', 'Stream') { 2 } else { 0 }); VerboseOn = ($Moment -in 'Plan', 'Restore') }
                $p = Start-RelPipeline -ModulePath $ModulePath -Script $StopScript -Parameters $params
                $hit = switch ($Moment) {
                    'Queue' { Wait-PipelineEvent $p { Test-Information $p 'produced 300' } }
                    'Lock' {
                        # Past the producer, then half a second in which it can only be waiting for the lock.
                        $ok = Wait-PipelineEvent $p { Test-Information $p 'producer-done' }
                        [Threading.Thread]::Sleep(500)
                        $ok -and -not $p.Handle.IsCompleted
                    }
                    'Plan' { Wait-PipelineEvent $p { Test-StreamMessage $p.PowerShell.Streams.Verbose 'Performing the operation*' } }
                    'Stream' {
                        # Restore processes run while the producer is still at it (it sleeps 2 ms per item).
                        (Wait-PipelineEvent $p { Test-Information $p 'produced 300' }) -and @(Find-RelRestoreProcess -NamespaceInode $inode -Namespace $ns).Count -gt 0 -and -not (Test-Information $p 'producer-done')
                    }
                    # -Verbose shows a payload when it is handed over whole, with its COMMIT (nft: its whole input).
                    'Restore' { Wait-PipelineEvent $p { Test-StreamMessage $p.PowerShell.Streams.Verbose $(if ($Backend -eq 'Iptables') { '*tables*-restore payload (*' } else { 'nft input*' }) } }
                    'Delay' {
                        $ok = Wait-PipelineEvent $p { Test-Information $p 'producer-done' }
                        if ($ok -and $DelayMs -gt 0) { [Threading.Thread]::Sleep($DelayMs) }
                        $ok
                    }
                }
                $completedBeforeStop = $p.Handle.IsCompleted
                $stopWatch = [Diagnostics.Stopwatch]::StartNew()
                $stoppedInTime = Stop-RelPipeline -Pipeline $p -TimeoutSeconds 90
                $stopMs = $stopWatch.ElapsedMilliseconds
                $lockStillHeldByHolder = $null
                if ($holder) { $lockStillHeldByHolder = -not $holder.HasExited -and -not (Test-RelLockFree -Namespace $ns) }
                $result = Complete-RelPipeline -Pipeline $p -TimeoutSeconds 60
                if ($holder) { Stop-RelProcess -Process $holder }
                $dump = Get-RelDump -Namespace $ns
                $forwards = @(Get-PortForward -NetworkNamespace $ns -ErrorAction Stop)
                [pscustomobject]@{
                    Namespace             = $ns
                    Hit                   = [bool]$hit
                    CompletedBeforeStop   = $completedBeforeStop
                    StoppedInTime         = $stoppedInTime
                    StopMs                = $stopMs
                    LockStillHeldByHolder = $lockStillHeldByHolder
                    Result                = $result
                    Dump                  = $dump
                    Forwards              = $forwards
                    TaggedNames           = @((Get-RelTagCount -Lines $dump).Keys)
                }
            }
            # How long EndProcessing of an uninterrupted run takes here (from 'producer-done' to the end).
            $cal = Start-RelPipeline -ModulePath $ModulePath -Script $StopScript -Parameters @{ Namespace = (New-RelNamespace); Count = $Count; SleepMs = 0; VerboseOn = $false }
            $null = Wait-PipelineEvent $cal { Test-Information $cal 'producer-done' }
            $calWatch = [Diagnostics.Stopwatch]::StartNew()
            $calResult = Complete-RelPipeline -Pipeline $cal -TimeoutSeconds 120
            $EndProcessingMs = [Math]::Max(200, $calWatch.ElapsedMilliseconds)
            if (@($calResult.Output).Count -ne $Count) { throw "Calibration run failed: $(Format-RelResult $calResult)" }
            $Outcomes.Add("uninterrupted EndProcessing of $Count forwards: $EndProcessingMs ms")
        }
        AfterAll {
            if ($Outcomes.Count) { Write-Host ("Interruption outcomes:`n  " + ($Outcomes -join "`n  ")) }
            $null = Remove-RelResources
        }

        # Streaming to running restore processes is the iptables backend's (the nftables one applies one transaction at the end).
        It 'stopping <Title> leaves whole forwards only (none or all 2000) and frees the lock' -ForEach @($StopMoments | Where-Object { $Backend -eq 'Iptables' -or $_.Moment -ne 'Stream' }) {
            $run = Invoke-StoppedRun -Moment $Moment -Fraction $Fraction
            $Outcomes.Add(('{0,-62} -> {1,4} forwards, stop took {2} ms, completed before stop: {3}' -f "$Title ($([int]($Fraction * $EndProcessingMs)) ms)", $run.Forwards.Count, $run.StopMs, $run.CompletedBeforeStop))
            $run.Hit | Should -BeTrue -Because "the moment '$Title' must be reached before the pipeline ends ($(Format-RelResult $run.Result))"
            $run.StoppedInTime | Should -BeTrue -Because 'Stop() must return (a started restore may finish first)'
            $run.Result.TimedOut | Should -BeFalse
            if ($Moment -eq 'Lock') {
                $run.LockStillHeldByHolder | Should -BeTrue -Because 'the stop must not wait for the lock holder'
            }

            # Whole forwards only: every tagged name has its three rules once, and it is none or all.
            $run.TaggedNames.Count | Should -BeIn @(0, $Count) -Because 'one pipeline is one transaction'
            $expected = @(); if ($run.TaggedNames.Count -gt 0) { $expected = $AllNames }
            Get-RelTagProblem -Lines $run.Dump -Names $expected | Should -BeNullOrEmpty
            $run.Forwards.Count | Should -Be $run.TaggedNames.Count
            @($run.Forwards | Where-Object { "$($_.Status)" -ne 'Complete' }).Count | Should -Be 0
            switch ($Expect) {
                'None' { $run.Forwards.Count | Should -Be 0 -Because 'EndProcessing never applied anything' }
                'All' { $run.Forwards.Count | Should -Be $Count -Because 'a started iptables-restore or nft transaction is never cancelled' }
            }

            # The lock is free again (within 3 s: once, on the nftables backend, it was still held at the first look
            # right after a stop at once; a lock left held stays held and fails here), and the next call succeeds at
            # once (the lock timeout is 60 s).
            $deadline = [DateTime]::UtcNow.AddSeconds(3)
            while (-not (Test-RelLockFree -Namespace $run.Namespace) -and [DateTime]::UtcNow -lt $deadline) { Start-Sleep -Milliseconds 100 }
            Test-RelLockFree -Namespace $run.Namespace | Should -BeTrue
            $next = Invoke-RelPipeline -ModulePath $ModulePath -Script $NewScript -TimeoutSeconds 45 -Parameters @{
                Namespace = $run.Namespace; Items = @(New-RelForwardItem -Prefix 'after-' -Count 1 -FirstPort 40000)
            }
            $next.TimedOut | Should -BeFalse
            $next.Terminating | Should -BeNullOrEmpty -Because (Format-RelResult $next)
            @($next.Errors).Count | Should -Be 0 -Because (Format-RelResult $next)
            @($next.Output | ForEach-Object Name) | Should -Be 'after-0000'
            $next.ElapsedMs | Should -BeLessThan 30000
        }

        It 'switches forwarding on when a stopped run applied its forwards (or a re-run of the same command does)' {
            # Stopped once iptables-restore has its COMMIT (nft its input): the forwards are applied (see above). The namespace starts
            # with net.ipv4.ip_forward = 0, which New-PortForward normally switches on after the restore.
            $run = Invoke-StoppedRun -Moment 'Restore' -Fraction 0
            $run.Hit | Should -BeTrue
            $run.Forwards.Count | Should -Be $Count
            $items = @(1..$Count | ForEach-Object { [pscustomobject]@{ Name = ('s{0:d4}' -f $_); ExternalPort = 10000 + $_; InternalAddress = '198.51.100.10'; SnatAddress = '198.51.100.1' } })
            $again = Invoke-RelPipeline -ModulePath $ModulePath -Script $NewScript -Parameters @{ Namespace = $run.Namespace; Items = $items }
            @($again.Errors).Count | Should -Be 0 -Because (Format-RelResult $again)
            @($again.Output | Where-Object { "$($_.Change)" -ne 'Unchanged' }).Count | Should -Be 0
            $sysctl = (Invoke-RelInNamespace -Namespace $run.Namespace -FilePath (Resolve-RelTool cat) -ArgumentList '/proc/sys/net/ipv4/ip_forward').StdOut.Trim()
            $sysctl | Should -Be '1' -Because 'forwards that exist in the kernel must be routed; the interrupted run skipped the sysctl and the re-run reported Unchanged'
        }
    }

    # The iptables backend's: refusals of iptables-restore payloads (the nftables backend's refused line is mapped to
    # its forward in tests/PSNetfilter.Tests/Backends/Nftables).
    if ($Backend -eq 'Iptables') {
        Context 'A real kernel refusal' {
            # Real refusals, no fake: the kernel accepts SNAT/MASQUERADE only in chains reachable from
            # nat/POSTROUTING or INPUT, the owner match only from OUTPUT/POSTROUTING, and will not delete a chain
            # that a rule still jumps to. iptables-nft-restore then exits 4 with
            # "line N: RULE_APPEND failed (Invalid argument): rule in chain X" (or CHAIN_DEL ... busy).
            # iptables-restore commits table by table (each COMMIT), so a refusal in *filter comes after *nat
            # was already committed.
            BeforeAll {
                function New-SnatRefusingNamespace {
                    # A namespace with Docker's rules and a foreign jump that makes the module's SNAT chain reachable
                    # from PREROUTING: the kernel then refuses every SNAT and MASQUERADE rule the module appends there.
                    $ns = New-RelNamespace
                    Import-RelRules -Namespace $ns -Path (Join-Path $Fixtures 'docker.v4.rules')
                    Import-RelRules -Namespace $ns -Text "*nat`n:PSNF-POSTROUTING - [0:0]`n-A PREROUTING -j PSNF-POSTROUTING`nCOMMIT`n"
                    $ns
                }

                function Get-Payloads {
                    # The IPv4 restore payloads the module logged (-Verbose), in order, as arrays of lines.
                    param($Result)
                    foreach ($v in @($Result.Verbose)) {
                        if ($v -match '^\S*tables\S*-restore payload \(IPv4\):') { , @(($v -split "`n") | Select-Object -Skip 1) }
                    }
                }

                function Assert-RestoreError {
                    # The error record reports the tool's exit code, stderr, the first line it named and that
                    # line's text from the payload that was sent.
                    param($ErrorRecord, [string[]]$Payload)
                    $x = $ErrorRecord.Exception
                    $ErrorRecord.FullyQualifiedErrorId | Should -BeLike 'IptablesCommandFailed*'
                    $x.ExitCode | Should -BeGreaterThan 0
                    $x.StandardError | Should -Not -BeNullOrEmpty
                    $x.FailedLine | Should -BeGreaterThan 0 -Because "the tool named the line: $($x.StandardError)"
                    $first = [regex]::Match($x.StandardError, '(?:Error occurred at line: |line )(\d+)')
                    $x.FailedLine | Should -Be ([int]$first.Groups[1].Value) -Because 'the first line the tool names is the one that failed'
                    $Payload | Should -Not -BeNullOrEmpty
                    $x.FailedInput | Should -BeExactly $Payload[$x.FailedLine - 1]
                    $x.Message | Should -Match ([regex]::Escape($x.FailedInput))
                }
            }

            It 'maps a refusal to the forward that caused it, reports it, and applies the other forwards' {
                if ((Get-RelBackend).Kind -eq 'legacy') {
                    Set-ItResult -Skipped -Because 'iptables-legacy-restore names the COMMIT line, so a refusal cannot be mapped to one forward'
                    return
                }
                # b's SNAT and d's MASQUERADE rules are refused, a and c (no source NAT) are fine.
                $ns = New-SnatRefusingNamespace
                $before4 = Get-RelDump -Namespace $ns
                $before6 = Get-RelDump -Namespace $ns -Family IPv6
                $items = @(
                    [pscustomobject]@{ Name = 'a'; ExternalPort = 20001; InternalAddress = '198.51.100.10'; SnatMode = 'None' }
                    [pscustomobject]@{ Name = 'b'; ExternalPort = 20002; InternalAddress = '198.51.100.10'; SnatAddress = '198.51.100.1' }
                    [pscustomobject]@{ Name = 'c'; ExternalPort = 20003; InternalAddress = '198.51.100.10'; SnatMode = 'None' }
                    [pscustomobject]@{ Name = 'd'; ExternalPort = 20004; InternalAddress = '198.51.100.10'; SnatMode = 'Masquerade' }
                )
                $r = Invoke-RelPipeline -ModulePath $ModulePath -Script $NewVerboseScript -Parameters @{ Namespace = $ns; Items = $items }
                $after4 = Get-RelDump -Namespace $ns
                $after6 = Get-RelDump -Namespace $ns -Family IPv6

                $r.Terminating | Should -BeNullOrEmpty -Because "a refusal caused by one forward must not stop the others: $(Format-RelResult $r)"
                $errors = @($r.Errors)
                @($errors | ForEach-Object { "$($_.TargetObject)" } | Sort-Object) -join ',' | Should -Be 'b,d' -Because (Format-RelResult $r)
                $payloads = @(Get-Payloads $r)
                $payloads.Count | Should -Be 3 -Because 'one attempt, then one without b, then one without b and d'
                for ($i = 0; $i -lt $errors.Count; $i++) {
                    $name = "$($errors[$i].TargetObject)"
                    Assert-RestoreError -ErrorRecord $errors[$i] -Payload $payloads[$i]
                    $errors[$i].Exception.StandardError | Should -Match 'Invalid argument'
                    $errors[$i].Exception.FailedInput | Should -Match "psnf:v1:${name}:snat"
                }
                @($r.Output | ForEach-Object { "$($_.Name)=$($_.Change)" } | Sort-Object) -join ',' | Should -Be 'a=Created,c=Created'

                Get-RelTagProblem -Lines $after4 -Names @('a', 'c') -NoSnatNames @('a', 'c') | Should -BeNullOrEmpty
                $forwards = @(Get-PortForward -NetworkNamespace $ns -ErrorAction Stop)
                @($forwards | ForEach-Object Name | Sort-Object) -join ',' | Should -Be 'a,c'
                @($forwards | Where-Object { "$($_.Status)" -ne 'Complete' }).Count | Should -Be 0
                # Nothing of b or d; the foreign lines (and the foreign jump to the module's chain) as before.
                @($after4 | Where-Object { $_ -match 'psnf:v1:[bd]:' }).Count | Should -Be 0
                foreach ($line in $before4) { $after4 | Should -Contain $line }
                (Get-RelForeignLines $after4) -join "`n" | Should -BeExactly ((Get-RelForeignLines $before4) -join "`n")
                $after6 -join "`n" | Should -BeExactly ($before6 -join "`n")
            }

            It 'maps a refusal in a large batch (one iptables-restore per table, at once) to its forward, rolls back the table that was applied, and applies the others' {
                if ((Get-RelBackend).Kind -eq 'legacy') {
                    Set-ItResult -Skipped -Because 'iptables-legacy-restore names the COMMIT line, so a refusal cannot be mapped to one forward'
                    return
                }
                # Of 40 forwards only 'big-snat' has source NAT, so the nat process fails on its rule while the
                # filter process, run at the same time, commits the FORWARD rules of all 40.
                $ns = New-SnatRefusingNamespace
                $before4 = Get-RelDump -Namespace $ns
                $items = @(0..39 | ForEach-Object {
                        if ($_ -eq 17) { [pscustomobject]@{ Name = 'big-snat'; ExternalPort = 21017; InternalAddress = '198.51.100.10'; SnatAddress = '198.51.100.1' } }
                        else { [pscustomobject]@{ Name = ('big-{0:d2}' -f $_); ExternalPort = 21000 + $_; InternalAddress = '198.51.100.10'; SnatMode = 'None' } }
                    })
                $r = Invoke-RelPipeline -ModulePath $ModulePath -Script $NewVerboseScript -Parameters @{ Namespace = $ns; Items = $items }
                $after4 = Get-RelDump -Namespace $ns

                $r.Terminating | Should -BeNullOrEmpty -Because (Format-RelResult $r)
                @($r.Verbose | Where-Object { $_ -match 'applied as one process per table, at once' }).Count | Should -BeGreaterOrEqual 1 -Because 'the batch is large enough to be split'
                $errors = @($r.Errors)
                @($errors | ForEach-Object { "$($_.TargetObject)" }) -join ',' | Should -Be 'big-snat' -Because (Format-RelResult $r)
                $natPayload = @(foreach ($v in @($r.Verbose)) { if ($v -match '^\S*tables\S*-restore payload \(IPv4, table nat\):') { , @(($v -split "`n") | Select-Object -Skip 1) } })[0]
                Assert-RestoreError -ErrorRecord $errors[0] -Payload $natPayload
                $errors[0].Exception.FailedInput | Should -Match 'psnf:v1:big-snat:snat'
                @($r.Warnings | Where-Object { $_ -match 'applied only part' }).Count | Should -Be 1 -Because 'the filter table was committed and is rolled back'
                @($r.Output | Where-Object { $_.Change -eq 'Created' }).Count | Should -Be 39

                $names = @($items | Where-Object Name -ne 'big-snat' | ForEach-Object Name)
                Get-RelTagProblem -Lines $after4 -Names $names -NoSnatNames $names | Should -BeNullOrEmpty
                @($after4 | Where-Object { $_ -match 'psnf:v1:big-snat:' }).Count | Should -Be 0
                $forwards = @(Get-PortForward -NetworkNamespace $ns -ErrorAction Stop)
                $forwards.Count | Should -Be 39
                @($forwards | Where-Object { "$($_.Status)" -ne 'Complete' }).Count | Should -Be 0
                (Get-RelForeignLines $after4) -join "`n" | Should -BeExactly ((Get-RelForeignLines $before4) -join "`n")
            }

            It 'reports a refusal in the first table that no forward caused, and changes nothing' {
                $ns = New-RelNamespace
                Import-RelRules -Namespace $ns -Path (Join-Path $Fixtures 'docker.v4.rules')
                # A hand-made rule in the module's DNAT chain that the kernel accepts only while that chain is
                # not reachable from PREROUTING: the module's jump to it is refused.
                Import-RelRules -Namespace $ns -Text "*nat`n:PSNF-PREROUTING - [0:0]`n-A PSNF-PREROUTING -d 198.51.100.99/32 -j SNAT --to-source 198.51.100.1`nCOMMIT`n"
                $before4 = Get-RelDump -Namespace $ns
                $before6 = Get-RelDump -Namespace $ns -Family IPv6
                $r = Invoke-RelPipeline -ModulePath $ModulePath -Script $NewVerboseScript -Parameters @{ Namespace = $ns; Items = @(New-RelForwardItem -Prefix 'r-' -Count 3 -FirstPort 20100) }
                $after4 = Get-RelDump -Namespace $ns
                $after6 = Get-RelDump -Namespace $ns -Family IPv6

                $all = @(@($r.Errors) + @($r.Terminating) | Where-Object { $_ })
                $all.Count | Should -Be 1 -Because (Format-RelResult $r)
                Assert-RestoreError -ErrorRecord $all[0] -Payload @(Get-Payloads $r)[0]
                $all[0].Exception.FailedInput | Should -Match 'PSNF-PREROUTING'
                @($r.Output).Count | Should -Be 0
                $after4 -join "`n" | Should -BeExactly ($before4 -join "`n")
                $after6 -join "`n" | Should -BeExactly ($before6 -join "`n")
                @(Get-PortForward -NetworkNamespace $ns -ErrorAction Stop).Count | Should -Be 0
                Test-RelLockFree -Namespace $ns | Should -BeTrue
            }

            It 'leaves nothing half-done when the filter table is refused after the nat table was committed (New)' {
                $ns = New-RelNamespace
                Import-RelRules -Namespace $ns -Path (Join-Path $Fixtures 'docker.v4.rules')
                # A hand-made rule in PSNF-FORWARD with a match the kernel allows only in OUTPUT/POSTROUTING:
                # accepted while the chain hangs nowhere, so the module's jump from FORWARD is refused.
                Import-RelRules -Namespace $ns -Text "*filter`n:PSNF-FORWARD - [0:0]`n-A PSNF-FORWARD -m owner --uid-owner 0 -j RETURN`nCOMMIT`n"
                $before4 = Get-RelDump -Namespace $ns
                $before6 = Get-RelDump -Namespace $ns -Family IPv6
                $r = Invoke-RelPipeline -ModulePath $ModulePath -Script $NewVerboseScript -Parameters @{ Namespace = $ns; Items = @(New-RelForwardItem -Prefix 'f-' -Count 3 -FirstPort 20110) }
                $after4 = Get-RelDump -Namespace $ns
                $after6 = Get-RelDump -Namespace $ns -Family IPv6

                $all = @(@($r.Errors) + @($r.Terminating) | Where-Object { $_ })
                $all.Count | Should -BeGreaterOrEqual 1 -Because (Format-RelResult $r)
                @($all | Where-Object { $_.FullyQualifiedErrorId -like 'IptablesCommandFailed*' }).Count | Should -BeGreaterOrEqual 1 -Because (Format-RelResult $r)
                # Whole forwards only: no DNAT/SNAT rule of a forward whose FORWARD rule was refused.
                $tagged = @((Get-RelTagCount -Lines $after4).Keys)
                Get-RelTagProblem -Lines $after4 -Names $tagged | Should -BeNullOrEmpty -Because 'the nat part must not stay without the filter part'
                @(Get-PortForward -NetworkNamespace $ns -ErrorAction Stop | Where-Object { "$($_.Status)" -ne 'Complete' } | ForEach-Object Name) | Should -BeNullOrEmpty
                if ($tagged.Count -eq 0) {
                    $after4 -join "`n" | Should -BeExactly ($before4 -join "`n") -Because 'a failed apply must change nothing'
                }
                $after6 -join "`n" | Should -BeExactly ($before6 -join "`n")
                $ie = @($all | Where-Object { $_.FullyQualifiedErrorId -like 'IptablesCommandFailed*' })[0]
                Assert-RestoreError -ErrorRecord $ie -Payload @(Get-Payloads $r)[0]
            }

            It 'leaves nothing half-done when the filter table is refused after the nat table was committed (Remove)' {
                $ns = New-RelNamespace
                Import-RelRules -Namespace $ns -Path (Join-Path $Fixtures 'docker.v4.rules')
                $one = Invoke-RelPipeline -ModulePath $ModulePath -Script $NewScript -Parameters @{ Namespace = $ns; Items = @(New-RelForwardItem -Prefix 'y-' -Count 1 -FirstPort 20200) }
                @($one.Output).Count | Should -Be 1 -Because (Format-RelResult $one)
                # The admin lets Docker's DOCKER-USER consult the module's chain: a foreign reference, so the
                # kernel will not delete PSNF-FORWARD.
                Invoke-RelIptables -Namespace $ns -ArgumentList @('-t', 'filter', '-A', 'DOCKER-USER', '-j', 'PSNF-FORWARD')
                $before4 = Get-RelDump -Namespace $ns
                $r = Invoke-RelPipeline -ModulePath $ModulePath -Script 'param($Namespace) Remove-PortForward -Name y-0000 -NetworkNamespace $Namespace -PassThru -Verbose' -Parameters @{ Namespace = $ns }
                $after4 = Get-RelDump -Namespace $ns

                $after4 | Should -Contain '-A DOCKER-USER -j PSNF-FORWARD'
                (Get-RelForeignLines $after4) -join "`n" | Should -BeExactly ((Get-RelForeignLines $before4) -join "`n")
                $counts = Get-RelTagCount -Lines $after4
                $gone = $counts.Count -eq 0
                $whole = @(Get-RelTagProblem -Lines $after4 -Names @('y-0000')).Count -eq 0
                ($gone -or $whole) | Should -BeTrue -Because "y-0000 must be removed entirely or kept entirely; left: $(@($after4 | Where-Object { $_ -match 'psnf:v1:' }) -join ' | ') ($(Format-RelResult $r))"
                $all = @(@($r.Errors) + @($r.Terminating) | Where-Object { $_ })
                if ($gone) {
                    $all.Count | Should -Be 0 -Because (Format-RelResult $r)
                    @($r.Output | ForEach-Object Name) | Should -Be 'y-0000'
                }
                else {
                    $after4 -join "`n" | Should -BeExactly ($before4 -join "`n") -Because 'a failed apply must change nothing'
                    $all.Count | Should -Be 1
                    Assert-RestoreError -ErrorRecord $all[0] -Payload @(Get-Payloads $r)[0]
                }
            }

            AfterAll { $null = Remove-RelResources }
        }
    }

    Context 'Foreign input: a gateway with Docker, libvirt, kube-proxy and exotic rules' {
        AfterAll { $null = Remove-RelResources }

        It 'New, Get and Remove work and leave every foreign line byte-identical' {
            $ns = New-ForeignGateway
            $before4 = Get-RelDump -Namespace $ns
            $before6 = Get-RelDump -Namespace $ns -Family IPv6
            $items = @(
                # Docker publishes 9000 and kube-proxy 30080 too: the module's jumps come first.
                [pscustomobject]@{ Name = 'fw-tcp'; ExternalAddress = '203.0.113.1'; ExternalPort = 9000; InternalAddress = '198.51.100.10'; InternalPort = 80; SnatAddress = '198.51.100.1' }
                [pscustomobject]@{ Name = 'fw-udp'; Protocol = 'Udp'; ExternalPort = 30080; InternalAddress = '198.51.100.10'; InternalPort = 5353; SnatMode = 'Masquerade' }
                [pscustomobject]@{ Name = 'fw-none'; ExternalPort = 8443; InternalAddress = '198.51.100.10'; SnatMode = 'None'; Description = 'über "quoted" ; -j DROP # not a rule' }
                [pscustomobject]@{ Name = 'fw-v6'; ExternalAddress = '2001:db8:1::1'; ExternalPort = 9000; InternalAddress = '2001:db8:2::10'; InternalPort = 80; SnatAddress = '2001:db8:2::1' }
            )
            $new = Invoke-RelPipeline -ModulePath $ModulePath -Script $NewScript -Parameters @{ Namespace = $ns; Items = $items }
            $new.Terminating | Should -BeNullOrEmpty -Because (Format-RelResult $new)
            @($new.Errors).Count | Should -Be 0 -Because (Format-RelResult $new)
            @($new.Output | Where-Object { "$($_.Change)" -eq 'Created' }).Count | Should -Be 4

            $get = Invoke-RelPipeline -ModulePath $ModulePath -Script $GetScript -Parameters @{ Namespace = $ns }
            @($get.Errors).Count | Should -Be 0 -Because (Format-RelResult $get)
            $get.Terminating | Should -BeNullOrEmpty
            $get.Warnings | Should -BeNullOrEmpty -Because 'foreign rules are not the module''s business'
            @($get.Output | ForEach-Object Name | Sort-Object) -join ',' | Should -Be 'fw-none,fw-tcp,fw-udp,fw-v6'
            @($get.Output | Where-Object { "$($_.Status)" -ne 'Complete' }).Count | Should -Be 0
            @($get.Output | Where-Object Name -eq 'fw-none' | ForEach-Object Description) | Should -BeExactly 'über "quoted" ; -j DROP # not a rule'

            $mid4 = Get-RelDump -Namespace $ns
            $mid6 = Get-RelDump -Namespace $ns -Family IPv6
            (Get-RelForeignLines $mid4) -join "`n" | Should -BeExactly ((Get-RelForeignLines $before4) -join "`n")
            (Get-RelForeignLines $mid6) -join "`n" | Should -BeExactly ((Get-RelForeignLines $before6) -join "`n")
            Get-RelTagProblem -Lines $mid4 -Names @('fw-tcp', 'fw-udp', 'fw-none') -NoSnatNames @('fw-none') | Should -BeNullOrEmpty
            Get-RelTagProblem -Lines $mid6 -Names @('fw-v6') | Should -BeNullOrEmpty

            $rm = Invoke-RelPipeline -ModulePath $ModulePath -Script $RemoveScript -Parameters @{ Namespace = $ns; Names = @('fw-tcp', 'fw-udp', 'fw-none', 'fw-v6') }
            @($rm.Errors).Count | Should -Be 0 -Because (Format-RelResult $rm)
            $rm.Terminating | Should -BeNullOrEmpty
            @($rm.Output).Count | Should -Be 4
            @(Get-PortForward -NetworkNamespace $ns -ErrorAction Stop).Count | Should -Be 0
            # Nothing left of the module, and every foreign line as before.
            $end4 = Get-RelDump -Namespace $ns
            $end6 = Get-RelDump -Namespace $ns -Family IPv6
            if ($Backend -eq 'Iptables') {
                $end4 -join "`n" | Should -BeExactly ($before4 -join "`n")
                $end6 -join "`n" | Should -BeExactly ($before6 -join "`n")
            }
            else {
                # The nftables backend keeps its table, without elements.
                (Get-RelTagCount -Lines (@($end4) + @($end6))).Count | Should -Be 0
                (Get-RelForeignLines $end4) -join "`n" | Should -BeExactly ((Get-RelForeignLines $before4) -join "`n")
                (Get-RelForeignLines $end6) -join "`n" | Should -BeExactly ((Get-RelForeignLines $before6) -join "`n")
            }
        }

        # The iptables backend's: rules added by hand to its PSNF- chains.
        It 'keeps an untagged rule added by hand to PSNF-FORWARD, with its chain and jump, when the last forward goes' -Skip:($Backend -ne 'Iptables') {
            $ns = New-ForeignGateway
            $foreign4 = Get-RelForeignLines (Get-RelDump -Namespace $ns)
            $one = Invoke-RelPipeline -ModulePath $ModulePath -Script $NewScript -Parameters @{ Namespace = $ns; Items = @(New-RelForwardItem -Prefix 'hand-' -Count 1 -FirstPort 20200) }
            @($one.Output).Count | Should -Be 1 -Because (Format-RelResult $one)
            Invoke-RelIptables -Namespace $ns -ArgumentList @('-t', 'filter', '-A', 'PSNF-FORWARD', '-s', '203.0.113.9/32', '-p', 'tcp', '-m', 'tcp', '--dport', '22', '-j', 'ACCEPT')
            $handLine = '-A PSNF-FORWARD -s 203.0.113.9/32 -p tcp -m tcp --dport 22 -j ACCEPT'
            (Get-RelDump -Namespace $ns) | Should -Contain $handLine

            $rm = Invoke-RelPipeline -ModulePath $ModulePath -Script $RemoveScript -Parameters @{ Namespace = $ns; Names = @('hand-0000') }
            @($rm.Errors).Count | Should -Be 0 -Because (Format-RelResult $rm)
            $rm.Terminating | Should -BeNullOrEmpty -Because (Format-RelResult $rm)
            $after = Get-RelDump -Namespace $ns
            $after | Should -Contain $handLine
            $after | Should -Contain ':PSNF-FORWARD -'
            (Get-RelJumpCount -Lines $after).Forward | Should -Be 1
            (Get-RelTagCount -Lines $after).Count | Should -Be 0
            (Get-RelForeignLines $after) -join "`n" | Should -BeExactly ($foreign4 -join "`n")

            # The kept chain and jump are reused, not doubled.
            $two = Invoke-RelPipeline -ModulePath $ModulePath -Script $NewScript -Parameters @{ Namespace = $ns; Items = @(New-RelForwardItem -Prefix 'hand2-' -Count 1 -FirstPort 20201) }
            @($two.Errors).Count | Should -Be 0 -Because (Format-RelResult $two)
            $two.Terminating | Should -BeNullOrEmpty -Because (Format-RelResult $two)
            $d2 = Get-RelDump -Namespace $ns
            $j = Get-RelJumpCount -Lines $d2
            "$($j.PreRouting)$($j.PostRouting)$($j.Forward)" | Should -Be '111'
            Get-RelTagProblem -Lines $d2 -Names @('hand2-0000') | Should -BeNullOrEmpty
            $d2 | Should -Contain $handLine
        }

        It 'warns about tagged rules it cannot read and still lists, adds and removes forwards' -Skip:($Backend -ne 'Iptables') {
            $ns = New-ForeignGateway
            $one = Invoke-RelPipeline -ModulePath $ModulePath -Script $NewScript -Parameters @{ Namespace = $ns; Items = @(New-RelForwardItem -Prefix 'good-' -Count 1 -FirstPort 20300) }
            @($one.Output).Count | Should -Be 1 -Because (Format-RelResult $one)
            # A tag without a role, and a tag with an unknown role that names an existing forward.
            Invoke-RelIptables -Namespace $ns -ArgumentList @('-t', 'filter', '-A', 'PSNF-FORWARD', '-m', 'comment', '--comment', 'psnf:v1:bad', '-j', 'ACCEPT')
            Invoke-RelIptables -Namespace $ns -ArgumentList @('-t', 'nat', '-A', 'PSNF-PREROUTING', '-p', 'tcp', '-m', 'tcp', '--dport', '1234', '-m', 'comment', '--comment', 'psnf:v1:good-0000:bogus', '-j', 'RETURN')
            $unreadable = @(Get-RelDump -Namespace $ns | Where-Object { $_ -match 'psnf:v1:bad"|psnf:v1:good-0000:bogus' })
            $unreadable.Count | Should -Be 2

            $get = Invoke-RelPipeline -ModulePath $ModulePath -Script $GetScript -Parameters @{ Namespace = $ns }
            $get.Terminating | Should -BeNullOrEmpty -Because (Format-RelResult $get)
            @($get.Errors).Count | Should -Be 0 -Because (Format-RelResult $get)
            @($get.Output | ForEach-Object Name) | Should -Be 'good-0000'
            @($get.Output | ForEach-Object { "$($_.Status)" }) | Should -Be 'Complete'
            @($get.Warnings | Where-Object { $_ -match 'psnf:v1:bad' }).Count | Should -BeGreaterOrEqual 1 -Because "warnings: $($get.Warnings -join ' | ')"
            @($get.Warnings | Where-Object { $_ -match 'psnf:v1:good-0000:bogus' }).Count | Should -BeGreaterOrEqual 1 -Because "warnings: $($get.Warnings -join ' | ')"

            $new = Invoke-RelPipeline -ModulePath $ModulePath -Script $NewScript -Parameters @{ Namespace = $ns; Items = @(New-RelForwardItem -Prefix 'more-' -Count 1 -FirstPort 20301) }
            $new.Terminating | Should -BeNullOrEmpty -Because (Format-RelResult $new)
            @($new.Errors).Count | Should -Be 0 -Because (Format-RelResult $new)
            @($new.Output | ForEach-Object Name) | Should -Be 'more-0000'

            $rm = Invoke-RelPipeline -ModulePath $ModulePath -Script $RemoveScript -Parameters @{ Namespace = $ns; Names = @('good-0000', 'more-0000') }
            $rm.Terminating | Should -BeNullOrEmpty -Because (Format-RelResult $rm)
            @($rm.Errors).Count | Should -Be 0 -Because (Format-RelResult $rm)
            @($rm.Output).Count | Should -Be 2
            $after = Get-RelDump -Namespace $ns
            # The unreadable rules are left alone; every readable rule of the two forwards is gone.
            @($after | Where-Object { $_ -match 'psnf:v1:bad"|psnf:v1:good-0000:bogus' }).Count | Should -Be 2
            @($after | Where-Object { $_ -match 'psnf:v1:(good|more)-0000:(dnat|snat|fwd)' }).Count | Should -Be 0
            $final = Invoke-RelPipeline -ModulePath $ModulePath -Script $GetScript -Parameters @{ Namespace = $ns }
            @($final.Output).Count | Should -Be 0
            @($final.Errors).Count | Should -Be 0 -Because (Format-RelResult $final)
        }
    }

    Context 'Crash safety of the namespace lock' {
        AfterAll { $null = Remove-RelResources }

        # The iptables backend's: the child stalls in an iptables-save found on PATH (the nftables backend reads in-process).
        It 'waits while a pwsh running New-PortForward holds the lock, and proceeds at once when that pwsh is killed -9' -Skip:($Backend -ne 'Iptables') {
            $ns = New-RelNamespace
            $dir = New-RelTempDirectory
            $marker = Join-Path $dir 'stalled'
            $hold = Join-Path $dir 'hold'
            [IO.File]::WriteAllText($hold, 'hold')
            # The child's iptables-save (run under the lock) waits while $hold exists and the child lives.
            $stall = New-RelStallingSaveDirectory -MarkerPath $marker -HoldPath $hold
            $itemsFile = Join-Path $dir 'items.json'
            ConvertTo-Json -InputObject @(New-RelForwardItem -Prefix 'child-' -Count 1 -FirstPort 20400) | Set-Content -LiteralPath $itemsFile
            $child = Start-RelChildPwsh -ScriptPath $ChildScript -Environment @{ PATH = "$stall`:$env:PATH" } -ArgumentList @(
                '-ModulePath', $ModulePath, '-Namespace', $ns, '-Mode', 'Add', '-ItemsFile', $itemsFile, '-ResultFile', (Join-Path $dir 'child.json'))
            try {
                Wait-RelCondition -TimeoutSeconds 120 -Condition { (Test-Path -LiteralPath $marker) -or $child.Process.HasExited } | Should -BeTrue
                $child.Process.HasExited | Should -BeFalse -Because (Get-RelChildText $child)
                Test-RelLockFree -Namespace $ns | Should -BeFalse -Because 'the child took the lock before its iptables-save'

                $p = Start-RelPipeline -ModulePath $ModulePath -Script $NewScript -Parameters @{ Namespace = $ns; Items = @(New-RelForwardItem -Prefix 'mine-' -Count 1 -FirstPort 20401) }
                Start-Sleep -Seconds 3
                $p.Handle.IsCompleted | Should -BeFalse -Because 'New-PortForward must wait for the lock'
                (Get-RelTagCount -Lines (Get-RelDump -Namespace $ns)).Count | Should -Be 0

                $child.Process.Kill()   # SIGKILL: no finally block, no Dispose in the child
                $child.Process.WaitForExit()
                $sw = [Diagnostics.Stopwatch]::StartNew()
                $r = Complete-RelPipeline -Pipeline $p -TimeoutSeconds 50
                $sw.ElapsedMilliseconds | Should -BeLessThan 30000 -Because 'the kernel drops a dead holder''s flock (the lock timeout is 60 s)'
                $r.TimedOut | Should -BeFalse
                $r.Terminating | Should -BeNullOrEmpty -Because (Format-RelResult $r)
                @($r.Errors).Count | Should -Be 0 -Because (Format-RelResult $r)
                @($r.Output | ForEach-Object Name) | Should -Be 'mine-0000'
                Get-RelTagProblem -Lines (Get-RelDump -Namespace $ns) -Names @('mine-0000') | Should -BeNullOrEmpty
                Test-RelLockFree -Namespace $ns | Should -BeTrue
            }
            finally {
                Remove-Item -LiteralPath $hold -Force -ErrorAction SilentlyContinue
                Stop-RelProcess -Process $child.Process
            }
        }

        It 'waits while flock(1) holds the lock file, and proceeds at once when the holder is killed -9' {
            $ns = New-RelNamespace
            $holder = Start-RelLockHolder -Namespace $ns
            try {
                Test-RelLockFree -Namespace $ns | Should -BeFalse
                $p = Start-RelPipeline -ModulePath $ModulePath -Script $NewScript -Parameters @{ Namespace = $ns; Items = @(New-RelForwardItem -Prefix 'mine-' -Count 1 -FirstPort 20500) }
                Start-Sleep -Seconds 2
                $p.Handle.IsCompleted | Should -BeFalse -Because 'New-PortForward must wait for the lock'
                (Get-RelTagCount -Lines (Get-RelDump -Namespace $ns)).Count | Should -Be 0

                Stop-RelProcess -Process $holder
                $sw = [Diagnostics.Stopwatch]::StartNew()
                $r = Complete-RelPipeline -Pipeline $p -TimeoutSeconds 50
                $sw.ElapsedMilliseconds | Should -BeLessThan 30000
                $r.Terminating | Should -BeNullOrEmpty -Because (Format-RelResult $r)
                @($r.Errors).Count | Should -Be 0 -Because (Format-RelResult $r)
                @($r.Output | ForEach-Object Name) | Should -Be 'mine-0000'
                Get-RelTagProblem -Lines (Get-RelDump -Namespace $ns) -Names @('mine-0000') | Should -BeNullOrEmpty
                Test-RelLockFree -Namespace $ns | Should -BeTrue
            }
            finally {
                Stop-RelProcess -Process $holder
            }
        }
    }
}
