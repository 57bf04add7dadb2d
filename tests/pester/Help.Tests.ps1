# Get-Help of every exported cmdlet comes from the MAML file the build compiles from docs/cmdlets/*.md
# (build/HelpCompiler.ps1): real synopsis and description, every parameter described and matching the
# cmdlet's metadata, examples that parse and call only parameters that exist. Needs no root.

BeforeDiscovery {
    $ModuleDir = if ($env:PSNETFILTER_TEST_MODULE) { $env:PSNETFILTER_TEST_MODULE } else { Join-Path $PSScriptRoot '../../out/PSNetfilter' }
    Import-Module (Join-Path $ModuleDir 'PSNetfilter.psd1') -Force
    $skip = @([System.Management.Automation.Cmdlet]::CommonParameters) + @([System.Management.Automation.Cmdlet]::OptionalCommonParameters)
    $Cmdlets = @(Get-Command -Module PSNetfilter -CommandType Cmdlet | Sort-Object Name | ForEach-Object {
            $cmd = $_
            @{
                Name       = $cmd.Name
                Parameters = @($cmd.Parameters.Keys | Where-Object { $_ -notin $skip } | Sort-Object | ForEach-Object { @{ Cmdlet = $cmd.Name; Parameter = $_ } })
            }
        })
}

BeforeAll {
    $ModuleDir = if ($env:PSNETFILTER_TEST_MODULE) { $env:PSNETFILTER_TEST_MODULE } else { Join-Path $PSScriptRoot '../../out/PSNetfilter' }
    $script:ModuleDir = (Resolve-Path -LiteralPath $ModuleDir).ProviderPath
    Import-Module (Join-Path $script:ModuleDir 'PSNetfilter.psd1') -Force
    $script:HelpFile = Join-Path $script:ModuleDir 'en-US/PSNetfilter.dll-Help.xml'
    $script:Common = @([System.Management.Automation.Cmdlet]::CommonParameters) + @([System.Management.Automation.Cmdlet]::OptionalCommonParameters)

    function Get-TypeShortName([Type]$Type) {
        # Nullable<int> -> Int32, String[] -> String[], PortRange -> PortRange
        $inner = [Nullable]::GetUnderlyingType($Type)
        if ($inner) { $Type = $inner }
        $Type.Name
    }
}

Describe 'The compiled help file' {
    It 'exists at en-US/PSNetfilter.dll-Help.xml in the built module' {
        $script:HelpFile | Should -Exist
    }

    It 'is MAML with one command:command per exported cmdlet' {
        [xml]$xml = Get-Content -LiteralPath $script:HelpFile -Raw
        $xml.DocumentElement.LocalName | Should -Be 'helpItems'
        $xml.DocumentElement.NamespaceURI | Should -Be 'http://msh'
        $xml.DocumentElement.GetAttribute('schema') | Should -Be 'maml'
        $ns = [System.Xml.XmlNamespaceManager]::new($xml.NameTable)
        $ns.AddNamespace('command', 'http://schemas.microsoft.com/maml/dev/command/2004/10')
        $ns.AddNamespace('maml', 'http://schemas.microsoft.com/maml/2004/10')
        $names = @($xml.SelectNodes('/*/command:command/command:details/command:name', $ns) | ForEach-Object InnerText)
        $exported = @(Get-Command -Module PSNetfilter -CommandType Cmdlet | ForEach-Object Name)
        ($names | Sort-Object) | Should -Be ($exported | Sort-Object)
    }

    It 'has a docs/cmdlets page for every exported cmdlet' {
        $docs = Join-Path $PSScriptRoot '../../docs/cmdlets'
        foreach ($c in Get-Command -Module PSNetfilter -CommandType Cmdlet) {
            Join-Path $docs "$($c.Name).md" | Should -Exist
        }
    }
}

Describe 'Get-Help <Name>' -ForEach $Cmdlets {
    BeforeAll {
        $script:cmd = Get-Command -Name $Name -Module PSNetfilter
        $script:help = Get-Help -Name $Name -Full
        $script:helpParams = @($script:help.parameters.parameter | Where-Object { $_ })
    }

    It 'comes from the help file' {
        $script:help.PSObject.TypeNames | Should -Contain 'MamlCommandHelpInfo'
    }

    It 'has a synopsis that is not the generated syntax' {
        $synopsis = "$($script:help.Synopsis)".Trim()
        $synopsis | Should -Not -BeNullOrEmpty
        $synopsis | Should -Not -BeLike "$Name *"
        $synopsis | Should -Not -Match '\[<CommonParameters>\]'
        $synopsis.Length | Should -BeGreaterThan 20
    }

    It 'has a description' {
        $text = (@($script:help.description) | ForEach-Object Text) -join "`n"
        $text.Trim() | Should -Not -BeNullOrEmpty
        $text.Length | Should -BeGreaterThan 100
    }

    It 'has at least 2 examples' {
        @($script:help.examples.example).Count | Should -BeGreaterOrEqual 2
    }

    It 'has examples with a title, code and an explanation' {
        foreach ($ex in $script:help.examples.example) {
            "$($ex.title)" | Should -Match 'Example \d+: \S'
            "$($ex.code)".Trim() | Should -Not -BeNullOrEmpty
            ((@($ex.remarks) | ForEach-Object Text) -join '').Trim() | Should -Not -BeNullOrEmpty -Because "example '$($ex.title)' needs an explanation"
        }
    }

    It 'has examples whose code parses without errors' {
        foreach ($ex in $script:help.examples.example) {
            $tokens = $null; $errors = $null
            $null = [System.Management.Automation.Language.Parser]::ParseInput([string]$ex.code, [ref]$tokens, [ref]$errors)
            $errors | Should -BeNullOrEmpty -Because "the code of '$($ex.title)' must parse: $($errors | ForEach-Object Message)"
        }
    }

    It 'has examples that use only parameters the PSNetfilter cmdlets have' {
        $own = @(Get-Command -Module PSNetfilter -CommandType Cmdlet | ForEach-Object Name)
        foreach ($ex in $script:help.examples.example) {
            $ast = [System.Management.Automation.Language.Parser]::ParseInput([string]$ex.code, [ref]$null, [ref]$null)
            $calls = $ast.FindAll({ param($a) $a -is [System.Management.Automation.Language.CommandAst] }, $true)
            foreach ($call in $calls) {
                $cmdName = $call.GetCommandName()
                if ($cmdName -notin $own) { continue }
                $target = Get-Command -Name $cmdName -Module PSNetfilter
                $names = @($target.Parameters.Keys) + @($target.Parameters.Values | ForEach-Object Aliases)
                foreach ($p in $call.CommandElements | Where-Object { $_ -is [System.Management.Automation.Language.CommandParameterAst] }) {
                    $hits = @($names | Where-Object { $_ -like "$($p.ParameterName)*" })
                    $exact = $names -contains $p.ParameterName
                    ($exact -or $hits.Count -eq 1) | Should -BeTrue -Because "'$($ex.title)' calls $cmdName -$($p.ParameterName), which is not (or not unambiguously) a parameter of $cmdName"
                }
            }
        }
    }

    It 'has inputs, outputs and related links' {
        @($script:help.inputTypes.inputType).Count | Should -BeGreaterThan 0
        @($script:help.returnValues.returnValue).Count | Should -BeGreaterThan 0
        @($script:help.relatedLinks.navigationLink).Count | Should -BeGreaterThan 0
    }

    It 'documents no parameter that the cmdlet does not have' {
        foreach ($hp in $script:helpParams) {
            $script:cmd.Parameters.Keys | Should -Contain $hp.name -Because "the help documents -$($hp.name)"
        }
    }

    It 'has syntax blocks that match the parameter sets' {
        $sets = @($script:cmd.ParameterSets | ForEach-Object {
                (@($_.Parameters | Where-Object { $_.Name -notin $script:Common } | ForEach-Object Name | Sort-Object) -join ',')
            })
        $items = @($script:help.syntax.syntaxItem | ForEach-Object {
                (@($_.parameter | Where-Object { $_ -and $_.name -notin $script:Common } | ForEach-Object name | Sort-Object) -join ',')
            })
        ($items | Sort-Object) | Should -Be ($sets | Sort-Object)
    }

    Context 'parameter -<Parameter>' -ForEach $Parameters {
        BeforeAll {
            $script:meta = (Get-Command -Name $Cmdlet -Module PSNetfilter).Parameters[$Parameter]
            $script:hp = @((Get-Help -Name $Cmdlet -Full).parameters.parameter | Where-Object { $_ -and $_.name -eq $Parameter })
        }

        It 'has a help description' {
            $script:hp.Count | Should -Be 1 -Because "-$Parameter of $Cmdlet needs exactly one '### -$Parameter' in docs/cmdlets/$Cmdlet.md"
            ((@($script:hp[0].description) | ForEach-Object Text) -join '').Trim() | Should -Not -BeNullOrEmpty
        }

        It 'has the type, required flag, position, pipeline input, wildcard flag and aliases of the cmdlet' {
            $h = $script:hp[0]
            $sets = @($script:meta.ParameterSets.Values)
            "$($h.type.name)" | Should -Be (Get-TypeShortName $script:meta.ParameterType)
            $h.required | Should -Be (([bool]($sets | Where-Object IsMandatory)).ToString().ToLowerInvariant())
            $positions = @($sets | Where-Object { $_.Position -ge 0 } | ForEach-Object Position | Select-Object -Unique)
            $expectedPosition = if ($positions.Count) { "$($positions[0])" } else { 'named' }
            "$($h.position)".ToLowerInvariant() | Should -Be $expectedPosition
            $kinds = @()
            if ($sets | Where-Object ValueFromPipeline) { $kinds += 'ByValue' }
            if ($sets | Where-Object ValueFromPipelineByPropertyName) { $kinds += 'ByPropertyName' }
            $expectedPipeline = if ($kinds.Count) { "True ($($kinds -join ', '))" } else { 'False' }
            "$($h.pipelineInput)" | Should -Be $expectedPipeline
            $wild = [bool]($script:meta.Attributes | Where-Object { $_ -is [System.Management.Automation.SupportsWildcardsAttribute] })
            $h.globbing | Should -Be $wild.ToString().ToLowerInvariant()
            $aliases = @("$($h.aliases)" -split ',\s*' | Where-Object { $_ -and $_ -ne 'none' } | Sort-Object)
            $aliases | Should -Be @($script:meta.Aliases | Sort-Object)
        }

        It 'shows with Get-Help -Parameter' {
            $single = Get-Help -Name $Cmdlet -Parameter $Parameter
            $single.name | Should -Be $Parameter
            ((@($single.description) | ForEach-Object Text) -join '').Trim() | Should -Not -BeNullOrEmpty
        }
    }
}

Describe 'build/HelpCompiler.ps1' {
    BeforeAll {
        $script:Compiler = Join-Path $PSScriptRoot '../../build/HelpCompiler.ps1'
        $script:Work = Join-Path ([IO.Path]::GetTempPath()) ("psnfh-help-" + [guid]::NewGuid().ToString('n').Substring(0, 8))
        $null = New-Item -ItemType Directory -Path $script:Work
        $script:Good = @'
# Get-Thing

## SYNOPSIS
Gets a thing.

## SYNTAX

### __AllParameterSets
```
Get-Thing [[-Name] <String>] [-Force] [<CommonParameters>]
```

## DESCRIPTION
Gets a **thing** with `Get-Thing`.

## EXAMPLES

### Example 1: One
```powershell
Get-Thing -Name a
```

Gets a.

## PARAMETERS

### -Name
The name.

```yaml
Type: String
Parameter Sets: (All)
Aliases: N

Required: False
Position: 0
Default value: None
Accept pipeline input: True (ByPropertyName)
Accept wildcard characters: True
```

### -Force
Forces it.

```yaml
Type: SwitchParameter
Parameter Sets: (All)
Aliases:

Required: False
Position: Named
Default value: False
Accept pipeline input: False
Accept wildcard characters: False
```

## INPUTS

### None
Nothing.

## OUTPUTS

### System.String
A string.

## NOTES
A note & <markup>.

## RELATED LINKS

[Get-Other](Get-Other.md)

[Web](https://example.org/thing)
'@
    }

    AfterAll {
        if ($script:Work -and (Test-Path -LiteralPath $script:Work)) { Remove-Item -LiteralPath $script:Work -Recurse -Force }
    }

    BeforeEach {
        Get-ChildItem -LiteralPath $script:Work | Remove-Item -Recurse -Force
    }

    It 'compiles a page into MAML with escaped text, parameters, examples and links' {
        Set-Content -LiteralPath (Join-Path $script:Work 'Get-Thing.md') -Value $script:Good
        Set-Content -LiteralPath (Join-Path $script:Work 'README.md') -Value 'not a page'
        $out = Join-Path $script:Work 'out/Thing.dll-Help.xml'
        $null = & $script:Compiler -SourcePath $script:Work -OutputPath $out
        [xml]$xml = Get-Content -LiteralPath $out -Raw
        $ns = [System.Xml.XmlNamespaceManager]::new($xml.NameTable)
        $ns.AddNamespace('command', 'http://schemas.microsoft.com/maml/dev/command/2004/10')
        $ns.AddNamespace('maml', 'http://schemas.microsoft.com/maml/2004/10')
        $ns.AddNamespace('dev', 'http://schemas.microsoft.com/maml/dev/2004/10')
        @($xml.SelectNodes('//command:command', $ns)).Count | Should -Be 1
        $xml.SelectSingleNode('//command:details/command:verb', $ns).InnerText | Should -Be 'Get'
        $xml.SelectSingleNode('//command:command/maml:description/maml:para', $ns).InnerText | Should -Be 'Gets a thing with Get-Thing.'
        $name = $xml.SelectSingleNode('//command:parameters/command:parameter[maml:name="Name"]', $ns)
        $name.GetAttribute('position') | Should -Be '0'
        $name.GetAttribute('globbing') | Should -Be 'true'
        $name.GetAttribute('aliases') | Should -Be 'N'
        $name.GetAttribute('pipelineInput') | Should -Be 'True (ByPropertyName)'
        $xml.SelectSingleNode('//command:syntaxItem/command:parameter[maml:name="Force"]', $ns).GetAttribute('position') | Should -Be 'named'
        $xml.SelectSingleNode('//dev:code', $ns).InnerText | Should -Be 'Get-Thing -Name a'
        $xml.SelectSingleNode('//maml:alert/maml:para', $ns).InnerText | Should -Be 'A note & <markup>.'
        @($xml.SelectNodes('//maml:navigationLink/maml:uri', $ns) | ForEach-Object InnerText) | Should -Be @('', 'https://example.org/thing')
    }

    It 'refuses a page whose <Case>, naming the file and line, and writes nothing' -ForEach @(
        @{ Case = 'parameter has no yaml block'; From = "``````yaml`nType: SwitchParameter"; To = "``````text`nType: SwitchParameter"; Message = '*Get-Thing.md:*-Force needs exactly one yaml block*' }
        @{ Case = 'syntax names an undocumented parameter'; From = '[-Force] [<CommonParameters>]'; To = '[-Force] [-Other <Int32>] [<CommonParameters>]'; Message = '*-Other*no*### -Other*' }
        @{ Case = 'parameter is not in any syntax'; From = '[-Force] [<CommonParameters>]'; To = '[<CommonParameters>]'; Message = '*-Force appears in no syntax block*' }
        @{ Case = 'position disagrees with the syntax'; From = 'Position: 0'; To = 'Position: Named'; Message = '*positional*Named*' }
        @{ Case = 'yaml has an unknown key'; From = 'Default value: None'; To = "Default value: None`nMandatory: Yes"; Message = "*unknown parameter key 'Mandatory'*" }
        @{ Case = 'example has no code block'; From = "``````powershell`nGet-Thing -Name a`n``````"; To = 'Get-Thing -Name a'; Message = '*has no code block*' }
        @{ Case = 'DESCRIPTION section is missing'; From = "## DESCRIPTION`nGets a **thing** with ``Get-Thing``."; To = ''; Message = "*missing section '## DESCRIPTION'*" }
        @{ Case = 'title does not match the file name'; From = '# Get-Thing'; To = '# Get-Things'; Message = '*does not match the file name*' }
    ) {
        $page = $script:Good.Replace($From, $To)
        $page | Should -Not -Be $script:Good
        Set-Content -LiteralPath (Join-Path $script:Work 'Get-Thing.md') -Value $page
        $out = Join-Path $script:Work 'out/Thing.dll-Help.xml'
        { & $script:Compiler -SourcePath $script:Work -OutputPath $out } | Should -Throw -ExpectedMessage $Message
        $out | Should -Not -Exist
    }
}
