namespace PromptFaces.Scheduling.FairShare;

/// <summary>
/// The storage seam of <see cref="FairShareScheduler"/>: the queue, atomic claims, every state change of a job,
/// checkpoints and usage records. The scheduler persists through this interface only.
/// </summary>
/// <remarks>
/// <para>
/// Designed so that workers can later run as separate processes on several machines sharing one PostgreSQL database:
/// </para>
/// <list type="bullet">
/// <item>Ordering is computed by each worker from <see cref="GetQueueAsync"/> and the usage records; nothing relies on
/// in-process state to be correct, only to be current.</item>
/// <item><see cref="ClaimAsync"/> is the only way a job starts, and it must be atomic per job: a conditional update
/// (<c>UPDATE ... SET Status = Running, ClaimedBy = @worker WHERE Id = @id AND Status = Queued</c>) that reports which
/// rows it changed. Two workers that pick the same job both ask; exactly one gets it, the other moves on.</item>
/// <item>Every later transition of a running job is conditional on it still being <c>Running</c>, so a job cancelled
/// or requeued elsewhere is not overwritten.</item>
/// <item>Claims name their worker (<c>node/device</c>), so a restarted node recovers only its own jobs
/// (<see cref="RecoverInterruptedAsync"/>). A node that never comes back needs its jobs recovered by an operator or by
/// a lease with a heartbeat, which a multi-node store would add.</item>
/// </list>
/// </remarks>
public interface ISchedulerStore
{
    /// <summary>The waiting jobs (status Queued) and how many jobs each user has running, over all workers.</summary>
    Task<QueueSnapshot> GetQueueAsync(CancellationToken cancellationToken);

    /// <summary>
    /// Atomically moves each of <paramref name="jobIds"/> that is still queued to running, claimed by
    /// <paramref name="workerId"/>, and returns those it moved, with their owner, stored checkpoint and the step that
    /// checkpoint was taken at. Jobs no longer queued (claimed by another worker, cancelled, deleted) are left out.
    /// </summary>
    Task<IReadOnlyList<ClaimedJob>> ClaimAsync(IReadOnlyList<Guid> jobIds, string workerId, CancellationToken cancellationToken);

    /// <summary>Records how far a running job got.</summary>
    Task RecordProgressAsync(Guid jobId, int stepsDone, double similarity, CancellationToken cancellationToken);

    /// <summary>Stores a running job's checkpoint (engine state bytes) taken after <paramref name="stepsDone"/> steps,
    /// replacing the previous one.</summary>
    Task SaveCheckpointAsync(Guid jobId, int stepsDone, byte[] state, CancellationToken cancellationToken);

    /// <summary>Appends usage records (device-seconds charged to jobs, their owners and teams).</summary>
    Task RecordUsageAsync(IReadOnlyList<UsageCharge> charges, CancellationToken cancellationToken);

    /// <summary>Usage records charged at or after <paramref name="since"/> (to seed the decayed usage and the daily
    /// quota when a scheduler starts).</summary>
    Task<IReadOnlyList<UsageCharge>> GetUsageSinceAsync(DateTimeOffset since, CancellationToken cancellationToken);

    /// <summary>Ends a running job: its status, times, error, and for a completed job the image. Returns the stored
    /// image's id, if any. Clears the checkpoint.</summary>
    Task<Guid?> CompleteAsync(FinishedJob result, CancellationToken cancellationToken);

    /// <summary>Puts a running job back in the queue at its old place (its queue time is kept), with the checkpoint
    /// <paramref name="state"/> taken after <paramref name="stepsDone"/> steps; a null state keeps the stored one.</summary>
    Task RequeueAsync(Guid jobId, int stepsDone, byte[]? state, CancellationToken cancellationToken);

    /// <summary>Cancels a job that is still queued, at once. Returns its owner, or null when the job was not queued
    /// (already claimed, ended or unknown).</summary>
    Task<string?> CancelQueuedAsync(Guid jobId, CancellationToken cancellationToken);

    /// <summary>
    /// Jobs left running by workers of this node that stopped without requeueing them (a crash, kill -9) go back to
    /// the queue with their last checkpoint and their old place. <paramref name="workerIds"/> are this node's workers;
    /// jobs claimed with no worker recorded are recovered too.
    /// </summary>
    Task<int> RecoverInterruptedAsync(IReadOnlyCollection<string> workerIds, CancellationToken cancellationToken);

    /// <summary>Jobs of the user that are queued or running (for the queued-jobs quota).</summary>
    Task<int> CountOpenJobsAsync(string ownerId, CancellationToken cancellationToken);
}

/// <summary>A job waiting in the queue, with what ordering needs.</summary>
/// <param name="EnqueuedAt">when it was queued; kept across requeues, so a job keeps its place.</param>
/// <param name="Boost">the admin's priority boost (added to the priority).</param>
public sealed record WaitingJob(Guid Id, string OwnerId, DateTimeOffset EnqueuedAt, int Steps, double Boost = 0);

/// <summary>The queue as <see cref="ISchedulerStore.GetQueueAsync"/> saw it.</summary>
public sealed record QueueSnapshot(IReadOnlyList<WaitingJob> Waiting, IReadOnlyDictionary<string, int> RunningByOwner)
{
    public static QueueSnapshot Empty { get; } = new(Array.Empty<WaitingJob>(), new Dictionary<string, int>());
}

/// <summary>Device-seconds charged to a job and its owner (and the owner's team at that time).</summary>
public sealed record UsageCharge(Guid JobId, string UserId, string TeamKey, DateTimeOffset At, double DeviceSeconds);
