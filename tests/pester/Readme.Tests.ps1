# The README's commands, as a new user copies them in order: "Try it" has exactly the two set-up commands (the demo
# and the tests), "Building" starts with `dotnet tool restore` (without it `dotnet pwsh` does not exist), and
# "Example" builds the module and starts a prompt with it imported. The prompt command is run here exactly as
# written, from the repository root, with a script on its standard input instead of a person at the keyboard.

BeforeDiscovery {
    $ReadmeRunSkipReason = if (-not (Get-Command dotnet -CommandType Application -ErrorAction SilentlyContinue)) { 'needs the .NET SDK (dotnet)' } else { $null }
}

Describe 'README commands' {
    BeforeAll {
        Import-Module (Join-Path $PSScriptRoot '../support/TestProcess.psm1') -Force
        $script:RepoRoot = [IO.Path]::GetFullPath((Join-Path $PSScriptRoot '../..'))

        function script:Get-ReadmeCommand([string]$Section) {
            # The command lines (no comments, no blank lines) of the ```sh blocks of '## <Section>'.
            $text = Get-Content -LiteralPath (Join-Path $script:RepoRoot 'README.md') -Raw
            $m = [regex]::Match($text, '(?ms)^## ' + [regex]::Escape($Section) + '\s*$(.*?)(?=^## |\z)')
            if (-not $m.Success) { throw "README.md has no section '## $Section'." }
            foreach ($block in [regex]::Matches($m.Groups[1].Value, '(?ms)^```sh\s*$(.*?)^```')) {
                foreach ($line in $block.Groups[1].Value -split "`n") {
                    $line = $line.Trim()
                    if ($line -and -not $line.StartsWith('#')) { $line }
                }
            }
        }

        function script:Split-CommandLine([string]$Line) {
            # A README command line as a shell splits it (words; "..." keeps spaces); no other shell syntax.
            if ($Line -match '[;&|<>$`\\'']') { throw "Not a plain command line: $Line" }
            @([regex]::Matches($Line, '"([^"]*)"|(\S+)') | ForEach-Object { if ($_.Groups[1].Success) { $_.Groups[1].Value } else { $_.Groups[2].Value } })
        }
    }

    It '"Try it" has exactly two set-up commands: the demo and the tests, each after dotnet tool restore' {
        $commands = @(Get-ReadmeCommand 'Try it')
        $commands | Should -HaveCount 2
        $commands[0] | Should -BeExactly 'dotnet tool restore && dotnet pwsh -NoProfile -File ./build.ps1 Demo'
        $commands[1] | Should -BeExactly 'dotnet tool restore && dotnet pwsh -NoProfile -File ./build.ps1 Test'
    }

    It '"Building" restores the local tools before its first dotnet pwsh' {
        $commands = @(Get-ReadmeCommand 'Building')
        $commands[0] | Should -BeExactly 'dotnet tool restore'
        @($commands | Select-Object -Skip 1 | Where-Object { $_ -notlike 'dotnet pwsh *' }) | Should -BeNullOrEmpty
    }

    It '"Example" restores, builds out/PSNetfilter, then starts a prompt that imports it' {
        $commands = @(Get-ReadmeCommand 'Example')
        $commands | Should -HaveCount 3
        $commands[0] | Should -BeExactly 'dotnet tool restore'
        $commands[1] | Should -BeExactly 'dotnet pwsh -NoProfile -File ./build.ps1 Build'
        $prompt = @(Split-CommandLine $commands[2])
        $prompt[0..1] -join ' ' | Should -Be 'dotnet pwsh'
        $prompt | Should -Contain '-NoExit'
        $prompt[-1] | Should -BeExactly 'Import-Module ./out/PSNetfilter/PSNetfilter.psd1'
    }

    It 'the prompt command of "Example", run as written from the repository root, gives a prompt with the module' -Skip:([bool]$ReadmeRunSkipReason) {
        if (-not (Test-Path -LiteralPath (Join-Path $script:RepoRoot 'out/PSNetfilter/PSNetfilter.psd1'))) {
            Set-ItResult -Skipped -Because 'out/PSNetfilter is not built (build.ps1 Build, the README''s command before the prompt)'
            return
        }
        $childEnv = Get-TestChildEnvironment
        # The README's commands before the prompt; the build has already run (build.ps1 Test builds first).
        $restore = @(Split-CommandLine (@(Get-ReadmeCommand 'Example')[0]))
        Invoke-TestProcess -FilePath $restore[0] -ArgumentList @($restore | Select-Object -Skip 1) -WorkingDirectory $script:RepoRoot -Environment $childEnv -TimeoutSeconds 300 -Check | Out-Null
        $prompt = @(Split-CommandLine (@(Get-ReadmeCommand 'Example')[2]))
        $typed = "'module ' + (Get-Module PSNetfilter).Name + ' ' + @(Get-Command -Module PSNetfilter).Count`nexit`n"
        $r = Invoke-TestProcess -FilePath $prompt[0] -ArgumentList @($prompt | Select-Object -Skip 1) -StandardInput $typed -WorkingDirectory $script:RepoRoot -Environment $childEnv -TimeoutSeconds 120
        $r.ExitCode | Should -Be 0 -Because $r.Output
        $r.StdErr | Should -BeNullOrEmpty
        $r.StdOut | Should -Match '(?m)^module PSNetfilter [1-9][0-9]*\s*$'
        $r.StdOut | Should -Match 'PS /' -Because 'it is an interactive prompt'
    }
}
