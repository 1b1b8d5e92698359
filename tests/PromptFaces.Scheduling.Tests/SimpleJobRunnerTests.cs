using System.Collections.Concurrent;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Xunit;

namespace PromptFaces.Scheduling.Tests;

/// <summary>The simple runner against in-memory fakes of its four seams: order, batch size, cancellation, stop, faults.</summary>
public sealed class SimpleJobRunnerTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    /// <summary>Jobs advance one step per engine step and finish after their step count; records batch sizes.</summary>
    private sealed class CountingEngine : IGenerationEngine
    {
        private readonly ConcurrentDictionary<Guid, (GenerationJob Job, int Step)> _jobs = new();
        private readonly ConcurrentDictionary<Guid, byte> _cancelled = new();
        public ConcurrentQueue<Guid> AdmissionOrder { get; } = new();
        public ConcurrentQueue<int> BatchSizes { get; } = new();
        public Func<bool> Advance { get; set; } = () => true;
        public bool ThrowOnStep { get; set; }

        public int ActiveCount => _jobs.Count;

        public void Admit(GenerationJob job)
        {
            AdmissionOrder.Enqueue(job.Id);
            _jobs[job.Id] = (job, 0);
        }

        public void Cancel(Guid jobId) => _cancelled[jobId] = 0;

        public byte[]? Checkpoint(Guid jobId) => _jobs.TryGetValue(jobId, out var j) ? [(byte)j.Step] : null;

        public EngineStep Step()
        {
            Thread.Sleep(1);
            if (ThrowOnStep) throw new InvalidOperationException("device lost");
            BatchSizes.Enqueue(_jobs.Count);
            var steps = new List<StepEvent>();
            var finished = new List<FinishedJob>();
            foreach (var (id, (job, step)) in _jobs)
            {
                if (_cancelled.TryRemove(id, out _))
                {
                    _jobs.TryRemove(id, out _);
                    finished.Add(new FinishedJob(id, FinishStatus.Cancelled, step, 0, null, null, null, []));
                    continue;
                }
                if (!Advance()) continue;
                _jobs[id] = (job, step + 1);
                steps.Add(new StepEvent(id, step + 1, job.Steps, 0.5, null));
                if (step + 1 == job.Steps)
                {
                    _jobs.TryRemove(id, out _);
                    finished.Add(new FinishedJob(id, FinishStatus.Completed, job.Steps, 0.5, [1], null, null, []));
                }
            }
            return new EngineStep(steps, finished);
        }
    }

    private sealed class MemoryStore : IJobStore
    {
        private readonly Lock _gate = new();
        public List<(GenerationJob Job, string Owner, JobStatus Status)> Jobs { get; } = new();
        public ConcurrentDictionary<Guid, FinishedJob> Completed { get; } = new();
        public ConcurrentDictionary<Guid, byte[]?> Requeued { get; } = new();

        public Guid Add(string owner, int steps = 3)
        {
            var job = new GenerationJob(Guid.NewGuid(), "a face", null, 1, steps, 0.7, 0.05, 8, 1);
            lock (_gate) Jobs.Add((job, owner, JobStatus.Queued));
            return job.Id;
        }

        public JobStatus StatusOf(Guid id)
        {
            lock (_gate) return Jobs.Single(j => j.Job.Id == id).Status;
        }

        public Task<IReadOnlyList<ClaimedJob>> ClaimNextAsync(int max, CancellationToken cancellationToken)
        {
            lock (_gate)
            {
                var claimed = new List<ClaimedJob>();
                for (int i = 0; i < Jobs.Count && claimed.Count < max; i++)
                {
                    if (Jobs[i].Status != JobStatus.Queued) continue;
                    Jobs[i] = Jobs[i] with { Status = JobStatus.Running };
                    claimed.Add(new ClaimedJob(Jobs[i].Job, Jobs[i].Owner));
                }
                return Task.FromResult<IReadOnlyList<ClaimedJob>>(claimed);
            }
        }

        public Task RecordProgressAsync(Guid jobId, int stepsDone, double similarity, CancellationToken cancellationToken) => Task.CompletedTask;

        public Task<Guid?> CompleteAsync(FinishedJob result, CancellationToken cancellationToken)
        {
            Set(result.JobId, result.Status switch
            {
                FinishStatus.Completed => JobStatus.Completed,
                FinishStatus.Cancelled => JobStatus.Cancelled,
                _ => JobStatus.Failed,
            });
            Completed[result.JobId] = result;
            return Task.FromResult<Guid?>(result.Png is null ? null : Guid.NewGuid());
        }

        public Task RequeueAsync(Guid jobId, byte[]? resumeState, CancellationToken cancellationToken)
        {
            Requeued[jobId] = resumeState;
            Set(jobId, JobStatus.Queued);
            return Task.CompletedTask;
        }

        public Task<int> RequeueInterruptedAsync(CancellationToken cancellationToken) => Task.FromResult(0);

        private void Set(Guid id, JobStatus status)
        {
            lock (_gate)
            {
                int i = Jobs.FindIndex(j => j.Job.Id == id);
                Jobs[i] = Jobs[i] with { Status = status };
            }
        }
    }

    private sealed class RecordingNotifier : IProgressNotifier
    {
        public ConcurrentQueue<(string Owner, StepEvent Step)> Steps { get; } = new();
        public ConcurrentQueue<(string Owner, JobStateChange Change)> States { get; } = new();

        public ValueTask StepAsync(string ownerId, StepEvent step)
        {
            Steps.Enqueue((ownerId, step));
            return ValueTask.CompletedTask;
        }

        public ValueTask StateChangedAsync(string ownerId, JobStateChange change)
        {
            States.Enqueue((ownerId, change));
            return ValueTask.CompletedTask;
        }
    }

    private static SimpleJobRunner Runner(IGenerationEngine engine, IJobStore store, IProgressNotifier notifier, int maxBatch) =>
        new(engine, store, notifier, TimeProvider.System,
            Options.Create(new RunnerOptions { MaxBatch = maxBatch, PollInterval = TimeSpan.FromMilliseconds(20) }),
            NullLogger<SimpleJobRunner>.Instance);

    private static async Task Until(Func<bool> condition, string what)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        while (!condition())
        {
            try { await Task.Delay(5, timeout.Token); }
            catch (OperationCanceledException) { Assert.Fail("Gave up waiting: " + what); }
        }
    }

    [Fact]
    public async Task Jobs_run_first_in_first_out_in_batches_of_at_most_the_limit()
    {
        var engine = new CountingEngine();
        var store = new MemoryStore();
        var notifier = new RecordingNotifier();
        var ids = Enumerable.Range(0, 5).Select(i => store.Add($"user{i % 2}")).ToList();
        using var runner = Runner(engine, store, notifier, maxBatch: 2);

        await runner.StartAsync(Ct);
        await Until(() => ids.All(id => store.Completed.ContainsKey(id)), "all five jobs to finish");
        await runner.StopAsync(Ct);

        Assert.Equal(ids, engine.AdmissionOrder);
        Assert.All(engine.BatchSizes, size => Assert.InRange(size, 1, 2));
        Assert.Contains(2, engine.BatchSizes);
        Assert.All(ids, id => Assert.Equal(JobStatus.Completed, store.StatusOf(id)));
        // Every step and state change went to the job's own owner.
        Assert.All(notifier.Steps, s => Assert.Equal(store.Jobs.Single(j => j.Job.Id == s.Step.JobId).Owner, s.Owner));
        Assert.Equal(5 * 3, notifier.Steps.Count);
        Assert.All(ids, id => Assert.Contains(notifier.States, s => s.Change.JobId == id && s.Change.Status == JobStatus.Completed && s.Change.ImageId is not null));
    }

    [Fact]
    public async Task A_cancelled_job_ends_as_cancelled_and_the_others_go_on()
    {
        var engine = new CountingEngine();
        var store = new MemoryStore();
        var notifier = new RecordingNotifier();
        var slow = store.Add("a", steps: 1_000_000);
        var quick = store.Add("b", steps: 3);
        using var runner = Runner(engine, store, notifier, maxBatch: 2);

        await runner.StartAsync(Ct);
        await Until(() => store.Completed.ContainsKey(quick), "the quick job");
        runner.CancelRunning(slow);
        await Until(() => store.Completed.ContainsKey(slow), "the cancelled job");
        await runner.StopAsync(Ct);

        Assert.Equal(JobStatus.Cancelled, store.StatusOf(slow));
        Assert.Equal(JobStatus.Completed, store.StatusOf(quick));
    }

    [Fact]
    public async Task Stopping_the_host_puts_running_jobs_back_in_the_queue_with_their_checkpoint()
    {
        var engine = new CountingEngine();
        var store = new MemoryStore();
        var notifier = new RecordingNotifier();
        var job = store.Add("a", steps: 1_000_000);
        using var runner = Runner(engine, store, notifier, maxBatch: 2);

        await runner.StartAsync(Ct);
        await Until(() => notifier.Steps.Count >= 3, "a few steps");
        await runner.StopAsync(Ct);

        Assert.Equal(JobStatus.Queued, store.StatusOf(job));
        Assert.NotNull(store.Requeued[job]);
        Assert.Contains(notifier.States, s => s.Change.JobId == job && s.Change.Status == JobStatus.Queued);
    }

    [Fact]
    public async Task An_engine_that_throws_fails_its_jobs_with_the_reason_and_the_runner_keeps_going()
    {
        var engine = new CountingEngine { ThrowOnStep = true };
        var store = new MemoryStore();
        var notifier = new RecordingNotifier();
        var first = store.Add("a");
        using var runner = Runner(engine, store, notifier, maxBatch: 2);

        await runner.StartAsync(Ct);
        await Until(() => store.Completed.ContainsKey(first), "the failed job");
        engine.ThrowOnStep = false;
        var second = store.Add("a");
        runner.JobQueued();
        await Until(() => store.Completed.ContainsKey(second), "a later job");
        await runner.StopAsync(Ct);

        Assert.Equal(JobStatus.Failed, store.StatusOf(first));
        Assert.Contains("device lost", store.Completed[first].Error);
        Assert.Equal(JobStatus.Completed, store.StatusOf(second));
    }
}
