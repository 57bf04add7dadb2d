# Runs on the gateway, started by the psnetfilter_forwards role as
#     pwsh -NoProfile -NonInteractive -Command "& ([scriptblock]::Create([Console]::In.ReadToEnd()))"
# with this text on its standard input.
# All data comes from environment variables; nothing in this text is templated by Ansible.
#
#   PSNF_ACTION             apply   : remove the forwards not in the list (when exclusive), create or replace
#                                     the listed ones (New-PortForward -Force)
#                           persist : save exactly the listed forwards with Install-PortForwardService (or
#                                     uninstall the unit when the list is empty)
#   PSNF_FORWARDS           the list, as JSON: [{"name": ..., "protocol": ..., ...}, ...]
#   PSNF_EXCLUSIVE          true | false
#   PSNF_CHECK_MODE         true | false (Ansible's check mode: every change becomes -WhatIf)
#   PSNF_NETWORK_NAMESPACE  a named network namespace on the gateway, or empty for its own
#   PSNF_UNIT               the unit name, or empty for the module's default
#   PSNF_MODULE             the name or path Import-Module gets
#
# Output: whatever the cmdlets print (warnings, What if: lines), then, as the very last line,
#     PSNETFILTER_RESULT {"changed": ..., ...}
# Exit code 0, or 1 when anything failed (the result line is printed in both cases).

$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'
Set-StrictMode -Version 3.0

$checkMode = $env:PSNF_CHECK_MODE -eq 'true'
$result = [ordered]@{
    action     = [string]$env:PSNF_ACTION
    changed    = $false
    check_mode = $checkMode
    errors     = [System.Collections.Generic.List[string]]::new()
}
$allowed = 'name', 'protocol', 'external_address', 'external_port', 'internal_address', 'internal_port',
    'snat_mode', 'snat_address', 'description', 'source_address', 'in_interface', 'include_local'

function Add-Failure([object]$Failure) {
    $text = if ($Failure -is [System.Management.Automation.ErrorRecord]) {
        $id = ($Failure.FullyQualifiedErrorId -split ',')[0]
        if ($id -match '^\w+$') { "${id}: $($Failure.Exception.Message)" } else { $Failure.Exception.Message }
    }
    else { [string]$Failure }
    $result.errors.Add($text)
    [Console]::Error.WriteLine("psnetfilter_forwards: $text")
}

function Test-Given([object]$Item, [string]$Key) {
    # A key that is there and not null or blank.
    $p = $Item.PSObject.Properties[$Key]
    $null -ne $p -and $null -ne $p.Value -and -not ($p.Value -is [string] -and [string]::IsNullOrWhiteSpace($p.Value))
}

function ConvertTo-ForwardSpec([object[]]$Items) {
    # The Ansible items (snake_case keys) as objects whose properties bind to New-PortForward by name.
    $seen = [System.Collections.Generic.HashSet[string]]::new([StringComparer]::Ordinal)
    $i = 0
    foreach ($item in $Items) {
        $i++
        if ($item -isnot [System.Management.Automation.PSCustomObject]) { throw "psnetfilter_forwards item $i is not a mapping." }
        $unknown = @($item.PSObject.Properties.Name | Where-Object { $allowed -cnotcontains $_ })
        if ($unknown) { throw "psnetfilter_forwards item $i has unknown keys: $($unknown -join ', '). Known keys: $($allowed -join ', ')." }
        foreach ($key in 'name', 'external_port', 'internal_address') {
            if (-not (Test-Given $item $key)) { throw "psnetfilter_forwards item $i has no '$key'." }
        }
        $name = [string]$item.name
        if (-not $seen.Add($name)) { throw "psnetfilter_forwards lists the name '$name' twice." }
        $spec = [ordered]@{
            Name            = $name
            Protocol        = 'Tcp'
            ExternalPort    = $item.external_port
            InternalAddress = [string]$item.internal_address
        }
        # Protocol, SnatMode and IncludeLocal are checked here: New-PortForward binds piped properties by name, and
        # PowerShell leaves an enum or switch parameter unbound (its default) when a piped value does not convert.
        if (Test-Given $item 'protocol') {
            $spec.Protocol = switch -Exact (([string]$item.protocol).ToLowerInvariant()) {
                'tcp' { 'Tcp' }
                'udp' { 'Udp' }
                default { throw "psnetfilter_forwards item '$name': protocol '$($item.protocol)' is not tcp or udp." }
            }
        }
        if (Test-Given $item 'external_address') { $spec.ExternalAddress = [string]$item.external_address }
        if (Test-Given $item 'internal_port') { $spec.InternalPort = $item.internal_port }
        $mode = if (Test-Given $item 'snat_mode') { [string]$item.snat_mode } else { 'snat' }
        $spec.SnatMode = switch -Exact ($mode.ToLowerInvariant()) {
            'snat' { 'Snat' }
            'masquerade' { 'Masquerade' }
            'none' { 'None' }
            default { throw "psnetfilter_forwards item '$name': snat_mode '$mode' is not snat, masquerade or none." }
        }
        if (Test-Given $item 'snat_address') { $spec.SnatAddress = [string]$item.snat_address }
        if ($null -ne $item.PSObject.Properties['description'] -and $null -ne $item.description) { $spec.Description = [string]$item.description }
        if (Test-Given $item 'source_address') { $spec.SourceAddress = [string[]]@($item.source_address) }
        if (Test-Given $item 'in_interface') { $spec.InInterface = [string]$item.in_interface }
        if (Test-Given $item 'include_local') {
            if ($item.include_local -isnot [bool]) { throw "psnetfilter_forwards item '$name': include_local must be true or false, not '$($item.include_local)'." }
            $spec.IncludeLocal = $item.include_local
        }
        [pscustomobject]$spec
    }
}

function Get-UnitFiles([string]$Base) {
    # The three files Install-PortForwardService writes for unit BASE.service, relative to a root.
    "etc/psnetfilter/$Base/apply.sh", "etc/systemd/system/$Base.service", "etc/systemd/system/multi-user.target.wants/$Base.service"
}

function Test-SameFile([string]$A, [string]$B) {
    # Same kind, same link target or same bytes and mode.
    $ia = Get-Item -LiteralPath $A -Force -ErrorAction SilentlyContinue
    $ib = Get-Item -LiteralPath $B -Force -ErrorAction SilentlyContinue
    if (-not $ia -or -not $ib) { return [bool](-not $ia -and -not $ib) }
    if ($ia.LinkTarget -or $ib.LinkTarget) { return $ia.LinkTarget -ceq $ib.LinkTarget }
    if ([IO.File]::GetUnixFileMode($A) -ne [IO.File]::GetUnixFileMode($B)) { return $false }
    [Linq.Enumerable]::SequenceEqual([IO.File]::ReadAllBytes($A), [IO.File]::ReadAllBytes($B))
}

$exitCode = 0
$failures = [System.Collections.ArrayList]::new()   # -ErrorVariable +failures appends here
try {
    Import-Module -Name $env:PSNF_MODULE
    $ns = @{}
    if ($env:PSNF_NETWORK_NAMESPACE) { $ns.NetworkNamespace = $env:PSNF_NETWORK_NAMESPACE }
    $items = @(ConvertFrom-Json -InputObject $(if ($env:PSNF_FORWARDS) { $env:PSNF_FORWARDS } else { '[]' }) | Where-Object { $null -ne $_ })
    $specs = @(ConvertTo-ForwardSpec $items)
    $names = [string[]]@($specs | ForEach-Object Name)
    $result.forwards = $names

    switch ($env:PSNF_ACTION) {
        'apply' {
            $result.created = [System.Collections.Generic.List[string]]::new()
            $result.replaced = [System.Collections.Generic.List[string]]::new()
            $result.unchanged = [System.Collections.Generic.List[string]]::new()
            $result.removed = [System.Collections.Generic.List[string]]::new()
            $live = @(Get-PortForward @ns)
            $liveNames = [string[]]@($live | ForEach-Object Name)

            # Removal first, so that a listed forward may take over the port of one that goes.
            if ($env:PSNF_EXCLUSIVE -eq 'true') {
                $extra = @($live | Where-Object { $names -cnotcontains $_.Name })
                if ($extra) {
                    $gone = @($extra | Remove-PortForward @ns -PassThru -WhatIf:$checkMode -Confirm:$false -ErrorAction SilentlyContinue -ErrorVariable +failures)
                    $removedNames = if ($checkMode) { $extra | ForEach-Object Name } else { $gone | Where-Object Change -EQ 'Removed' | ForEach-Object Name }
                    foreach ($n in @($removedNames | Where-Object { $_ })) { $result.removed.Add($n) }
                }
            }

            if ($specs) {
                # One call for the whole list: one iptables-restore per address family. -Force replaces a forward
                # whose definition differs; one with the same definition comes back as Unchanged. With -WhatIf only
                # the Unchanged ones come back: the others would be created or replaced.
                $out = @($specs | New-PortForward @ns -Force -WhatIf:$checkMode -Confirm:$false -ErrorAction SilentlyContinue -ErrorVariable +failures)
                foreach ($f in $out) {
                    switch ([string]$f.Change) {
                        'Created' { $result.created.Add($f.Name) }
                        'Replaced' { $result.replaced.Add($f.Name) }
                        default { $result.unchanged.Add($f.Name) }
                    }
                }
                if ($checkMode) {
                    $failedNames = @($failures | ForEach-Object { $_.TargetObject } | Where-Object { $_ -is [string] })
                    foreach ($s in $specs) {
                        if ($result.unchanged -ccontains $s.Name -or $failedNames -ccontains $s.Name) { continue }
                        if ($liveNames -ccontains $s.Name) { $result.replaced.Add($s.Name) } else { $result.created.Add($s.Name) }
                    }
                }
            }
            $result.changed = ($result.created.Count + $result.replaced.Count + $result.removed.Count) -gt 0
        }

        'persist' {
            $base = if ($env:PSNF_UNIT) { $env:PSNF_UNIT -replace '\.service$', '' } elseif ($env:PSNF_NETWORK_NAMESPACE) { "psnetfilter-$($env:PSNF_NETWORK_NAMESPACE)" } else { 'psnetfilter' }
            $result.unit = "$base.service"
            $result.files_changed = $false
            $result.started = $false
            $systemd = Test-Path -LiteralPath /run/systemd/system
            $installed = Test-Path -LiteralPath "/etc/systemd/system/$base.service"

            if (-not $specs) {
                # Nothing to persist: the unit goes (the live forwards stay; exclusive mode removed them already).
                if ($installed) {
                    Uninstall-PortForwardService -Name $base @ns -WhatIf:$checkMode -Confirm:$false
                    $result.files_changed = $true
                }
                $result.state = if ($installed -and -not $checkMode) { 'removed' } elseif ($installed) { 'installed' } else { 'absent' }
            }
            elseif (-not $checkMode) {
                $svc = Install-PortForwardService -ForwardName $names -Name $base @ns -Confirm:$false
                $result.files_changed = [bool]$svc.Changed
                $result.started = [bool]$svc.Started
                $result.state = [string]$svc.State
            }
            else {
                # Install-PortForwardService -WhatIf returns nothing, so the prediction is made here: when a listed
                # forward would be created or replaced, the saved set would be rewritten from it; when they are all
                # live as listed, the set is rendered into a scratch root and compared with the installed files.
                $unchanged = @($specs | New-PortForward @ns -Force -WhatIf -Confirm:$false -ErrorAction SilentlyContinue)
                if ($unchanged.Count -ne $specs.Count) {
                    $result.files_changed = $true
                    $result.state = 'forwards would change first'
                }
                else {
                    $null = Install-PortForwardService -ForwardName $names -Name $base @ns -WhatIf
                    $scratch = Join-Path ([IO.Path]::GetTempPath()) ('psnetfilter-check-' + [guid]::NewGuid().ToString('n'))
                    $null = New-Item -ItemType Directory -Path $scratch
                    try {
                        $null = $unchanged | Install-PortForwardService -Root $scratch -NoStart -Name $base @ns -WhatIf:$false -Confirm:$false -WarningAction SilentlyContinue
                        foreach ($rel in Get-UnitFiles $base) {
                            if (-not (Test-SameFile (Join-Path $scratch $rel) "/$rel")) { $result.files_changed = $true }
                        }
                    }
                    finally {
                        Remove-Item -LiteralPath $scratch -Recurse -Force -ErrorAction SilentlyContinue
                    }
                    $active = if ($systemd) { (& systemctl is-active $result.unit 2>$null) -join '' } else { 'NotStarted' }
                    $result.state = $active
                    $result.started = $systemd -and ($result.files_changed -or $active -ne 'active')
                }
            }
            $result.changed = [bool]($result.files_changed -or $result.started)
        }

        default { throw "PSNF_ACTION must be apply or persist, not '$($env:PSNF_ACTION)'." }
    }
    foreach ($f in $failures) { Add-Failure $f }
}
catch {
    Add-Failure $_
}
if ($result.errors.Count -gt 0) { $exitCode = 1 }
'PSNETFILTER_RESULT ' + (ConvertTo-Json -InputObject $result -Compress -Depth 4)
exit $exitCode
