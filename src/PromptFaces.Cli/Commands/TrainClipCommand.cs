using System.CommandLine;
using System.Globalization;
using System.Runtime.InteropServices;
using PromptFaces.Training.Clip;
using Spectre.Console;

namespace PromptFaces.Cli.Commands;

/// <summary>
/// <c>promptfaces train clip</c>: trains the project's small CLIP on rendered faces and generated captions, with a
/// progress bar, periodic retrieval grids and checkpoints; Ctrl+C or SIGTERM stops after the current step with a
/// checkpoint that <c>--resume</c> continues exactly.
/// </summary>
internal static class TrainClipCommand
{
    public static Command Create()
    {
        var data = new Option<string?>("--data") { Description = "A face dataset file to train on (default: render faces on the fly; on --resume, the saved dataset, which this replaces when given)." };
        var output = new Option<string>("--out", "-o") { Description = "Run folder: checkpoint/, model/ (the exported CLIP), samples/, log.tsv, eval.tsv.", Required = true };
        var steps = new Option<int?>("--steps") { Description = "Total optimiser steps (default 20000; on --resume, the saved total)." };
        var batch = new Option<int>("--batch") { Description = "Image-caption pairs per step.", DefaultValueFactory = _ => 256 };
        var vocabSize = new Option<int>("--vocab-size") { Description = "Largest BPE vocabulary, learned from the captions (special tokens included).", DefaultValueFactory = _ => 1024 };
        var exclude = new Option<string?>("--exclude") { Description = "Sentences never to train on (the evaluation prompts): one per line, or a JSON array." };
        var seed = new Option<ulong>("--seed") { Description = "Seed of the initial weights, faces, captions and augmentations.", DefaultValueFactory = _ => 1 };
        var resume = new Option<bool>("--resume") { Description = "Continue the run in --out from its checkpoint (its saved settings apply)." };
        var gridEvery = new Option<int>("--grid-every") { Description = "Steps between evaluations with a retrieval grid PNG (0: only at the end).", DefaultValueFactory = _ => 500 };
        var checkpointEvery = new Option<int>("--checkpoint-every") { Description = "Steps between checkpoints and model/ exports.", DefaultValueFactory = _ => 250 };
        var lr = new Option<double>("--lr") { Description = "Peak learning rate (AdamW).", DefaultValueFactory = _ => new ClipTrainingOptions { OutputFolder = "." }.LearningRate };
        var warmup = new Option<int>("--warmup") { Description = "Linear warm-up steps.", DefaultValueFactory = _ => new ClipTrainingOptions { OutputFolder = "." }.WarmupSteps };
        var hardTargets = new Option<bool>("--hard-targets") { Description = "Plain CLIP targets: only a caption's own image is positive (default: any image it is true of)." };
        var twins = new Option<double>("--twins") { Description = "Share of each batch in counterfactual twin pairs: a face and a copy with one attribute changed, each captioned with a sentence that is false of the other, so CLIP must read every attribute (0: none; on --resume, replaces the saved share when above 0)." };
        var from = new Option<string?>("--from") { Description = "Start a new run from an exported CLIP model folder (a fine-tune): its weights, vocabulary and architecture, with a fresh optimiser; --vocab-size is then ignored." };
        var size = new Option<string?>("--size") { Description = $"Architecture of a new run: {string.Join(", ", SmallClip.Sizes.Keys)} (default small: ~1.6M parameters; wide: ~4.8M, for a GPU). A resumed run or --from keeps its own." };
        var twinFocus = new Option<string?>("--twin-focus") { Description = "Relative odds of the attribute a twin changes, as attribute=weight pairs (others 1), for example expression=4,facial_hair=2 (default: all alike; on --resume, replaces the saved odds when given)." };
        var device = CommonOptions.Device();
        var libtorch = CommonOptions.Libtorch();
        var threads = CommonOptions.Threads();

        var command = new Command("clip", "Train the small CLIP on rendered faces and generated captions.")
        {
            data, output, steps, batch, vocabSize, exclude, seed, resume, gridEvery, checkpointEvery, lr, warmup, hardTargets, twins, twinFocus, from, size, device, libtorch, threads,
        };
        static IReadOnlyDictionary<string, double>? ParseFocus(string? spec)
        {
            try { return ClipTrainingOptions.ParseTwinFocus(spec); }
            catch (FormatException e) { throw new CliException(e.Message); }
        }

        command.SetAction(r =>
        {
            var sizeName = r.GetValue(size);
            if (sizeName is not null && !SmallClip.Sizes.ContainsKey(sizeName))
                throw new CliException($"--size {sizeName} is not an architecture; use one of {string.Join(", ", SmallClip.Sizes.Keys)}.");
            if (sizeName is not null && r.GetValue(resume))
                throw new CliException("--size chooses the architecture of a new run; a resumed run keeps the one in its checkpoint, so leave --size out with --resume.");
            if (sizeName is not null && r.GetValue(from) is not null)
                throw new CliException("--size chooses the architecture of a new run; --from takes the model folder's own architecture, so leave --size out with --from.");
            var dev = CommonOptions.ResolveDevice(r, device, libtorch, threads);
            var outDir = r.GetValue(output)!;
            bool isResume = r.GetValue(resume);
            int totalSteps = r.GetValue(steps)
                ?? (isResume ? ClipTrainer.SavedOptions(outDir)?.Steps : null)
                ?? 20_000;
            var options = new ClipTrainingOptions
            {
                OutputFolder = outDir,
                Steps = totalSteps,
                BatchSize = r.GetValue(batch),
                VocabSize = r.GetValue(vocabSize),
                Seed = r.GetValue(seed),
                DataPath = r.GetValue(data),
                Exclusions = r.GetValue(exclude) is { } path ? ExclusionList.Load(path) : ExclusionList.Empty,
                LearningRate = r.GetValue(lr),
                WarmupSteps = r.GetValue(warmup),
                SoftTargets = !r.GetValue(hardTargets),
                TwinShare = r.GetValue(twins),
                TwinFocus = ParseFocus(r.GetValue(twinFocus)),
                StartFrom = r.GetValue(from),
                Architecture = SmallClip.Sizes[sizeName ?? "small"],
                GridEvery = r.GetValue(gridEvery),
                CheckpointEvery = r.GetValue(checkpointEvery),
                Resume = isResume,
            };
            if (options.Validate() is string problem) throw new CliException(problem);
            if (isResume && options.StartFrom is not null)
                throw new CliException("--from starts a new run from a model folder; a resumed run continues from its own checkpoint, so leave --from out with --resume.");

            using var cancel = new CancellationTokenSource();
            ConsoleCancelEventHandler onCancel = (_, e) =>
            {
                e.Cancel = true;
                cancel.Cancel();
            };
            Console.CancelKeyPress += onCancel;
            using var onTerm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, c =>
            {
                c.Cancel = true;
                cancel.Cancel();
            });

            // A log file gets plain unwrapped lines; a terminal gets Spectre's markup above the progress bar.
            bool plain = Console.IsErrorRedirected;
            void Say(string line)
            {
                if (plain) Console.Error.WriteLine(line);
                else CliRunner.Err.MarkupLineInterpolated($"[grey]{line}[/]");
            }
            void Log(string message) => Say($"{DateTime.Now:HH:mm:ss} {message}");
            void Evaluated(ClipEvaluation e) => Say(string.Create(CultureInfo.InvariantCulture,
                $"{DateTime.Now:HH:mm:ss} step {e.Step}: zero-shot {e.ZeroShot}; held-out retrieval i2t {e.ImageToText:P1} t2i {e.TextToImage:P1}{(e.GridPath is null ? "" : "; grid " + e.GridPath)}"));

            ClipEvaluation? final;
            try
            {
                using var trainer = new ClipTrainer(options, dev, Log);
                final = plain
                    ? RunWithLogLines(trainer, Evaluated, cancel.Token)
                    : RunWithProgressBar(trainer, Evaluated, cancel.Token);
                if (cancel.IsCancellationRequested)
                    Say($"stopped at step {trainer.Step} with a checkpoint; continue with --resume --out {outDir}");
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"{Path.Combine(outDir, "model")}: step {trainer.Step}/{trainer.Options.Steps}, zero-shot accuracy {final?.ZeroShot.Mean:P1} (balanced {final?.ZeroShot.BalancedMean:P1}), held-out retrieval i2t {final?.ImageToText:P1} t2i {final?.TextToImage:P1}, {trainer.TrainingSeconds / 3600:F2} h of training ({trainer.CpuSeconds / 3600:F2} CPU-hours)"));
            }
            finally
            {
                Console.CancelKeyPress -= onCancel;
            }
            return 0;
        });
        return command;
    }

    private static ClipEvaluation? RunWithProgressBar(ClipTrainer trainer, Action<ClipEvaluation> evaluated, CancellationToken cancel)
    {
        ClipEvaluation? final = null;
        CliRunner.Err.Progress()
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn())
            .Start(ctx =>
            {
                var task = ctx.AddTask("clip", maxValue: trainer.Options.Steps);
                task.Value = trainer.Step;
                final = trainer.Run(
                    s =>
                    {
                        task.Value = s.Step;
                        task.Description = string.Create(CultureInfo.InvariantCulture,
                            $"step {s.Step} loss {s.Loss:F3} i2t {s.ImageToText:P0} t2i {s.TextToImage:P0} {s.SecondsPerStep:F1} s/step");
                    },
                    evaluated, cancel);
            });
        return final;
    }

    /// <summary>For a log file (stderr redirected), where a redrawn progress bar would be noise: one line per 10 steps.</summary>
    private static ClipEvaluation? RunWithLogLines(ClipTrainer trainer, Action<ClipEvaluation> evaluated, CancellationToken cancel)
    {
        var recent = new List<ClipStepReport>();
        return trainer.Run(
            s =>
            {
                recent.Add(s);
                if (s.Step % 10 != 0 && s.Step != s.TotalSteps) return;
                Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"{DateTime.Now:HH:mm:ss} step {s.Step}/{s.TotalSteps} loss {recent.Average(x => x.Loss):F3} i2t {recent.Average(x => x.ImageToText):P1} t2i {recent.Average(x => x.TextToImage):P1} lr {s.LearningRate:E2} temp {s.Temperature:F1} {recent.Average(x => x.SecondsPerStep):F2} s/step"));
                recent.Clear();
            },
            evaluated, cancel);
    }
}
