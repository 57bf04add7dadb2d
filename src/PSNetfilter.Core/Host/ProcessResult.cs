using CliWrap;
using CliWrap.Buffered;

namespace PSNetfilter.Core.Host;

public sealed record ProcessResult(int ExitCode, string StandardOutput, string StandardError);
