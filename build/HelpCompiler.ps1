#Requires -Version 7.4

<#
.SYNOPSIS
    Compiles the cmdlet pages in docs/cmdlets/*.md into the module's MAML help file.

.DESCRIPTION
    A small, strict markdown -> MAML converter (platyPS is not available here). It reads every
    Verb-Noun.md page in -SourcePath and writes one MAML file (helpItems with one command:command
    per page, the maml/command/dev namespaces) that Get-Help reads for a binary module when it sits at
    <module>/en-US/<assembly>.dll-Help.xml.

    Page format (platyPS-like; sections in this order, all required except the front matter):

        ---                                   optional front matter, "key: value" lines;
        online version: https://...           a non-empty "online version" becomes the first
        ---                                   related link (Get-Help -Online)

        # Verb-Noun                           must match the file name

        ## SYNOPSIS                           one or more paragraphs

        ## SYNTAX
        ### SetName (Default)                 one subsection per parameter set, with one
        ```                                   code block holding the syntax line:
        Verb-Noun [[-A] <T>] -B <T> [-C <T>] [-Switch] [<CommonParameters>]
        ```                                   [[-A] <T>] optional positional, [-A] <T> mandatory
                                              positional, -B <T> mandatory, [-C <T>] optional,
                                              [-Switch] switch; every name needs a ### -Name page
                                              entry whose "Parameter Sets" lists the set or (All)

        ## DESCRIPTION                        paragraphs and "- " lists

        ## EXAMPLES
        ### Example 1: Title                  at least one ```powershell block (the code,
        ```powershell                         without a prompt), then paragraphs (remarks)
        ...
        ```

        ## PARAMETERS
        ### -Name                             description paragraphs, then one ```yaml block:
        ```yaml
        Type: String[]
        Parameter Sets: (All)                 or: SetA, SetB
        Aliases:                              comma-separated, may be empty
        Accepted values: Tcp, Udp             optional
        Required: False                       True or False
        Position: 0                           a number or Named
        Default value: None
        Accept pipeline input: True (ByPropertyName)
        Accept wildcard characters: False     True or False
        ```
        ### CommonParameters                  optional; its text is not compiled (Get-Help adds it)

        ## INPUTS / ## OUTPUTS                 ### TypeName subsections, each with paragraphs
        ## NOTES                              paragraphs and lists
        ## RELATED LINKS                      [text](uri) links, one a line; a link to a .md page
                                              becomes a link by name (no uri)

    Inline markdown is reduced to text: `code` and **bold** lose their markers, [text](https://uri)
    becomes "text (https://uri)", [text](page.md) becomes "text". Paragraph lines are joined with
    spaces; each list item becomes its own paragraph starting with "- ".

    Any deviation is an error that names file and line; nothing is written then.

.PARAMETER SourcePath
    Folder with the Verb-Noun.md pages (other .md files, such as README.md, are ignored).

.PARAMETER OutputPath
    The MAML file to write, e.g. out/PSNetfilter/en-US/PSNetfilter.dll-Help.xml.

.EXAMPLE
    ./build/HelpCompiler.ps1 -SourcePath docs/cmdlets -OutputPath out/PSNetfilter/en-US/PSNetfilter.dll-Help.xml
#>
[CmdletBinding()]
param(
    [Parameter(Mandatory)]
    [string]$SourcePath,

    [Parameter(Mandatory)]
    [string]$OutputPath
)

$ErrorActionPreference = 'Stop'
Set-StrictMode -Version 3.0

$MamlNs = 'http://schemas.microsoft.com/maml/2004/10'
$CommandNs = 'http://schemas.microsoft.com/maml/dev/command/2004/10'
$DevNs = 'http://schemas.microsoft.com/maml/dev/2004/10'
$MshNs = 'http://msh'

$script:Errors = [System.Collections.Generic.List[string]]::new()

function Add-PageError([string]$File, [int]$Line, [string]$Message) {
    $script:Errors.Add(('{0}:{1}: {2}' -f $File, $Line, $Message))
}

#region markdown parsing

function ConvertTo-PlainText([string]$Text) {
    # Inline markdown -> text, as Get-Help shows it.
    $t = $Text
    $t = [regex]::Replace($t, '\[([^\]]+)\]\((https?://[^)\s]+)\)', '$1 ($2)')
    $t = [regex]::Replace($t, '\[([^\]]+)\]\(([^)]*)\)', '$1')
    $t = [regex]::Replace($t, '\*\*([^*]+)\*\*', '$1')
    $t = [regex]::Replace($t, '`([^`]+)`', '$1')
    $t = [regex]::Replace($t, '\\([\\`*_{}\[\]()#+\-.!<>|])', '$1')
    $t.Trim()
}

function Split-Blocks {
    # Lines of one section -> blocks: Heading (###), Code (fenced), Para, List.
    param([object[]]$Lines, [string]$File)
    $blocks = [System.Collections.Generic.List[object]]::new()
    $i = 0
    while ($i -lt $Lines.Count) {
        $l = $Lines[$i]
        $text = $l.Text
        if ($text -match '^\s*$') { $i++; continue }
        if ($text -match '^```\s*([A-Za-z0-9_-]*)\s*$') {
            $lang = $Matches[1]
            $start = $l.Number
            $code = [System.Collections.Generic.List[string]]::new()
            $i++
            $closed = $false
            while ($i -lt $Lines.Count) {
                if ($Lines[$i].Text -match '^```\s*$') { $closed = $true; $i++; break }
                $code.Add($Lines[$i].Text)
                $i++
            }
            if (-not $closed) { Add-PageError $File $start 'code block is not closed (```)' }
            $blocks.Add([pscustomobject]@{ Kind = 'Code'; Lang = $lang; Text = ($code -join "`n"); Line = $start })
            continue
        }
        if ($text -match '^###\s+(.+?)\s*$') {
            $blocks.Add([pscustomobject]@{ Kind = 'Heading'; Text = $Matches[1]; Line = $l.Number })
            $i++
            continue
        }
        if ($text -match '^#{1,2}\s') {
            Add-PageError $File $l.Number "unexpected heading '$text'"
            $i++
            continue
        }
        if ($text -match '^\s*(?:[-*]|\d+\.)\s+(.*)$') {
            $items = [System.Collections.Generic.List[string]]::new()
            $start = $l.Number
            while ($i -lt $Lines.Count -and $Lines[$i].Text -notmatch '^\s*$' -and $Lines[$i].Text -notmatch '^(```|#)') {
                if ($Lines[$i].Text -match '^\s*(?:[-*]|\d+\.)\s+(.*)$') { $items.Add($Matches[1].Trim()) }
                else { $items[$items.Count - 1] += ' ' + $Lines[$i].Text.Trim() }
                $i++
            }
            $blocks.Add([pscustomobject]@{ Kind = 'List'; Items = @($items | ForEach-Object { ConvertTo-PlainText $_ }); Line = $start })
            continue
        }
        $para = [System.Collections.Generic.List[string]]::new()
        $start = $l.Number
        while ($i -lt $Lines.Count -and $Lines[$i].Text -notmatch '^\s*$' -and $Lines[$i].Text -notmatch '^(```|#)' -and
            $Lines[$i].Text -notmatch '^\s*(?:[-*]|\d+\.)\s+') {
            $para.Add($Lines[$i].Text.Trim())
            $i++
        }
        $blocks.Add([pscustomobject]@{ Kind = 'Para'; Text = (ConvertTo-PlainText ($para -join ' ')); Raw = ($para -join ' '); Line = $start })
    }
    , $blocks
}

function Get-Paragraphs([object[]]$Blocks) {
    # Para and List blocks -> paragraph strings.
    foreach ($b in $Blocks) {
        if ($b.Kind -eq 'Para') { $b.Text }
        elseif ($b.Kind -eq 'List') { foreach ($item in $b.Items) { "- $item" } }
    }
}

function Split-Subsections([object[]]$Blocks) {
    # Blocks -> @{ Heading; Line; Blocks } per ### heading (blocks before the first heading are dropped by the caller).
    $result = [System.Collections.Generic.List[object]]::new()
    $current = $null
    foreach ($b in $Blocks) {
        if ($b.Kind -eq 'Heading') {
            $current = [pscustomobject]@{ Heading = $b.Text; Line = $b.Line; Blocks = [System.Collections.Generic.List[object]]::new() }
            $result.Add($current)
        }
        elseif ($current) { $current.Blocks.Add($b) }
    }
    , $result
}

function Read-Yaml([object]$Block, [string]$File) {
    $known = 'Type', 'Parameter Sets', 'Aliases', 'Accepted values', 'Required', 'Position', 'Default value', 'Accept pipeline input', 'Accept wildcard characters'
    $map = [ordered]@{}
    $n = $Block.Line
    foreach ($line in ($Block.Text -split "`n")) {
        $n++
        if ($line -match '^\s*$') { continue }
        if ($line -notmatch '^([A-Za-z ]+):\s*(.*?)\s*$') { Add-PageError $File $n "not a 'Key: value' line: '$line'"; continue }
        $key = $Matches[1]; $value = $Matches[2]
        if ($key -notin $known) { Add-PageError $File $n "unknown parameter key '$key' (known: $($known -join ', '))"; continue }
        if ($map.Contains($key)) { Add-PageError $File $n "duplicate key '$key'"; continue }
        $map[$key] = $value
    }
    foreach ($k in 'Type', 'Parameter Sets', 'Required', 'Position', 'Default value', 'Accept pipeline input', 'Accept wildcard characters') {
        if (-not $map.Contains($k) -or [string]::IsNullOrWhiteSpace($map[$k])) { Add-PageError $File $Block.Line "parameter yaml lacks '$k'" }
    }
    foreach ($k in 'Required', 'Accept wildcard characters') {
        if ($map.Contains($k) -and $map[$k] -notin 'True', 'False') { Add-PageError $File $Block.Line "'$k' must be True or False, not '$($map[$k])'" }
    }
    if ($map.Contains('Position') -and $map['Position'] -notmatch '^(Named|\d+)$') { Add-PageError $File $Block.Line "'Position' must be a number or Named, not '$($map['Position'])'" }
    if ($map.Contains('Accept pipeline input') -and $map['Accept pipeline input'] -notmatch '^(False|True \((ByValue|ByPropertyName)(, (ByValue|ByPropertyName))?\))$') {
        Add-PageError $File $Block.Line "'Accept pipeline input' must be False, True (ByValue), True (ByPropertyName) or True (ByValue, ByPropertyName)"
    }
    $map
}

function Read-SyntaxLine([string]$Text, [string]$CommandName, [string]$File, [int]$Line) {
    # "Verb-Noun [[-A] <T>] -B <T> [-C] [<CommonParameters>]" -> parameter tokens in order.
    $t = ($Text -replace '\s+', ' ').Trim()
    if (-not $t.StartsWith("$CommandName ", [StringComparison]::OrdinalIgnoreCase) -and $t -ne $CommandName) {
        Add-PageError $File $Line "syntax must start with '$CommandName'"
        return @()
    }
    $rest = $t.Substring($CommandName.Length)
    $pattern = '\G\s*(?:' +
    '(?<cp>\[<CommonParameters>\])' +
    '|\[\[-(?<optpos>\w+)\]\s+<(?<t1>[^>]+)>\]' +
    '|\[-(?<reqpos>\w+)\]\s+<(?<t2>[^>]+)>' +
    '|\[-(?<opt>\w+)\s+<(?<t3>[^>]+)>\]' +
    '|\[-(?<sw>\w+)\]' +
    '|-(?<req>\w+)\s+<(?<t4>[^>]+)>' +
    '|-(?<reqsw>\w+)(?=\s|$)' +
    ')'
    $regex = [regex]::new($pattern)
    $tokens = [System.Collections.Generic.List[object]]::new()
    $pos = 0
    while ($pos -lt $rest.Length) {
        if ($rest.Substring($pos).Trim().Length -eq 0) { break }
        $m = $regex.Match($rest, $pos)
        if (-not $m.Success -or $m.Index -ne $pos) {
            Add-PageError $File $Line "cannot read the syntax at '$($rest.Substring($pos).Trim())'"
            break
        }
        $g = $m.Groups
        $tok = if ($g['cp'].Success) { $null }
        elseif ($g['optpos'].Success) { @{ Name = $g['optpos'].Value; Type = $g['t1'].Value; Required = $false; Positional = $true } }
        elseif ($g['reqpos'].Success) { @{ Name = $g['reqpos'].Value; Type = $g['t2'].Value; Required = $true; Positional = $true } }
        elseif ($g['opt'].Success) { @{ Name = $g['opt'].Value; Type = $g['t3'].Value; Required = $false; Positional = $false } }
        elseif ($g['sw'].Success) { @{ Name = $g['sw'].Value; Type = 'SwitchParameter'; Required = $false; Positional = $false } }
        elseif ($g['req'].Success) { @{ Name = $g['req'].Value; Type = $g['t4'].Value; Required = $true; Positional = $false } }
        else { @{ Name = $g['reqsw'].Value; Type = 'SwitchParameter'; Required = $true; Positional = $false } }
        if ($tok) { $tokens.Add([pscustomobject]$tok) }
        $pos = $m.Index + $m.Length
    }
    , $tokens
}

function Read-Page([string]$Path) {
    $file = [IO.Path]::GetFileName($Path)
    $raw = [IO.File]::ReadAllText($Path) -replace "`r`n", "`n"
    $all = $raw -split "`n"
    $lines = for ($k = 0; $k -lt $all.Count; $k++) { [pscustomobject]@{ Number = $k + 1; Text = $all[$k] } }
    $front = @{}
    $start = 0
    if ($all.Count -gt 0 -and $all[0] -eq '---') {
        $end = [Array]::IndexOf($all, '---', 1)
        if ($end -lt 0) { Add-PageError $file 1 'front matter is not closed (---)'; return $null }
        for ($k = 1; $k -lt $end; $k++) {
            if ($all[$k] -match '^([^:]+):\s*(.*?)\s*$') { $front[$Matches[1].Trim()] = $Matches[2] }
            elseif ($all[$k] -notmatch '^\s*$') { Add-PageError $file ($k + 1) "front matter line is not 'key: value'" }
        }
        $start = $end + 1
    }

    # Split into the title and the ## sections (outside code fences).
    $title = $null; $titleLine = 0
    $sections = [ordered]@{}
    $sectionLines = @{}
    $current = $null
    $inCode = $false
    for ($k = $start; $k -lt $lines.Count; $k++) {
        $l = $lines[$k]
        if ($l.Text -match '^```') { $inCode = -not $inCode }
        if (-not $inCode -and $l.Text -match '^#\s+(.+?)\s*$') {
            if ($title) { Add-PageError $file $l.Number 'a second # title' }
            $title = $Matches[1]; $titleLine = $l.Number; $current = $null
            continue
        }
        if (-not $inCode -and $l.Text -match '^##\s+(.+?)\s*$') {
            $name = $Matches[1].ToUpperInvariant()
            if ($sections.Contains($name)) { Add-PageError $file $l.Number "section '## $name' appears twice" }
            $sections[$name] = [System.Collections.Generic.List[object]]::new()
            $sectionLines[$name] = $l.Number
            $current = $sections[$name]
            continue
        }
        if ($null -ne $current) { $current.Add($l) }
        elseif ($l.Text -notmatch '^\s*$' -and -not $title) { Add-PageError $file $l.Number 'text before the # title' }
    }

    $expectedName = [IO.Path]::GetFileNameWithoutExtension($Path)
    if (-not $title) { Add-PageError $file 1 'no # Verb-Noun title'; return $null }
    if ($title -cne $expectedName) { Add-PageError $file $titleLine "title '$title' does not match the file name '$expectedName'" }
    $order = 'SYNOPSIS', 'SYNTAX', 'DESCRIPTION', 'EXAMPLES', 'PARAMETERS', 'INPUTS', 'OUTPUTS', 'NOTES', 'RELATED LINKS'
    foreach ($s in $sections.Keys) { if ($s -notin $order) { Add-PageError $file $sectionLines[$s] "unknown section '## $s' (known: $($order -join ', '))" } }
    foreach ($s in $order) { if (-not $sections.Contains($s)) { Add-PageError $file $titleLine "missing section '## $s'" } }
    $present = @($sections.Keys | Where-Object { $_ -in $order })
    $expectedOrder = @($order | Where-Object { $_ -in $present })
    if (($present -join '|') -ne ($expectedOrder -join '|')) { Add-PageError $file $titleLine "sections must come in this order: $($order -join ', ')" }
    if ($script:Errors.Count -gt 0) { return $null }

    $blocks = @{}
    foreach ($s in $order) { $blocks[$s] = Split-Blocks -Lines @($sections[$s]) -File $file }

    $page = [ordered]@{
        File        = $file
        Name        = $title
        Verb        = ($title -split '-', 2)[0]
        Noun        = ($title -split '-', 2)[1]
        Online      = $front['online version']
        Synopsis    = @(Get-Paragraphs $blocks['SYNOPSIS'])
        Description = @(Get-Paragraphs $blocks['DESCRIPTION'])
        Notes       = @(Get-Paragraphs $blocks['NOTES'])
        Syntax      = [System.Collections.Generic.List[object]]::new()
        Examples    = [System.Collections.Generic.List[object]]::new()
        Parameters  = [ordered]@{}
        Inputs      = [System.Collections.Generic.List[object]]::new()
        Outputs     = [System.Collections.Generic.List[object]]::new()
        Links       = [System.Collections.Generic.List[object]]::new()
    }
    if ($page.Synopsis.Count -eq 0) { Add-PageError $file $sectionLines['SYNOPSIS'] 'SYNOPSIS is empty' }
    if ($page.Description.Count -eq 0) { Add-PageError $file $sectionLines['DESCRIPTION'] 'DESCRIPTION is empty' }
    foreach ($s in 'SYNOPSIS', 'DESCRIPTION', 'NOTES') {
        foreach ($b in $blocks[$s]) { if ($b.Kind -in 'Code', 'Heading') { Add-PageError $file $b.Line "$s takes paragraphs and lists only" } }
    }

    # PARAMETERS
    foreach ($sub in (Split-Subsections $blocks['PARAMETERS'])) {
        if ($sub.Heading -eq 'CommonParameters') { continue }
        if ($sub.Heading -notmatch '^-(\w+)$') { Add-PageError $file $sub.Line "parameter heading must be '### -Name', not '### $($sub.Heading)'"; continue }
        $pname = $Matches[1]
        if ($page.Parameters.Contains($pname)) { Add-PageError $file $sub.Line "parameter -$pname is documented twice"; continue }
        $yaml = @($sub.Blocks | Where-Object { $_.Kind -eq 'Code' -and $_.Lang -eq 'yaml' })
        if ($yaml.Count -ne 1) { Add-PageError $file $sub.Line "parameter -$pname needs exactly one yaml block"; continue }
        $other = @($sub.Blocks | Where-Object { $_.Kind -eq 'Code' -and $_.Lang -ne 'yaml' })
        if ($other.Count -gt 0) { Add-PageError $file $other[0].Line "parameter -${pname}: only a yaml code block is allowed" }
        $desc = @(Get-Paragraphs $sub.Blocks)
        if ($desc.Count -eq 0) { Add-PageError $file $sub.Line "parameter -$pname has no description" }
        $meta = Read-Yaml $yaml[0] $file
        $sets = @(if ($meta.Contains('Parameter Sets')) { $meta['Parameter Sets'] -split ',' | ForEach-Object Trim | Where-Object { $_ } })
        $aliases = @(if ($meta.Contains('Aliases')) { $meta['Aliases'] -split ',' | ForEach-Object Trim | Where-Object { $_ } })
        $accepted = @(if ($meta.Contains('Accepted values')) { $meta['Accepted values'] -split ',' | ForEach-Object Trim | Where-Object { $_ } })
        $page.Parameters[$pname] = [pscustomobject]@{
            Name        = $pname
            Description = $desc
            Type        = $meta['Type']
            Sets        = $sets
            Aliases     = $aliases
            Accepted    = $accepted
            Required    = ($meta['Required'] -eq 'True')
            Position    = if ($meta['Position'] -match '^\d+$') { $meta['Position'] } else { 'named' }
            Default     = $meta['Default value']
            Pipeline    = $meta['Accept pipeline input']
            Globbing    = ($meta['Accept wildcard characters'] -eq 'True')
            Line        = $sub.Line
        }
    }

    # SYNTAX
    foreach ($sub in (Split-Subsections $blocks['SYNTAX'])) {
        $setName = $sub.Heading -replace '\s*\(Default\)\s*$', ''
        $code = @($sub.Blocks | Where-Object Kind -eq 'Code')
        if ($code.Count -ne 1) { Add-PageError $file $sub.Line "syntax '$setName' needs exactly one code block"; continue }
        $tokens = Read-SyntaxLine $code[0].Text $title $file ($code[0].Line + 1)
        foreach ($tok in $tokens) {
            if (-not $page.Parameters.Contains($tok.Name)) { Add-PageError $file ($code[0].Line + 1) "syntax '$setName' names -$($tok.Name), which has no '### -$($tok.Name)' under PARAMETERS"; continue }
            $p = $page.Parameters[$tok.Name]
            if ($p.Sets -notcontains '(All)' -and $p.Sets -notcontains $setName) { Add-PageError $file $p.Line "-$($tok.Name) is in syntax '$setName', but its 'Parameter Sets' is '$($p.Sets -join ', ')'" }
            if ($tok.Positional -and $p.Position -eq 'named') { Add-PageError $file $p.Line "-$($tok.Name) is positional in syntax '$setName', but its Position is Named" }
            if (-not $tok.Positional -and $p.Position -ne 'named') { Add-PageError $file $p.Line "-$($tok.Name) has Position $($p.Position), but syntax '$setName' writes it as named" }
            if ($tok.Type -ne $p.Type) { Add-PageError $file ($code[0].Line + 1) "-$($tok.Name) is <$($tok.Type)> in syntax '$setName' but '$($p.Type)' under PARAMETERS" }
        }
        $page.Syntax.Add([pscustomobject]@{ Name = $setName; Tokens = $tokens })
    }
    if ($page.Syntax.Count -eq 0) { Add-PageError $file $sectionLines['SYNTAX'] 'SYNTAX has no ### parameter set with a code block' }
    foreach ($p in $page.Parameters.Values) {
        if (-not ($page.Syntax | Where-Object { $_.Tokens.Name -contains $p.Name })) { Add-PageError $file $p.Line "-$($p.Name) appears in no syntax block" }
    }

    # EXAMPLES
    foreach ($sub in (Split-Subsections $blocks['EXAMPLES'])) {
        $code = @($sub.Blocks | Where-Object Kind -eq 'Code')
        if ($code.Count -eq 0) { Add-PageError $file $sub.Line "example '$($sub.Heading)' has no code block"; continue }
        if ($code | Where-Object Lang -ne 'powershell') { Add-PageError $file $sub.Line "example '$($sub.Heading)': code blocks must be ``````powershell" }
        $remarks = @(Get-Paragraphs $sub.Blocks)
        if ($remarks.Count -eq 0) { Add-PageError $file $sub.Line "example '$($sub.Heading)' has no explanation" }
        $page.Examples.Add([pscustomobject]@{ Title = (ConvertTo-PlainText $sub.Heading); Code = (($code | ForEach-Object Text) -join "`n`n"); Remarks = $remarks })
    }
    if ($page.Examples.Count -eq 0) { Add-PageError $file $sectionLines['EXAMPLES'] 'EXAMPLES has no ### example' }

    # INPUTS, OUTPUTS
    foreach ($pair in @(@('INPUTS', $page.Inputs), @('OUTPUTS', $page.Outputs))) {
        $subs = Split-Subsections $blocks[$pair[0]]
        if ($subs.Count -eq 0) { Add-PageError $file $sectionLines[$pair[0]] "$($pair[0]) needs at least one ### TypeName (### None when there is none)" }
        foreach ($sub in $subs) { $pair[1].Add([pscustomobject]@{ Type = (ConvertTo-PlainText $sub.Heading); Description = @(Get-Paragraphs $sub.Blocks) }) }
    }

    # RELATED LINKS
    if ($page.Online) { $page.Links.Add([pscustomobject]@{ Text = 'Online Version:'; Uri = $page.Online }) }
    foreach ($b in $blocks['RELATED LINKS']) {
        if ($b.Kind -notin 'Para', 'List') { Add-PageError $file $b.Line 'RELATED LINKS takes links only' }
    }
    foreach ($l in $sections['RELATED LINKS']) {
        foreach ($m in [regex]::Matches($l.Text, '\[([^\]]+)\]\(([^)]*)\)')) {
            $uri = if ($m.Groups[2].Value -match '^https?://') { $m.Groups[2].Value } else { '' }
            $page.Links.Add([pscustomobject]@{ Text = $m.Groups[1].Value; Uri = $uri })
        }
    }

    [pscustomobject]$page
}

#endregion

#region MAML writing

function Write-Paras([System.Xml.XmlWriter]$W, [string[]]$Paras) {
    if (-not $Paras -or $Paras.Count -eq 0) { $W.WriteStartElement('maml', 'para', $MamlNs); $W.WriteEndElement(); return }
    foreach ($p in $Paras) { $W.WriteElementString('maml', 'para', $MamlNs, $p) }
}

function Write-Description([System.Xml.XmlWriter]$W, [string[]]$Paras) {
    $W.WriteStartElement('maml', 'description', $MamlNs)
    Write-Paras $W $Paras
    $W.WriteEndElement()
}

function Write-Type([System.Xml.XmlWriter]$W, [string]$Type) {
    $W.WriteStartElement('dev', 'type', $DevNs)
    $W.WriteElementString('maml', 'name', $MamlNs, $Type)
    $W.WriteStartElement('maml', 'uri', $MamlNs); $W.WriteEndElement()
    $W.WriteEndElement()
}

function Write-Parameter([System.Xml.XmlWriter]$W, [object]$P, [bool]$Required, [string]$Position, [bool]$InSyntax) {
    $isSwitch = $P.Type -eq 'SwitchParameter'
    $W.WriteStartElement('command', 'parameter', $CommandNs)
    $W.WriteAttributeString('required', $Required.ToString().ToLowerInvariant())
    $W.WriteAttributeString('variableLength', ($P.Type.EndsWith('[]')).ToString().ToLowerInvariant())
    $W.WriteAttributeString('globbing', $P.Globbing.ToString().ToLowerInvariant())
    $W.WriteAttributeString('pipelineInput', $P.Pipeline)
    $W.WriteAttributeString('position', $Position)
    $W.WriteAttributeString('aliases', $(if ($P.Aliases.Count) { $P.Aliases -join ', ' } else { 'none' }))
    $W.WriteElementString('maml', 'name', $MamlNs, $P.Name)
    Write-Description $W $P.Description
    if ($InSyntax -and $P.Accepted.Count -gt 0) {
        $W.WriteStartElement('command', 'parameterValueGroup', $CommandNs)
        foreach ($v in $P.Accepted) {
            $W.WriteStartElement('command', 'parameterValue', $CommandNs)
            $W.WriteAttributeString('required', 'false')
            $W.WriteAttributeString('command', 'variableLength', $CommandNs, 'false')
            $W.WriteString($v)
            $W.WriteEndElement()
        }
        $W.WriteEndElement()
    }
    elseif (-not ($InSyntax -and $isSwitch)) {
        $W.WriteStartElement('command', 'parameterValue', $CommandNs)
        $W.WriteAttributeString('required', (-not $isSwitch).ToString().ToLowerInvariant())
        $W.WriteAttributeString('variableLength', 'false')
        $W.WriteString($P.Type)
        $W.WriteEndElement()
    }
    Write-Type $W $P.Type
    $W.WriteElementString('dev', 'defaultValue', $DevNs, $P.Default)
    $W.WriteEndElement()
}

function Write-Command([System.Xml.XmlWriter]$W, [object]$Page) {
    $W.WriteStartElement('command', 'command', $CommandNs)
    $W.WriteAttributeString('xmlns', 'maml', $null, $MamlNs)
    $W.WriteAttributeString('xmlns', 'command', $null, $CommandNs)
    $W.WriteAttributeString('xmlns', 'dev', $null, $DevNs)

    $W.WriteStartElement('command', 'details', $CommandNs)
    $W.WriteElementString('command', 'name', $CommandNs, $Page.Name)
    $W.WriteElementString('command', 'verb', $CommandNs, $Page.Verb)
    $W.WriteElementString('command', 'noun', $CommandNs, $Page.Noun)
    Write-Description $W $Page.Synopsis
    $W.WriteEndElement()

    Write-Description $W $Page.Description

    $W.WriteStartElement('command', 'syntax', $CommandNs)
    foreach ($set in $Page.Syntax) {
        $W.WriteStartElement('command', 'syntaxItem', $CommandNs)
        $W.WriteElementString('maml', 'name', $MamlNs, $Page.Name)
        foreach ($tok in $set.Tokens) {
            $p = $Page.Parameters[$tok.Name]
            Write-Parameter $W $p $tok.Required $(if ($tok.Positional) { $p.Position } else { 'named' }) $true
        }
        $W.WriteEndElement()
    }
    $W.WriteEndElement()

    $W.WriteStartElement('command', 'parameters', $CommandNs)
    foreach ($p in $Page.Parameters.Values) { Write-Parameter $W $p $p.Required $p.Position $false }
    $W.WriteEndElement()

    foreach ($kind in @(@('inputTypes', 'inputType', $Page.Inputs), @('returnValues', 'returnValue', $Page.Outputs))) {
        $W.WriteStartElement('command', $kind[0], $CommandNs)
        foreach ($item in $kind[2]) {
            $W.WriteStartElement('command', $kind[1], $CommandNs)
            Write-Type $W $item.Type
            Write-Description $W $item.Description
            $W.WriteEndElement()
        }
        $W.WriteEndElement()
    }

    $W.WriteStartElement('maml', 'alertSet', $MamlNs)
    $W.WriteStartElement('maml', 'alert', $MamlNs)
    Write-Paras $W $Page.Notes
    $W.WriteEndElement()
    $W.WriteEndElement()

    $W.WriteStartElement('command', 'examples', $CommandNs)
    foreach ($ex in $Page.Examples) {
        $W.WriteStartElement('command', 'example', $CommandNs)
        $W.WriteElementString('maml', 'title', $MamlNs, "-------------------------- $($ex.Title) --------------------------")
        $W.WriteElementString('dev', 'code', $DevNs, $ex.Code)
        $W.WriteStartElement('dev', 'remarks', $DevNs)
        Write-Paras $W $ex.Remarks
        # An empty paragraph: Get-Help then leaves a blank line before the next example.
        $W.WriteStartElement('maml', 'para', $MamlNs); $W.WriteEndElement()
        $W.WriteEndElement()
        $W.WriteEndElement()
    }
    $W.WriteEndElement()

    $W.WriteStartElement('command', 'relatedLinks', $CommandNs)
    foreach ($link in $Page.Links) {
        $W.WriteStartElement('maml', 'navigationLink', $MamlNs)
        $W.WriteElementString('maml', 'linkText', $MamlNs, $link.Text)
        $W.WriteElementString('maml', 'uri', $MamlNs, $link.Uri)
        $W.WriteEndElement()
    }
    $W.WriteEndElement()

    $W.WriteEndElement()
}

#endregion

$source = (Resolve-Path -LiteralPath $SourcePath).ProviderPath
$files = @(Get-ChildItem -LiteralPath $source -Filter '*.md' -File |
        Where-Object { $_.BaseName -match '^[A-Za-z]+-[A-Za-z]+$' } | Sort-Object Name)
if ($files.Count -eq 0) { throw "No Verb-Noun.md pages in '$source'." }

$pages = foreach ($f in $files) { Read-Page $f.FullName }
if ($script:Errors.Count -gt 0) {
    throw ("Help pages have errors; nothing was written:`n  " + ($script:Errors -join "`n  "))
}

$settings = [System.Xml.XmlWriterSettings]::new()
$settings.Indent = $true
$settings.IndentChars = '  '
$settings.Encoding = [System.Text.UTF8Encoding]::new($false)
$settings.NewLineChars = "`n"
$outFull = [IO.Path]::GetFullPath($OutputPath, (Get-Location).ProviderPath)
$null = New-Item -ItemType Directory -Force -Path ([IO.Path]::GetDirectoryName($outFull))
$temp = "$outFull.tmp"
$writer = [System.Xml.XmlWriter]::Create($temp, $settings)
try {
    $writer.WriteStartDocument()
    $writer.WriteStartElement('helpItems', $MshNs)
    $writer.WriteAttributeString('schema', 'maml')
    foreach ($page in $pages) { Write-Command $writer $page }
    $writer.WriteEndElement()
    $writer.WriteEndDocument()
}
finally {
    $writer.Dispose()
}
# Well-formed and readable back, or nothing.
$null = [xml](Get-Content -LiteralPath $temp -Raw)
Move-Item -LiteralPath $temp -Destination $outFull -Force
foreach ($page in $pages) {
    Write-Verbose ("{0}: {1} parameters, {2} examples, {3} syntax blocks" -f $page.Name, $page.Parameters.Count, $page.Examples.Count, $page.Syntax.Count)
}
Get-Item -LiteralPath $outFull
