using System.Diagnostics;
using PromptFaces.Scheduling;
using PromptFaces.Scheduling.FairShare;

namespace PromptFaces.Cli.SchedulerBench;

/// <summary>
/// The benchmark's <see cref="ISchedulerStore"/>: job rows in memory under one lock, so that what is measured is the
/// scheduler and the engine, not a database. Claims are a compare-and-set on the status, as the real store's
/// conditional update is. Besides what the scheduler needs, each row keeps when it was submitted, first claimed and
/// finished (seconds on one stopwatch), from which the benchmark computes waits and throughput.
/// </summary>
internal sealed class BenchSchedulerStore(TimeProvider clock) : ISchedulerStore
{
    private readonly Lock _gate = new();
    private readonly Dictionary<Guid, BenchJob> _jobs = new();
    private readonly List<UsageCharge> _usage = new();
    private readonly Stopwatch _watch = Stopwatch.StartNew();
    private readonly TaskCompletionSource _allFinished = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int _expected = int.MaxValue;
    private int _finished;

    /// <summary>Seconds since the store was made: the benchmark's time line.</summary>
    public double Now => _watch.Elapsed.TotalSeconds;

    /// <summary>Completes once <see cref="Expect"/>'s number of jobs have ended.</summary>
    public Task AllFinished => _allFinished.Task;

    /// <summary>How many jobs the run will submit in all.</summary>
    public void Expect(int count)
    {
        lock (_gate)
        {
            _expected = count;
            if (_finished >= _expected) _allFinished.TrySetResult();
        }
    }

    /// <summary>Queues a job now.</summary>
    public void Add(BenchJob job)
    {
        lock (_gate)
        {
            job.SubmittedAt = Now;
            job.EnqueuedAt = clock.GetUtcNow();
            job.Status = JobStatus.Queued;
            _jobs.Add(job.Job.Id, job);
        }
    }

    public IReadOnlyList<BenchJob> Jobs
    {
        get { lock (_gate) return _jobs.Values.ToList(); }
    }

    public Task<QueueSnapshot> GetQueueAsync(CancellationToken cancellationToken)
    {
        lock (_gate)
        {
            var waiting = _jobs.Values.Where(j => j.Status == JobStatus.Queued)
                .Select(j => new WaitingJob(j.Job.Id, j.Owner, j.EnqueuedAt, j.Job.Steps)).ToList();
            var running = _jobs.Values.Where(j => j.Status == JobStatus.Running)
                .GroupBy(j => j.Owner).ToDictionary(g => g.Key, g => g.Count(), StringComparer.Ordinal);
            return Task.FromResult(new QueueSnapshot(waiting, running));
        }
    }

    public Task<IReadOnlyList<ClaimedJob>> ClaimAsync(IReadOnlyList<Guid> jobIds, string workerId, CancellationToken cancellationToken)
    {
        lock (_gate)
        {
            var claimed = new List<ClaimedJob>();
            foreach (var id in jobIds)
            {
                if (!_jobs.TryGetValue(id, out var job) || job.Status != JobStatus.Queued) continue;
                job.Status = JobStatus.Running;
                job.ClaimedBy = workerId;
                job.StartedAt ??= Now;
                claimed.Add(new ClaimedJob(job.Job with { ResumeState = job.Checkpoint }, job.Owner, job.Checkpoint is null ? 0 : job.CheckpointStep));
            }
            return Task.FromResult<IReadOnlyList<ClaimedJob>>(claimed);
        }
    }

    public Task RecordProgressAsync(Guid jobId, int stepsDone, double similarity, CancellationToken cancellationToken) => Task.CompletedTask;

    public Task SaveCheckpointAsync(Guid jobId, int stepsDone, byte[] state, CancellationToken cancellationToken)
    {
        lock (_gate)
        {
            if (_jobs.TryGetValue(jobId, out var job) && job.Status == JobStatus.Running)
            {
                job.Checkpoint = state;
                job.CheckpointStep = stepsDone;
            }
        }
        return Task.CompletedTask;
    }

    public Task RecordUsageAsync(IReadOnlyList<UsageCharge> charges, CancellationToken cancellationToken)
    {
        lock (_gate) _usage.AddRange(charges);
        return Task.CompletedTask;
    }

    public Task<IReadOnlyList<UsageCharge>> GetUsageSinceAsync(DateTimeOffset since, CancellationToken cancellationToken)
    {
        lock (_gate) return Task.FromResult<IReadOnlyList<UsageCharge>>(_usage.Where(u => u.At >= since).ToList());
    }

    public Task<Guid?> CompleteAsync(FinishedJob result, CancellationToken cancellationToken)
    {
        lock (_gate)
        {
            if (!_jobs.TryGetValue(result.JobId, out var job) || job.Status != JobStatus.Running) return Task.FromResult<Guid?>(null);
            job.Status = result.Status switch
            {
                FinishStatus.Completed when result.Png is not null => JobStatus.Completed,
                FinishStatus.Cancelled => JobStatus.Cancelled,
                _ => JobStatus.Failed,
            };
            job.Error = result.Error;
            job.FinishedAt = Now;
            job.Checkpoint = null;
            if (++_finished >= _expected) _allFinished.TrySetResult();
            return Task.FromResult<Guid?>(job.Status == JobStatus.Completed ? Guid.NewGuid() : null);
        }
    }

    public Task RequeueAsync(Guid jobId, int stepsDone, byte[]? state, CancellationToken cancellationToken)
    {
        lock (_gate)
        {
            if (!_jobs.TryGetValue(jobId, out var job) || job.Status != JobStatus.Running) return Task.CompletedTask;
            job.Status = JobStatus.Queued;
            job.ClaimedBy = null;
            if (state is not null)
            {
                job.Checkpoint = state;
                job.CheckpointStep = stepsDone;
            }
        }
        return Task.CompletedTask;
    }

    public Task<string?> CancelQueuedAsync(Guid jobId, CancellationToken cancellationToken)
    {
        lock (_gate)
        {
            if (!_jobs.TryGetValue(jobId, out var job) || job.Status != JobStatus.Queued) return Task.FromResult<string?>(null);
            job.Status = JobStatus.Cancelled;
            job.FinishedAt = Now;
            if (++_finished >= _expected) _allFinished.TrySetResult();
            return Task.FromResult<string?>(job.Owner);
        }
    }

    public Task<int> RecoverInterruptedAsync(IReadOnlyCollection<string> workerIds, CancellationToken cancellationToken)
    {
        lock (_gate)
        {
            int n = 0;
            foreach (var job in _jobs.Values.Where(j => j.Status == JobStatus.Running && (j.ClaimedBy is null || workerIds.Contains(j.ClaimedBy))))
            {
                job.Status = JobStatus.Queued;
                job.ClaimedBy = null;
                n++;
            }
            return Task.FromResult(n);
        }
    }

    public Task<int> CountOpenJobsAsync(string ownerId, CancellationToken cancellationToken)
    {
        lock (_gate) return Task.FromResult(_jobs.Values.Count(j => j.Owner == ownerId && !j.Status.IsFinal()));
    }
}

/// <summary>One job of the benchmark and its time line (seconds on the store's stopwatch).</summary>
internal sealed class BenchJob(GenerationJob job, string owner, bool light)
{
    public GenerationJob Job { get; } = job;
    public string Owner { get; } = owner;
    public bool Light { get; } = light;
    public JobStatus Status { get; set; }
    public DateTimeOffset EnqueuedAt { get; set; }
    public string? ClaimedBy { get; set; }
    public byte[]? Checkpoint { get; set; }
    public int CheckpointStep { get; set; }
    public string? Error { get; set; }
    public double SubmittedAt { get; set; }
    public double? StartedAt { get; set; }
    public double? FinishedAt { get; set; }
}
