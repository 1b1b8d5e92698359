using System.CommandLine;
using System.Globalization;
using System.Text;
using PromptFaces.Generation.Models;
using PromptFaces.Generation.Optimisation;
using PromptFaces.Training.Data;
using PromptFaces.Training.Evaluation;
using PromptFaces.Training.Faces;
using PromptFaces.Training.StyleGan;
using Spectre.Console;
using static TorchSharp.torch;

namespace PromptFaces.Cli.Commands;

/// <summary>
/// <c>promptfaces eval</c>: the judged evaluation. An attribute classifier (not CLIP) checks the faces that the default
/// optimisation makes for a fixed prompt set, next to the starting faces; Fréchet distances in its feature space
/// measure realism and pairwise distances diversity. Figures are printed as a table, or as one JSON object with --json.
/// </summary>
internal static class EvalCommand
{
    public static Command Create()
    {
        var generator = new Option<string?>("--generator") { Description = "Generator checkpoint (default: models/generator.safetensors)." };
        var clip = CommonOptions.Clip();
        var judge = new Option<string?>("--judge") { Description = $"Attribute judge (default: models/{ModelLocator.JudgeFile}; train one with 'promptfaces train judge')." };
        var prompts = new Option<string?>("--prompts") { Description = $"Prompt set JSON (default: the committed models/{ModelLocator.EvalPromptsFile})." };
        var limit = new Option<int?>("--limit") { Description = "Evaluate only N prompts, spread evenly over the set (seeds stay those of the full run)." };
        var seeds = new Option<int>("--seeds") { Description = "Seeds (starting faces) per prompt.", DefaultValueFactory = _ => 3 };
        var firstSeed = new Option<int>("--first-seed") { Description = "Index of each prompt's first seed: 0 runs the evaluation's own seeds; 3 or more runs seeds it never uses, to tune settings without tuning on the test.", DefaultValueFactory = _ => 0 };
        var lr = new Option<double>("--lr") { Description = "Peak learning rate of every job.", DefaultValueFactory = _ => new OptimisationSettings().LearningRate };
        var cutouts = new Option<int>("--cutouts") { Description = "Augmented views CLIP scores per step.", DefaultValueFactory = _ => new OptimisationSettings().Cutouts };
        var space = CommonOptions.Space();
        var starts = CommonOptions.Starts();
        var psi = CommonOptions.Psi();
        var pull = CommonOptions.Pull();
        var rangePrior = CommonOptions.RangePrior();
        var layerTie = CommonOptions.LayerTie();
        var cutoutScale = CommonOptions.CutoutScale();
        var wholeView = CommonOptions.WholeViewWeight();
        var cutoutNoise = CommonOptions.CutoutNoise();
        var cutoutBlur = CommonOptions.CutoutBlur();
        var steps = new Option<int>("--steps") { Description = "Optimisation steps per job (the default optimisation otherwise).", DefaultValueFactory = _ => 100 };
        var samples = new Option<int>("--samples") { Description = "Generator samples and renders for the Fréchet distances (0 skips realism, the measure of the jobs' own faces included).", DefaultValueFactory = _ => 1000 };
        var judgeFaces = new Option<int>("--judge-faces") { Description = "Fresh renders for the judge's held-out accuracy.", DefaultValueFactory = _ => 2000 };
        var batch = new Option<int>("--batch") { Description = "Jobs co-batched per optimisation step.", DefaultValueFactory = _ => 8 };
        var grid = new Option<string?>("--grid") { Description = "Write a PNG with one row per prompt: its starting faces, then its optimised faces." };
        var writeExclusions = new Option<string?>("--write-exclusions") { Description = "Only write the prompt set's sentences, one per line (for the CLIP trainer's --exclude), and exit." };
        var json = new Option<bool>("--json") { Description = "Print the figures as one JSON object (the last line of standard output)." };
        var device = CommonOptions.Device();
        var libtorch = CommonOptions.Libtorch();
        var threads = CommonOptions.Threads();

        var command = new Command("eval", "Judged evaluation: prompt accuracy (optimised vs starting faces), judge accuracy, realism and diversity.")
        {
            generator, clip, judge, prompts, limit, seeds, firstSeed, steps, lr, cutouts, space, starts, psi, pull, rangePrior, layerTie, cutoutScale, wholeView, cutoutNoise, cutoutBlur, samples, judgeFaces, batch, grid, writeExclusions, json, device, libtorch, threads,
        };
        command.SetAction(r =>
        {
            var promptSet = EvalPromptSet.Load(DefaultModels.ResolveEvalPrompts(r.GetValue(prompts)));
            if (r.GetValue(writeExclusions) is string exclusions)
            {
                promptSet.WriteSentences(exclusions);
                Console.WriteLine($"{exclusions}: {promptSet.Count} sentences");
                return 0;
            }

            var options = new EvaluationOptions
            {
                SeedsPerPrompt = r.GetValue(seeds),
                FirstSeed = r.GetValue(firstSeed),
                PromptLimit = r.GetValue(limit),
                BatchSize = r.GetValue(batch),
                RealismSamples = r.GetValue(samples),
                JudgeFaces = r.GetValue(judgeFaces),
                Optimisation = new OptimisationSettings
                {
                    Steps = r.GetValue(steps),
                    LearningRate = r.GetValue(lr),
                    Cutouts = r.GetValue(cutouts),
                    Space = CommonOptions.ParseSpace(r.GetValue(space)),
                    Starts = r.GetValue(starts),
                    TruncationPsi = r.GetValue(psi),
                    LatentPullWeight = r.GetValue(pull),
                    RangePriorWeight = r.GetValue(rangePrior),
                    LayerTieWeight = r.GetValue(layerTie),
                    CutoutMinScale = r.GetValue(cutoutScale),
                    WholeViewWeight = r.GetValue(wholeView),
                    CutoutNoise = r.GetValue(cutoutNoise),
                    CutoutBlur = r.GetValue(cutoutBlur),
                    PreviewSize = 0,
                },
            };
            if (options.Validate() is string problem) throw new CliException(problem);

            var dev = CommonOptions.ResolveDevice(r, device, libtorch, threads);
            var (generatorPath, clipPaths) = DefaultModels.Resolve(r.GetValue(generator), r.GetValue(clip));
            var judgePath = DefaultModels.ResolveJudge(r.GetValue(judge));
            using var judgeModel = AttributeJudge.Load(judgePath, dev);     // first: small, and a missing judge fails fast
            if (judgeModel.RendererVersion != FaceRenderer.Version)
                CliRunner.Err.MarkupLineInterpolated(
                    $"[yellow]warning:[/] {judgePath} was trained on renderer v{judgeModel.RendererVersion} faces, this renderer is v{FaceRenderer.Version}; retrain it with 'promptfaces train judge' before trusting its figures.");
            using var models = FaceModels.Load(generatorPath, clipPaths, dev);
            // A generator trained here with the latent tie also gets the tied-attribute figure (what its samples draw).
            options = options with { LatentTie = LatentFaceMap.FromGeneratorFile(generatorPath, models.Generator.Config.ZDim) };
            var evaluator = new Evaluator(models, judgeModel, options);
            var gridPath = r.GetValue(grid);

            EvaluationReport? report = null;
            CliRunner.Err.Progress()
                .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn())
                .Start(ctx =>
                {
                    var tasks = new Dictionary<string, ProgressTask>();
                    report = evaluator.Run(promptSet, Path.GetFileName(judgePath), p =>
                    {
                        if (!tasks.TryGetValue(p.Phase, out var task))
                        {
                            foreach (var t in tasks.Values) t.Value = t.MaxValue;   // phases run one after another
                            tasks[p.Phase] = task = ctx.AddTask(p.Phase, maxValue: Math.Max(1, p.Total));
                        }
                        task.Value = p.Done;
                    }, gridPath is null ? null : (starts, finals) => WriteGrid(gridPath, starts, finals));
                    foreach (var t in tasks.Values) t.Value = t.MaxValue;
                });

            if (r.GetValue(json)) Console.WriteLine(report!.ToJson());
            else Console.Write(Table(report!));
            if (gridPath is not null) CliRunner.Err.WriteLine($"grid: {gridPath}");
            return 0;
        });
        return command;
    }

    /// <summary>One row per prompt: its starting faces, then its optimised faces.</summary>
    private static void WriteGrid(string path, IReadOnlyList<Tensor> starts, IReadOnlyList<Tensor> finals)
    {
        using var scope = NewDisposeScope();
        int seeds = (int)starts[0].shape[0];
        var rows = starts.Zip(finals, (s, f) => cat(new[] { s, f }, 0)).ToArray();
        var all = cat(rows, 0);
        if (all.shape[2] < 64) all = nn.functional.interpolate(all, new long[] { 64, 64 }, mode: InterpolationMode.Nearest);
        using var image = SampleGrid.Grid(all, 2 * seeds);
        SampleGrid.Save(path, image, new Dictionary<string, string>
        {
            ["Description"] = $"promptfaces eval: one row per prompt, the {seeds} seeds' first draws then the {seeds} optimised faces",
        });
    }

    /// <summary>The report as aligned plain text.</summary>
    internal static string Table(EvaluationReport report)
    {
        var inv = CultureInfo.InvariantCulture;
        string Pct(double v) => double.IsNaN(v) ? "n/a" : (100 * v).ToString("F1", inv) + " %";
        var sb = new StringBuilder();
        var m = report.Models;
        sb.AppendLine(inv, $"models: generator {m.Generator} ({m.GeneratorResolution}x{m.GeneratorResolution}), CLIP {m.Clip}, judge {m.Judge}; {m.Device}; {report.Seconds:F0} s");
        if (!m.JudgeMatchesRenderer)
            sb.AppendLine(inv, $"WARNING: the judge learned renderer v{m.JudgeRendererVersion} faces; the renderer is now v{m.RendererVersion}. Retrain it before trusting these figures.");
        sb.AppendLine();

        var j = report.Judge;
        sb.AppendLine(inv, $"judge accuracy on {j.HeldOutFaces} held-out renders (goal {Pct(j.Goal)} each: {(j.MeetsGoal ? "met" : "NOT met")})");
        sb.AppendLine(inv, $"  {"attribute",-12} {"clean",8} {"blurred",9}");
        foreach (var (name, accuracy) in j.Accuracy)
            sb.AppendLine(inv, $"  {name,-12} {Pct(accuracy),8} {Pct(j.AccuracyBlurred[name]),9}");
        sb.AppendLine();

        var p = report.Prompts;
        sb.AppendLine(inv, $"prompt accuracy: {p.PromptCount} prompts x {p.SeedsPerPrompt} seeds, {p.Steps} steps, {p.AttributeChecks} attribute checks (goal {Pct(p.Goal)}: {(p.MeetsGoal ? "met" : "NOT met")})");
        if (p.FirstSeed > 0) sb.AppendLine(inv, $"  seeds {p.FirstSeed} to {p.FirstSeed + p.SeedsPerPrompt - 1} of each prompt (a default evaluation runs seeds 0 to 2)");
        sb.AppendLine(inv, $"  {"",-22} {"start",8} {"optimised",10}");
        sb.AppendLine(inv, $"  {"stated attributes",-22} {Pct(p.BaselineAccuracy),8} {Pct(p.OptimisedAccuracy),10}");
        sb.AppendLine(inv, $"  {"all stated, per face",-22} {Pct(p.BaselineAllStated),8} {Pct(p.OptimisedAllStated),10}");
        foreach (var (count, a) in p.ByStatedCount)
            sb.AppendLine(inv, $"  {$"prompts stating {count}",-22} {Pct(a.Baseline),8} {Pct(a.Optimised),10}   ({a.Checks} checks)");
        foreach (var (name, a) in p.PerAttribute)
            sb.AppendLine(inv, $"  {name,-22} {Pct(a.Baseline),8} {Pct(a.Optimised),10}   ({a.Checks} checks)");
        sb.AppendLine(inv, $"  CLIP similarity {p.MeanSimilarityStart:F3} -> {p.MeanSimilarityEnd:F3}; {p.SecondsPerEngineStep:F2} s per engine step of up to {p.BatchSize} jobs");
        if (p.ClipReading is { } c)
            sb.AppendLine(inv, $"  read by CLIP's zero-shot captions instead: {Pct(c.BaselineAccuracy)} -> {Pct(c.OptimisedAccuracy)}; CLIP and the judge agree on {Pct(c.OptimisedAgreementWithJudge)} of the optimised checks, and {Pct(c.OptimisedClipOnly)} are stated by CLIP's reading only");
        sb.AppendLine();

        if (report.Realism is { } q)
        {
            sb.AppendLine(inv, $"realism: Fréchet distance in judge features to {q.Samples} renders (lower is closer)");
            sb.AppendLine(inv, $"  generator, psi 1      {q.GeneratorPsi1,10:F2}");
            sb.AppendLine(inv, $"  generator, psi 0.7    {q.GeneratorPsi07,10:F2}");
            sb.AppendLine(inv, $"  blurred renders (σ {q.BlurSigma:F0}) {q.BlurredRenders,10:F2}   baseline / generator = {q.BaselineOverGenerator:F1}{(q.GeneratorFarCloser ? " (generator far closer)" : "")}");
            sb.AppendLine(inv, $"  other renders (floor) {q.RenderFloor,10:F2}");
            if (q.StartingFaces is double started && q.OptimisedFaces is double optimised)
            {
                sb.AppendLine(inv, $"  the {q.JobFaces} jobs' starting faces {started,10:F2}");
                sb.AppendLine(inv, $"  the {q.JobFaces} jobs' optimised faces {optimised,9:F2}");
            }
            if (q.TiedAttributes is { } t)
                sb.AppendLine(inv, $"  the generator's psi-1 samples show what their z is tied to: {Pct(t.Mean)} on average ({string.Join(", ", t.Agreement.Select(kv => $"{kv.Key} {Pct(kv.Value)} (most common class {Pct(t.MostCommon[kv.Key])})"))})");
            sb.AppendLine();
        }
        if (report.Diversity is { } d)
        {
            sb.AppendLine(inv, $"diversity: mean distance between faces of different seeds for the same prompt ({d.Pairs} pairs)");
            sb.AppendLine(inv, $"  {"",-30} {"features",9} {"pixels",8}");
            sb.AppendLine(inv, $"  {"optimised faces",-30} {d.FeatureDistanceOptimised,9:F3} {d.PixelDifferenceOptimised,8:F4}");
            sb.AppendLine(inv, $"  {"their starting faces",-30} {d.FeatureDistanceStart,9:F3} {d.PixelDifferenceStart,8:F4}");
            sb.AppendLine(inv, $"  {$"unrelated renders ({d.ReferencePairs} pairs)",-30} {d.FeatureDistanceRenders,9:F3} {d.PixelDifferenceRenders,8:F4}");
        }
        return sb.ToString();
    }
}
