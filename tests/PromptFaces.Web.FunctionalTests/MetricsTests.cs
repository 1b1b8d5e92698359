using System.Net;
using Xunit;

namespace PromptFaces.Web.FunctionalTests;

/// <summary>A host whose scrape endpoint is open to anonymous callers (<c>PromptFaces:Metrics:AllowAnonymous</c>).</summary>
public sealed class AnonymousMetricsAppFactory : AppFactory
{
    public AnonymousMetricsAppFactory() => Settings["PromptFaces:Metrics:AllowAnonymous"] = "true";
}

/// <summary>The Prometheus scrape endpoint: the scheduler's metrics after a job ran, and who may scrape.</summary>
public sealed class MetricsTests(AppFactory app) : IClassFixture<AppFactory>
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    /// <summary>The Prometheus names of the scheduler's instruments (OpenTelemetry adds unit and <c>_total</c>
    /// suffixes; these are the stems).</summary>
    public static readonly string[] MetricNames =
    [
        "promptfaces_scheduler_queue_length",
        "promptfaces_scheduler_jobs_running",
        "promptfaces_scheduler_device_busy",
        "promptfaces_scheduler_job_wait_seconds_bucket",
        "promptfaces_scheduler_job_run_seconds_bucket",
        "promptfaces_scheduler_job_steps_total",
        "promptfaces_scheduler_usage_seconds_total",
    ];

    [Fact]
    public async Task An_admin_scrapes_the_scheduler_metrics_after_a_job_ran()
    {
        using var admin = await app.RegisterOrSignInAdminAsync();
        var job = await admin.SubmitOkAsync(new { prompt = "a face to be measured", steps = 4 });
        await admin.WaitForStatusAsync(job, "Completed");
        var adminId = await app.UserIdAsync(AppFactory.AdminEmail);

        using (var response = await admin.Http.GetAsync("/metrics", Ct))
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.StartsWith("text/plain", response.Content.Headers.ContentType?.MediaType);
        }
        // The exporter may answer from its scrape cache (a few hundred milliseconds) made before this job's steps, as
        // a scrape by the class's other test can leave it: scrape until the steps show, then check everything.
        var text = await ScrapeUntilAsync(admin, t => Sample(t, "promptfaces_scheduler_job_steps_total") >= 4);
        TestContext.Current.TestOutputHelper?.WriteLine(text);
        foreach (var name in MetricNames)
            Assert.True(text.Contains(name, StringComparison.Ordinal), $"{name} is missing from:\n{text}");
        // The usage counter names its user; the job's steps were counted.
        Assert.Contains($"user=\"{adminId}\"", text);
        var steps = Sample(text, "promptfaces_scheduler_job_steps_total");
        Assert.True(steps >= 4, $"job steps counted: {steps}");
        Assert.True(Sample(text, "promptfaces_scheduler_job_wait_seconds_count") >= 1, "the job's wait was recorded");
        Assert.True(Sample(text, "promptfaces_scheduler_job_run_seconds_count") >= 1, "the job's run was recorded");
    }

    [Fact]
    public async Task The_queue_length_gauge_counts_the_waiting_jobs()
    {
        using var admin = await app.RegisterOrSignInAdminAsync();
        app.Engine.Hold = true;
        try
        {
            // One worker with a batch of 4 (the factory's): four are admitted and held, the fifth (the most a user may
            // have open) waits.
            var jobs = new List<Guid>();
            for (int i = 0; i < 5; i++)
                jobs.Add(await admin.SubmitOkAsync(new { prompt = $"a queued face {i}", steps = 2 }));
            await admin.WaitForStatusAsync(jobs[3], "Running");
            await WaitForSampleAsync(admin, "promptfaces_scheduler_queue_length", 1);
            await WaitForSampleAsync(admin, "promptfaces_scheduler_jobs_running", 4);
            foreach (var job in jobs)
                using (await admin.Http.PostAsync($"/api/jobs/{job}/cancel", null, Ct)) { }
            await WaitForSampleAsync(admin, "promptfaces_scheduler_queue_length", 0);
        }
        finally
        {
            app.Engine.Hold = false;
        }
    }

    /// <summary>Scrapes until the sum of the metric's samples is <paramref name="expected"/>; fails after the patience.</summary>
    private static async Task WaitForSampleAsync(UserClient admin, string metric, double expected)
    {
        var text = await ScrapeUntilAsync(admin, t => Sample(t, metric) == expected);
        var last = Sample(text, metric);
        Assert.True(last == expected, $"{metric} stayed at {last}, not {expected}:\n{text}");
    }

    /// <summary>Scrapes until <paramref name="done"/> holds for the text, which it returns; after the patience, the last text.</summary>
    private static async Task<string> ScrapeUntilAsync(UserClient admin, Func<string, bool> done)
    {
        using var timeout = new CancellationTokenSource(TestHelpers.Patience);
        while (true)
        {
            var text = await admin.Http.GetStringAsync("/metrics", Ct);
            if (done(text)) return text;
            try { await Task.Delay(50, timeout.Token); }
            catch (OperationCanceledException) { return text; }
        }
    }

    /// <summary>The sum of the samples of <paramref name="metric"/> (over all its label sets) in Prometheus text.</summary>
    private static double Sample(string text, string metric) =>
        text.Split('\n')
            .Where(l => l.StartsWith(metric + "{", StringComparison.Ordinal) || l.StartsWith(metric + " ", StringComparison.Ordinal))
            .Sum(l => double.Parse((l.Contains('}') ? l[(l.LastIndexOf('}') + 1)..] : l[metric.Length..]).Trim().Split(' ')[0],
                System.Globalization.CultureInfo.InvariantCulture));

    [Fact]
    public async Task Only_admins_may_scrape_by_default()
    {
        using var user = await app.RegisterAsync("scraper@example.com");
        using var anonymous = app.NewClient();

        using var asUser = await user.Http.GetAsync("/metrics", Ct);
        using var asAnonymous = await anonymous.Http.GetAsync("/metrics", Ct);

        Assert.Equal(HttpStatusCode.Forbidden, asUser.StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, asAnonymous.StatusCode);
        Assert.DoesNotContain("promptfaces_scheduler", await asUser.Content.ReadAsStringAsync(Ct));
    }
}

/// <summary>
/// The scrape endpoint opened by a setting. A class (and host) of its own: OpenTelemetry listens to meters by name
/// across the process, so a second host started and stopped beside another would take the first one's gauges with it.
/// </summary>
public sealed class AnonymousMetricsTests(AnonymousMetricsAppFactory app) : IClassFixture<AnonymousMetricsAppFactory>
{
    [Fact]
    public async Task A_setting_opens_the_scrape_endpoint_to_anonymous_callers()
    {
        using var anonymous = app.NewClient();
        using var response = await anonymous.Http.GetAsync("/metrics", TestContext.Current.CancellationToken);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Contains("promptfaces_scheduler_queue_length", await response.Content.ReadAsStringAsync(TestContext.Current.CancellationToken));
    }
}
