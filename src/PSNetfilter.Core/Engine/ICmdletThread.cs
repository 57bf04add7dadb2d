namespace PSNetfilter.Core.Engine;

/// <summary>
/// The thread of the command that drives a pipeline: PowerShell's ShouldProcess and Write* calls must be made on
/// it, so the engine's multi-step runs (<see cref="AddPipeline"/>, <see cref="RemoveRun"/>) make each
/// asynchronous step through it and hand messages over between steps.
/// </summary>
public interface ICmdletThread
{
    /// <summary>Runs <paramref name="call"/> to completion, writing the messages it produces meanwhile; a stop cancels it.</summary>
    T Run<T>(Func<CancellationToken, Task<T>> call);

    /// <summary>Writes the messages queued so far (verbose, warnings, per-item errors).</summary>
    void Flush();
}
