using System.Management.Automation;

namespace PSNetfilter.Commands;

/// <summary>The one place that turns core failures into ErrorRecords: the error id is the core's stable id.</summary>
public static class ErrorMapper
{
    public static ErrorCategory CategoryOf(FailureKind kind) => kind switch
    {
        FailureKind.InvalidArgument => ErrorCategory.InvalidArgument,
        FailureKind.ObjectNotFound => ErrorCategory.ObjectNotFound,
        FailureKind.ResourceExists => ErrorCategory.ResourceExists,
        FailureKind.PermissionDenied => ErrorCategory.PermissionDenied,
        FailureKind.NotInstalled => ErrorCategory.NotInstalled,
        FailureKind.InvalidData => ErrorCategory.InvalidData,
        FailureKind.OperationStopped => ErrorCategory.OperationStopped,
        _ => ErrorCategory.InvalidOperation,
    };

    public static ErrorRecord ToErrorRecord(NetfilterException error)
    {
        var record = new ErrorRecord(error, error.ErrorId, CategoryOf(error.Kind), error.Target);
        if (error.RecommendedAction is not null)
        {
            record.ErrorDetails = new ErrorDetails(error.Message) { RecommendedAction = error.RecommendedAction };
        }

        return record;
    }
}
