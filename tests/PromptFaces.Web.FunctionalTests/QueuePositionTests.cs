using Microsoft.Extensions.DependencyInjection;
using PromptFaces.Scheduling.FairShare;
using Xunit;

namespace PromptFaces.Web.FunctionalTests;

/// <summary>One slot, and steps slow enough that a running job keeps it while the test submits.</summary>
public sealed class OneSlotAppFactory : AppFactory
{
    public OneSlotAppFactory()
    {
        Settings["PromptFaces:Scheduler:DefaultMaxBatch"] = "1";
        Engine.StepDelay = TimeSpan.FromMilliseconds(10);
    }
}

/// <summary>The queue position a submission is told is the scheduler's order, not the order of arrival.</summary>
public sealed class QueuePositionTests(OneSlotAppFactory app) : IClassFixture<OneSlotAppFactory>
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task Scheduler_order_gives_a_light_users_new_job_the_first_place_ahead_of_a_heavy_users_older_ones()
    {
        using var heavy = await app.RegisterAsync("queue-heavy@example.com");
        using var light = await app.RegisterAsync("queue-light@example.com");
        var running = await heavy.SubmitOkAsync(new { prompt = "a long running face", steps = 1000 });
        await heavy.WaitForStatusAsync(running, "Running");
        var heavyId = await app.UserIdAsync(heavy.Email);
        var scheduler = app.Services.GetRequiredService<FairShareScheduler>();
        using (var timeout = new CancellationTokenSource(TestHelpers.Patience))
            while (!((await scheduler.FairSharesAsync(Ct)).TryGetValue(heavyId, out var share) && share.UserUsage > 0))
                await Task.Delay(20, timeout.Token);

        var (_, first) = await heavy.SubmitAsync(new { prompt = "a queued face one", steps = 10 });
        var (_, second) = await heavy.SubmitAsync(new { prompt = "a queued face two", steps = 10 });
        Assert.Equal(1, first.GetProperty("queuePosition").GetInt32());
        Assert.Equal(2, second.GetProperty("queuePosition").GetInt32());

        // The light user has used nothing: their job goes first although it came last.
        var (_, lightJob) = await light.SubmitAsync(new { prompt = "a light user's face", steps = 10 });
        Assert.Equal(1, lightJob.GetProperty("queuePosition").GetInt32());
        var (_, third) = await heavy.SubmitAsync(new { prompt = "a queued face three", steps = 10 });
        Assert.Equal(4, third.GetProperty("queuePosition").GetInt32());

        foreach (var (user, body) in new[] { (heavy, first), (heavy, second), (light, lightJob), (heavy, third) })
            using (await user.Http.PostAsync($"/api/jobs/{body.GetProperty("id").GetGuid()}/cancel", null, Ct)) { }
        using (await heavy.Http.PostAsync($"/api/jobs/{running}/cancel", null, Ct)) { }
        await heavy.WaitForStatusAsync(running, "Cancelled");
    }
}
