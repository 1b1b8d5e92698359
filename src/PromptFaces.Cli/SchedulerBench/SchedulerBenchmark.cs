using System.Diagnostics;
using Microsoft.Extensions.FileProviders;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using PromptFaces.Engine;
using PromptFaces.Scheduling;
using PromptFaces.Scheduling.FairShare;

namespace PromptFaces.Cli.SchedulerBench;

/// <summary>What the benchmark runs: the models, the users and their jobs.</summary>
internal sealed record SchedulerBenchSettings(
    string Generator,
    IReadOnlyList<string> Clips,
    string Device,
    string? LibTorch,
    int Users,
    int HeavyJobs,
    int LightJobsPerUser,
    int Steps,
    int Cutouts,
    int CheckpointEvery);

/// <summary>One run of one configuration: its jobs (times in seconds from the flood), how long it took to the last
/// completion, and the engine steps it took.</summary>
internal sealed record SchedulerBenchRawRun(string Mode, int Batch, IReadOnlyList<BenchJob> Jobs, double Seconds, long EngineSteps);

/// <summary>One configuration's outcome over its runs (pooled): times in seconds.</summary>
internal sealed record SchedulerBenchRun(
    string Mode,
    int Batch,
    int Rounds,
    int Jobs,
    int Completed,
    int Failed,
    double Seconds,
    double MsPerEngineStep,
    double JobsPerHour,
    double MeanWait,
    double P95Wait,
    double LightMeanWait,
    double LightP95Wait,
    double MeanRun,
    string? FirstError);

/// <summary>
/// Simulates users sharing one device: a heavy user floods the queue with jobs at t = 0 and light users each submit a
/// job now and then while the flood drains. Each configuration runs the same jobs on a fresh, warmed
/// <see cref="TorchGenerationEngine"/> (the web app's engine adapter): one at a time in submission order with no
/// scheduler, or through the real <see cref="FairShareScheduler"/> with batch size B over an in-memory store. Wall
/// clock throughout.
/// </summary>
/// <remarks>
/// The light users' submissions are spread evenly over the first 80% of the time the flood would take to drain at
/// that batch size, estimated from a short calibration (a few engine steps of B jobs) before each run, so that every
/// light job arrives while the heavy user still has jobs waiting, whatever the speed of the machine.
/// </remarks>
internal sealed class SchedulerBenchmark(SchedulerBenchSettings settings, Action<string> log)
{
    public const string HeavyUser = "heavy";

    private static readonly string[] Prompts =
    [
        "Show me someone with purple eyes.",
        "Draw a person who has pink hair.",
        "Give me a face with green eyes.",
        "A person who has curly hair.",
        "Create a person who is smiling.",
        "A person who wears glasses.",
        "Draw someone with white hair.",
        "Make a portrait showing a woman.",
    ];

    /// <summary>Total jobs per configuration.</summary>
    public int JobCount => settings.HeavyJobs + (settings.Users - 1) * settings.LightJobsPerUser;

    /// <summary>Runs the jobs one after another, in the order they were submitted, with no scheduler.</summary>
    public SchedulerBenchRawRun RunOneAtATime()
    {
        using var engine = CreateEngine();
        Warm(engine);
        double stepSeconds = Calibrate(engine, 1);
        var plan = Plan(1, stepSeconds);
        log($"one at a time: {stepSeconds * 1000:F0} ms per engine step; {plan.Count} jobs");

        var watch = Stopwatch.StartNew();
        var pending = plan.OrderBy(p => p.At).ThenBy(p => p.Index).ToList();
        var done = new List<BenchJob>();
        long engineSteps = 0;
        while (pending.Count > 0)
        {
            var next = pending[0];
            var wait = next.At - watch.Elapsed.TotalSeconds;
            if (wait > 0) Thread.Sleep(TimeSpan.FromSeconds(wait));
            pending.RemoveAt(0);
            var job = next.Job;
            job.SubmittedAt = next.At;
            job.StartedAt = watch.Elapsed.TotalSeconds;
            engine.Admit(job.Job);
            FinishedJob? result = null;
            while (result is null)
            {
                var step = engine.Step();
                engineSteps++;
                result = step.Finished.FirstOrDefault(f => f.JobId == job.Job.Id);
            }
            job.FinishedAt = watch.Elapsed.TotalSeconds;
            job.Status = result.Status == FinishStatus.Completed && result.Png is not null ? JobStatus.Completed : JobStatus.Failed;
            job.Error = result.Error;
            done.Add(job);
            log($"  {done.Count}/{plan.Count} done ({job.Owner}, waited {job.StartedAt - job.SubmittedAt:F1} s)");
        }
        return new SchedulerBenchRawRun("one at a time", 1, done, done.Max(j => j.FinishedAt!.Value), engineSteps);
    }

    /// <summary>Runs the jobs through <see cref="FairShareScheduler"/> with one worker of batch size
    /// <paramref name="batch"/>.</summary>
    public async Task<SchedulerBenchRawRun> RunScheduledAsync(int batch)
    {
        var engine = CreateEngine();
        try
        {
            Warm(engine);
            double stepSeconds = Calibrate(engine, batch);
            var plan = Plan(batch, stepSeconds);
            log($"scheduler B={batch}: {stepSeconds * 1000:F0} ms per engine step; {plan.Count} jobs");

            var clock = TimeProvider.System;
            var options = new SchedulerOptions
            {
                Devices = [new SchedulerDevice { Device = settings.Device, MaxBatch = batch }],
                NodeName = "bench",
                CheckpointEvery = settings.CheckpointEvery,
                PollInterval = TimeSpan.FromMilliseconds(200),
            };
            var store = new BenchSchedulerStore(clock);
            var policy = new SchedulingPolicyCache(new FixedPolicySource(SchedulingPolicy.FromOptions(options)), clock, options.PolicyRefreshInterval);
            var scheduler = new FairShareScheduler(store, new DelegateEngineFactory(_ => engine), new NullNotifier(),
                new UsageAccounting(options.UsageHalfLife), policy, clock, Options.Create(options), NullLogger<FairShareScheduler>.Instance);

            store.Expect(plan.Count);
            await scheduler.StartAsync(CancellationToken.None);
            double t0 = store.Now;
            var arrivals = plan.OrderBy(p => p.At).ThenBy(p => p.Index).ToList();
            var submitter = Task.Run(async () =>
            {
                foreach (var p in arrivals)
                {
                    var wait = t0 + p.At - store.Now;
                    if (wait > 0) await Task.Delay(TimeSpan.FromSeconds(wait));
                    store.Add(p.Job);
                    scheduler.JobQueued();
                }
            });
            int reported = 0;
            var guard = TimeSpan.FromSeconds(120 + 20 * plan.Count * settings.Steps * stepSeconds);
            var deadline = Stopwatch.StartNew();
            while (!store.AllFinished.IsCompleted)
            {
                await Task.WhenAny(store.AllFinished, Task.Delay(TimeSpan.FromSeconds(2)));
                int finished = store.Jobs.Count(j => j.FinishedAt is not null);
                if (finished != reported) log($"  {reported = finished}/{plan.Count} done");
                if (deadline.Elapsed > guard)
                {
                    await scheduler.StopAsync(CancellationToken.None);
                    throw new CliException($"The scheduler run at B={batch} did not finish within {guard.TotalMinutes:F0} minutes.");
                }
            }
            await submitter;
            await scheduler.StopAsync(CancellationToken.None);
            scheduler.Dispose();
            var jobs = store.Jobs;
            foreach (var j in jobs)
            {
                j.SubmittedAt -= t0;
                j.StartedAt -= t0;
                j.FinishedAt -= t0;
            }
            long steps = scheduler.Workers().Sum(w => w.Steps);
            return new SchedulerBenchRawRun("fair-share scheduler", batch, jobs, jobs.Max(j => j.FinishedAt ?? 0), steps);
        }
        finally
        {
            engine.Dispose();
        }
    }

    private sealed record PlannedJob(int Index, double At, BenchJob Job);

    /// <summary>The jobs of one run: the heavy user's at t = 0, the light users' spread over the flood's expected
    /// drain time at this batch size, in turn.</summary>
    private List<PlannedJob> Plan(int batch, double stepSeconds)
    {
        var plan = new List<PlannedJob>();
        int index = 0;
        BenchJob Make(string owner, bool light) => new(new GenerationJob(Guid.NewGuid(), Prompts[index % Prompts.Length], null, 1000 + index,
            settings.Steps, 0.7, 0.05, settings.Cutouts, 1), owner, light);
        for (int i = 0; i < settings.HeavyJobs; i++, index++) plan.Add(new PlannedJob(index, 0, Make(HeavyUser, false)));
        int lightUsers = settings.Users - 1;
        int lightJobs = lightUsers * settings.LightJobsPerUser;
        double drain = Math.Ceiling(settings.HeavyJobs / (double)batch) * settings.Steps * stepSeconds;
        for (int k = 0; k < lightJobs; k++, index++)
        {
            double at = 0.8 * drain * (k + 1) / (lightJobs + 1);
            plan.Add(new PlannedJob(index, at, Make($"light-{k % lightUsers + 1}", true)));
        }
        return plan;
    }

    private TorchGenerationEngine CreateEngine()
    {
        var options = Options.Create(new EngineOptions
        {
            Generator = settings.Generator,
            Clip = settings.Clips[0],
            SecondClip = settings.Clips.Count > 1 ? settings.Clips[1] : null,
            Device = settings.Device,
            LibTorch = settings.LibTorch,
            WarmUp = true,
        });
        return new TorchGenerationEngine(new ModelPaths(options, new BenchHostEnvironment()), options, NullLogger<TorchGenerationEngine>.Instance);
    }

    private static void Warm(TorchGenerationEngine engine) => engine.WarmUpAsync().GetAwaiter().GetResult();

    /// <summary>Median seconds per engine step with <paramref name="batch"/> jobs in it (the first step, which starts
    /// the jobs, is left out). Also fails early, with the engine's message, when the models cannot run.</summary>
    private double Calibrate(TorchGenerationEngine engine, int batch)
    {
        for (int j = 0; j < batch; j++)
            engine.Admit(new GenerationJob(Guid.NewGuid(), Prompts[j % Prompts.Length], null, j, 4, 0.7, 0.05, settings.Cutouts, 1));
        var times = new List<double>();
        int open = batch;
        bool first = true;
        while (open > 0)
        {
            var watch = Stopwatch.StartNew();
            var step = engine.Step();
            if (!first) times.Add(watch.Elapsed.TotalSeconds);
            first = false;
            foreach (var f in step.Finished)
            {
                open--;
                if (f.Status != FinishStatus.Completed) throw new CliException($"The engine could not run a job: {f.Error}");
            }
        }
        times.Sort();
        return times.Count == 0 ? 0.1 : times[times.Count / 2];
    }

    /// <summary>Pools the runs of one configuration: jobs per hour over their total time, waits and run times over
    /// all their jobs.</summary>
    public static SchedulerBenchRun Summarise(IReadOnlyList<SchedulerBenchRawRun> runs)
    {
        var jobs = runs.SelectMany(r => r.Jobs).ToList();
        var finished = jobs.Where(j => j.FinishedAt is not null && j.StartedAt is not null).ToList();
        var completed = finished.Count(j => j.Status == JobStatus.Completed);
        double seconds = runs.Sum(r => r.Seconds);
        long engineSteps = runs.Sum(r => r.EngineSteps);
        double[] waits = finished.Select(j => j.StartedAt!.Value - j.SubmittedAt).ToArray();
        double[] lightWaits = finished.Where(j => j.Light).Select(j => j.StartedAt!.Value - j.SubmittedAt).ToArray();
        double[] runTimes = finished.Select(j => j.FinishedAt!.Value - j.StartedAt!.Value).ToArray();
        return new SchedulerBenchRun(runs[0].Mode, runs[0].Batch, runs.Count, jobs.Count, completed, finished.Count - completed, seconds,
            engineSteps == 0 ? 0 : seconds * 1000 / engineSteps,
            seconds > 0 ? completed * 3600 / seconds : 0,
            Mean(waits), Percentile(waits, 0.95), Mean(lightWaits), Percentile(lightWaits, 0.95), Mean(runTimes),
            finished.FirstOrDefault(j => j.Status != JobStatus.Completed)?.Error);
    }

    private static double Mean(double[] values) => values.Length == 0 ? double.NaN : values.Average();

    /// <summary>Nearest-rank percentile.</summary>
    public static double Percentile(IReadOnlyList<double> values, double p)
    {
        if (values.Count == 0) return double.NaN;
        var sorted = values.OrderBy(v => v).ToArray();
        int rank = (int)Math.Ceiling(p * sorted.Length);
        return sorted[Math.Clamp(rank - 1, 0, sorted.Length - 1)];
    }

    private sealed class NullNotifier : IProgressNotifier
    {
        public ValueTask StepAsync(string ownerId, StepEvent step) => ValueTask.CompletedTask;

        public ValueTask StateChangedAsync(string ownerId, JobStateChange change) => ValueTask.CompletedTask;
    }

    /// <summary>The engine resolves relative model paths from a content root; the command passes full paths.</summary>
    private sealed class BenchHostEnvironment : IHostEnvironment
    {
        public string EnvironmentName { get; set; } = Environments.Production;
        public string ApplicationName { get; set; } = "promptfaces";
        public string ContentRootPath { get; set; } = Environment.CurrentDirectory;
        public IFileProvider ContentRootFileProvider { get; set; } = new NullFileProvider();
    }
}
