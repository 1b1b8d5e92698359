using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using PromptFaces.Generation.Devices;
using PromptFaces.Generation.Imaging;
using PromptFaces.Generation.Optimisation;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;
using Spectre.Console;

namespace PromptFaces.Cli.Commands;

/// <summary><c>promptfaces generate</c>: one prompt → one face, with a progress bar, a PNG and optionally a GIF.</summary>
internal static class GenerateCommand
{
    public static Command Create()
    {
        var prompt = new Option<string>("--prompt", "-p") { Description = "What the face should look like.", Required = true };
        var negative = new Option<string?>("--negative") { Description = "What the face should not look like (a prompt with weight -0.5)." };
        var seed = new Option<long?>("--seed") { Description = "Random seed for the starting face (default: random, and printed)." };
        var steps = new Option<int>("--steps") { Description = "Optimisation steps.", DefaultValueFactory = _ => 100 };
        var starts = CommonOptions.Starts();
        var psi = CommonOptions.Psi();
        var pull = CommonOptions.Pull();
        var rangePrior = CommonOptions.RangePrior();
        var layerTie = CommonOptions.LayerTie();
        var cutoutScale = CommonOptions.CutoutScale();
        var wholeView = CommonOptions.WholeViewWeight();
        var cutoutNoise = CommonOptions.CutoutNoise();
        var cutoutBlur = CommonOptions.CutoutBlur();
        var lr = new Option<double>("--lr") { Description = "Peak learning rate.", DefaultValueFactory = _ => new OptimisationSettings().LearningRate };
        var cutouts = new Option<int>("--cutouts") { Description = "Augmented views CLIP scores per step.", DefaultValueFactory = _ => new OptimisationSettings().Cutouts };
        var space = CommonOptions.Space();
        var patience = new Option<int>("--patience") { Description = "Stop after this many steps without improvement (0: never).", DefaultValueFactory = _ => 0 };
        var output = new Option<string>("--out", "-o") { Description = "Output PNG (prompt, seed, steps, models and similarity are embedded).", DefaultValueFactory = _ => "face.png" };
        var gif = new Option<string?>("--gif") { Description = "Also write an animated GIF of the optimisation." };
        var startOut = new Option<string?>("--start-out") { Description = "Also save the starting face (before any step) as PNG: a before-and-after pair with --out." };
        var gifEvery = new Option<int>("--gif-every") { Description = "Keep every k-th step in the GIF.", DefaultValueFactory = _ => 2 };
        var generator = new Option<string?>("--generator") { Description = "Generator checkpoint: NVIDIA .pkl or .safetensors (default: the shipped model)." };
        var clip = CommonOptions.Clip();
        var json = new Option<bool>("--json") { Description = "Print a JSON summary as the last line of standard output." };
        var device = CommonOptions.Device();
        var libtorch = CommonOptions.Libtorch();
        var threads = CommonOptions.Threads();

        var command = new Command("generate", "Optimise a face for a prompt and save it as PNG.")
        {
            prompt, negative, seed, steps, starts, psi, pull, rangePrior, layerTie, cutoutScale, wholeView, cutoutNoise, cutoutBlur, lr, cutouts, space, patience, output, startOut, gif, gifEvery, generator, clip, json, device, libtorch, threads,
        };
        command.SetAction(r =>
        {
            var dev = CommonOptions.ResolveDevice(r, device, libtorch, threads);
            var (generatorPath, clipPaths) = DefaultModels.Resolve(r.GetValue(generator), r.GetValue(clip));
            var chosenSeed = r.GetValue(seed) ?? Random.Shared.NextInt64(0, int.MaxValue);
            var prompts = new List<WeightedPrompt> { new(r.GetValue(prompt)!) };
            if (r.GetValue(negative) is { Length: > 0 } neg) prompts.Add(new WeightedPrompt(neg, -0.5));
            var settings = new OptimisationSettings
            {
                Prompts = prompts,
                Seed = chosenSeed,
                Steps = r.GetValue(steps),
                Starts = r.GetValue(starts),
                TruncationPsi = r.GetValue(psi),
                LearningRate = r.GetValue(lr),
                Cutouts = r.GetValue(cutouts),
                Space = CommonOptions.ParseSpace(r.GetValue(space)),
                LatentPullWeight = r.GetValue(pull),
                RangePriorWeight = r.GetValue(rangePrior),
                LayerTieWeight = r.GetValue(layerTie),
                CutoutMinScale = r.GetValue(cutoutScale),
                WholeViewWeight = r.GetValue(wholeView),
                CutoutNoise = r.GetValue(cutoutNoise),
                CutoutBlur = r.GetValue(cutoutBlur),
                Patience = r.GetValue(patience),
                PreviewSize = 0,
            };
            if (settings.Validate() is string problem) throw new CliException(problem);
            var outPath = r.GetValue(output)!;
            var gifPath = r.GetValue(gif);
            var every = Math.Max(1, r.GetValue(gifEvery));

            var loadClock = Stopwatch.StartNew();
            using var models = FaceModels.Load(generatorPath, clipPaths, dev);
            var loadMs = loadClock.Elapsed.TotalMilliseconds;
            var startPath = r.GetValue(startOut);
            using var animation = gifPath is null ? null : new AnimationWriter(captureInterval: every);
            Image<Rgb24>? startImage = null;
            var stepTimes = new List<double>();
            double lastElapsed = 0;
            JobOutcome? outcome = null;

            // With --gif or --start-out, the per-step "preview" is the full-size frame: the animation writer keeps every
            // k-th one (and the first and last), and step 1's (the face before any update) is the starting face.
            Func<TorchSharp.torch.Tensor, int, (byte[], string)>? keepFrame = animation is null && startPath is null ? null : (frame, _) =>
            {
                var image = ImageTensors.ToImage(frame);
                animation?.AddFrame(image);
                if (startImage is null && startPath is not null) startImage = image;   // the first frame is step 1's
                else image.Dispose();
                return (Array.Empty<byte>(), "");
            };
            using var engine = new CoBatchedOptimiser(models, keepFrame);
            CliRunner.Err.Progress()
                .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn())
                .Start(ctx =>
                {
                    var task = ctx.AddTask($"seed {chosenSeed}", maxValue: settings.Steps);
                    engine.Enqueue(new OptimisationRequest("cli", settings with { PreviewSize = keepFrame is null ? 0 : models.Generator.Config.Resolution, PreviewEvery = every },
                        p =>
                        {
                            stepTimes.Add(p.ElapsedMs - lastElapsed);
                            lastElapsed = p.ElapsedMs;
                            task.Value = p.Step;
                            task.Description = $"seed {chosenSeed}  sim {p.Similarity:F3}";
                        }));
                    while (!engine.IsIdle)
                        foreach (var o in engine.Step()) outcome = o;
                });

            if (outcome is null || outcome.Image is null)
                throw new CliException(outcome?.Error ?? "The optimisation produced no image.");
            using var image = ImageTensors.ToImage(outcome.Image);
            PngWriter.SavePng(outPath, image, new GenerationMetadata
            {
                Prompt = settings.Prompts[0].Text,
                NegativePrompt = r.GetValue(negative),
                Seed = chosenSeed,
                Steps = outcome.StepsRun,
                GeneratorModel = models.GeneratorName,
                ClipModel = models.ClipName,
                FinalSimilarity = outcome.SimilarityEnd,
            });
            if (animation is not null && gifPath is not null) animation.SaveGif(gifPath);
            if (startPath is not null)
            {
                using var start = startImage ?? throw new CliException("The optimisation reported no starting face.");
                PngWriter.SavePng(startPath, start, new GenerationMetadata
                {
                    Prompt = settings.Prompts[0].Text,
                    NegativePrompt = r.GetValue(negative),
                    Seed = chosenSeed,
                    Steps = 0,
                    GeneratorModel = models.GeneratorName,
                    ClipModel = models.ClipName,
                    FinalSimilarity = outcome.SimilarityStart,
                });
            }

            foreach (var w in outcome.Warnings) CliRunner.Err.MarkupLineInterpolated($"[yellow]warning:[/] {w}");
            var msPerStep = Median(stepTimes.Skip(1).DefaultIfEmpty(stepTimes.FirstOrDefault()));
            if (r.GetValue(json))
            {
                var summary = new JsonObject
                {
                    ["prompt"] = settings.Prompts[0].Text,
                    ["negative"] = r.GetValue(negative),
                    ["seed"] = chosenSeed,
                    ["steps"] = outcome.StepsRun,
                    ["max_steps"] = settings.Steps,
                    ["status"] = outcome.Status.ToString(),
                    ["similarity_start"] = Math.Round(outcome.SimilarityStart, 5),
                    ["similarity_end"] = Math.Round(outcome.SimilarityEnd, 5),
                    ["ms_per_step"] = Math.Round(msPerStep, 2),
                    ["seconds_total"] = Math.Round(outcome.ElapsedMs / 1000, 3),
                    ["seconds_loading"] = Math.Round(loadMs / 1000, 3),
                    ["out"] = Path.GetFullPath(outPath),
                    ["gif"] = gifPath is null ? null : Path.GetFullPath(gifPath),
                    ["start_out"] = startPath is null ? null : Path.GetFullPath(startPath),
                    ["generator"] = models.GeneratorName,
                    ["clip"] = models.ClipName,
                    ["device"] = ComputeDevices.DescribeDevice(models.Device),
                    ["warnings"] = new JsonArray(outcome.Warnings.Select(w => (JsonNode?)JsonValue.Create(w)).ToArray()),
                };
                Console.WriteLine(summary.ToJsonString());
            }
            else
            {
                Console.WriteLine($"{outPath}: similarity {outcome.SimilarityStart:F3} -> {outcome.SimilarityEnd:F3} in {outcome.StepsRun} steps ({msPerStep:F0} ms/step), seed {chosenSeed}");
            }
            return 0;
        });
        return command;
    }

    internal static double Median(IEnumerable<double> values)
    {
        var sorted = values.OrderBy(v => v).ToArray();
        if (sorted.Length == 0) return double.NaN;
        return sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[sorted.Length / 2 - 1] + sorted[sorted.Length / 2]) / 2;
    }
}
