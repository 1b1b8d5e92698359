using System.Text.Json.Nodes;
using Xunit;

namespace PromptFaces.Cli.Tests;

/// <summary>
/// <c>promptfaces bench scheduler</c> end to end on the tiny fixture networks: every configuration runs all its jobs
/// and reports a throughput. Only the shape of the report is checked; its timings are not asserted.
/// </summary>
public sealed class BenchSchedulerCliTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("pf-bench-scheduler-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string[] TinyArgs(params string[] more) =>
    [
        "bench", "scheduler",
        "--generator", PromptfacesProcess.Fixture("stylegan2", "stylegan2_tiny_official_format.pkl"),
        "--clip", PromptfacesProcess.TinyClipFolder(_dir),
        "--users", "3", "--jobs", "4", "--light-jobs", "1", "--steps", "3", "--cutouts", "2", "--batches", "1,2",
        "--checkpoint-every", "2", "--threads", "1",
        .. more,
    ];

    [Fact]
    public void Bench_scheduler_json_has_a_row_per_batch_size_beside_one_at_a_time_with_every_job_of_every_round_completed()
    {
        var (code, stdout, stderr) = PromptfacesProcess.Run(TimeSpan.FromMinutes(5), TinyArgs("--rounds", "2", "--json"));
        Assert.True(code == 0, stderr);

        var json = JsonNode.Parse(stdout.TrimEnd().Split('\n')[^1])!.AsObject();
        Assert.Equal(3, json["users"]!.GetValue<int>());
        Assert.Equal(4, json["heavy_jobs"]!.GetValue<int>());
        Assert.Equal(2, json["light_jobs"]!.GetValue<int>());
        Assert.Equal(2, json["rounds"]!.GetValue<int>());
        Assert.True(json["job_seconds_alone"]!.GetValue<double>() > 0);

        var rows = json["results"]!.AsArray().Select(r => r!.AsObject()).ToList();
        Assert.Equal(["one at a time", "fair-share scheduler", "fair-share scheduler"], rows.Select(r => r["mode"]!.GetValue<string>()));
        Assert.Equal([1, 1, 2], rows.Select(r => r["batch"]!.GetValue<int>()));
        foreach (var row in rows)
        {
            Assert.Equal(2, row["rounds"]!.GetValue<int>());
            Assert.Equal(12, row["jobs"]!.GetValue<int>());
            Assert.Equal(12, row["completed"]!.GetValue<int>());
            Assert.Equal(0, row["failed"]!.GetValue<int>());
            Assert.True(row["jobs_per_hour"]!.GetValue<double>() > 0, row.ToJsonString());
            Assert.True(row["mean_run_s"]!.GetValue<double>() > 0, row.ToJsonString());
            Assert.True(row["p95_wait_s"]!.GetValue<double>() >= row["mean_wait_s"]!.GetValue<double>() - 1e-9, row.ToJsonString());
            Assert.NotNull(row["light_p95_wait_s"]);
        }
        Assert.Equal(1.0, rows[0]["speedup"]!.GetValue<double>(), 3);
    }

    [Fact]
    public void Bench_scheduler_prints_a_table_row_for_one_at_a_time_and_each_batch_size()
    {
        var (code, stdout, stderr) = PromptfacesProcess.Run(TimeSpan.FromMinutes(5), TinyArgs());
        Assert.True(code == 0, stderr);

        var rows = stdout.Split('\n').Where(l => l.StartsWith("| one at a time", StringComparison.Ordinal)
            || l.StartsWith("| fair-share scheduler", StringComparison.Ordinal)).ToList();
        Assert.Equal(3, rows.Count);
        Assert.StartsWith("| one at a time | 1 |", rows[0]);
        Assert.StartsWith("| fair-share scheduler | 1 |", rows[1]);
        Assert.StartsWith("| fair-share scheduler | 2 |", rows[2]);
        foreach (var row in rows)
        {
            var jobsPerHour = double.Parse(row.Split('|', StringSplitOptions.TrimEntries)[3], System.Globalization.CultureInfo.InvariantCulture);
            Assert.True(jobsPerHour > 0, row);
        }
    }
}
