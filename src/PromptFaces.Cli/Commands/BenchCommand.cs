using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using PromptFaces.Generation.Clip;
using PromptFaces.Generation.Devices;
using PromptFaces.Generation.Optimisation;
using PromptFaces.Generation.StyleGan2;
using Spectre.Console;
using TorchSharp;
using static TorchSharp.torch;

namespace PromptFaces.Cli.Commands;

/// <summary>
/// <c>promptfaces bench</c>: median time of one co-batched optimisation step (render, views, CLIP, loss, backward,
/// Adam) after warm-up, per batch size, and the peak memory. Figures are printed, never asserted.
/// </summary>
internal static class BenchCommand
{
    private static readonly Dictionary<string, ClipConfig> ClipPresets = new()
    {
        ["vit-b-32"] = ClipConfig.VitB32,
        ["vit-l-14"] = ClipConfig.VitL14,
    };

    public static Command Create()
    {
        var generatorPreset = new Option<string?>("--generator-preset") { Description = $"Build a generator from a preset: {string.Join(", ", StyleGan2Config.Presets.Keys)}." };
        var generator = new Option<string?>("--generator") { Description = "Or load a generator checkpoint (.pkl, .safetensors)." };
        var clipPreset = new Option<string?>("--clip-preset") { Description = "Build CLIP from a preset: vit-b-32 or vit-l-14." };
        var clip = new Option<string?>("--clip") { Description = "Or load a CLIP model folder." };
        var random = new Option<bool>("--random-weights") { Description = "Presets get random weights (required with a preset: no pretrained weights are downloaded)." };
        var batches = new Option<string>("--batch") { Description = "Comma-separated batch sizes.", DefaultValueFactory = _ => "1,4,8" };
        var steps = new Option<int>("--steps") { Description = "Timed steps per batch size (the median is reported).", DefaultValueFactory = _ => 5 };
        var warmup = new Option<int>("--warmup") { Description = "Untimed steps first.", DefaultValueFactory = _ => 1 };
        var cutouts = new Option<int>("--cutouts") { Description = "CLIP views per job and step (1 matches the PyTorch reference in PLATFORM.md).", DefaultValueFactory = _ => 1 };
        var json = new Option<bool>("--json") { Description = "Print the results as one JSON object." };
        var device = CommonOptions.Device();
        var libtorch = CommonOptions.Libtorch();
        var threads = CommonOptions.Threads();
        var command = new Command("bench", "Measure optimisation speed and memory per batch size.")
        {
            generatorPreset, generator, clipPreset, clip, random, batches, steps, warmup, cutouts, json, device, libtorch, threads,
        };
        command.Subcommands.Add(BenchSchedulerCommand.Create());
        command.SetAction(r =>
        {
            var dev = CommonOptions.ResolveDevice(r, device, libtorch, threads);
            var sizes = ParseBatches(r.GetValue(batches)!);
            var timedSteps = Math.Max(1, r.GetValue(steps));
            var warm = Math.Max(0, r.GetValue(warmup));
            var views = r.GetValue(cutouts);
            using var models = BuildModels(r.GetValue(generatorPreset), r.GetValue(generator), r.GetValue(clipPreset), r.GetValue(clip), r.GetValue(random), dev);

            var results = new JsonArray();
            foreach (var b in sizes)
            {
                ResetPeakMemory();
                var times = new List<double>();
                double rssAfterWarmup;
                string? error = null;
                using (var engine = new CoBatchedOptimiser(models))
                {
                    for (int j = 0; j < b; j++)
                    {
                        engine.Enqueue(new OptimisationRequest($"bench-{j}", new OptimisationSettings
                        {
                            Prompts = new[] { new WeightedPrompt($"a portrait photo of person number {j}") },
                            Seed = j,
                            Steps = warm + timedSteps + 1,
                            Cutouts = views,
                            PreviewSize = 0,
                        }));
                    }
                    // A failed step (out of memory, say) fails every job in it; later steps would then time an
                    // empty engine, so the batch size is reported as failed, with the reason, and the rest go on.
                    string? Failure(IReadOnlyList<JobOutcome> outcomes) =>
                        outcomes.FirstOrDefault(o => o.Status == JobOutcomeStatus.Failed) is { } f ? FirstLine(f.Error ?? "failed") : null;
                    for (int i = 0; i < warm && error is null; i++) error = Failure(engine.Step());
                    rssAfterWarmup = MemoryMiB("VmRSS:");
                    for (int i = 0; i < timedSteps && error is null; i++)
                    {
                        var clock = Stopwatch.StartNew();
                        var outcomes = engine.Step();
                        if (dev.type == DeviceType.CUDA) cuda.synchronize();
                        error = Failure(outcomes);
                        if (error is null) times.Add(clock.Elapsed.TotalMilliseconds);
                    }
                }
                var peak = MemoryMiB("VmHWM:");
                var rssEnd = MemoryMiB("VmRSS:");
                if (error is not null)
                {
                    CliRunner.Err.MarkupLineInterpolated($"[red]batch {b} failed:[/] {error}");
                    results.Add(new JsonObject { ["batch"] = b, ["error"] = error, ["peak_rss_mib"] = Math.Round(peak, 1) });
                    continue;
                }
                var median = GenerateCommand.Median(times);
                CliRunner.Err.MarkupLineInterpolated($"batch {b}: {median:F1} ms/step, {median / b:F1} ms per job-step, peak RSS {peak:F0} MiB, RSS {rssAfterWarmup:F0} -> {rssEnd:F0} MiB over the timed steps");
                results.Add(new JsonObject
                {
                    ["batch"] = b,
                    ["ms_per_step"] = Math.Round(median, 2),
                    ["ms_per_job_step"] = Math.Round(median / b, 2),
                    ["peak_rss_mib"] = Math.Round(peak, 1),
                    ["steps_timed"] = times.Count,
                    // Resident memory after the warm-up and after the last timed step: a leak shows as growth.
                    ["rss_after_warmup_mib"] = Math.Round(rssAfterWarmup, 1),
                    ["rss_end_mib"] = Math.Round(rssEnd, 1),
                });
            }
            var summary = new JsonObject
            {
                ["generator"] = models.GeneratorName,
                ["clip"] = models.ClipName,
                ["device"] = ComputeDevices.DescribeDevice(dev),
                ["threads"] = get_num_threads(),
                ["cutouts"] = views,
                ["results"] = results,
            };
            if (r.GetValue(json)) Console.WriteLine(summary.ToJsonString());
            else
            {
                Console.WriteLine($"{models.GeneratorName} + {models.ClipName} on {ComputeDevices.DescribeDevice(dev)}, {views} view(s) per job");
                foreach (var row in results)
                {
                    Console.WriteLine(row!["error"] is { } failed
                        ? $"  batch {row["batch"],3}: failed: {failed}"
                        : $"  batch {row["batch"],3}: {row["ms_per_step"],10} ms/step  {row["ms_per_job_step"],10} ms/job-step  peak {row["peak_rss_mib"]} MiB");
                }
            }
            return 0;
        });
        return command;
    }

    private static int[] ParseBatches(string text)
    {
        var parts = text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        var sizes = new List<int>();
        foreach (var p in parts)
        {
            if (!int.TryParse(p, NumberStyles.Integer, CultureInfo.InvariantCulture, out var b) || b < 1 || b > 256)
                throw new CliException($"--batch: '{p}' is not a batch size between 1 and 256 (write e.g. --batch 1,4,8).");
            sizes.Add(b);
        }
        return sizes.Count > 0 ? sizes.ToArray() : throw new CliException("--batch needs at least one size.");
    }

    private static FaceModels BuildModels(string? gPreset, string? gPath, string? cPreset, string? cPath, bool random, Device device)
    {
        if ((gPreset is null) == (gPath is null)) throw new CliException("Give exactly one of --generator-preset and --generator.");
        if ((cPreset is null) == (cPath is null)) throw new CliException("Give exactly one of --clip-preset and --clip.");
        if ((gPreset is not null || cPreset is not null) && !random)
            throw new CliException("Presets carry no weights here: add --random-weights to benchmark them with random weights.");
        var generator = gPreset is not null
            ? new StyleGan2Generator(StyleGan2Config.FromPreset(gPreset), device)
            : StyleGan2Checkpoint.Load(gPath!, device);
        ClipModel clipModel;
        ClipTokenizer tokenizer;
        if (cPreset is not null)
        {
            if (!ClipPresets.TryGetValue(cPreset, out var config))
                throw new CliException($"Unknown --clip-preset '{cPreset}'. Known: {string.Join(", ", ClipPresets.Keys)}.");
            clipModel = new ClipModel(config, device);
            tokenizer = ByteLevelTokenizer.Create(config.TextConfig.MaxPositionEmbeddings);
        }
        else
        {
            clipModel = ClipModel.FromFolder(cPath!, device);
            var context = clipModel.Config.TextConfig.MaxPositionEmbeddings;
            if (File.Exists(Path.Combine(cPath!, "vocab.json")))
            {
                tokenizer = ClipTokenizer.FromFolder(cPath!, context);
            }
            else
            {
                // Timing does not depend on the vocabulary, so a folder without tokenizer files can still be measured.
                CliRunner.Err.MarkupLine("[yellow]note:[/] the CLIP folder has no vocab.json; the benchmark uses a byte-level vocabulary.");
                tokenizer = ByteLevelTokenizer.Create(context);
            }
        }
        var gName = gPreset is not null ? $"{gPreset} (random)" : Path.GetFileName(gPath!);
        var cName = cPreset is not null ? $"{cPreset} (random)" : Path.GetFileName(Path.TrimEndingDirectorySeparator(cPath!));
        return new FaceModels(generator, clipModel, tokenizer, gName, cName);
    }

    private static string FirstLine(string message) => message.Split('\n', 2)[0].Trim();

    /// <summary>Resets the kernel's peak-RSS counter (Linux), so each batch size reports its own peak.</summary>
    private static void ResetPeakMemory()
    {
        try { File.WriteAllText($"/proc/{Environment.ProcessId}/clear_refs", "5"); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
    }

    /// <summary>A memory figure of this process from /proc/self/status (VmHWM: peak resident, VmRSS: current).</summary>
    private static double MemoryMiB(string field)
    {
        try
        {
            var line = File.ReadLines("/proc/self/status").FirstOrDefault(l => l.StartsWith(field, StringComparison.Ordinal));
            if (line is not null) return double.Parse(line.Split(new[] { ' ', '\t' }, StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) / 1024;
        }
        catch (IOException) { }
        using var self = Process.GetCurrentProcess();
        return (field == "VmHWM:" ? self.PeakWorkingSet64 : self.WorkingSet64) / (1024.0 * 1024);
    }
}
