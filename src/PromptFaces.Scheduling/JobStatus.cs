namespace PromptFaces.Scheduling;

/// <summary>Where a job is in its life. Queued → Running → Completed | Failed | Cancelled; a queued job may be
/// cancelled before it runs, and a running job goes back to Queued when the app stops under it.</summary>
public enum JobStatus
{
    Queued,
    Running,
    Completed,
    Failed,
    Cancelled,
}

public static class JobStatusExtensions
{
    public static bool IsFinal(this JobStatus status) => status is JobStatus.Completed or JobStatus.Failed or JobStatus.Cancelled;
}
