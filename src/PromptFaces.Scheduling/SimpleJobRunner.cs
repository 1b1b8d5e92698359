using System.Collections.Concurrent;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace PromptFaces.Scheduling;

/// <summary>
/// The first scheduler: takes queued jobs first in, first out, runs up to <see cref="RunnerOptions.MaxBatch"/> of them
/// together through one engine, and reports every step and state change. One runner owns the engine, so engine calls
/// never overlap; the fair-share scheduler that replaces it keeps the same seams.
/// </summary>
/// <remarks>
/// The engine's step is CPU- or GPU-bound and synchronous, so it runs on a thread-pool thread; the rest of the loop
/// (store, notifier) is asynchronous. When the host stops, running jobs are checkpointed and put back in the queue.
/// </remarks>
public sealed class SimpleJobRunner(
    IGenerationEngine engine,
    IJobStore store,
    IProgressNotifier notifier,
    TimeProvider clock,
    IOptions<RunnerOptions> options,
    ILogger<SimpleJobRunner> logger) : BackgroundService, IJobControl
{
    private readonly RunnerOptions _options = options.Value;
    private readonly Dictionary<Guid, RunningJob> _running = new();
    private readonly ConcurrentQueue<Guid> _cancelRequests = new();
    private readonly ConcurrentDictionary<Guid, byte> _cancelBeforeStart = new();
    private TaskCompletionSource _wake = NewWake();

    public void JobQueued() => _wake.TrySetResult();

    public void CancelRunning(Guid jobId)
    {
        _cancelRequests.Enqueue(jobId);
        _wake.TrySetResult();
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var requeued = await store.RequeueInterruptedAsync(stoppingToken);
        if (requeued > 0) logger.LogInformation("Put {Count} interrupted job(s) back in the queue", requeued);
        try
        {
            while (!stoppingToken.IsCancellationRequested)
            {
                try
                {
                    await RunOnceAsync(stoppingToken);
                }
                catch (Exception e) when (e is not OperationCanceledException)
                {
                    // A store or notifier fault must not stop the host; try again after a pause.
                    logger.LogError(e, "The job runner's loop failed; retrying");
                    await Task.Delay(_options.PollInterval, clock, stoppingToken);
                }
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
        await RequeueRunningAsync();
    }

    private async Task RunOnceAsync(CancellationToken ct)
    {
        var wake = Interlocked.Exchange(ref _wake, NewWake()).Task;
        await AdmitQueuedAsync(ct);
        ApplyCancellations();
        if (engine.ActiveCount == 0)
        {
            // Idle: sleep until a job is queued or the poll interval passes.
            await Task.WhenAny(wake, Task.Delay(_options.PollInterval, clock, ct));
            return;
        }
        EngineStep step;
        try
        {
            step = await Task.Run(engine.Step, CancellationToken.None);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            // The engine is expected to fail jobs rather than throw; if it throws anyway, fail what it was running so
            // nobody waits for them, and let it drop them.
            logger.LogError(e, "The engine step failed");
            var failed = _running.Keys.Select(id => FinishedJob.Failure(id, "The generation engine failed: " + e.Message)).ToList();
            foreach (var id in _running.Keys) engine.Cancel(id);
            step = new EngineStep(Array.Empty<StepEvent>(), failed);
        }
        await PublishAsync(step, ct);
    }

    private async Task AdmitQueuedAsync(CancellationToken ct)
    {
        int free = _options.MaxBatch - _running.Count;
        if (free <= 0) return;
        foreach (var claimed in await store.ClaimNextAsync(free, ct))
        {
            var job = claimed.Job;
            _running[job.Id] = new RunningJob(claimed.OwnerId, job.Steps);
            engine.Admit(job);
            if (_cancelBeforeStart.TryRemove(job.Id, out _)) engine.Cancel(job.Id);
            await notifier.StateChangedAsync(claimed.OwnerId, new JobStateChange(job.Id, JobStatus.Running, 0, null, null, null));
        }
    }

    private void ApplyCancellations()
    {
        while (_cancelRequests.TryDequeue(out var id))
        {
            if (_running.ContainsKey(id)) engine.Cancel(id);
            else _cancelBeforeStart[id] = 0; // claimed by the store but not admitted yet: cancel on admission
        }
    }

    private async Task PublishAsync(EngineStep step, CancellationToken ct)
    {
        var now = clock.GetUtcNow();
        foreach (var e in step.Steps)
        {
            if (!_running.TryGetValue(e.JobId, out var job)) continue;
            job.StepsDone = e.Step;
            job.Similarity = e.Similarity;
            await notifier.StepAsync(job.OwnerId, e);
            if (now - job.LastWrite >= _options.ProgressWriteInterval)
            {
                job.LastWrite = now;
                await store.RecordProgressAsync(e.JobId, e.Step, e.Similarity, ct);
            }
        }
        foreach (var finished in step.Finished)
        {
            // A job already given up (see the engine failure above) may still come back from the engine: ignore it.
            if (!_running.Remove(finished.JobId, out var job)) continue;
            var owner = job.OwnerId;
            Guid? imageId = null;
            var result = finished;
            try
            {
                imageId = await store.CompleteAsync(finished, ct);
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                logger.LogError(e, "Storing the result of job {JobId} failed", finished.JobId);
                result = FinishedJob.Failure(finished.JobId, "The result could not be stored: " + e.Message);
                await store.CompleteAsync(result, ct);
            }
            if (result.Status == FinishStatus.Failed)
                logger.LogWarning("Job {JobId} failed: {Error}", result.JobId, result.Error);
            await notifier.StateChangedAsync(owner, new JobStateChange(result.JobId, ToStatus(result.Status), result.StepsRun,
                    double.IsNaN(result.Similarity) ? null : result.Similarity, imageId, result.Error));
        }
    }

    private async Task RequeueRunningAsync()
    {
        foreach (var (id, job) in _running)
        {
            byte[]? state = null;
            try
            {
                state = engine.Checkpoint(id);
            }
            catch (Exception e)
            {
                logger.LogWarning(e, "Job {JobId} could not be checkpointed; it will start again from the beginning", id);
            }
            await store.RequeueAsync(id, state, CancellationToken.None);
            await notifier.StateChangedAsync(job.OwnerId, new JobStateChange(id, JobStatus.Queued, job.StepsDone, job.Similarity, null, null));
        }
        _running.Clear();
    }

    private static JobStatus ToStatus(FinishStatus status) => status switch
    {
        FinishStatus.Completed => JobStatus.Completed,
        FinishStatus.Cancelled => JobStatus.Cancelled,
        _ => JobStatus.Failed,
    };

    private static TaskCompletionSource NewWake() => new(TaskCreationOptions.RunContinuationsAsynchronously);

    private sealed class RunningJob(string ownerId, int totalSteps)
    {
        public string OwnerId { get; } = ownerId;
        public int TotalSteps { get; } = totalSteps;
        public int StepsDone { get; set; }
        public double? Similarity { get; set; }
        public DateTimeOffset LastWrite { get; set; } = DateTimeOffset.MinValue;
    }
}
