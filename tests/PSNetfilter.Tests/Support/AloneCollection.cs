using Xunit;

namespace PSNetfilter.Tests.Support;

/// <summary>
/// Tests that measure the whole process (malloc's bytes in use, the threads in a namespace) run alone: no other
/// test class runs beside them.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class AloneCollection
{
    public const string Name = "Alone in the process";
}
