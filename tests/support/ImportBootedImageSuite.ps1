# Dot-sourced by the suites that boot images (Persistence, Ansible) at the start of their BeforeAll: imports the
# built module (PSNETFILTER_TEST_MODULE, else out/PSNetfilter; $script:ModulePath says which), the lab and the
# booted-image helpers, and puts the sbin folders on PATH for the tools they run.
$ErrorActionPreference = 'Stop'
$script:ModulePath = if ($env:PSNETFILTER_TEST_MODULE) { $env:PSNETFILTER_TEST_MODULE } else { Join-Path $PSScriptRoot '../../out/PSNetfilter' }
$manifest = Join-Path $script:ModulePath 'PSNetfilter.psd1'
if (-not (Test-Path -LiteralPath $manifest)) {
    throw "The built module was not found at '$manifest'. Build it (./build.ps1 Build) and set PSNETFILTER_TEST_MODULE to out/PSNetfilter."
}
Import-Module $manifest -Force
Import-Module (Join-Path $PSScriptRoot '../lab/PSNetfilterLab.psm1') -Force
Import-Module (Join-Path $PSScriptRoot '../pester/persistence/PersistenceTestHelpers.psm1') -Force
foreach ($dir in '/usr/local/sbin', '/usr/sbin', '/sbin') {
    if (($env:PATH -split ':') -notcontains $dir) { $env:PATH = "$env:PATH`:$dir" }
}
