# Dot-sourced by build.ps1 and tests/support/TestProcess.psm1: how to start the pwsh that runs us.

function Get-PwshInvocation {
    <#
    .SYNOPSIS
        The command line prefix that starts the pwsh running us: `dotnet <...>/pwsh.dll` (the dotnet tool) or a
        native pwsh; in a hosted PowerShell (a test host), a pwsh from PATH or the PowerShell tool package.
    #>
    $processPath = [Environment]::ProcessPath
    $dll = Join-Path $PSHOME 'pwsh.dll'
    if ([IO.Path]::GetFileNameWithoutExtension($processPath) -eq 'dotnet' -and (Test-Path -LiteralPath $dll)) {
        return , @($processPath, $dll)
    }
    $native = Join-Path $PSHOME 'pwsh'
    if (Test-Path -LiteralPath $native) { return , @($native) }
    $cmd = Get-Command pwsh -CommandType Application -ErrorAction SilentlyContinue | Select-Object -First 1
    if ($cmd) { return , @($cmd.Source) }
    $dotnet = Get-Command dotnet -CommandType Application -ErrorAction SilentlyContinue | Select-Object -First 1
    $nugetRoot = if ($env:NUGET_PACKAGES) { $env:NUGET_PACKAGES } else { Join-Path $HOME '.nuget/packages' }
    $toolDll = Get-ChildItem -Path (Join-Path $nugetRoot 'powershell/*/tools/*/any/unix/pwsh.dll') -ErrorAction SilentlyContinue |
        Sort-Object FullName -Descending | Select-Object -First 1
    if ($dotnet -and $toolDll) { return , @($dotnet.Source, $toolDll.FullName) }
    throw 'Cannot find pwsh to start a child process with.'
}
