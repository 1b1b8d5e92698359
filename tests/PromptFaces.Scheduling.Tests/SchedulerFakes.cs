using System.Buffers.Binary;
using System.Collections.Concurrent;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;
using PromptFaces.Scheduling.FairShare;

namespace PromptFaces.Scheduling.Tests;

/// <summary>
/// An in-memory <see cref="ISchedulerStore"/>: a list of job rows under one lock, claims as compare-and-set on the
/// status, usage records appended. Ids are sequential, so ties in the queue order are deterministic.
/// </summary>
internal sealed class MemorySchedulerStore(TimeProvider clock) : ISchedulerStore
{
    private readonly Lock _gate = new();
    private readonly List<Row> _rows = new();
    private readonly List<UsageCharge> _usage = new();
    private int _nextId;

    public sealed class Row
    {
        public required GenerationJob Job { get; init; }
        public required string Owner { get; init; }
        public DateTimeOffset EnqueuedAt { get; init; }
        public double Boost { get; set; }
        public JobStatus Status { get; set; }
        public string? ClaimedBy { get; set; }
        public byte[]? Checkpoint { get; set; }
        public int CheckpointStep { get; set; }
        public int StepsDone { get; set; }
        public FinishedJob? Result { get; set; }
        public int Claims { get; set; }
    }

    /// <summary>Queues a job now; returns its id (sequential).</summary>
    public Guid Add(string owner, int steps = 10, long seed = 1, double boost = 0, string prompt = "a face")
    {
        lock (_gate)
        {
            var id = SequentialId(++_nextId);
            _rows.Add(new Row
            {
                Job = new GenerationJob(id, prompt, null, seed, steps, 0.7, 0.05, 4, 1),
                Owner = owner,
                EnqueuedAt = clock.GetUtcNow(),
                Boost = boost,
                Status = JobStatus.Queued,
            });
            return id;
        }
    }

    public Row this[Guid id]
    {
        get { lock (_gate) return _rows.Single(r => r.Job.Id == id); }
    }

    public JobStatus StatusOf(Guid id) => this[id].Status;

    public IReadOnlyList<Row> Rows
    {
        get { lock (_gate) return _rows.ToList(); }
    }

    public IReadOnlyList<UsageCharge> Usage
    {
        get { lock (_gate) return _usage.ToList(); }
    }

    /// <summary>Device-seconds in the stored usage records of each user.</summary>
    public double UsageOf(string user) => Usage.Where(u => u.UserId == user).Sum(u => u.DeviceSeconds);

    public double TeamUsageOf(string team) => Usage.Where(u => u.TeamKey == team).Sum(u => u.DeviceSeconds);

    public Task<QueueSnapshot> GetQueueAsync(CancellationToken cancellationToken)
    {
        lock (_gate)
        {
            var waiting = _rows.Where(r => r.Status == JobStatus.Queued)
                .Select(r => new WaitingJob(r.Job.Id, r.Owner, r.EnqueuedAt, r.Job.Steps, r.Boost)).ToList();
            var running = _rows.Where(r => r.Status == JobStatus.Running).GroupBy(r => r.Owner).ToDictionary(g => g.Key, g => g.Count());
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
                var row = _rows.SingleOrDefault(r => r.Job.Id == id);
                if (row is null || row.Status != JobStatus.Queued) continue;
                row.Status = JobStatus.Running;
                row.ClaimedBy = workerId;
                row.Claims++;
                claimed.Add(new ClaimedJob(row.Job with { ResumeState = row.Checkpoint }, row.Owner, row.Checkpoint is null ? 0 : row.CheckpointStep));
            }
            return Task.FromResult<IReadOnlyList<ClaimedJob>>(claimed);
        }
    }

    public Task RecordProgressAsync(Guid jobId, int stepsDone, double similarity, CancellationToken cancellationToken)
    {
        lock (_gate)
        {
            var row = _rows.Single(r => r.Job.Id == jobId);
            if (row.Status == JobStatus.Running) row.StepsDone = stepsDone;
        }
        return Task.CompletedTask;
    }

    public Task SaveCheckpointAsync(Guid jobId, int stepsDone, byte[] state, CancellationToken cancellationToken)
    {
        lock (_gate)
        {
            var row = _rows.Single(r => r.Job.Id == jobId);
            if (row.Status != JobStatus.Running) return Task.CompletedTask;
            row.Checkpoint = state;
            row.CheckpointStep = stepsDone;
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
            var row = _rows.Single(r => r.Job.Id == result.JobId);
            if (row.Status != JobStatus.Running) throw new InvalidOperationException($"Job {result.JobId} completed while {row.Status}.");
            row.Status = result.Status switch
            {
                FinishStatus.Completed => JobStatus.Completed,
                FinishStatus.Cancelled => JobStatus.Cancelled,
                _ => JobStatus.Failed,
            };
            row.Result = result;
            row.StepsDone = result.StepsRun;
            row.Checkpoint = null;
            return Task.FromResult<Guid?>(result.Png is null ? null : Guid.NewGuid());
        }
    }

    public Task RequeueAsync(Guid jobId, int stepsDone, byte[]? state, CancellationToken cancellationToken)
    {
        lock (_gate)
        {
            var row = _rows.Single(r => r.Job.Id == jobId);
            if (row.Status != JobStatus.Running) return Task.CompletedTask;
            row.Status = JobStatus.Queued;
            row.ClaimedBy = null;
            if (state is not null)
            {
                row.Checkpoint = state;
                row.CheckpointStep = stepsDone;
            }
            row.StepsDone = row.Checkpoint is null ? 0 : row.CheckpointStep;
        }
        return Task.CompletedTask;
    }

    public Task<string?> CancelQueuedAsync(Guid jobId, CancellationToken cancellationToken)
    {
        lock (_gate)
        {
            var row = _rows.SingleOrDefault(r => r.Job.Id == jobId);
            if (row is null || row.Status != JobStatus.Queued) return Task.FromResult<string?>(null);
            row.Status = JobStatus.Cancelled;
            return Task.FromResult<string?>(row.Owner);
        }
    }

    public Task<int> RecoverInterruptedAsync(IReadOnlyCollection<string> workerIds, CancellationToken cancellationToken)
    {
        lock (_gate)
        {
            int n = 0;
            foreach (var row in _rows.Where(r => r.Status == JobStatus.Running && (r.ClaimedBy is null || workerIds.Contains(r.ClaimedBy))))
            {
                row.Status = JobStatus.Queued;
                row.ClaimedBy = null;
                row.StepsDone = row.Checkpoint is null ? 0 : row.CheckpointStep;
                n++;
            }
            return Task.FromResult(n);
        }
    }

    public async Task<int> CountOpenJobsAsync(string ownerId, CancellationToken cancellationToken)
    {
        await Task.Yield(); // a real store answers later: leave room for racing submissions to interleave
        lock (_gate) return _rows.Count(r => r.Owner == ownerId && !r.Status.IsFinal());
    }

    private static Guid SequentialId(int n)
    {
        Span<byte> bytes = stackalloc byte[16];
        BinaryPrimitives.WriteInt32BigEndian(bytes[12..], n);
        return new Guid(bytes, bigEndian: true);
    }
}

/// <summary>
/// A fast engine with a fake "latent": a 64-bit state seeded from the job's seed and prompt and mixed at every step.
/// Its similarity and final "image" depend on that state only, so a run resumed from a checkpoint ends with the same
/// image as an uninterrupted one, and a run restarted from scratch (or from a wrong step) would not take the same
/// number of steps. Each step advances the fake clock by <see cref="StepTime"/> plus <see cref="StepTimePerJob"/>
/// per job, which is the wall time the scheduler charges.
/// </summary>
internal sealed class FakeEngine(FakeTimeProvider clock) : IGenerationEngine
{
    private readonly List<Active> _jobs = new();
    private readonly ConcurrentDictionary<Guid, byte> _cancelled = new();
    private volatile bool _inStep;

    public TimeSpan StepTime { get; set; } = TimeSpan.FromSeconds(1);
    public TimeSpan StepTimePerJob { get; set; } = TimeSpan.Zero;

    /// <summary>Runs inside <see cref="Step"/>, before the clock moves (to make things happen mid-step).</summary>
    public Action<int>? DuringStep { get; set; }

    /// <summary>Jobs in the order they were admitted, with the step they resumed at.</summary>
    public List<(Guid Id, int ResumeStep)> Admitted { get; } = new();

    /// <summary>For every step, the jobs that took it.</summary>
    public List<Guid[]> Batches { get; } = new();

    /// <summary>Steps each job took on this engine.</summary>
    public Dictionary<Guid, int> StepsTaken { get; } = new();

    /// <summary>Calls that came while a step was running (should stay empty apart from Cancel).</summary>
    public List<string> CallsDuringStep { get; } = new();

    public int ActiveCount => _jobs.Count;

    public void Admit(GenerationJob job)
    {
        if (_inStep) CallsDuringStep.Add("Admit " + job.Id);
        var active = new Active(job);
        if (job.ResumeState is { } state)
        {
            active.Step = BinaryPrimitives.ReadInt32LittleEndian(state);
            active.Latent = BinaryPrimitives.ReadUInt64LittleEndian(state.AsSpan(4));
        }
        _jobs.Add(active);
        Admitted.Add((job.Id, active.Step));
    }

    public void Cancel(Guid jobId) => _cancelled[jobId] = 0;

    public byte[]? Checkpoint(Guid jobId)
    {
        if (_inStep) CallsDuringStep.Add("Checkpoint " + jobId);
        var active = _jobs.FirstOrDefault(j => j.Job.Id == jobId);
        if (active is null) return null;
        var bytes = new byte[12];
        BinaryPrimitives.WriteInt32LittleEndian(bytes, active.Step);
        BinaryPrimitives.WriteUInt64LittleEndian(bytes.AsSpan(4), active.Latent);
        return bytes;
    }

    public EngineStep Step()
    {
        _inStep = true;
        try
        {
            DuringStep?.Invoke(Batches.Count + 1);
            var steps = new List<StepEvent>();
            var finished = new List<FinishedJob>();
            var batch = new List<Guid>();
            foreach (var active in _jobs.ToList())
            {
                var job = active.Job;
                if (_cancelled.TryRemove(job.Id, out _))
                {
                    _jobs.Remove(active);
                    finished.Add(new FinishedJob(job.Id, FinishStatus.Cancelled, active.Step, Similarity(active.Latent), null, null, null, []));
                    continue;
                }
                active.Step++;
                active.Latent = Mix(active.Latent + (ulong)active.Step);
                batch.Add(job.Id);
                StepsTaken[job.Id] = StepsTaken.GetValueOrDefault(job.Id) + 1;
                steps.Add(new StepEvent(job.Id, active.Step, job.Steps, Similarity(active.Latent), null));
                if (active.Step >= job.Steps)
                {
                    _jobs.Remove(active);
                    finished.Add(new FinishedJob(job.Id, FinishStatus.Completed, active.Step, Similarity(active.Latent), Image(active.Latent), null, null, []));
                }
            }
            Batches.Add(batch.ToArray());
            clock.Advance(StepTime + StepTimePerJob * batch.Count);
            return new EngineStep(steps, finished);
        }
        finally
        {
            _inStep = false;
        }
    }

    private static double Similarity(ulong latent) => (latent >> 11) * (1.0 / (1UL << 53));

    /// <summary>The "image": a PNG signature followed by the latent's bytes.</summary>
    private static byte[] Image(ulong latent)
    {
        var png = new byte[16];
        new byte[] { 0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A }.CopyTo(png, 0);
        BinaryPrimitives.WriteUInt64LittleEndian(png.AsSpan(8), latent);
        return png;
    }

    private static ulong Mix(ulong z)
    {
        z += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    private static ulong Seed(GenerationJob job)
    {
        ulong hash = 14695981039346656037UL;
        foreach (char c in job.Prompt) hash = (hash ^ c) * 1099511628211UL;
        return Mix(hash ^ (ulong)job.Seed);
    }

    private sealed class Active(GenerationJob job)
    {
        public GenerationJob Job { get; } = job;
        public int Step { get; set; }
        public ulong Latent { get; set; } = Seed(job);
    }
}

internal sealed class RecordingNotifier : IProgressNotifier
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

/// <summary>
/// A scheduler on a fake clock, an in-memory store and one fake engine per device, driven a step at a time. Restart
/// makes a new scheduler (new engines, new usage view) over the same store, as a new process would be.
/// </summary>
internal sealed class SchedulerHarness : IDisposable
{
    public static readonly DateTimeOffset Start = new(2026, 3, 2, 8, 0, 0, TimeSpan.Zero);

    public FakeTimeProvider Clock { get; } = new(Start);
    public MemorySchedulerStore Store { get; }
    public RecordingNotifier Notifier { get; } = new();
    public SchedulerOptions Options { get; }
    public FixedPolicySource Policy { get; }
    public List<FakeEngine> Engines { get; } = new();
    public UsageAccounting Usage { get; private set; }
    public FairShareScheduler Scheduler { get; private set; }
    public FakeEngine Engine => Engines[^1];

    public SchedulerHarness(int maxBatch = 4, Action<SchedulerOptions>? configure = null)
    {
        Options = new SchedulerOptions
        {
            Devices = [new SchedulerDevice { Device = "cpu", MaxBatch = maxBatch }],
            NodeName = "test-node",
            ProgressWriteInterval = TimeSpan.Zero,
            UsageWriteInterval = TimeSpan.Zero,
            PolicyRefreshInterval = TimeSpan.Zero,
            CheckpointEvery = 10,
        };
        configure?.Invoke(Options);
        Store = new MemorySchedulerStore(Clock);
        Policy = new FixedPolicySource(SchedulingPolicy.FromOptions(Options));
        (Scheduler, Usage) = Build();
    }

    private CancellationToken Ct => Xunit.TestContext.Current.CancellationToken;

    /// <summary>A fresh scheduler over the same store and clock; the old one is abandoned as a killed process would be.</summary>
    public void Restart() => (Scheduler, Usage) = Build();

    public Task InitializeAsync() => Scheduler.InitializeAsync(Ct);

    /// <summary>One step boundary and step of the first worker.</summary>
    public Task<bool> StepAsync() => Scheduler.RunStepAsync(0, Ct);

    public async Task StepAsync(int times)
    {
        for (int i = 0; i < times; i++) await StepAsync();
    }

    /// <summary>Steps until <paramref name="done"/> holds; fails after <paramref name="limit"/> steps.</summary>
    public async Task StepUntilAsync(Func<bool> done, int limit = 100_000)
    {
        for (int i = 0; !done(); i++)
        {
            if (i >= limit) throw new InvalidOperationException($"Still not done after {limit} steps.");
            await StepAsync();
        }
    }

    public QuotaGate Gate() => new(Store, new SchedulingPolicyCache(Policy, Clock, TimeSpan.Zero), Usage, Clock);

    private (FairShareScheduler, UsageAccounting) Build()
    {
        var usage = new UsageAccounting(Options.UsageHalfLife);
        var scheduler = new FairShareScheduler(Store, new DelegateEngineFactory(_ =>
            {
                var engine = new FakeEngine(Clock);
                Engines.Add(engine);
                return engine;
            }), Notifier, usage, new SchedulingPolicyCache(Policy, Clock, Options.PolicyRefreshInterval), Clock,
            Microsoft.Extensions.Options.Options.Create(Options), NullLogger<FairShareScheduler>.Instance);
        return (scheduler, usage);
    }

    public void Dispose() => Scheduler.Dispose();
}
