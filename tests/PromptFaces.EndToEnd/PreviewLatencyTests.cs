using System.Text.Json;
using Xunit;
using static Microsoft.Playwright.Assertions;

namespace PromptFaces.EndToEnd;

/// <summary>
/// Measures live previews as the browser sees them: how soon the first frame arrives after the job starts, how often
/// frames come, and how old each frame is when it arrives and when its picture is decoded. The figures are written to
/// artifacts/e2e/preview-latency.json and printed; they are measurements, so the test checks only that every frame
/// came with its timing, in order, and that the clocks agree (no frame arrives before it was made).
/// </summary>
public sealed class PreviewLatencyTests(LiveApp app)
{
    [Fact]
    public async Task Preview_latency_is_measured_in_the_browser()
    {
        int steps = int.TryParse(Environment.GetEnvironmentVariable("PROMPTFACES_E2E_LATENCY_STEPS"), out var n) && n > 0 ? n : 100;
        await using var user = await BrowserUser.RegisterAsync(app, "latency@e2e.example");
        var jobId = await user.SubmitPromptAsync("a smiling man with short black hair and a beard", steps, seed: 7);
        await Expect(user.Page.GetByTestId("job-panel")).ToHaveAttributeAsync("data-status", "Completed", new() { Timeout = 300_000 });

        var job = await user.GetJsonAsync($"/api/jobs/{jobId}");
        var startedAt = UnixMs(job.GetProperty("startedAt").GetDateTime());
        var finishedAt = UnixMs(job.GetProperty("finishedAt").GetDateTime());
        var frames = (await user.FramesAsync(jobId)).Where(f => f.Bytes > 0).ToList();

        Assert.NotEmpty(frames);
        Assert.All(frames, f => Assert.NotNull(f.ProducedAt));
        Assert.Equal(frames.Select(f => f.Step).OrderBy(s => s), frames.Select(f => f.Step));
        // Server and browser share this machine's clock; 5 ms covers the server's millisecond rounding.
        Assert.All(frames, f => Assert.True(f.ReceivedAt >= f.ProducedAt!.Value - 5, $"Frame {f.Step} arrived before it was made."));

        var ages = frames.Select(f => f.ReceivedAt - f.ProducedAt!.Value).ToList();
        var decodedAges = frames.Where(f => f.DecodedAt is not null).Select(f => f.DecodedAt!.Value - f.ProducedAt!.Value).ToList();
        var intervals = frames.Zip(frames.Skip(1), (a, b) => b.ReceivedAt - a.ReceivedAt).ToList();
        var engineIntervals = frames.Zip(frames.Skip(1), (a, b) => b.ProducedAt!.Value - a.ProducedAt!.Value).ToList();
        var report = new Dictionary<string, object?>
        {
            ["steps"] = steps,
            ["frames_received"] = frames.Count,
            ["first_frame_after_job_start_ms"] = Round(frames[0].ReceivedAt - startedAt),
            ["job_seconds"] = Round((finishedAt - startedAt) / 1000),
            ["engine_step_interval_median_ms"] = Round(Median(engineIntervals)),
            ["engine_steps_per_second_median"] = Round(1000 / Median(engineIntervals)),
            ["frame_interval_median_ms"] = Round(Median(intervals)),
            ["frames_per_second_median"] = Round(1000 / Median(intervals)),
            ["frame_age_on_arrival_median_ms"] = Round(Median(ages)),
            ["frame_age_on_arrival_p95_ms"] = Round(Percentile(ages, 0.95)),
            ["frame_age_decoded_median_ms"] = decodedAges.Count > 0 ? Round(Median(decodedAges)) : null,
            ["frame_bytes_median"] = Median(frames.Select(f => (double)f.Bytes).ToList()),
            ["processor_count"] = Environment.ProcessorCount,
        };
        var json = JsonSerializer.Serialize(report, new JsonSerializerOptions { WriteIndented = true });
        await File.WriteAllTextAsync(Path.Combine(LiveApp.ArtifactsFolder, "preview-latency.json"), json, TestContext.Current.CancellationToken);
        Console.WriteLine("Preview latency in the browser: " + json);
        await user.ScreenshotAsync("10-latency-result");
    }

    private static double UnixMs(DateTime utc) =>
        new DateTimeOffset(DateTime.SpecifyKind(utc, DateTimeKind.Utc)).ToUnixTimeMilliseconds() + utc.Ticks % TimeSpan.TicksPerMillisecond / (double)TimeSpan.TicksPerMillisecond;

    private static double Round(double value) => Math.Round(value, 1);

    private static double Median(IReadOnlyList<double> values) => Percentile(values, 0.5);

    private static double Percentile(IReadOnlyList<double> values, double q)
    {
        if (values.Count == 0) return double.NaN;
        var sorted = values.OrderBy(v => v).ToArray();
        double position = q * (sorted.Length - 1);
        int lower = (int)Math.Floor(position), upper = (int)Math.Ceiling(position);
        return sorted[lower] + (sorted[upper] - sorted[lower]) * (position - lower);
    }
}
