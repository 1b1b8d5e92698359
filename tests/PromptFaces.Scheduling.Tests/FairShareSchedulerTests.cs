using System.Globalization;
using PromptFaces.Scheduling.FairShare;
using Xunit;

namespace PromptFaces.Scheduling.Tests;

/// <summary>
/// The fair-share scheduler on a fake clock, an in-memory store and a fast fake engine, driven one step boundary at a
/// time (no sleeps, no timing). Each test proves one behaviour.
/// </summary>
public sealed class FairShareSchedulerTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private static void Report(string line)
    {
        TestContext.Current.TestOutputHelper?.WriteLine(line);
        Console.WriteLine(line);
    }

    // (a)
    [Fact]
    public async Task Scheduler_starts_a_light_users_first_job_at_the_next_free_slot_while_a_heavy_user_has_50_queued()
    {
        using var h = new SchedulerHarness(maxBatch: 4);
        var heavy = Enumerable.Range(0, 54).Select(_ => h.Store.Add("heavy", steps: 10)).ToList();
        await h.InitializeAsync();
        await h.StepAsync(3);
        Assert.Equal(50, h.Store.Rows.Count(r => r.Owner == "heavy" && r.Status == JobStatus.Queued));

        var light = h.Store.Add("light", steps: 10);
        int admittedBefore = h.Engine.Admitted.Count;
        // The batch is full until the heavy user's first four jobs end after their 10th step.
        await h.StepUntilAsync(() => h.Engine.Admitted.Count > admittedBefore);

        Assert.Equal(light, h.Engine.Admitted[admittedBefore].Id);
        Assert.Equal(11, h.Engine.Batches.Count);      // admitted at the boundary before step 11, the first free slot
        Assert.Contains(light, h.Engine.Batches[^1]);
        Assert.Equal(47, h.Store.Rows.Count(r => r.Owner == "heavy" && r.Status == JobStatus.Queued));
        Assert.All(heavy.Take(4), id => Assert.Equal(JobStatus.Completed, h.Store.StatusOf(id)));
    }

    // (b)
    [Fact]
    public async Task Scheduler_gives_two_users_with_shares_2_to_1_usage_in_that_ratio_over_a_saturated_hour()
    {
        using var h = new SchedulerHarness(maxBatch: 4);
        h.Policy.Policy = new SchedulingPolicy(
            new Dictionary<string, UserPolicy> { ["alice"] = new(null, Share: 2), ["bob"] = new(null, Share: 1) },
            new Dictionary<string, TeamPolicy>(), 1, 1, QuotaLimits.None);
        // More jobs than either user can run in the hour, so both want the device all the time.
        for (int i = 0; i < 1000; i++)
        {
            h.Store.Add("bob", steps: 20);
            h.Store.Add("alice", steps: 20);
        }

        await RunSaturatedHourAsync(h);

        double alice = h.Store.UsageOf("alice"), bob = h.Store.UsageOf("bob");
        double ratio = alice / bob;
        Report(string.Create(CultureInfo.InvariantCulture,
            $"user shares 2:1 -> usage alice {alice:F1} device-s, bob {bob:F1} device-s, ratio {ratio:F3} (target 2, ±10%)"));
        Assert.InRange(alice + bob, 3599, 3601); // the device was busy the whole hour, and every second was charged
        Assert.InRange(ratio, 1.8, 2.2);
    }

    // (c)
    [Fact]
    public async Task Scheduler_gives_two_teams_with_shares_2_to_1_usage_in_that_ratio_over_a_saturated_hour()
    {
        using var h = new SchedulerHarness(maxBatch: 4);
        h.Policy.Policy = new SchedulingPolicy(
            new Dictionary<string, UserPolicy> { ["red1"] = new("red"), ["red2"] = new("red"), ["blue1"] = new("blue") },
            new Dictionary<string, TeamPolicy> { ["red"] = new(Share: 2), ["blue"] = new(Share: 1) }, 1, 1, QuotaLimits.None);
        for (int i = 0; i < 1000; i++)
        {
            h.Store.Add("blue1", steps: 20);
            h.Store.Add("red1", steps: 20);
            h.Store.Add("red2", steps: 20);
        }

        await RunSaturatedHourAsync(h);

        double red = h.Store.TeamUsageOf("red"), blue = h.Store.TeamUsageOf("blue");
        double ratio = red / blue;
        Report(string.Create(CultureInfo.InvariantCulture,
            $"team shares 2:1 -> usage red {red:F1} device-s (red1 {h.Store.UsageOf("red1"):F1}, red2 {h.Store.UsageOf("red2"):F1}), " +
            $"blue {blue:F1} device-s, ratio {ratio:F3} (target 2, ±10%)"));
        Assert.InRange(red + blue, 3599, 3601);
        Assert.InRange(ratio, 1.8, 2.2);
    }

    /// <summary>Steps one device for a simulated hour (1 s per step, 4 jobs of 20 steps at a time), then stops the
    /// scheduler so that every charge is in the store's usage records.</summary>
    private static async Task RunSaturatedHourAsync(SchedulerHarness h)
    {
        await h.InitializeAsync();
        var end = SchedulerHarness.Start.AddHours(1);
        while (h.Clock.GetUtcNow() < end)
        {
            Assert.True(await h.StepAsync());
            Assert.Equal(4, h.Engine.Batches[^1].Length);
        }
        await h.Scheduler.DrainAsync();
        Assert.All(h.Store.Rows.GroupBy(r => r.Owner), user => Assert.Contains(user, r => r.Status == JobStatus.Queued));
    }

    // (d)
    [Fact]
    public async Task Scheduler_quota_gate_accepts_exactly_5_of_20_concurrent_submissions_against_a_queued_limit_of_5()
    {
        using var h = new SchedulerHarness(configure: o => o.DefaultQuotas = new QuotaLimits { MaxQueued = 5 });
        var gate = h.Gate();
        using var start = new ManualResetEventSlim();
        var submissions = Enumerable.Range(0, 20).Select(i => Task.Run(async () =>
        {
            start.Wait(Ct);
            return await gate.SubmitAsync("racer", 10, async ct =>
            {
                await Task.Yield();
                h.Store.Add("racer", steps: 10, seed: i);
                return true;
            }, Ct);
        }, Ct)).ToList();
        start.Set();
        var decisions = await Task.WhenAll(submissions);

        Assert.Equal(5, decisions.Count(d => d.Enqueued));
        Assert.Equal(5, h.Store.Rows.Count(r => r.Owner == "racer"));
        Assert.All(decisions.Where(d => !d.Enqueued), d =>
        {
            Assert.Equal(QuotaKind.QueuedJobs, d.Refused);
            Assert.Contains("You already have 5 jobs queued or running", d.Message);
        });
    }

    // (e) running
    [Fact]
    public async Task Scheduler_stops_a_running_job_at_the_next_step_boundary()
    {
        using var h = new SchedulerHarness(maxBatch: 2);
        var victim = h.Store.Add("a", steps: 100);
        var other = h.Store.Add("b", steps: 100);
        await h.InitializeAsync();
        await h.StepAsync(3);
        // The request arrives while step 4 is running: that step completes for every job.
        h.Engine.DuringStep = n => { if (n == 4) h.Scheduler.CancelRunning(victim); };
        await h.StepAsync();
        Assert.Equal(JobStatus.Running, h.Store.StatusOf(victim));
        Assert.Contains(victim, h.Engine.Batches[3]);

        await h.StepAsync(); // the boundary after step 4: the job ends there, without a 5th step

        Assert.Equal(JobStatus.Cancelled, h.Store.StatusOf(victim));
        Assert.Equal(4, h.Store[victim].Result!.StepsRun);
        Assert.Equal(4, h.Engine.StepsTaken[victim]);
        Assert.DoesNotContain(victim, h.Engine.Batches[4]);
        Assert.Contains(h.Notifier.States, s => s.Change.JobId == victim && s.Change.Status == JobStatus.Cancelled);
        Assert.Equal(JobStatus.Running, h.Store.StatusOf(other));
        Assert.Contains(other, h.Engine.Batches[4]);
    }

    // (e) queued
    [Fact]
    public async Task Scheduler_cancels_a_queued_job_at_once_without_a_step()
    {
        using var h = new SchedulerHarness(maxBatch: 1);
        var running = h.Store.Add("a", steps: 5);
        var queued = h.Store.Add("b", steps: 5);
        await h.InitializeAsync();
        await h.StepAsync(2);

        Assert.True(await h.Scheduler.CancelAsync(queued, Ct));

        Assert.Equal(JobStatus.Cancelled, h.Store.StatusOf(queued));
        Assert.Contains(h.Notifier.States, s => s.Owner == "b" && s.Change.JobId == queued && s.Change.Status == JobStatus.Cancelled);
        await h.StepUntilAsync(() => h.Store.StatusOf(running) == JobStatus.Completed);
        Assert.False(await h.StepAsync()); // nothing left to run
        Assert.DoesNotContain(h.Engine.Admitted, a => a.Id == queued);
    }

    // (f) crash
    [Fact]
    public async Task Scheduler_resumes_a_job_killed_mid_run_from_its_checkpoint_and_it_ends_with_the_uninterrupted_image()
    {
        var uninterrupted = await RunToEndAsync(interruptAfter: null, graceful: false);
        var (png, resumedAt, stepsAfterRestart, claims) = await RunToEndAsync(interruptAfter: 17, graceful: false);

        Assert.Equal(uninterrupted.Png, png);
        Assert.Equal(10, resumedAt);          // the last checkpoint before the kill (every 10 steps)
        Assert.Equal(30 - 10, stepsAfterRestart);
        Assert.Equal(2, claims);
    }

    // (f) graceful stop
    [Fact]
    public async Task Scheduler_checkpoints_running_jobs_on_a_graceful_stop_and_resumes_them_where_they_stopped()
    {
        var uninterrupted = await RunToEndAsync(interruptAfter: null, graceful: false);
        var (png, resumedAt, stepsAfterRestart, _) = await RunToEndAsync(interruptAfter: 17, graceful: true);

        Assert.Equal(uninterrupted.Png, png);
        Assert.Equal(17, resumedAt);
        Assert.Equal(30 - 17, stepsAfterRestart);
    }

    /// <summary>Runs one 30-step job (seed 7), optionally interrupted after some steps by a kill or a graceful stop
    /// and then restarted with a new scheduler and engine over the same store.</summary>
    private static async Task<(byte[] Png, int ResumedAt, int StepsAfterRestart, int Claims)> RunToEndAsync(int? interruptAfter, bool graceful)
    {
        using var h = new SchedulerHarness(maxBatch: 2);
        var job = h.Store.Add("a", steps: 30, seed: 7, prompt: "a man with a red beard");
        await h.InitializeAsync();
        if (interruptAfter is { } steps)
        {
            await h.StepAsync(steps);
            Assert.Equal(JobStatus.Running, h.Store.StatusOf(job));
            if (graceful)
            {
                await h.Scheduler.DrainAsync();
                Assert.Equal(JobStatus.Queued, h.Store.StatusOf(job));
            }
            h.Restart();
            await h.InitializeAsync();
            Assert.Equal(JobStatus.Queued, h.Store.StatusOf(job));
        }
        await h.StepUntilAsync(() => h.Store.StatusOf(job).IsFinal());
        var row = h.Store[job];
        Assert.Equal(JobStatus.Completed, row.Status);
        return (row.Result!.Png!, h.Engine.Admitted.Single().ResumeStep, h.Engine.StepsTaken[job], row.Claims);
    }

    [Fact]
    public async Task Scheduler_restart_keeps_queued_jobs_in_their_place()
    {
        using var h = new SchedulerHarness(maxBatch: 1, configure: o => o.AgeWeight = 0);
        var first = h.Store.Add("a", steps: 5);
        h.Clock.Advance(TimeSpan.FromSeconds(1));
        var second = h.Store.Add("a", steps: 5);
        h.Clock.Advance(TimeSpan.FromSeconds(1));
        var third = h.Store.Add("a", steps: 5);
        await h.InitializeAsync();
        await h.StepAsync(2);

        h.Restart(); // killed while the first job ran
        await h.InitializeAsync();
        await h.StepUntilAsync(() => h.Store.Rows.All(r => r.Status.IsFinal()));

        Assert.Equal([first, second, third], h.Engine.Admitted.Select(a => a.Id));
    }

    // (g)
    [Fact]
    public async Task Scheduler_admits_and_releases_jobs_only_at_step_boundaries()
    {
        using var h = new SchedulerHarness(maxBatch: 2);
        var a = h.Store.Add("u1", steps: 3);
        var b = h.Store.Add("u2", steps: 6);
        var c = h.Store.Add("u3", steps: 4);
        Guid d = default;
        // A job queued while step 2 runs waits for a free slot at a boundary; nothing joins or leaves mid-step.
        h.Engine.DuringStep = n =>
        {
            if (n != 2) return;
            d = h.Store.Add("u4", steps: 2);
            h.Scheduler.JobQueued();
        };
        await h.InitializeAsync();
        await h.StepUntilAsync(() => h.Store.Rows.All(r => r.Status.IsFinal()));

        Guid[][] expected =
        [
            [a, b], [a, b], [a, b],   // a ends after step 3
            [b, c], [b, c], [b, c],   // c joined at the boundary after step 3; b ends after step 6
            [c, d],                   // d joined at the boundary after step 6; c ends after step 7
            [d],                      // d ends after step 8
        ];
        Assert.Equal(expected, h.Engine.Batches);
        Assert.Empty(h.Engine.CallsDuringStep);
        Assert.All(h.Store.Rows, r => Assert.Equal(JobStatus.Completed, r.Status));
    }

    [Fact]
    public async Task Scheduler_charges_each_job_the_step_time_divided_by_the_jobs_in_the_batch()
    {
        using var h = new SchedulerHarness(maxBatch: 4);
        var solo = h.Store.Add("solo", steps: 4);
        await h.InitializeAsync();
        await h.StepAsync(2);                          // alone: 2 steps x 1 s
        var p1 = h.Store.Add("pair", steps: 10);
        var p2 = h.Store.Add("pair", steps: 10);
        var p3 = h.Store.Add("trio", steps: 10);
        await h.StepAsync(2);                          // four jobs: 2 steps x 1 s / 4 each
        await h.Scheduler.DrainAsync();

        Assert.Equal(2 + 0.5, h.Store.UsageOf("solo"), 9);
        Assert.Equal(2 * 0.5, h.Store.UsageOf("pair"), 9);
        Assert.Equal(0.5, h.Store.UsageOf("trio"), 9);
        Assert.Equal(2 + 0.5, h.Usage.TotalCharged("solo"), 9);
        Assert.All([p1, p2, p3], id => Assert.Equal(0.5, h.Store.Usage.Where(u => u.JobId == id).Sum(u => u.DeviceSeconds), 9));
    }

    [Fact]
    public async Task Scheduler_writes_usage_records_every_usage_interval_and_reads_them_back_after_a_restart()
    {
        using var h = new SchedulerHarness(maxBatch: 1, configure: o =>
        {
            o.UsageWriteInterval = TimeSpan.FromSeconds(10);
            o.CheckpointEvery = 0; // checkpoints write usage too
        });
        h.Store.Add("a", steps: 100);
        await h.InitializeAsync();
        await h.StepAsync(25);                         // 25 device-seconds charged in memory

        Assert.Equal(25, h.Usage.TotalCharged("a"), 9);
        Assert.Equal(21, h.Store.UsageOf("a"), 9);     // written after steps 1, 11 and 21
        Assert.Equal(3, h.Store.Usage.Count);

        h.Restart();                                   // killed: the last 4 s were never written
        await h.InitializeAsync();

        Assert.Equal(21, h.Usage.TotalCharged("a"), 9);
        // Each record decays from the time it was written (after 1, 11 and 21 s; it is now 25 s in).
        double decayed = 1 * Math.Pow(2, -24.0 / 3600) + 10 * Math.Pow(2, -14.0 / 3600) + 10 * Math.Pow(2, -4.0 / 3600);
        Assert.Equal(decayed, h.Usage.UserUsage("a", h.Clock.GetUtcNow()), 9);
    }

    [Fact]
    public async Task Scheduler_runs_no_more_of_a_users_jobs_at_once_than_their_running_quota()
    {
        using var h = new SchedulerHarness(maxBatch: 4);
        h.Policy.Policy = new SchedulingPolicy(
            new Dictionary<string, UserPolicy> { ["greedy"] = new(null, Quotas: new QuotaLimits { MaxRunning = 1 }) },
            new Dictionary<string, TeamPolicy>(), 1, 1, QuotaLimits.None);
        for (int i = 0; i < 3; i++) h.Store.Add("greedy", steps: 3);
        var other = h.Store.Add("other", steps: 3);
        await h.InitializeAsync();
        await h.StepUntilAsync(() => h.Store.Rows.All(r => r.Status.IsFinal()));

        Assert.All(h.Engine.Batches, batch => Assert.True(batch.Count(id => h.Store[id].Owner == "greedy") <= 1));
        Assert.Contains(other, h.Engine.Batches[0]);
    }

    [Fact]
    public async Task Scheduler_daily_quota_refuses_submissions_pauses_running_jobs_and_says_when_it_resets()
    {
        using var h = new SchedulerHarness(maxBatch: 2, configure: o => o.DefaultQuotas = new QuotaLimits { DeviceSecondsPerDay = 12 });
        var job = h.Store.Add("a", steps: 20);
        await h.InitializeAsync();
        await h.StepAsync(12);                         // 12 device-seconds used
        await h.StepAsync();                           // the boundary after: paused with a checkpoint

        Assert.Equal(JobStatus.Queued, h.Store.StatusOf(job));
        Assert.Equal(12, h.Store[job].CheckpointStep);
        Assert.Equal(12, h.Engine.StepsTaken[job]);
        Assert.False(await h.StepAsync());             // stays queued for the rest of the day
        Assert.Equal(JobStatus.Queued, h.Store.StatusOf(job));
        var decision = await h.Gate().SubmitAsync("a", 10, _ => Task.FromResult(true), Ct);
        Assert.Equal(QuotaKind.DeviceSecondsPerDay, decision.Refused);
        Assert.Contains("resets at 00:00 UTC (2026-03-03 00:00 UTC, in 16 h)", decision.Message);

        h.Clock.Advance(TimeSpan.FromHours(16));      // the next UTC day
        await h.StepUntilAsync(() => h.Store.StatusOf(job).IsFinal());
        Assert.Equal(JobStatus.Completed, h.Store.StatusOf(job));
        Assert.Equal(12, h.Engine.Admitted[^1].ResumeStep);
        Assert.Equal(20, h.Engine.StepsTaken[job]);
    }

    [Fact]
    public async Task Scheduler_quota_gate_refuses_a_job_with_more_steps_than_the_users_team_allows()
    {
        using var h = new SchedulerHarness(configure: o => o.DefaultQuotas = new QuotaLimits { MaxStepsPerJob = 1000 });
        h.Policy.Policy = new SchedulingPolicy(
            new Dictionary<string, UserPolicy> { ["intern"] = new("lab"), ["lead"] = new("lab", Quotas: new QuotaLimits { MaxStepsPerJob = 500 }) },
            new Dictionary<string, TeamPolicy> { ["lab"] = new(DefaultQuotas: new QuotaLimits { MaxStepsPerJob = 100 }) },
            1, 1, new QuotaLimits { MaxStepsPerJob = 1000 });
        var gate = h.Gate();

        var refused = await gate.SubmitAsync("intern", 101, _ => Task.FromResult(true), Ct);
        var own = await gate.SubmitAsync("lead", 400, _ => Task.FromResult(true), Ct);
        var outsider = await gate.SubmitAsync("guest", 900, _ => Task.FromResult(true), Ct);

        Assert.Equal(QuotaKind.StepsPerJob, refused.Refused);
        Assert.Equal("A job may run at most 100 steps; this one asks for 101. Choose fewer steps.", refused.Message);
        Assert.True(own.Enqueued);
        Assert.True(outsider.Enqueued);
    }

    [Fact]
    public async Task Scheduler_lets_an_admin_boost_put_a_job_first()
    {
        using var h = new SchedulerHarness(maxBatch: 1);
        var plain = h.Store.Add("a", steps: 2);
        var boosted = h.Store.Add("b", steps: 2, boost: 5000);
        await h.InitializeAsync();
        await h.StepAsync();

        Assert.Equal(boosted, h.Engine.Admitted[0].Id);
        Assert.Equal(JobStatus.Queued, h.Store.StatusOf(plain));
    }

    [Fact]
    public async Task Scheduler_hosted_service_runs_queued_jobs_and_on_stop_requeues_running_ones_with_a_checkpoint()
    {
        using var h = new SchedulerHarness(maxBatch: 2);
        var quick = h.Store.Add("a", steps: 3);
        var endless = h.Store.Add("b", steps: 1_000_000);

        await h.Scheduler.StartAsync(Ct);
        h.Scheduler.JobQueued();
        // Waiting only: what is asserted does not depend on how long this takes.
        using (var patience = CancellationTokenSource.CreateLinkedTokenSource(Ct))
        {
            patience.CancelAfter(TimeSpan.FromSeconds(60));
            while (!(h.Store.StatusOf(quick) == JobStatus.Completed && h.Notifier.Steps.Count(s => s.Step.JobId == endless) >= 12))
                await Task.Delay(5, patience.Token);
        }
        await h.Scheduler.StopAsync(Ct);

        var row = h.Store[endless];
        Assert.Equal(JobStatus.Queued, row.Status);
        Assert.NotNull(row.Checkpoint);
        int stepsSeen = h.Notifier.Steps.Where(s => s.Step.JobId == endless).Max(s => s.Step.Step);
        Assert.Equal(stepsSeen, row.CheckpointStep);   // the checkpoint taken on stop, not the last periodic one
        Assert.Contains(h.Notifier.States, s => s.Change.JobId == endless && s.Change.Status == JobStatus.Queued);
    }

    [Fact]
    public async Task Scheduler_runs_one_worker_per_device_and_never_runs_a_job_twice()
    {
        using var h = new SchedulerHarness(configure: o => o.Devices =
        [
            new SchedulerDevice { Device = "cuda:0", MaxBatch = 2 },
            new SchedulerDevice { Device = "cuda:1", MaxBatch = 3 },
        ]);
        for (int i = 0; i < 12; i++) h.Store.Add($"u{i % 3}", steps: 4);
        await h.InitializeAsync();
        Assert.Equal(["test-node/cuda:0", "test-node/cuda:1"], h.Scheduler.WorkerIds);
        while (!h.Store.Rows.All(r => r.Status.IsFinal()))
        {
            await h.Scheduler.RunStepAsync(0, Ct);
            await h.Scheduler.RunStepAsync(1, Ct);
        }

        Assert.Equal(2, h.Engines.Count);
        Assert.All(h.Engines[0].Batches, b => Assert.InRange(b.Length, 0, 2));
        Assert.All(h.Engines[1].Batches, b => Assert.InRange(b.Length, 0, 3));
        Assert.Contains(h.Engines[1].Batches, b => b.Length == 3);
        Assert.All(h.Store.Rows, r => Assert.Equal(1, r.Claims));
        Assert.Equal(12, h.Engines.Sum(e => e.Admitted.Count));
    }
}
