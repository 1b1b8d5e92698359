using System.Collections.Concurrent;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace PromptFaces.Scheduling.FairShare;

/// <summary>
/// The fair-share scheduler: one worker per configured device, each with its own engine and batch size B, stepping
/// up to B jobs together and, at every step boundary, releasing finished or cancelled jobs and admitting the
/// highest-priority waiting ones into the free slots (continuous batching). See <see cref="FairShareCalculator"/> for
/// the ordering and <see cref="SchedulerOptions"/> for the knobs.
/// </summary>
/// <remarks>
/// <para>
/// At a step boundary a worker, in order: admits waiting jobs into free slots (claiming each atomically in the store,
/// skipping users at their running-jobs or daily quota); passes pending cancellations to the engine (the job ends at
/// this boundary, without another step); pauses jobs whose owner reached the daily quota (checkpointed and put back in
/// the queue); takes one engine step; charges each job that stepped the step's wall time divided by the number of jobs
/// that stepped; reports steps; stores finished jobs; and stores a checkpoint of every job that has taken
/// <see cref="SchedulerOptions.CheckpointEvery"/> steps since its last one.
/// </para>
/// <para>
/// Every state change goes through <see cref="ISchedulerStore"/>. On start, jobs this node's workers left running
/// (a crash) go back to the queue with their last checkpoint and their old place, and usage is read back from the
/// store's records. On a graceful stop, running jobs are checkpointed first and then requeued.
/// </para>
/// <para>
/// <see cref="RunStepAsync"/> is one boundary and one step of one worker; the hosted loop calls it repeatedly, and
/// tests call it directly to drive the scheduler deterministically.
/// </para>
/// </remarks>
public sealed class FairShareScheduler : BackgroundService, IJobControl
{
    /// <summary>A cancellation request for a job no worker has is forgotten after this long.</summary>
    private static readonly TimeSpan CancelRequestLifetime = TimeSpan.FromMinutes(10);

    private readonly ISchedulerStore _store;
    private readonly IProgressNotifier _notifier;
    private readonly UsageAccounting _usage;
    private readonly SchedulingPolicyCache _policy;
    private readonly TimeProvider _clock;
    private readonly SchedulerOptions _options;
    private readonly ILogger<FairShareScheduler> _logger;
    private readonly SchedulerWorker[] _workers;
    private readonly SemaphoreSlim _claimGate = new(1, 1);
    private readonly ConcurrentDictionary<Guid, DateTimeOffset> _cancelRequests = new();
    private readonly SchedulerMetrics? _metrics;
    private int _initialised;
    private volatile int _queueLength;
    private long _queueReadAtTicks = DateTimeOffset.MinValue.UtcTicks;

    /// <summary>While a worker runs, the queue is read at least this often (for the queue-length gauge and the admin
    /// pages), even when no slot is free.</summary>
    private static readonly TimeSpan QueueLengthRefresh = TimeSpan.FromSeconds(1);

    public FairShareScheduler(
        ISchedulerStore store,
        IGenerationEngineFactory engines,
        IProgressNotifier notifier,
        UsageAccounting usage,
        SchedulingPolicyCache policy,
        TimeProvider clock,
        IOptions<SchedulerOptions> options,
        ILogger<FairShareScheduler> logger,
        SchedulerMetrics? metrics = null)
    {
        _store = store;
        _notifier = notifier;
        _usage = usage;
        _policy = policy;
        _clock = clock;
        _options = options.Value;
        _logger = logger;
        _metrics = metrics;
        var node = string.IsNullOrWhiteSpace(_options.NodeName) ? Environment.MachineName : _options.NodeName.Trim();
        var devices = _options.EffectiveDevices();
        var ids = new HashSet<string>(StringComparer.Ordinal);
        _workers = devices.Select((device, i) =>
        {
            var id = $"{node}/{device.Name}";
            if (!ids.Add(id)) ids.Add(id = $"{id}#{i}");
            return new SchedulerWorker(id, device, engines.Create(device), new ActivityWindow(_options.ActivityWindow, clock.GetUtcNow()));
        }).ToArray();
        _metrics?.Observe(() => _queueLength,
            () => _workers.Select(w => (w.Id, w.Snapshot.Length, w.Activity.Read(_clock.GetUtcNow()).BusyFraction)));
    }

    /// <summary>The ids of this node's workers (<c>node/device</c>), as recorded in claims.</summary>
    public IReadOnlyList<string> WorkerIds => _workers.Select(w => w.Id).ToArray();

    /// <summary>The jobs running now on every worker (a snapshot taken at each worker's last step boundary).</summary>
    public IReadOnlyList<RunningJobInfo> RunningJobs() => _workers.SelectMany(w => w.Snapshot).ToArray();

    /// <summary>Each worker's device, batch size, steps taken so far, and its busy fraction and step throughput over
    /// the last <see cref="SchedulerOptions.ActivityWindow"/>.</summary>
    public IReadOnlyList<WorkerInfo> Workers()
    {
        var now = _clock.GetUtcNow();
        return _workers.Select(w =>
        {
            var rates = w.Activity.Read(now);
            return new WorkerInfo(w.Id, w.Device.Device, w.MaxBatch, w.Snapshot.Length, Interlocked.Read(ref w.StepsTaken),
                Interlocked.Read(ref w.JobStepsTaken))
            {
                BusyFraction = rates.BusyFraction,
                JobStepsPerSecond = rates.JobStepsPerSecond,
                Window = w.Activity.Window,
            };
        }).ToArray();
    }

    /// <summary>How many jobs were waiting when the scheduler last read the queue.</summary>
    public int QueueLength => _queueLength;

    internal IReadOnlyList<SchedulerWorker> WorkerList => _workers;

    public void JobQueued() => WakeAll();

    /// <summary>Stops a running job at its next step boundary; ignored when no worker has it (and it is not claimed
    /// within a few minutes).</summary>
    public void CancelRunning(Guid jobId)
    {
        _cancelRequests[jobId] = _clock.GetUtcNow();
        WakeAll();
    }

    /// <summary>
    /// Cancels a job: a queued one at once (true), a running one at its next step boundary (false: the store says
    /// Cancelled once the worker has stopped it).
    /// </summary>
    public async Task<bool> CancelAsync(Guid jobId, CancellationToken cancellationToken)
    {
        var owner = await _store.CancelQueuedAsync(jobId, cancellationToken);
        if (owner is not null)
        {
            await _notifier.StateChangedAsync(owner, new JobStateChange(jobId, JobStatus.Cancelled, 0, null, null, null));
            return true;
        }
        CancelRunning(jobId);
        return false;
    }

    /// <summary>The waiting jobs, best first, with their owner's factor and priority (for the admin queue page).</summary>
    public async Task<IReadOnlyList<RankedJob>> RankQueueAsync(CancellationToken cancellationToken)
    {
        var queue = await ReadQueueAsync(cancellationToken);
        var policy = await _policy.GetAsync(cancellationToken);
        var now = _clock.GetUtcNow();
        return FairShareCalculator.Rank(queue.Waiting, Factors(policy, queue, now), now, _options);
    }

    /// <summary>Every active user's fair-share standing now.</summary>
    public async Task<IReadOnlyDictionary<string, UserFairShare>> FairSharesAsync(CancellationToken cancellationToken)
    {
        var queue = await ReadQueueAsync(cancellationToken);
        var policy = await _policy.GetAsync(cancellationToken);
        return Factors(policy, queue, _clock.GetUtcNow());
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        try
        {
            await InitializeAsync(stoppingToken);
            await Task.WhenAll(_workers.Select(w => Task.Run(() => LoopAsync(w, stoppingToken), CancellationToken.None)));
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
        await DrainAsync();
    }

    /// <summary>Recovers jobs this node left running and reads usage back from the store. Runs once.</summary>
    internal async Task InitializeAsync(CancellationToken ct)
    {
        if (Interlocked.Exchange(ref _initialised, 1) == 1) return;
        int recovered = await _store.RecoverInterruptedAsync(WorkerIds, ct);
        if (recovered > 0) _logger.LogInformation("Put {Count} interrupted job(s) back in the queue", recovered);
        var now = _clock.GetUtcNow();
        // Twenty half-lives leave under a millionth of a charge; the day's records are needed for the daily quota.
        var since = UsageAccounting.StartOfDay(now);
        var decayHorizon = now - 20 * _usage.HalfLife;
        if (decayHorizon < since) since = decayHorizon;
        if (!_usage.IsSeeded) _usage.Seed(await _store.GetUsageSinceAsync(since, ct));
    }

    private async Task LoopAsync(SchedulerWorker worker, CancellationToken ct)
    {
        while (!ct.IsCancellationRequested)
        {
            var wake = worker.TakeWake();
            try
            {
                // A boundary and step, once begun, run to the end even when the host stops meanwhile: stopping halfway
                // could drop a finished job's result. The stop is noticed between steps, then DrainAsync checkpoints.
                if (!await RunStepAsync(worker, CancellationToken.None))
                    await Task.WhenAny(wake, Task.Delay(_options.PollInterval, _clock, ct));
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e)
            {
                // A store or notifier fault must not stop the host; try again after a pause.
                _logger.LogError(e, "Worker {Worker} failed at a step boundary; retrying", worker.Id);
                try { await Task.Delay(_options.PollInterval, _clock, ct); }
                catch (OperationCanceledException) { return; }
            }
        }
    }

    /// <summary>One step boundary and one engine step of worker <paramref name="workerIndex"/>. False when the worker
    /// had nothing to run.</summary>
    internal Task<bool> RunStepAsync(int workerIndex, CancellationToken ct) => RunStepAsync(_workers[workerIndex], ct);

    private async Task<QueueSnapshot> ReadQueueAsync(CancellationToken ct)
    {
        var queue = await _store.GetQueueAsync(ct);
        _queueLength = queue.Waiting.Count;
        Interlocked.Exchange(ref _queueReadAtTicks, _clock.GetUtcNow().UtcTicks);
        return queue;
    }

    private async Task<bool> RunStepAsync(SchedulerWorker worker, CancellationToken ct)
    {
        await AdmitAsync(worker, ct);
        // A full worker does not read the queue to admit; keep the queue length current for the gauge anyway.
        if (_metrics is not null && _clock.GetUtcNow().UtcTicks - Interlocked.Read(ref _queueReadAtTicks) >= QueueLengthRefresh.Ticks)
            await ReadQueueAsync(ct);
        ApplyCancellations(worker);
        await PauseOverQuotaAsync(worker, ct);
        // Jobs requeued from this worker stay in its engine until a step hands them back as cancelled; step for that
        // even with nothing else to run, so they can be admitted again (here or elsewhere) without a clash.
        if (worker.Running.Count == 0 && worker.Engine.ActiveCount == 0) worker.Dropping.Clear();
        if (worker.Running.Count == 0 && worker.Dropping.Count == 0)
        {
            worker.PublishSnapshot();
            return false;
        }

        var batch = worker.Running.Keys.ToList();
        long started = _clock.GetTimestamp();
        EngineStep step;
        try
        {
            step = await Task.Run(worker.Engine.Step, CancellationToken.None);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            // The engine is expected to fail jobs rather than throw; if it throws anyway, fail what it was running so
            // nobody waits for them, and let it drop them.
            _logger.LogError(e, "The engine step of worker {Worker} failed", worker.Id);
            foreach (var id in batch) worker.Engine.Cancel(id);
            step = new EngineStep(Array.Empty<StepEvent>(),
                batch.Select(id => FinishedJob.Failure(id, "The generation engine failed: " + e.Message)).ToList());
        }
        var elapsed = _clock.GetElapsedTime(started);
        Interlocked.Increment(ref worker.StepsTaken);
        Interlocked.Add(ref worker.JobStepsTaken, step.Steps.Count);
        worker.Activity.Record(_clock.GetUtcNow(), elapsed, step.Steps.Count);
        _metrics?.JobStepsTaken(worker.Id, step.Steps.Count);

        Charge(worker, batch, step, elapsed);
        await PublishStepsAsync(worker, step, ct);
        await FinishAsync(worker, step, ct);
        await CheckpointDueAsync(worker, ct);
        worker.PublishSnapshot();
        return true;
    }

    private async Task AdmitAsync(SchedulerWorker worker, CancellationToken ct)
    {
        if (worker.Running.Count >= worker.MaxBatch) return;
        // One admission at a time in this process, so that two workers do not both pick the same user past a quota.
        await _claimGate.WaitAsync(ct);
        try
        {
            var queue = await ReadQueueAsync(ct);
            if (queue.Waiting.Count == 0) return;
            var policy = await _policy.GetAsync(ct);
            var now = _clock.GetUtcNow();
            var ranked = FairShareCalculator.Rank(queue.Waiting, Factors(policy, queue, now), now, _options);
            var running = new Dictionary<string, int>(queue.RunningByOwner, StringComparer.Ordinal);
            foreach (var candidate in ranked)
            {
                if (worker.Running.Count >= worker.MaxBatch) break;
                var owner = candidate.Job.OwnerId;
                var quotas = policy.QuotasOf(owner);
                if (quotas.MaxRunning is { } maxRunning && running.GetValueOrDefault(owner) >= maxRunning) continue;
                if (quotas.DeviceSecondsPerDay is { } cap && _usage.UsedToday(owner, now) >= cap) continue;
                if (worker.Dropping.Contains(candidate.Job.Id)) continue; // still being dropped by this engine
                var claimed = await _store.ClaimAsync([candidate.Job.Id], worker.Id, ct);
                if (claimed.Count == 0) continue; // taken by another worker, cancelled or deleted meanwhile
                var job = claimed[0];
                worker.Running[job.Job.Id] = new RunningJob(job.OwnerId, policy.TeamOf(job.OwnerId), job.Job.Steps, job.ResumeStep, now);
                worker.Engine.Admit(job.Job);
                if (job.FirstStart) _metrics?.JobStarted(now - candidate.Job.EnqueuedAt);
                running[owner] = running.GetValueOrDefault(owner) + 1;
                _logger.LogDebug("Worker {Worker} admitted job {JobId} of {Owner} (priority {Priority:F2}, factor {Factor:F3})",
                    worker.Id, job.Job.Id, owner, candidate.Priority, candidate.Factor);
                await _notifier.StateChangedAsync(job.OwnerId, new JobStateChange(job.Job.Id, JobStatus.Running, job.ResumeStep, null, null, null));
            }
        }
        finally
        {
            _claimGate.Release();
        }
    }

    private IReadOnlyDictionary<string, UserFairShare> Factors(SchedulingPolicy policy, QueueSnapshot queue, DateTimeOffset now)
    {
        var withJobs = queue.Waiting.Select(j => j.OwnerId).Concat(queue.RunningByOwner.Where(p => p.Value > 0).Select(p => p.Key));
        return FairShareCalculator.Factors(policy, _usage.UserUsages(now), _usage.TeamUsages(now), withJobs);
    }

    private void ApplyCancellations(SchedulerWorker worker)
    {
        var now = _clock.GetUtcNow();
        foreach (var (id, requestedAt) in _cancelRequests)
        {
            if (worker.Running.TryGetValue(id, out var job))
            {
                if (!job.CancelRequested)
                {
                    job.CancelRequested = true;
                    worker.Engine.Cancel(id);
                }
            }
            else if (now - requestedAt > CancelRequestLifetime && !_workers.Any(w => w.Snapshot.Any(r => r.JobId == id)))
            {
                _cancelRequests.TryRemove(id, out _);
            }
        }
    }

    /// <summary>Running jobs whose owner has used the day's device-seconds are checkpointed and put back in the
    /// queue; they are admitted again after the reset.</summary>
    private async Task PauseOverQuotaAsync(SchedulerWorker worker, CancellationToken ct)
    {
        if (worker.Running.Count == 0) return;
        var policy = await _policy.GetAsync(ct);
        var now = _clock.GetUtcNow();
        foreach (var (id, job) in worker.Running.ToList())
        {
            if (job.CancelRequested) continue;
            if (policy.QuotasOf(job.OwnerId).DeviceSecondsPerDay is not { } cap || _usage.UsedToday(job.OwnerId, now) < cap) continue;
            _logger.LogInformation("Job {JobId} paused: its owner reached the daily device-seconds quota", id);
            await RequeueAsync(worker, id, job, ct);
        }
    }

    private void Charge(SchedulerWorker worker, IReadOnlyList<Guid> batch, EngineStep step, TimeSpan elapsed)
    {
        // Jobs that took the step share its cost; when none did (all cancelled or failed), the jobs in the batch do.
        var stepped = step.Steps.Select(s => s.JobId).Where(worker.Running.ContainsKey).Distinct().ToList();
        var charged = stepped.Count > 0 ? stepped : batch.Where(worker.Running.ContainsKey).ToList();
        if (charged.Count == 0 || elapsed <= TimeSpan.Zero) return;
        double each = elapsed.TotalSeconds / charged.Count;
        var now = _clock.GetUtcNow();
        foreach (var id in charged)
        {
            var job = worker.Running[id];
            job.PendingSeconds += each;
            job.ChargedSeconds += each;
            _usage.Charge(job.OwnerId, job.TeamKey, each, now);
            _metrics?.Charged(job.OwnerId, job.TeamKey, each);
        }
    }

    private async Task PublishStepsAsync(SchedulerWorker worker, EngineStep step, CancellationToken ct)
    {
        foreach (var e in step.Steps)
        {
            if (!worker.Running.TryGetValue(e.JobId, out var job)) continue;
            job.StepsDone = e.Step;
            job.Similarity = e.Similarity;
            await _notifier.StepAsync(job.OwnerId, e);
        }
        var now = _clock.GetUtcNow();
        var finished = step.Finished.Select(f => f.JobId).ToHashSet();
        var ongoing = worker.Running.Where(p => !finished.Contains(p.Key)).ToList();
        if (now - worker.LastUsageWrite >= _options.UsageWriteInterval)
        {
            worker.LastUsageWrite = now;
            await FlushUsageAsync(ongoing, ct);
        }
        if (now - worker.LastWrite < _options.ProgressWriteInterval) return;
        worker.LastWrite = now;
        foreach (var (id, job) in ongoing)
            if (job.Similarity is { } similarity) await _store.RecordProgressAsync(id, job.StepsDone, similarity, ct);
    }

    private async Task FinishAsync(SchedulerWorker worker, EngineStep step, CancellationToken ct)
    {
        foreach (var finished in step.Finished)
        {
            // A job already given up (requeued, or failed after an engine fault) may still come back: ignore it.
            if (!worker.Running.Remove(finished.JobId, out var job))
            {
                worker.Dropping.Remove(finished.JobId);
                continue;
            }
            _cancelRequests.TryRemove(finished.JobId, out _);
            await FlushUsageAsync([new(finished.JobId, job)], ct);
            Guid? imageId = null;
            var result = finished;
            try
            {
                imageId = await _store.CompleteAsync(finished, ct);
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                _logger.LogError(e, "Storing the result of job {JobId} failed", finished.JobId);
                result = FinishedJob.Failure(finished.JobId, "The result could not be stored: " + e.Message);
                await _store.CompleteAsync(result, ct);
            }
            if (result.Status == FinishStatus.Failed)
                _logger.LogWarning("Job {JobId} failed: {Error}", result.JobId, result.Error);
            _metrics?.JobEnded(_clock.GetUtcNow() - job.AdmittedAt, ToStatus(result.Status));
            await _notifier.StateChangedAsync(job.OwnerId, new JobStateChange(result.JobId, ToStatus(result.Status), result.StepsRun,
                double.IsNaN(result.Similarity) ? null : result.Similarity, imageId, result.Error));
        }
    }

    private async Task CheckpointDueAsync(SchedulerWorker worker, CancellationToken ct)
    {
        if (_options.CheckpointEvery <= 0) return;
        foreach (var (id, job) in worker.Running)
        {
            if (job.CancelRequested || job.StepsDone - job.CheckpointStep < _options.CheckpointEvery) continue;
            byte[]? state;
            try
            {
                state = worker.Engine.Checkpoint(id);
            }
            catch (Exception e)
            {
                _logger.LogWarning(e, "Job {JobId} could not be checkpointed", id);
                state = null;
            }
            job.CheckpointStep = job.StepsDone; // also when the engine cannot checkpoint: do not ask at every step
            if (state is null) continue;
            await FlushUsageAsync([new(id, job)], ct);
            await _store.SaveCheckpointAsync(id, job.StepsDone, state, ct);
        }
    }

    /// <summary>Checkpoints every running job and puts it back in the queue (graceful stop).</summary>
    internal async Task DrainAsync()
    {
        foreach (var worker in _workers)
        {
            foreach (var (id, job) in worker.Running.ToList())
            {
                try
                {
                    await RequeueAsync(worker, id, job, CancellationToken.None);
                }
                catch (Exception e)
                {
                    // Left running in the store: the next start recovers it from its last stored checkpoint.
                    _logger.LogError(e, "Job {JobId} could not be requeued on stop", id);
                }
            }
            worker.PublishSnapshot();
        }
    }

    private async Task RequeueAsync(SchedulerWorker worker, Guid id, RunningJob job, CancellationToken ct)
    {
        byte[]? state = null;
        try
        {
            state = worker.Engine.Checkpoint(id);
        }
        catch (Exception e)
        {
            _logger.LogWarning(e, "Job {JobId} could not be checkpointed; it will go on from its last stored checkpoint", id);
        }
        await FlushUsageAsync([new(id, job)], ct);
        await _store.RequeueAsync(id, job.StepsDone, state, ct);
        worker.Running.Remove(id);
        worker.Engine.Cancel(id); // the engine drops it at its next step; the worker ignores what comes back
        worker.Dropping.Add(id);
        int resumesAt = state is null ? job.CheckpointStep : job.StepsDone;
        await _notifier.StateChangedAsync(job.OwnerId, new JobStateChange(id, JobStatus.Queued, resumesAt, job.Similarity, null, null));
    }

    private async Task FlushUsageAsync(IReadOnlyList<KeyValuePair<Guid, RunningJob>> jobs, CancellationToken ct)
    {
        var now = _clock.GetUtcNow();
        var charges = jobs.Where(p => p.Value.PendingSeconds > 0)
            .Select(p => new UsageCharge(p.Key, p.Value.OwnerId, p.Value.TeamKey, now, p.Value.PendingSeconds)).ToList();
        if (charges.Count == 0) return;
        await _store.RecordUsageAsync(charges, ct);
        foreach (var (_, job) in jobs) job.PendingSeconds = 0;
    }

    private void WakeAll()
    {
        foreach (var worker in _workers) worker.Wake();
    }

    private static JobStatus ToStatus(FinishStatus status) => status switch
    {
        FinishStatus.Completed => JobStatus.Completed,
        FinishStatus.Cancelled => JobStatus.Cancelled,
        _ => JobStatus.Failed,
    };
}

/// <summary>A running job as the admin pages see it.</summary>
public sealed record RunningJobInfo(Guid JobId, string OwnerId, string TeamKey, string WorkerId, int StepsDone, int TotalSteps, double ChargedSeconds);

/// <summary>A worker: its device, batch size, jobs running, engine steps and job-steps taken since start, and its busy
/// fraction (0 to 1) and job-steps per second over the last <see cref="Window"/>.</summary>
public sealed record WorkerInfo(string Id, string? Device, int MaxBatch, int Running, long Steps, long JobSteps)
{
    public double BusyFraction { get; init; }
    public double JobStepsPerSecond { get; init; }
    public TimeSpan Window { get; init; }
}

/// <summary>One device's loop state. Touched only by its own loop, apart from <see cref="Snapshot"/> and the wake signal.</summary>
internal sealed class SchedulerWorker(string id, SchedulerDevice device, IGenerationEngine engine, ActivityWindow activity)
{
    private TaskCompletionSource _wake = NewWake();

    public string Id { get; } = id;
    public SchedulerDevice Device { get; } = device;
    public IGenerationEngine Engine { get; } = engine;
    public ActivityWindow Activity { get; } = activity;
    public int MaxBatch { get; } = Math.Max(1, device.MaxBatch);
    public Dictionary<Guid, RunningJob> Running { get; } = new();
    /// <summary>Jobs given up (requeued) that the engine has not yet handed back.</summary>
    public HashSet<Guid> Dropping { get; } = new();
    public DateTimeOffset LastWrite { get; set; } = DateTimeOffset.MinValue;
    public DateTimeOffset LastUsageWrite { get; set; } = DateTimeOffset.MinValue;
    public long StepsTaken;
    public long JobStepsTaken;
    public volatile RunningJobInfo[] Snapshot = [];

    public Task TakeWake() => Interlocked.Exchange(ref _wake, NewWake()).Task;

    public void Wake() => _wake.TrySetResult();

    public void PublishSnapshot() =>
        Snapshot = Running.Select(p => new RunningJobInfo(p.Key, p.Value.OwnerId, p.Value.TeamKey, Id, p.Value.StepsDone,
            p.Value.TotalSteps, p.Value.ChargedSeconds)).ToArray();

    private static TaskCompletionSource NewWake() => new(TaskCreationOptions.RunContinuationsAsynchronously);
}

/// <summary>What a worker keeps about a job it runs.</summary>
internal sealed class RunningJob(string ownerId, string teamKey, int totalSteps, int resumeStep, DateTimeOffset admittedAt)
{
    public DateTimeOffset AdmittedAt { get; } = admittedAt;
    public string OwnerId { get; } = ownerId;
    public string TeamKey { get; } = teamKey;
    public int TotalSteps { get; } = totalSteps;
    public int StepsDone { get; set; } = resumeStep;
    public int CheckpointStep { get; set; } = resumeStep;
    public double? Similarity { get; set; }
    public bool CancelRequested { get; set; }
    /// <summary>Charged and not yet written to the store.</summary>
    public double PendingSeconds { get; set; }
    /// <summary>Charged by this worker since it admitted the job.</summary>
    public double ChargedSeconds { get; set; }
}
