namespace PSNetfilter;

/// <summary>What kind of failure an exception stands for; the cmdlet layer maps it to an ErrorCategory.</summary>
public enum FailureKind
{
    InvalidArgument,
    ObjectNotFound,
    ResourceExists,
    PermissionDenied,
    NotInstalled,
    OperationFailed,
    InvalidData,
    OperationStopped,
}
