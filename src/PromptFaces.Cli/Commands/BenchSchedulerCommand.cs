using System.CommandLine;
using System.Globalization;
using System.Text.Json.Nodes;
using PromptFaces.Cli.SchedulerBench;
using PromptFaces.Generation.Devices;
using static TorchSharp.torch;

namespace PromptFaces.Cli.Commands;

/// <summary>
/// <c>promptfaces bench scheduler</c>: jobs per hour and waits of simulated users through the fair-share scheduler at
/// several batch sizes, beside running the same jobs one at a time. See <see cref="SchedulerBenchmark"/>. Figures are
/// printed, never asserted.
/// </summary>
internal static class BenchSchedulerCommand
{
    public static Command Create()
    {
        var generator = new Option<string?>("--generator") { Description = "Generator checkpoint (.pkl, .safetensors); default: the shipped default model." };
        var clip = CommonOptions.Clip();
        var users = new Option<int>("--users") { Description = "Simulated users: one heavy user and the rest light.", DefaultValueFactory = _ => 4 };
        var jobs = new Option<int>("--jobs") { Description = "Jobs the heavy user submits at once at the start (3 × the largest B or more keeps every batch size busy).", DefaultValueFactory = _ => 24 };
        var lightJobs = new Option<int>("--light-jobs") { Description = "Jobs each light user submits, one now and then while the heavy user's jobs drain.", DefaultValueFactory = _ => 3 };
        var steps = new Option<int>("--steps") { Description = "Optimisation steps per job.", DefaultValueFactory = _ => 20 };
        var cutouts = new Option<int>("--cutouts") { Description = "CLIP views per job and step (the web app's default is 8).", DefaultValueFactory = _ => 8 };
        var batches = new Option<string>("--batches") { Description = "Comma-separated batch sizes B to run the scheduler with.", DefaultValueFactory = _ => "1,4,8" };
        var checkpointEvery = new Option<int>("--checkpoint-every") { Description = "The scheduler checkpoints running jobs every this many steps (0: never), as the app does.", DefaultValueFactory = _ => 10 };
        var rounds = new Option<int>("--rounds")
        {
            Description = "Run every configuration this many times, in turn, every other round in reverse order, and pool the results " +
                "(evens out a machine whose load drifts).",
            DefaultValueFactory = _ => 1,
        };
        var json = new Option<bool>("--json") { Description = "Print the results as one JSON object." };
        var device = CommonOptions.Device();
        var libtorch = CommonOptions.Libtorch();
        var threads = CommonOptions.Threads();
        var command = new Command("scheduler",
            "Simulate users sharing one device: a heavy user floods the queue, light users submit now and then. Prints jobs per hour and " +
            "waits through the fair-share scheduler at each batch size, beside running the jobs one at a time.")
        {
            generator, clip, users, jobs, lightJobs, steps, cutouts, batches, checkpointEvery, rounds, json, device, libtorch, threads,
        };
        command.SetAction(async (r, ct) =>
        {
            var (g, c) = DefaultModels.Resolve(r.GetValue(generator), r.GetValue(clip));
            if (!File.Exists(g)) throw new FileNotFoundException($"The generator checkpoint {g} does not exist.");
            if (c.Count > 2) throw new CliException("The web engine takes at most two CLIPs (PromptFaces:Engine:Clip and :SecondClip); pass --clip once or twice.");
            foreach (var folder in c)
                if (!Directory.Exists(folder)) throw new DirectoryNotFoundException($"The CLIP folder {folder} does not exist.");
            int userCount = r.GetValue(users), heavy = r.GetValue(jobs), light = r.GetValue(lightJobs), stepCount = r.GetValue(steps);
            if (userCount < 1) throw new CliException("--users must be at least 1 (one heavy user, the rest light).");
            if (heavy < 1) throw new CliException("--jobs must be at least 1.");
            if (light < 0) throw new CliException("--light-jobs must be 0 or more.");
            if (stepCount < 1) throw new CliException("--steps must be at least 1.");
            if (r.GetValue(cutouts) < 1) throw new CliException("--cutouts must be at least 1.");
            int roundCount = r.GetValue(rounds);
            if (roundCount < 1) throw new CliException("--rounds must be at least 1.");
            var sizes = ParseBatches(r.GetValue(batches)!);
            var dev = CommonOptions.ResolveDevice(r, device, libtorch, threads);
            var settings = new SchedulerBenchSettings(Path.GetFullPath(g), c.Select(Path.GetFullPath).ToArray(), r.GetValue(device) ?? "cpu", r.GetValue(libtorch),
                userCount, heavy, light, stepCount, r.GetValue(cutouts), Math.Max(0, r.GetValue(checkpointEvery)));
            var loadStart = LoadAverage();
            var bench = new SchedulerBenchmark(settings, m => Console.Error.WriteLine(m));
            if (heavy < 3 * sizes.Max())
                Console.Error.WriteLine($"note: the heavy user's {heavy} jobs are fewer than 3 × B = {3 * sizes.Max()}; the largest batch will not stay full.");

            // Configuration 0 is one-at-a-time, then each batch size; odd rounds go backwards.
            var raw = Enumerable.Range(0, sizes.Length + 1).Select(_ => new List<SchedulerBenchRawRun>()).ToArray();
            for (int round = 0; round < roundCount; round++)
            {
                var order = Enumerable.Range(0, sizes.Length + 1).ToArray();
                if (round % 2 == 1) Array.Reverse(order);
                foreach (var config in order)
                {
                    if (roundCount > 1) Console.Error.WriteLine($"round {round + 1} of {roundCount}");
                    raw[config].Add(config == 0 ? bench.RunOneAtATime() : await bench.RunScheduledAsync(sizes[config - 1]));
                }
            }
            var runs = raw.Select(SchedulerBenchmark.Summarise).ToList();
            var loadEnd = LoadAverage();

            var alone = runs[0];
            var summary = new JsonObject
            {
                ["generator"] = Path.GetFileName(g),
                ["clip"] = string.Join("+", c.Select(f => Path.GetFileName(Path.TrimEndingDirectorySeparator(f)))),
                ["device"] = ComputeDevices.DescribeDevice(dev),
                ["threads"] = get_num_threads(),
                ["users"] = userCount,
                ["heavy_jobs"] = heavy,
                ["light_jobs"] = (userCount - 1) * light,
                ["steps"] = stepCount,
                ["cutouts"] = settings.Cutouts,
                ["rounds"] = roundCount,
                ["job_seconds_alone"] = Round(alone.MeanRun),
                ["load_average_start"] = loadStart,
                ["load_average_end"] = loadEnd,
                ["results"] = new JsonArray(runs.Select(run => (JsonNode)new JsonObject
                {
                    ["mode"] = run.Mode,
                    ["batch"] = run.Batch,
                    ["rounds"] = run.Rounds,
                    ["jobs"] = run.Jobs,
                    ["completed"] = run.Completed,
                    ["failed"] = run.Failed,
                    ["seconds"] = Round(run.Seconds),
                    ["ms_per_engine_step"] = Round(run.MsPerEngineStep),
                    ["jobs_per_hour"] = Round(run.JobsPerHour),
                    ["speedup"] = Round(alone.JobsPerHour > 0 ? run.JobsPerHour / alone.JobsPerHour : double.NaN),
                    ["mean_wait_s"] = Round(run.MeanWait),
                    ["p95_wait_s"] = Round(run.P95Wait),
                    ["light_mean_wait_s"] = Round(run.LightMeanWait),
                    ["light_p95_wait_s"] = Round(run.LightP95Wait),
                    ["mean_run_s"] = Round(run.MeanRun),
                    ["light_p95_wait_runs"] = Round(run.LightP95Wait / run.MeanRun),
                    ["light_p95_wait_jobs_alone"] = Round(run.LightP95Wait / alone.MeanRun),
                    ["error"] = run.FirstError,
                }).ToArray()),
            };
            if (r.GetValue(json))
            {
                Console.WriteLine(summary.ToJsonString());
            }
            else
            {
                Console.WriteLine($"{summary["generator"]} + {summary["clip"]} on {summary["device"]}, {summary["threads"]} thread(s); " +
                    $"{userCount} users: 1 heavy with {heavy} jobs at t=0, {userCount - 1} light with {light} each; {stepCount} steps, {settings.Cutouts} views per job; " +
                    (roundCount > 1 ? $"{roundCount} rounds pooled; " : "") +
                    $"one job alone takes {alone.MeanRun:F2} s; load average {loadStart} -> {loadEnd}");
                Console.WriteLine();
                Console.WriteLine("| mode | B | jobs/hour | × one-at-a-time | mean wait | p95 wait | light p95 wait | job run time | light p95 wait in run times | light p95 wait in jobs alone |");
                Console.WriteLine("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
                foreach (var run in runs)
                {
                    Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                        $"| {run.Mode} | {run.Batch} | {run.JobsPerHour:F0} | {run.JobsPerHour / alone.JobsPerHour:F2} | {run.MeanWait:F1} s | {run.P95Wait:F1} s | " +
                        $"{run.LightP95Wait:F1} s | {run.MeanRun:F1} s | {run.LightP95Wait / run.MeanRun:F2} | {run.LightP95Wait / alone.MeanRun:F2} |"));
                }
                foreach (var run in runs.Where(x => x.Failed > 0))
                    Console.WriteLine($"B={run.Batch} ({run.Mode}): {run.Failed} job(s) failed: {run.FirstError}");
            }
            return runs.All(x => x.Failed == 0 && x.Completed == x.Jobs) ? 0 : 1;
        });
        return command;
    }

    private static double? Round(double value) => double.IsFinite(value) ? Math.Round(value, 3) : null;

    private static int[] ParseBatches(string text)
    {
        var sizes = new List<int>();
        foreach (var p in text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            if (!int.TryParse(p, NumberStyles.Integer, CultureInfo.InvariantCulture, out var b) || b < 1 || b > 256)
                throw new CliException($"--batches: '{p}' is not a batch size between 1 and 256 (write e.g. --batches 1,4,8).");
            sizes.Add(b);
        }
        return sizes.Count > 0 ? sizes.ToArray() : throw new CliException("--batches needs at least one size.");
    }

    /// <summary>The 1-minute load average (Linux), to say how busy the machine was; empty elsewhere.</summary>
    private static string LoadAverage()
    {
        try { return File.ReadAllText("/proc/loadavg").Split(' ')[0]; }
        catch (IOException) { return ""; }
        catch (UnauthorizedAccessException) { return ""; }
    }
}
