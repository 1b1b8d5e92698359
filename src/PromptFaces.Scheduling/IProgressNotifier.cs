namespace PromptFaces.Scheduling;

/// <summary>
/// The seam between scheduling and the web: per-user delivery of step frames and state changes. Implementations must
/// deliver a job's messages to its owner only, and must not block the runner on a slow client.
/// </summary>
public interface IProgressNotifier
{
    /// <summary>A step of a running job of <paramref name="ownerId"/>.</summary>
    ValueTask StepAsync(string ownerId, StepEvent step);

    /// <summary>A job of <paramref name="ownerId"/> changed state (started, completed, failed, cancelled, requeued).</summary>
    ValueTask StateChangedAsync(string ownerId, JobStateChange change);
}

/// <summary>A state change; <paramref name="ImageId"/> is set when a completed job's image was stored.</summary>
public sealed record JobStateChange(Guid JobId, JobStatus Status, int StepsDone, double? Similarity, Guid? ImageId, string? Error);

/// <summary>Lets whoever queues a job wake the runner instead of waiting for its next poll, and cancel running jobs.</summary>
public interface IJobControl
{
    /// <summary>A job was queued: look for work now.</summary>
    void JobQueued();

    /// <summary>Stops a job that the runner has claimed; ignored when the runner does not have it.</summary>
    void CancelRunning(Guid jobId);
}
