<#
    Helpers for tests/pester/Reliability.Tests.ps1: throw-away network namespaces (names 'psnfr' + random
    hex, deleted by Remove-RelResources), iptables dumps and tag counting, child pwsh processes, in-process
    runspaces that can be stopped (StopProcessing, as Ctrl+C does), and lock holders.

    Everything runs inside namespaces this module created; the root namespace's rules are never read or
    written, and no packet is sent anywhere.
#>

Set-StrictMode -Version 3.0

Import-Module (Join-Path $PSScriptRoot '../../support/TestProcess.psm1')

$script:Namespaces = [System.Collections.Generic.List[string]]::new()
$script:Processes = [System.Collections.Generic.List[System.Diagnostics.Process]]::new()
$script:TempDirectories = [System.Collections.Generic.List[string]]::new()
$script:LockDirectory = '/run/psnetfilter'
$script:Backend = $null

$script:ChildEnvironment = Get-TestChildEnvironment

#region processes and tools

function Resolve-RelTool {
    param([Parameter(Mandatory)][string]$Name)
    Resolve-TestTool -Name $Name
}

function Test-RelTool {
    param([Parameter(Mandatory)][string]$Name)
    try { [void](Resolve-RelTool $Name); $true } catch { $false }
}

function Invoke-RelProcess {
    # One process with an exact argument list; returns ExitCode, StdOut, StdErr, TimedOut.
    param(
        [Parameter(Mandatory)][string]$FilePath,
        [string[]]$ArgumentList = @(),
        [string]$StandardInput,
        [double]$TimeoutSeconds = 60
    )
    Invoke-TestProcess @PSBoundParameters -Environment @{ LC_ALL = 'C' }
}

function Invoke-RelInNamespace {
    # ip netns exec NS TOOL ARGS; throws unless it exits 0 (or -AllowFailure).
    param(
        [Parameter(Mandatory)][string]$Namespace,
        [Parameter(Mandatory)][string]$FilePath,
        [string[]]$ArgumentList = @(),
        [string]$StandardInput,
        [switch]$AllowFailure
    )
    Assert-RelNamespace $Namespace
    $params = @{} + $PSBoundParameters
    $params.Remove('AllowFailure')
    Invoke-TestInNamespace @params -Environment @{ LC_ALL = 'C' } -Check:(-not $AllowFailure)
}

function Start-RelChildPwsh {
    <#
        Starts `pwsh -NoProfile -NonInteractive -File SCRIPT ARGS` as a child process with its output captured
        (StdOut/StdErr tasks on the returned object). The process is tracked and killed by Remove-RelResources.
    #>
    param(
        [Parameter(Mandatory)][string]$ScriptPath,
        [string[]]$ArgumentList = @(),
        [hashtable]$Environment = @{}
    )
    $pwsh = Get-TestPwshInvocation
    $psi = [System.Diagnostics.ProcessStartInfo]::new($pwsh[0])
    foreach ($a in @($pwsh | Select-Object -Skip 1) + @('-NoProfile', '-NonInteractive', '-File', $ScriptPath) + $ArgumentList) {
        $psi.ArgumentList.Add($a)
    }
    $psi.UseShellExecute = $false
    $psi.RedirectStandardOutput = $true
    $psi.RedirectStandardError = $true
    $psi.RedirectStandardInput = $true
    foreach ($k in $script:ChildEnvironment.Keys) { $psi.Environment[$k] = $script:ChildEnvironment[$k] }
    foreach ($k in $Environment.Keys) { $psi.Environment[$k] = $Environment[$k] }
    $p = [System.Diagnostics.Process]::Start($psi)
    $script:Processes.Add($p)
    $p.StandardInput.Close()
    [pscustomobject]@{
        Process = $p
        StdOut  = $p.StandardOutput.ReadToEndAsync()
        StdErr  = $p.StandardError.ReadToEndAsync()
    }
}

function Get-RelChildText {
    # The captured output of a finished child, for failure messages.
    param([Parameter(Mandatory)]$Child)
    $o = if ($Child.StdOut.IsCompleted) { $Child.StdOut.Result } else { '(running)' }
    $e = if ($Child.StdErr.IsCompleted) { $Child.StdErr.Result } else { '(running)' }
    "stdout: $o`nstderr: $e"
}

function Stop-RelProcess {
    # SIGKILL one process we started (by id), and wait for it.
    param([Parameter(Mandatory)][System.Diagnostics.Process]$Process)
    try {
        if (-not $Process.HasExited) {
            $Process.Kill()   # SIGKILL on Unix
            [void]$Process.WaitForExit(10000)
        }
    }
    catch { }
}

function New-RelTempDirectory {
    $dir = Join-Path ([IO.Path]::GetTempPath()) ('psnfr-' + [Guid]::NewGuid().ToString('n').Substring(0, 12))
    $null = New-Item -ItemType Directory -Path $dir -Force
    $script:TempDirectories.Add($dir)
    $dir
}

#endregion

#region namespaces

function Assert-RelNamespace {
    param([Parameter(Mandatory)][string]$Namespace)
    if ($Namespace -notmatch '^psnfr[0-9a-f]{8}$') { throw "ReliabilityHelpers: '$Namespace' is not one of this suite's namespaces." }
}

function New-RelNamespace {
    # A bare namespace named psnfr + 8 random hex digits, loopback up and IPv4 forwarding off (a new namespace
    # copies the host's setting; the tests expect the module to switch it on); tracked for Remove-RelResources.
    $ip = Resolve-RelTool ip
    do {
        $name = 'psnfr' + (-join ([System.Security.Cryptography.RandomNumberGenerator]::GetBytes(4) | ForEach-Object { $_.ToString('x2') }))
    } while (Test-Path -LiteralPath "/run/netns/$name")
    $script:Namespaces.Add($name)
    $r = Invoke-RelProcess -FilePath $ip -ArgumentList @('netns', 'add', $name)
    if ($r.ExitCode -ne 0) { throw "ReliabilityHelpers: ip netns add $name failed: $($r.StdErr.Trim())" }
    [void](Invoke-RelProcess -FilePath $ip -ArgumentList @('-n', $name, 'link', 'set', 'lo', 'up'))
    $r = Invoke-RelProcess -FilePath $ip -ArgumentList @('netns', 'exec', $name, (Resolve-RelTool sysctl), '-q', '-w', 'net.ipv4.ip_forward=0')
    if ($r.ExitCode -ne 0) { throw "ReliabilityHelpers: switching forwarding off in $name failed: $($r.StdErr.Trim())" }
    $name
}

function Get-RelLockPath {
    param([Parameter(Mandatory)][string]$Namespace)
    Join-Path $script:LockDirectory "netns-$Namespace.lock"
}

function Remove-RelResources {
    <#
        Kills the child processes this module started, then every process left inside our namespaces (only
        ours can be there), deletes the namespaces, their lock files and our temp folders. Never throws;
        returns the names it could not delete.
    #>
    foreach ($p in @($script:Processes)) { Stop-RelProcess -Process $p }
    $script:Processes.Clear()
    $ip = Resolve-RelTool ip
    $failed = @()
    foreach ($ns in @($script:Namespaces)) {
        if (Test-Path -LiteralPath "/run/netns/$ns") {
            $pids = (Invoke-RelProcess -FilePath $ip -ArgumentList @('netns', 'pids', $ns)).StdOut
            foreach ($p in ($pids -split '\s+' | Where-Object { $_ -match '^\d+$' })) {
                Stop-Process -Id ([int]$p) -Force -ErrorAction SilentlyContinue
            }
            $r = Invoke-RelProcess -FilePath $ip -ArgumentList @('netns', 'delete', $ns)
            if ($r.ExitCode -ne 0 -and (Test-Path -LiteralPath "/run/netns/$ns")) { $failed += $ns }
        }
        Remove-Item -LiteralPath (Get-RelLockPath $ns) -Force -ErrorAction SilentlyContinue
    }
    $script:Namespaces.Clear()
    foreach ($d in @($script:TempDirectories)) { Remove-Item -LiteralPath $d -Recurse -Force -ErrorAction SilentlyContinue }
    $script:TempDirectories.Clear()
    $failed
}

#endregion

#region iptables

function Get-RelBackend {
    # The backend the module uses: PSNETFILTER_IPTABLES_BACKEND, else what `iptables -V` says (cached).
    if ($script:Backend) { return $script:Backend }
    $forced = "$env:PSNETFILTER_IPTABLES_BACKEND".Trim().ToLowerInvariant()
    $text = (Invoke-RelProcess -FilePath (Resolve-RelTool iptables) -ArgumentList @('-V'))
    $kind = if ($forced -in 'nft', 'legacy') { $forced } elseif (($text.StdOut + $text.StdErr) -match 'legacy') { 'legacy' } else { 'nft' }
    $tool = {
        param($family, $verb)
        $n = "$family-$kind-$verb"
        if (Test-RelTool $n) { Resolve-RelTool $n } else { Resolve-RelTool "$family-$verb" }
    }
    $script:Backend = [pscustomobject]@{
        Kind     = $kind
        Save4    = & $tool 'iptables' 'save'
        Save6    = & $tool 'ip6tables' 'save'
        Restore4 = & $tool 'iptables' 'restore'
        Restore6 = & $tool 'ip6tables' 'restore'
    }
    $script:Backend
}

function Import-RelRules {
    # iptables-restore -w --noflush of a file or text into one of our namespaces; throws on failure.
    param(
        [Parameter(Mandatory)][string]$Namespace,
        [string]$Path,
        [string]$Text,
        [ValidateSet('IPv4', 'IPv6')][string]$Family = 'IPv4'
    )
    $b = Get-RelBackend
    if ($Path) { $Text = [IO.File]::ReadAllText((Resolve-Path -LiteralPath $Path).ProviderPath) }
    $tool = if ($Family -eq 'IPv6') { $b.Restore6 } else { $b.Restore4 }
    [void](Invoke-RelInNamespace -Namespace $Namespace -FilePath $tool -ArgumentList @('-w', '--noflush') -StandardInput $Text)
}

function Invoke-RelIptables {
    # iptables / ip6tables (the module's backend) with arguments, in one of our namespaces.
    param(
        [Parameter(Mandatory)][string]$Namespace,
        [Parameter(Mandatory)][string[]]$ArgumentList,
        [ValidateSet('IPv4', 'IPv6')][string]$Family = 'IPv4'
    )
    $b = Get-RelBackend
    $name = if ($Family -eq 'IPv6') { 'ip6tables' } else { 'iptables' }
    $tool = if (Test-RelTool "$name-$($b.Kind)") { Resolve-RelTool "$name-$($b.Kind)" } else { Resolve-RelTool $name }
    [void](Invoke-RelInNamespace -Namespace $Namespace -FilePath $tool -ArgumentList (@('-w') + $ArgumentList))
}

function Get-RelDump {
    <#
        iptables-save (the module's backend) of one of our namespaces as lines: '#' lines dropped, chain
        counters removed. With -Table only that table. When the module writes to its nftables backend
        (PSNETFILTER_BACKEND=Nftables, the preference the module reads) and no -Table is given, the nftables
        ruleset follows (Get-RelNftLines): every other table whole, and of `table inet psnetfilter` what belongs
        to -Family.
    #>
    param(
        [Parameter(Mandatory)][string]$Namespace,
        [ValidateSet('IPv4', 'IPv6')][string]$Family = 'IPv4',
        [string]$Table
    )
    $b = Get-RelBackend
    $tool = if ($Family -eq 'IPv6') { $b.Save6 } else { $b.Save4 }
    $a = @()
    if ($Table) { $a = @('-t', $Table) }
    $out = (Invoke-RelInNamespace -Namespace $Namespace -FilePath $tool -ArgumentList $a).StdOut
    $out -split "`r?`n" | Where-Object { $_ -and -not $_.StartsWith('#') } | ForEach-Object { $_ -replace '\s*\[\d+:\d+\]$', '' }
    if (-not $Table -and "$env:PSNETFILTER_BACKEND" -eq 'Nftables') { Get-RelNftLines -Namespace $Namespace -Family $Family }
}

function Get-RelNftLines {
    <#
        `nft -s list ruleset` (no counters) of one of our namespaces as lines: every table but ours whole, and of
        `table inet psnetfilter` its header, the maps and sets of -Family (names ending in 4 or 6) and the chain
        rules of that family (the dispatch rules that read them, comment "psnf:v1:@dnat4" and so on, and the rules
        of rule forwards). The chain headers and the notes set (descriptions, for both families) are left out.
    #>
    param(
        [Parameter(Mandatory)][string]$Namespace,
        [ValidateSet('IPv4', 'IPv6')][string]$Family = 'IPv4'
    )
    $digit = if ($Family -eq 'IPv6') { '6' } else { '4' }
    # Standard output only: nft warns about iptables-nft's tables on standard error.
    $out = (Invoke-RelInNamespace -Namespace $Namespace -FilePath (Resolve-RelTool nft) -ArgumentList @('-s', 'list', 'ruleset')).StdOut
    $inOurs = $false
    $block = $null
    $inPsnfChain = $false
    foreach ($line in ($out -split "`r?`n" | Where-Object { $_ })) {
        if ($line -ceq 'table inet psnetfilter {') { $inOurs = $true; $line; continue }
        # In iptables-nft's tables the module's PSNF- chains and jumps (the nftables forwards' accepts in FORWARD)
        # are in the iptables-save part already.
        if (-not $inOurs -and $line -cmatch '^\tchain PSNF-\S+ \{$') { $inPsnfChain = $true; continue }
        if ($inPsnfChain) { if ($line -ceq "`t}") { $inPsnfChain = $false }; continue }
        if (-not $inOurs -and $line -cmatch 'jump PSNF-') { continue }
        if (-not $inOurs) { $line; continue }
        if ($line -ceq '}') { $inOurs = $false; $line; continue }
        # A map or set of a family ends in its digit, or in its digit and 'x' (the exact twin: dnat4x, accept6x).
        if ($line -match '^\t(map|set|chain) (\S+) \{$') { $block = $Matches[2]; if ($Matches[1] -ne 'chain' -and $block -match "${digit}x?$") { $line }; continue }
        if ($null -eq $block) { continue }
        if ($block -match '\dx?$') { if ($block -match "${digit}x?$") { $line }; continue }
        # A chain rule: a dispatch rule reads a map or set of its family, a forward's own rule names its family.
        $ruleDigit = if ($line -match '@[a-z]+(\d)x?\b') { $Matches[1] } elseif ($line -match 'nfproto ipv6|\bip6 ') { '6' } elseif ($line -match 'nfproto ipv4|\bip ') { '4' } else { '' }
        if ($ruleDigit -eq $digit) { $line }
    }
}

function Get-RelForeignLines {
    # The lines of a dump that do not belong to the module: nothing that names a PSNF- chain or a psnf:v1: tag
    # (case-sensitive: the exotic fixture's 'psnf-exotic-matches' chain is foreign), and nothing of the nftables
    # backend's `table inet psnetfilter` (its lines up to the table's closing brace).
    param([AllowNull()][AllowEmptyCollection()][string[]]$Lines)
    $inOurs = $false
    foreach ($l in @($Lines)) {
        if ($l -ceq 'table inet psnetfilter {') { $inOurs = $true; continue }
        if ($inOurs) { if ($l -ceq '}') { $inOurs = $false }; continue }
        if ($l -cnotmatch 'PSNF-' -and $l -cnotmatch 'psnf:v1:') { $l }
    }
}

function Get-RelTagCount {
    <#
        Counts the module's tags in a dump: a hashtable NAME -> hashtable ROLE -> number of rules whose comment
        is psnf:v1:NAME:ROLE[...]. Unreadable tags count under their raw text. The nftables backend's
        masquerade element (role masq) counts as the snat part, as the iptables backend's MASQUERADE rule (role
        snat); its description notes (role d0, d1, ...) are no rule and are not counted.
    #>
    param([AllowNull()][AllowEmptyCollection()][string[]]$Lines)
    $counts = @{}
    foreach ($l in @($Lines)) {
        foreach ($m in [regex]::Matches($l, 'psnf:v1:([A-Za-z0-9._-]+)(?::([A-Za-z0-9_-]*))?')) {
            $name = $m.Groups[1].Value
            $role = if ($m.Groups[2].Success) { $m.Groups[2].Value } else { '' }
            if ($role -cmatch '^d\d+$') { continue }
            if ($role -ceq 'masq') { $role = 'snat' }
            if (-not $counts.ContainsKey($name)) { $counts[$name] = @{} }
            $counts[$name][$role] = 1 + $(if ($counts[$name].ContainsKey($role)) { $counts[$name][$role] } else { 0 })
        }
    }
    $counts
}

function Get-RelTagProblem {
    <#
        Checks that each of -Names has exactly one dnat, one snat and one fwd rule (-NoSnatNames: no snat
        rule) and that no other name is tagged. Returns a list of problems (empty when all is well).
    #>
    param(
        [AllowNull()][AllowEmptyCollection()][string[]]$Lines,
        [AllowNull()][AllowEmptyCollection()][string[]]$Names,
        [string[]]$NoSnatNames = @()
    )
    $counts = Get-RelTagCount -Lines $Lines
    $problems = [System.Collections.Generic.List[string]]::new()
    $Names = @($Names | Where-Object { $_ })
    $wanted = [System.Collections.Generic.HashSet[string]]::new([string[]]$Names, [StringComparer]::Ordinal)
    foreach ($n in $Names) {
        $roles = if ($counts.ContainsKey($n)) { $counts[$n] } else { @{} }
        $expected = @{ dnat = 1; snat = $(if ($NoSnatNames -ccontains $n) { 0 } else { 1 }); fwd = 1 }
        foreach ($r in $expected.Keys) {
            $have = if ($roles.ContainsKey($r)) { $roles[$r] } else { 0 }
            if ($have -ne $expected[$r]) { $problems.Add("${n}: $have '$r' rule(s), expected $($expected[$r])") }
        }
        foreach ($r in $roles.Keys) {
            # nftfwd: a forward of the nftables backend's accept in iptables' FORWARD (where it drops), one at most.
            if ($r -ceq 'nftfwd') {
                if ($roles[$r] -ne 1) { $problems.Add("${n}: $($roles[$r]) 'nftfwd' rule(s), expected 1 where there is one") }
                continue
            }
            if (-not $expected.ContainsKey($r)) { $problems.Add("${n}: unexpected role '$r'") }
        }
    }
    foreach ($n in $counts.Keys) {
        if (-not $wanted.Contains($n)) { $problems.Add("unexpected tagged rules for '$n'") }
    }
    $problems.ToArray()
}

function Get-RelJumpCount {
    # How often each module jump appears in a dump; the nftables backend's dispatch rules count as its jumps
    # (prerouting: the one reading @dnat4/6, postrouting: @snat4/6, forward: @accept4/6).
    param([AllowNull()][AllowEmptyCollection()][string[]]$Lines)
    [pscustomobject]@{
        PreRouting  = @(@($Lines) | Where-Object { $_ -ceq '-A PREROUTING -j PSNF-PREROUTING' -or $_ -cmatch 'comment "psnf:v1:@dnat[46]"' }).Count
        PostRouting = @(@($Lines) | Where-Object { $_ -ceq '-A POSTROUTING -j PSNF-POSTROUTING' -or $_ -cmatch 'comment "psnf:v1:@snat[46]"' }).Count
        # With the nftables backend, iptables' FORWARD may also jump to PSNF-FORWARD (its forwards' accepts where
        # FORWARD drops): the backend's own dispatch rule is what counts then.
        Forward     = $(
            $dispatch = @(@($Lines) | Where-Object { $_ -cmatch 'comment "psnf:v1:@accept[46]"' }).Count
            if ($dispatch -gt 0) { $dispatch } else { @(@($Lines) | Where-Object { $_ -ceq '-A FORWARD -j PSNF-FORWARD' }).Count })
    }
}

#endregion

#region forwards

function New-RelForwardItem {
    # Items for `| New-PortForward`: tcp *:PORT -> 198.51.100.10:PORT, SNAT to 198.51.100.1 (no route needed).
    param(
        [Parameter(Mandatory)][string]$Prefix,
        [Parameter(Mandatory)][int]$Count,
        [Parameter(Mandatory)][int]$FirstPort
    )
    for ($i = 0; $i -lt $Count; $i++) {
        [pscustomobject]@{
            Name            = '{0}{1:d4}' -f $Prefix, $i
            ExternalPort    = $FirstPort + $i
            InternalAddress = '198.51.100.10'
            SnatAddress     = '198.51.100.1'
        }
    }
}

#endregion

#region in-process pipelines (runspaces)

function Start-RelPipeline {
    <#
        Runs -Script in a new runspace of this process with the module imported, asynchronously. The
        returned object holds the PowerShell instance, its async handle and an output collection that keeps
        what was written before a stop or a terminating error. Stop it with Stop-RelPipeline (that is
        StopProcessing, what Ctrl+C does), collect it with Complete-RelPipeline.
    #>
    param(
        [Parameter(Mandatory)][string]$ModulePath,
        [Parameter(Mandatory)][string]$Script,
        [hashtable]$Parameters = @{}
    )
    $iss = [initialsessionstate]::CreateDefault2()
    $iss.ImportPSModule([string[]]@((Join-Path $ModulePath 'PSNetfilter.psd1')))
    $rs = [runspacefactory]::CreateRunspace($iss)
    $rs.Open()
    $ps = [powershell]::Create()
    $ps.Runspace = $rs
    $null = $ps.AddScript($Script)
    foreach ($k in $Parameters.Keys) { $null = $ps.AddParameter($k, $Parameters[$k]) }
    $output = [System.Management.Automation.PSDataCollection[psobject]]::new()
    $inputData = [System.Management.Automation.PSDataCollection[psobject]]::new()
    $inputData.Complete()
    $sw = [System.Diagnostics.Stopwatch]::StartNew()
    $handle = $ps.BeginInvoke($inputData, $output)
    [pscustomobject]@{
        PowerShell = $ps
        Runspace   = $rs
        Handle     = $handle
        Output     = $output
        Stopwatch  = $sw
        StopAsync  = $null
    }
}

function Stop-RelPipeline {
    # Stops a running pipeline (StopProcessing); true when it stopped within -TimeoutSeconds.
    param([Parameter(Mandatory)]$Pipeline, [double]$TimeoutSeconds = 60)
    $Pipeline.StopAsync = $Pipeline.PowerShell.BeginStop($null, $null)
    $Pipeline.StopAsync.AsyncWaitHandle.WaitOne([TimeSpan]::FromSeconds($TimeoutSeconds))
}

function Complete-RelPipeline {
    <#
        Waits for a pipeline (at most -TimeoutSeconds) and returns what it did: Output, Errors (non-terminating
        error records), Terminating (the terminating error record, if any), Stopped, Warnings, Verbose,
        Information, TimedOut, ElapsedMs. Disposes the runspace.
    #>
    param([Parameter(Mandatory)]$Pipeline, [double]$TimeoutSeconds = 120)
    $ps = $Pipeline.PowerShell
    $timedOut = -not $Pipeline.Handle.AsyncWaitHandle.WaitOne([TimeSpan]::FromSeconds($TimeoutSeconds))
    $terminating = $null
    $stopped = $false
    if ($timedOut) {
        [void]$ps.BeginStop($null, $null).AsyncWaitHandle.WaitOne(30000)
    }
    try {
        $null = $ps.EndInvoke($Pipeline.Handle)
    }
    catch {
        $ex = $_.Exception
        while ($ex -is [System.Management.Automation.MethodInvocationException] -and $ex.InnerException) { $ex = $ex.InnerException }
        if ($ex -is [System.Management.Automation.PipelineStoppedException]) { $stopped = $true }
        elseif ($ex -is [System.Management.Automation.IContainsErrorRecord]) { $terminating = $ex.ErrorRecord }
        else { $terminating = [System.Management.Automation.ErrorRecord]::new($ex, 'Unexpected', 'NotSpecified', $null) }
    }
    if ($Pipeline.StopAsync) { try { $ps.EndStop($Pipeline.StopAsync) } catch { } }
    if ($ps.InvocationStateInfo.State -eq 'Stopped') { $stopped = $true }
    $result = [pscustomobject]@{
        Output      = @($Pipeline.Output)
        Errors      = @($ps.Streams.Error)
        Terminating = $terminating
        Stopped     = $stopped
        Warnings    = @($ps.Streams.Warning | ForEach-Object Message)
        Verbose     = @($ps.Streams.Verbose | ForEach-Object Message)
        Information = @($ps.Streams.Information | ForEach-Object { "$($_.MessageData)" })
        TimedOut    = $timedOut
        ElapsedMs   = $Pipeline.Stopwatch.ElapsedMilliseconds
    }
    $ps.Dispose()
    $Pipeline.Runspace.Dispose()
    $result
}

function Invoke-RelPipeline {
    # Start-RelPipeline + Complete-RelPipeline.
    param(
        [Parameter(Mandatory)][string]$ModulePath,
        [Parameter(Mandatory)][string]$Script,
        [hashtable]$Parameters = @{},
        [double]$TimeoutSeconds = 120
    )
    $p = Start-RelPipeline -ModulePath $ModulePath -Script $Script -Parameters $Parameters
    Complete-RelPipeline -Pipeline $p -TimeoutSeconds $TimeoutSeconds
}

function Format-RelResult {
    # A one-paragraph summary of a pipeline result for failure messages.
    param([Parameter(Mandatory)]$Result)
    $errs = @($Result.Errors | ForEach-Object { "[$($_.FullyQualifiedErrorId)] $($_.Exception.Message)" })
    $term = if ($Result.Terminating) { "[$($Result.Terminating.FullyQualifiedErrorId)] $($Result.Terminating.Exception.Message)" } else { 'none' }
    "output: $(@($Result.Output).Count) object(s); stopped: $($Result.Stopped); terminating: $term; errors: $($errs -join ' | ')"
}

#endregion

#region locks and kernel processes

function Test-RelLockFree {
    # True when nobody holds the namespace lock (flock -n succeeds from a separate process).
    param([Parameter(Mandatory)][string]$Namespace)
    $null = New-Item -ItemType Directory -Path $script:LockDirectory -Force
    $r = Invoke-RelProcess -FilePath (Resolve-RelTool flock) -ArgumentList @('-n', '-E', '75', (Get-RelLockPath $Namespace), 'true') -TimeoutSeconds 30
    if ($r.ExitCode -notin 0, 75) { throw "ReliabilityHelpers: flock failed (exit $($r.ExitCode)): $($r.StdErr.Trim())" }
    $r.ExitCode -eq 0
}

function Start-RelLockHolder {
    <#
        Takes the module's lock file for a namespace with flock(1) in ONE child process (sh -> exec sleep, the
        descriptor survives the exec) and returns that process once the lock is held. Kill it with
        Stop-RelProcess (SIGKILL) to simulate a crashed holder.
    #>
    param([Parameter(Mandatory)][string]$Namespace, [int]$HoldSeconds = 300)
    $null = New-Item -ItemType Directory -Path $script:LockDirectory -Force
    $psi = [System.Diagnostics.ProcessStartInfo]::new('/bin/sh')
    foreach ($a in @('-c', 'exec 9>>"$1" || exit 2; "$2" -x 9 || exit 3; echo locked; exec sleep "$3"', 'sh', (Get-RelLockPath $Namespace), (Resolve-RelTool flock), "$HoldSeconds")) {
        $psi.ArgumentList.Add($a)
    }
    $psi.UseShellExecute = $false
    $psi.RedirectStandardOutput = $true
    $psi.RedirectStandardError = $true
    $p = [System.Diagnostics.Process]::Start($psi)
    $script:Processes.Add($p)
    $line = $p.StandardOutput.ReadLineAsync()
    if (-not $line.Wait(30000) -or $line.Result -ne 'locked') {
        Stop-RelProcess -Process $p
        throw "ReliabilityHelpers: the flock holder did not take $(Get-RelLockPath $Namespace) (exit: $(if ($p.HasExited) { $p.ExitCode }))."
    }
    $p
}

function Get-RelNamespaceInode {
    param([Parameter(Mandatory)][string]$Namespace)
    (Invoke-RelProcess -FilePath (Resolve-RelTool stat) -ArgumentList @('-L', '-c', '%i', "/run/netns/$Namespace")).StdOut.Trim()
}

function Find-RelRestoreProcess {
    <#
        Process ids of iptables-restore / ip6tables-restore processes (or the `nsenter` about to become one)
        that run in -Namespace (given by its nsfs inode from Get-RelNamespaceInode).
    #>
    param([Parameter(Mandatory)][string]$NamespaceInode, [Parameter(Mandatory)][string]$Namespace)
    foreach ($d in [IO.Directory]::EnumerateDirectories('/proc')) {
        $procId = [IO.Path]::GetFileName($d)
        if ($procId -notmatch '^\d+$') { continue }
        try { $cmd = [IO.File]::ReadAllText("$d/cmdline") } catch { continue }
        if ($cmd -notmatch 'tables[^\x00]*-restore' -or $cmd -notmatch '--noflush') { continue }
        $mine = $cmd.Contains("`0--net=/run/netns/$Namespace`0")
        if (-not $mine) {
            try { $mine = ([IO.File]::ResolveLinkTarget("$d/ns/net", $false).ToString() -match "\[$NamespaceInode\]") } catch { }
            if (-not $mine) {
                try { $link = (Get-Item -LiteralPath "$d/ns/net" -ErrorAction Stop).LinkTarget; $mine = "$link" -match "\[$NamespaceInode\]" } catch { }
            }
        }
        if ($mine) { [int]$procId }
    }
}

function New-RelStallingSaveDirectory {
    <#
        A folder to put first on a child's PATH: its iptables-*-save (v4 only) first writes its PID to
        -MarkerPath, then waits while -HoldPath exists and its parent (the pwsh that runs the module) lives,
        then runs the real tool. The module finds tools on PATH first, so a child with this PATH holds the
        namespace lock (taken before the save) for as long as we like.
    #>
    param([Parameter(Mandatory)][string]$MarkerPath, [Parameter(Mandatory)][string]$HoldPath)
    $dir = New-RelTempDirectory
    foreach ($name in 'iptables-nft-save', 'iptables-legacy-save', 'iptables-save') {
        if (-not (Test-RelTool $name)) { continue }
        $real = Resolve-RelTool $name
        $text = @(
            '#!/bin/sh'
            'parent=$PPID'
            "echo `$`$ > '$MarkerPath'"
            "while [ -e '$HoldPath' ] && kill -0 `"`$parent`" 2>/dev/null; do sleep 0.05; done"
            "exec '$real' `"`$@`""
        ) -join "`n"
        $file = Join-Path $dir $name
        [IO.File]::WriteAllText($file, $text + "`n")
        [void](Invoke-RelProcess -FilePath (Resolve-RelTool chmod) -ArgumentList @('0755', $file))
    }
    $dir
}

function Wait-RelCondition {
    # Polls -Condition every -IntervalMs until it is true or -TimeoutSeconds pass; returns the last value.
    param([Parameter(Mandatory)][scriptblock]$Condition, [double]$TimeoutSeconds = 60, [int]$IntervalMs = 20)
    $deadline = [DateTime]::UtcNow.AddSeconds($TimeoutSeconds)
    while ($true) {
        $v = & $Condition
        if ($v -or [DateTime]::UtcNow -gt $deadline) { return [bool]$v }
        Start-Sleep -Milliseconds $IntervalMs
    }
}

#endregion

Export-ModuleMember -Function Resolve-RelTool, Test-RelTool, Invoke-RelProcess, Invoke-RelInNamespace,
    Start-RelChildPwsh, Get-RelChildText, Stop-RelProcess, New-RelTempDirectory, New-RelNamespace, Get-RelLockPath,
    Remove-RelResources, Get-RelBackend, Import-RelRules, Invoke-RelIptables, Get-RelDump, Get-RelForeignLines,
    Get-RelNftLines, Get-RelTagCount, Get-RelTagProblem, Get-RelJumpCount, New-RelForwardItem, Start-RelPipeline, Stop-RelPipeline,
    Complete-RelPipeline, Invoke-RelPipeline, Format-RelResult, Test-RelLockFree, Start-RelLockHolder,
    Get-RelNamespaceInode, Find-RelRestoreProcess, New-RelStallingSaveDirectory, Wait-RelCondition
