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
        using var admin = await app.RegisterAsync(AppFactory.AdminEmail);
        var job = await admin.SubmitOkAsync(new { prompt = "a face to be measured", steps = 4 });
        await admin.WaitForStatusAsync(job, "Completed");
        var adminId = await app.UserIdAsync(AppFactory.AdminEmail);

        using var response = await admin.Http.GetAsync("/metrics", Ct);
        var text = await response.Content.ReadAsStringAsync(Ct);

        TestContext.Current.TestOutputHelper?.WriteLine(text);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.StartsWith("text/plain", response.Content.Headers.ContentType?.MediaType);
        foreach (var name in MetricNames)
            Assert.True(text.Contains(name, StringComparison.Ordinal), $"{name} is missing from:\n{text}");
        // The usage counter names its user; the job's steps were counted.
        Assert.Contains($"user=\"{adminId}\"", text);
        var steps = text.Split('\n').Where(l => l.StartsWith("promptfaces_scheduler_job_steps_total{", StringComparison.Ordinal))
            .Sum(l => double.Parse(l[(l.LastIndexOf('}') + 1)..].Trim().Split(' ')[0], System.Globalization.CultureInfo.InvariantCulture));
        Assert.True(steps >= 4, $"job steps counted: {steps}");
    }

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

    [Fact]
    public async Task A_setting_opens_the_scrape_endpoint_to_anonymous_callers()
    {
        using var open = new AnonymousMetricsAppFactory();
        using var anonymous = open.NewClient();
        using var response = await anonymous.Http.GetAsync("/metrics", Ct);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
    }
}
