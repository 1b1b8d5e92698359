namespace PromptFaces.Scheduling;

/// <summary>
/// The seam between scheduling and storage: atomic claim of queued jobs, state transitions and results. SQLite now;
/// a store for several machines later implements the same.
/// </summary>
public interface IJobStore
{
    /// <summary>
    /// Marks up to <paramref name="max"/> of the oldest queued jobs as running (first in, first out) and returns them.
    /// A job is claimed once: two callers never get the same job.
    /// </summary>
    Task<IReadOnlyList<ClaimedJob>> ClaimNextAsync(int max, CancellationToken cancellationToken);

    /// <summary>Records how far a running job got (steps done and current similarity).</summary>
    Task RecordProgressAsync(Guid jobId, int stepsDone, double similarity, CancellationToken cancellationToken);

    /// <summary>
    /// Ends a job: its status, times and error, and for a completed job the image files and rows. Returns the id of the
    /// stored image, if any.
    /// </summary>
    Task<Guid?> CompleteAsync(FinishedJob result, CancellationToken cancellationToken);

    /// <summary>Puts a running job back in the queue (at its old place), with a state to resume from if there is one.</summary>
    Task RequeueAsync(Guid jobId, byte[]? resumeState, CancellationToken cancellationToken);

    /// <summary>Jobs left running by a process that stopped without requeueing them go back to the queue.</summary>
    Task<int> RequeueInterruptedAsync(CancellationToken cancellationToken);
}

/// <summary>A job the store handed to the runner, with its owner for progress delivery.</summary>
/// <param name="ResumeStep">the step <see cref="GenerationJob.ResumeState"/> was taken at (0 without one).</param>
/// <param name="FirstStart">whether this claim is the job's first start (not a resumption after a requeue); for the
/// wait-time metric.</param>
public sealed record ClaimedJob(GenerationJob Job, string OwnerId, int ResumeStep = 0, bool FirstStart = true);
