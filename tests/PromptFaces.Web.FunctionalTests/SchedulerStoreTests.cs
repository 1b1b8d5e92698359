using System.Net;
using Microsoft.Data.Sqlite;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using PromptFaces.Data;
using PromptFaces.Data.Entities;
using PromptFaces.Data.Files;
using PromptFaces.Data.Jobs;
using PromptFaces.Scheduling;
using PromptFaces.Scheduling.FairShare;
using Xunit;

namespace PromptFaces.Web.FunctionalTests;

/// <summary>
/// The EF job store behind the fair-share scheduler, on its own migrated SQLite file (no app, so no scheduler
/// competes for the jobs): atomic claims, checkpoints, recovery by worker, usage records, cancellation.
/// </summary>
public sealed class SchedulerStoreTests : IAsyncLifetime
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private readonly string _folder = Directory.CreateTempSubdirectory("pf-store-tests-").FullName;
    private readonly Factory _contexts;
    private readonly EfJobStore _store;
    private readonly DateTimeOffset _now = new(2026, 3, 2, 8, 0, 0, TimeSpan.Zero);

    public SchedulerStoreTests()
    {
        _contexts = new Factory(new DbContextOptionsBuilder<PromptFacesDbContext>()
            .UseSqlite($"Data Source={Path.Combine(_folder, "store.db")}").Options);
        _store = new EfJobStore(_contexts, new ImageFileStore(Path.Combine(_folder, "images")), new FixedClock(_now));
    }

    public async ValueTask InitializeAsync()
    {
        await using var db = _contexts.CreateDbContext();
        await db.Database.MigrateAsync(Ct);
        db.Users.Add(new AppUser { Id = "u1", UserName = "u1", Email = "u1@example.com" });
        db.Users.Add(new AppUser { Id = "u2", UserName = "u2", Email = "u2@example.com" });
        await db.SaveChangesAsync(Ct);
    }

    public ValueTask DisposeAsync()
    {
        SqliteConnection.ClearAllPools();
        try { Directory.Delete(_folder, recursive: true); }
        catch (IOException) { }
        return ValueTask.CompletedTask;
    }

    private async Task<Guid> AddJobAsync(string owner, int minutesAgo, double boost = 0)
    {
        await using var db = _contexts.CreateDbContext();
        var job = new Job
        {
            Id = Guid.NewGuid(),
            OwnerId = owner,
            Prompt = "a face",
            Seed = 1,
            Steps = 10,
            TruncationPsi = 0.7,
            LearningRate = 0.05,
            Cutouts = 4,
            Starts = 1,
            Status = JobStatus.Queued,
            CreatedAt = _now.UtcDateTime.AddMinutes(-minutesAgo),
            PriorityBoost = boost,
        };
        db.Jobs.Add(job);
        await db.SaveChangesAsync(Ct);
        return job.Id;
    }

    private async Task<Job> RowAsync(Guid id)
    {
        await using var db = _contexts.CreateDbContext();
        return await db.Jobs.AsNoTracking().SingleAsync(j => j.Id == id, Ct);
    }

    [Fact]
    public async Task Scheduler_store_claims_a_job_for_one_of_two_racing_workers_only()
    {
        var ids = new List<Guid>();
        for (int i = 0; i < 10; i++) ids.Add(await AddJobAsync("u1", minutesAgo: 10 - i));

        var claims = await Task.WhenAll(
            Task.Run(() => _store.ClaimAsync(ids, "node/cuda:0", Ct), Ct),
            Task.Run(() => _store.ClaimAsync(ids.AsEnumerable().Reverse().ToList(), "node/cuda:1", Ct), Ct));

        var all = claims.SelectMany(c => c).Select(c => c.Job.Id).ToList();
        Assert.Equal(ids.Order(), all.Order());
        foreach (var id in ids)
        {
            var row = await RowAsync(id);
            Assert.Equal(JobStatus.Running, row.Status);
            Assert.Equal(claims[0].Any(c => c.Job.Id == id) ? "node/cuda:0" : "node/cuda:1", row.ClaimedBy);
        }
        Assert.Empty(await _store.ClaimAsync(ids, "node/cuda:2", Ct));
    }

    [Fact]
    public async Task Scheduler_store_lists_the_queue_in_place_order_with_boosts_and_running_counts()
    {
        var old = await AddJobAsync("u1", minutesAgo: 30);
        var boosted = await AddJobAsync("u2", minutesAgo: 5, boost: 250);
        var running = await AddJobAsync("u2", minutesAgo: 40);
        await _store.ClaimAsync([running], "node/cpu", Ct);

        var queue = await _store.GetQueueAsync(Ct);

        Assert.Equal([old, boosted], queue.Waiting.Select(w => w.Id));
        Assert.Equal(_now.AddMinutes(-30), queue.Waiting[0].EnqueuedAt);
        Assert.Equal(250, queue.Waiting[1].Boost);
        Assert.Equal(1, queue.RunningByOwner["u2"]);
        Assert.False(queue.RunningByOwner.ContainsKey("u1"));
    }

    [Fact]
    public async Task Scheduler_store_recovers_a_workers_interrupted_job_with_its_checkpoint_and_place()
    {
        var mine = await AddJobAsync("u1", minutesAgo: 20);
        var other = await AddJobAsync("u1", minutesAgo: 10);
        await _store.ClaimAsync([mine], "node-a/cpu", Ct);
        await _store.ClaimAsync([other], "node-b/cpu", Ct);
        await _store.SaveCheckpointAsync(mine, 7, [1, 2, 3], Ct);
        await _store.RecordProgressAsync(mine, 9, 0.4, Ct);

        Assert.Equal(1, await _store.RecoverInterruptedAsync(["node-a/cpu"], Ct));   // node-b's job is not ours

        var row = await RowAsync(mine);
        Assert.Equal(JobStatus.Queued, row.Status);
        Assert.Null(row.ClaimedBy);
        Assert.Equal(7, row.StepsDone);
        Assert.Equal(JobStatus.Running, (await RowAsync(other)).Status);
        var queue = await _store.GetQueueAsync(Ct);
        Assert.Equal(_now.AddMinutes(-20), queue.Waiting.Single().EnqueuedAt);
        var again = Assert.Single(await _store.ClaimAsync([mine], "node-a/cpu", Ct));
        Assert.Equal(new byte[] { 1, 2, 3 }, again.Job.ResumeState);
        Assert.Equal(7, again.ResumeStep);
    }

    [Fact]
    public async Task Scheduler_store_requeues_with_a_new_checkpoint_or_keeps_the_stored_one()
    {
        var a = await AddJobAsync("u1", minutesAgo: 2);
        var b = await AddJobAsync("u1", minutesAgo: 1);
        await _store.ClaimAsync([a, b], "node/cpu", Ct);
        await _store.SaveCheckpointAsync(b, 10, [9], Ct);

        await _store.RequeueAsync(a, 12, [4, 5], Ct);
        await _store.RequeueAsync(b, 14, null, Ct);

        var rowA = await RowAsync(a);
        Assert.Equal((JobStatus.Queued, 12, 12), (rowA.Status, rowA.CheckpointStep, rowA.StepsDone));
        Assert.Equal(new byte[] { 4, 5 }, rowA.ResumeState);
        var rowB = await RowAsync(b);
        Assert.Equal((JobStatus.Queued, 10, 10), (rowB.Status, rowB.CheckpointStep, rowB.StepsDone));
        Assert.Equal(new byte[] { 9 }, rowB.ResumeState);
    }

    [Fact]
    public async Task Scheduler_store_keeps_usage_records_and_totals_per_job()
    {
        var job = await AddJobAsync("u1", minutesAgo: 1);
        await _store.RecordUsageAsync(
        [
            new UsageCharge(job, "u1", "3", _now.AddMinutes(-90), 1.5),
            new UsageCharge(job, "u1", "3", _now.AddMinutes(-1), 2.25),
        ], Ct);

        var recent = await _store.GetUsageSinceAsync(_now.AddHours(-1), Ct);

        var record = Assert.Single(recent);
        Assert.Equal((job, "u1", "3", 2.25), (record.JobId, record.UserId, record.TeamKey, record.DeviceSeconds));
        Assert.Equal(_now.AddMinutes(-1), record.At);
        Assert.Equal(3.75, (await RowAsync(job)).DeviceSeconds, 9);
        Assert.Equal(2, (await _store.GetUsageSinceAsync(_now.AddDays(-1), Ct)).Count);
    }

    [Fact]
    public async Task Scheduler_store_cancels_only_queued_jobs_at_once()
    {
        var queued = await AddJobAsync("u2", minutesAgo: 2);
        var running = await AddJobAsync("u2", minutesAgo: 1);
        await _store.ClaimAsync([running], "node/cpu", Ct);

        Assert.Equal("u2", await _store.CancelQueuedAsync(queued, Ct));
        Assert.Null(await _store.CancelQueuedAsync(running, Ct));
        Assert.Null(await _store.CancelQueuedAsync(Guid.NewGuid(), Ct));

        Assert.Equal(JobStatus.Cancelled, (await RowAsync(queued)).Status);
        Assert.Equal(JobStatus.Running, (await RowAsync(running)).Status);
        Assert.Equal(1, await _store.CountOpenJobsAsync("u2", Ct));
    }

    [Fact]
    public async Task Scheduler_policy_source_reads_team_and_user_shares_and_quotas()
    {
        await using (var db = _contexts.CreateDbContext())
        {
            var lab = new Team { Name = "lab", Share = 3, DefaultQuotas = new QuotaSettings { MaxRunning = 2, MaxStepsPerJob = 200 } };
            var ops = new Team { Name = "ops" };
            db.Teams.AddRange(lab, ops);
            await db.SaveChangesAsync(Ct);
            db.TeamMembers.Add(new TeamMember { TeamId = ops.Id, UserId = "u1", AddedAt = _now.UtcDateTime.AddDays(-2) });
            db.TeamMembers.Add(new TeamMember { TeamId = lab.Id, UserId = "u1", AddedAt = _now.UtcDateTime.AddDays(-1) });
            db.TeamMembers.Add(new TeamMember { TeamId = lab.Id, UserId = "u2", AddedAt = _now.UtcDateTime });
            db.UserScheduling.Add(new UserSchedulingSettings { UserId = "u1", Share = 2, SchedulingTeamId = lab.Id, Quotas = new QuotaSettings { MaxStepsPerJob = 500 } });
            await db.SaveChangesAsync(Ct);
        }
        var source = new EfSchedulingPolicySource(_contexts, Options.Create(new SchedulerOptions { DefaultQuotas = new QuotaLimits { MaxQueued = 5 } }));

        var policy = await source.LoadAsync(Ct);

        var lab2 = policy.TeamOf("u2");
        Assert.Equal(lab2, policy.TeamOf("u1"));                  // chosen over the team joined first
        Assert.Equal(3, policy.TeamShare(lab2));
        Assert.Equal(2, policy.UserShare("u1"));
        Assert.Equal(1, policy.UserShare("u2"));
        Assert.Equal(new QuotaLimits { MaxQueued = 5, MaxRunning = 2, MaxStepsPerJob = 500 }, policy.QuotasOf("u1"));
        Assert.Equal(new QuotaLimits { MaxQueued = 5, MaxRunning = 2, MaxStepsPerJob = 200 }, policy.QuotasOf("u2"));
        Assert.Equal(SchedulingPolicy.NoTeam, policy.TeamOf("nobody"));
    }

    private sealed class Factory(DbContextOptions<PromptFacesDbContext> options) : IDbContextFactory<PromptFacesDbContext>
    {
        public PromptFacesDbContext CreateDbContext() => new(options);
    }

    private sealed class FixedClock(DateTimeOffset now) : TimeProvider
    {
        public override DateTimeOffset GetUtcNow() => now;
    }
}

/// <summary>Quotas read from the database apply to submissions through the API, without a restart.</summary>
public sealed class SchedulerQuotaTests(AppFactory app) : IClassFixture<AppFactory>
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task Scheduler_quota_set_in_the_database_refuses_a_job_over_the_users_step_limit()
    {
        using var user = await app.RegisterAsync("limited@example.com");
        await user.SubmitOkAsync(new { prompt = "a face with a hat", steps = 50 });

        using (var scope = app.Services.CreateScope())
        {
            var db = scope.ServiceProvider.GetRequiredService<PromptFacesDbContext>();
            var id = await db.Users.Where(u => u.Email == "limited@example.com").Select(u => u.Id).SingleAsync(Ct);
            db.UserScheduling.Add(new UserSchedulingSettings { UserId = id, Quotas = new QuotaSettings { MaxStepsPerJob = 20 } });
            await db.SaveChangesAsync(Ct);
        }
        app.Services.GetRequiredService<SchedulingPolicyCache>().Invalidate();

        var (status, body) = await user.SubmitAsync(new { prompt = "a face with a hat", steps = 50 });

        Assert.Equal(HttpStatusCode.TooManyRequests, status);
        Assert.Equal("A job may run at most 20 steps; this one asks for 50. Choose fewer steps.", body.GetProperty("detail").GetString());
        await user.SubmitOkAsync(new { prompt = "a face with a hat", steps = 20 });
    }
}
