using System.CommandLine;
using System.Globalization;
using System.Runtime.InteropServices;
using PromptFaces.Generation.Devices;
using PromptFaces.Generation.StyleGan2;
using PromptFaces.Training.Data;
using PromptFaces.Training.StyleGan;
using Spectre.Console;

namespace PromptFaces.Cli.Commands;

/// <summary>
/// <c>promptfaces train stylegan</c>: trains the project's small StyleGAN2 on rendered faces, resumably, with a progress
/// bar, periodic sample grids and a G_ema export (<c>generator.safetensors</c>) that <c>generate</c> reads directly.
/// </summary>
internal static class TrainStyleGanCommand
{
    public static Command Create()
    {
        var data = new Option<string?>("--data") { Description = "A dataset file from 'promptfaces dataset' for the discriminator's real images (default: render faces on the fly)." };
        var output = new Option<string>("--out", "-o") { Description = "Output folder: checkpoint.safetensors, generator.safetensors, grid-*.png, log.jsonl.", DefaultValueFactory = _ => "runs/stylegan" };
        var preset = new Option<string>("--preset") { Description = $"Generator shape: {string.Join(", ", StyleGanPresets.All.Keys)}.", DefaultValueFactory = _ => "faces64" };
        var steps = new Option<int?>("--steps") { Description = "Total training steps (default 10000)." };
        var kimg = new Option<double?>("--kimg") { Description = "Or the total length in thousands of images shown to G." };
        var batch = new Option<int>("--batch") { Description = "Images per step (a multiple of 4).", DefaultValueFactory = _ => 16 };
        var seed = new Option<long>("--seed") { Description = "Seed of the initial weights and of every random draw.", DefaultValueFactory = _ => 0 };
        var init = new Option<string?>("--init-generator") { Description = "Start a new run from an exported generator (the generator.safetensors of an earlier run, such as models/generator.safetensors): G and G_ema begin with its weights, the discriminator and optimisers fresh. Its architecture replaces --preset." };
        var resume = new Option<bool>("--resume") { Description = "Continue the run whose checkpoint.safetensors is in --out (its settings and length are kept; --steps/--kimg, --lr, intervals and an explicit --adv-weight/--feature-match-weight/--adv-start-kimg/--adv-ramp-kimg may change)." };
        var lr = new Option<double>("--lr") { Description = "Adam learning rate of G and D.", DefaultValueFactory = _ => 0.0025 };
        var r1 = new Option<double?>("--r1-gamma") { Description = "R1 weight (default NVIDIA's 0.0002·res²/batch)." };
        var rec = new Option<double>("--rec-weight") { Description = "Weight of the latent-tying reconstruction loss (0: a plain GAN).", DefaultValueFactory = _ => new StyleGanTrainingSettings().ReconstructionWeight };
        var encoder = new Option<double>("--encoder-weight") { Description = "Weight of the encoder path (0: none): an encoder reads each target render and G's synthesis draws it back from that code. Can be switched on when resuming.", DefaultValueFactory = _ => 0 };
        var latentMatch = new Option<double>("--latent-match-weight") { Description = "With --encoder-weight: pull the mapping network's w for z towards the encoder's code of z's render.", DefaultValueFactory = _ => 0 };
        var codes = new Option<string>("--codes") { Description = "The code path's codes (with --encoder-weight): encoder (a learned encoder reads each render) or designed (a fixed code spelling out z's tied classes, geometry and style choices, which --fit-mapping can fit the mapping network to). Can be changed when resuming.", DefaultValueFactory = _ => "encoder" };
        var codeNoise = new Option<double>("--code-noise") { Description = "With --codes designed: standard deviation of Gaussian noise on each code the synthesis network draws from.", DefaultValueFactory = _ => 0 };
        var fitMapping = new Option<int>("--fit-mapping") { Description = "With --codes designed: before training, fit the mapping network to the designed codes by regression for this many steps (minutes on a CPU), and print its held-out class accuracy.", DefaultValueFactory = _ => 0 };
        var fitBatch = new Option<int>("--fit-batch") { Description = "Latents per step of --fit-mapping.", DefaultValueFactory = _ => 256 };
        var fitLr = new Option<double>("--fit-lr") { Description = "Adam learning rate of --fit-mapping at its start; it falls to a tenth on a cosine.", DefaultValueFactory = _ => 1e-3 };
        var layout = new Option<string>("--latent-layout") { Description = "How the latent-tying map reads each attribute from z: argmax (one dimension per class) or intervals (one dimension per attribute, cut by the class odds; the mapping network learns it far faster). Fixed for the run, unless it draws from designed codes.", DefaultValueFactory = _ => "argmax" };
        var attrWeight = new Option<double>("--attribute-weight") { Description = "Weight of the attribute loss (0: none): a frozen attribute classifier's cross-entropy on G(z) against the attributes z is tied to. Needs --attribute-classifier; can be switched on when resuming.", DefaultValueFactory = _ => 0 };
        var attrClassifier = new Option<string?>("--attribute-classifier") { Description = "The classifier of --attribute-weight: a checkpoint of 'promptfaces train judge' trained with a seed of its own (never the evaluation's judge). Give it again on every resume of such a run." };
        var adv = new Option<double>("--adv-weight") { Description = "Weight of the adversarial G loss (on the faces drawn from z and, with a code path, from the codes). Can be changed when resuming.", DefaultValueFactory = _ => 1.0 };
        var featureMatch = new Option<double>("--feature-match-weight") { Description = "Weight of the discriminator feature-matching loss while D trains: D's features of each face against those of its render (a perceptual loss that keeps the adversarial loss from drawing one trick into every face). Can be changed when resuming.", DefaultValueFactory = _ => 0 };
        var advStart = new Option<double>("--adv-start-kimg") { Description = "Train by reconstruction alone (no discriminator, several times faster) for this many kimg.", DefaultValueFactory = _ => 0 };
        var advRamp = new Option<double>("--adv-ramp-kimg") { Description = "Then raise the adversarial weight linearly from 0 over this many kimg.", DefaultValueFactory = _ => 0 };
        var noise = new Option<string>("--noise") { Description = "Noise inputs during training: none (default; the renders have no stochastic detail), random or const.", DefaultValueFactory = _ => "none" };
        var recBeta1 = new Option<double?>("--rec-beta1") { Description = "G's Adam beta1 while no discriminator runs (before --adv-start-kimg); default the recipe's 0. Momentum (0.9) speeds the supervised phase." };
        var mappingLr = new Option<double?>("--mapping-lr-mult") { Description = "The mapping network's learning-rate multiplier (default the preset's, NVIDIA's 0.01)." };
        var dChannelBase = new Option<int?>("--d-channel-base") { Description = "The discriminator's channel_base (default: the generator's); smaller trains faster." };
        var emaKimg = new Option<double?>("--ema-kimg") { Description = "G_ema half-life in thousands of images (default batch·10/32)." };
        var gridEvery = new Option<int>("--grid-every") { Description = "Steps between sample grids (0: only at the end).", DefaultValueFactory = _ => 500 };
        var checkpointEvery = new Option<int>("--checkpoint-every") { Description = "Steps between checkpoints.", DefaultValueFactory = _ => 500 };
        var logEvery = new Option<int>("--log-every") { Description = "Steps between log lines.", DefaultValueFactory = _ => 20 };
        var device = CommonOptions.Device();
        var libtorch = CommonOptions.Libtorch();
        var threads = CommonOptions.Threads();

        var command = new Command("stylegan", "Train the small StyleGAN2 on procedurally rendered faces.")
        {
            data, output, preset, steps, kimg, batch, seed, init, resume, lr, r1, rec, encoder, latentMatch, codes, codeNoise, fitMapping, fitBatch, fitLr, layout, attrWeight, attrClassifier, adv, featureMatch, advStart, advRamp, noise, recBeta1, mappingLr, dChannelBase, emaKimg, gridEvery, checkpointEvery, logEvery,
            device, libtorch, threads,
        };
        command.SetAction(r =>
        {
            var dev = CommonOptions.ResolveDevice(r, device, libtorch, threads);
            var outDir = r.GetValue(output)!;
            var batchSize = r.GetValue(batch);
            if (r.GetValue(steps) is not null && r.GetValue(kimg) is not null) throw new CliException("Give --steps or --kimg, not both.");
            var initialGenerator = r.GetValue(init);
            if (initialGenerator is not null && r.GetValue(resume))
                throw new CliException("--init-generator starts a new run; --resume continues one from its checkpoint. Give one of them.");
            if (initialGenerator is not null && (r.GetResult(preset) is { Implicit: false } || r.GetValue(mappingLr) is not null))
                throw new CliException("--init-generator takes the architecture of the generator it starts from: leave out --preset and --mapping-lr-mult.");
            StyleGan2Config generatorConfig;
            if (initialGenerator is not null)
            {
                if (!File.Exists(initialGenerator)) throw new CliException($"--init-generator {initialGenerator}: no such file. Give the generator.safetensors of an earlier run.");
                generatorConfig = StyleGan2Checkpoint.Read(initialGenerator).Config;
            }
            else
            {
                generatorConfig = StyleGanPresets.FromName(r.GetValue(preset)!);
                if (r.GetValue(mappingLr) is double mappingLrMultiplier) generatorConfig = generatorConfig with { MappingLrMultiplier = mappingLrMultiplier };
            }
            var settings = new StyleGanTrainingSettings
            {
                Generator = generatorConfig,
                BatchSize = batchSize,
                Seed = r.GetValue(seed),
                TotalSteps = r.GetValue(steps) ?? (r.GetValue(kimg) is double k ? (int)Math.Ceiling(k * 1000 / batchSize) : 10_000),
                GLearningRate = r.GetValue(lr),
                DLearningRate = r.GetValue(lr),
                R1Gamma = r.GetValue(r1),
                ReconstructionWeight = r.GetValue(rec),
                EncoderWeight = r.GetValue(encoder),
                LatentMatchWeight = r.GetValue(latentMatch),
                DesignedCodes = ParseCodes(r.GetValue(codes)),
                CodeNoise = r.GetValue(codeNoise),
                AttributeWeight = r.GetValue(attrWeight),
                LatentLayout = LatentFaceMap.Parse(r.GetValue(layout)) ?? throw new CliException($"--latent-layout {r.GetValue(layout)}: use argmax or intervals."),
                AdversarialWeight = r.GetValue(adv),
                FeatureMatchWeight = r.GetValue(featureMatch),
                AdversarialStartKimg = r.GetValue(advStart),
                AdversarialRampKimg = r.GetValue(advRamp),
                ReconstructionBeta1 = r.GetValue(recBeta1),
                TrainingNoise = Enum.TryParse<NoiseMode>(r.GetValue(noise), ignoreCase: true, out var nm) ? nm : throw new CliException($"--noise {r.GetValue(noise)}: use none, random or const."),
                EmaKimg = r.GetValue(emaKimg),
                DChannelBase = r.GetValue(dChannelBase),
                GridEvery = r.GetValue(gridEvery),
                CheckpointEvery = r.GetValue(checkpointEvery),
                LogEvery = Math.Max(1, r.GetValue(logEvery)),
            };
            // A resume validates the checkpoint's settings merged with what may change (a resume can give
            // --latent-match-weight alone for a run that has its encoder); a fresh run validates these.
            if (!r.GetValue(resume) && settings.Validate() is string problem) throw new CliException(problem);
            var reals = r.GetValue(data) is string dataPath ? FaceDataset.Load(dataPath) : null;

            var checkpoint = Path.Combine(outDir, StyleGanTrainer.CheckpointFile);
            if (!r.GetValue(resume) && File.Exists(checkpoint))
                throw new CliException($"{checkpoint} exists: pass --resume to continue that run, or choose another --out.");
            using var trainer = r.GetValue(resume)
                ? StyleGanTrainer.Resume(checkpoint, outDir, dev, reals, settings,
                    adversarialStartKimg: r.GetResult(advStart) is { Implicit: false } ? settings.AdversarialStartKimg : null,
                    adversarialRampKimg: r.GetResult(advRamp) is { Implicit: false } ? settings.AdversarialRampKimg : null,
                    keepTotalSteps: r.GetValue(steps) is null && r.GetValue(kimg) is null,
                    learningRate: r.GetResult(lr) is { Implicit: false } ? r.GetValue(lr) : null,
                    encoderWeight: r.GetResult(encoder) is { Implicit: false } ? r.GetValue(encoder) : null,
                    latentMatchWeight: r.GetResult(latentMatch) is { Implicit: false } ? r.GetValue(latentMatch) : null,
                    attributeWeight: r.GetResult(attrWeight) is { Implicit: false } ? r.GetValue(attrWeight) : null,
                    attributeClassifier: r.GetValue(attrClassifier),
                    designedCodes: r.GetResult(codes) is { Implicit: false } ? settings.DesignedCodes : null,
                    codeNoise: r.GetResult(codeNoise) is { Implicit: false } ? settings.CodeNoise : null,
                    latentLayout: r.GetResult(layout) is { Implicit: false } ? settings.LatentLayout : null,
                    adversarialWeight: r.GetResult(adv) is { Implicit: false } ? settings.AdversarialWeight : null,
                    featureMatchWeight: r.GetResult(featureMatch) is { Implicit: false } ? settings.FeatureMatchWeight : null)
                : StyleGanTrainer.Create(settings, outDir, dev, reals, r.GetValue(attrClassifier), initialGenerator);
            var s = trainer.Settings;
            if (r.GetValue(attrClassifier) is not null && s.AttributeWeight == 0)
                throw new CliException("--attribute-classifier is read only by the attribute loss: give --attribute-weight too.");
            CliRunner.Err.MarkupLineInterpolated(
                $"[grey]StyleGAN2 {s.Generator.Resolution}px, {trainer.Generator.ParameterCount:N0} G / {trainer.Discriminator.ParameterCount:N0} D parameters, batch {s.BatchSize}, step {trainer.Step} of {s.TotalSteps}, {ComputeDevices.DescribeDevice(dev)} → {Path.GetFullPath(outDir)}[/]");

            if (r.GetValue(fitMapping) is int fitSteps and > 0)
            {
                if (!s.DesignedCodes) throw new CliException("--fit-mapping fits the mapping network to designed codes: give --codes designed (and --encoder-weight).");
                var fit = trainer.FitMapping(fitSteps, r.GetValue(fitBatch), r.GetValue(fitLr), progress: new InlineFit(p =>
                {
                    if (p.Step % 250 == 0 || p.Step == fitSteps) CliRunner.Err.WriteLine(string.Create(CultureInfo.InvariantCulture, $"fit mapping {p.Step}/{fitSteps}  mse {p.Mse:F4}"));
                }));
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"mapping fitted: mse {fit.TrainMse:F4} (held out {fit.HeldOutMse:F4}); class read from w, held out: {string.Join(", ", fit.ClassAccuracy.Select(kv => $"{kv.Key} {kv.Value:P1}"))}"));
            }

            // Ctrl+C or SIGTERM (kill PID) stops between steps and still writes a checkpoint and the export.
            using var cancel = new CancellationTokenSource();
            ConsoleCancelEventHandler onCancel = (_, e) => { e.Cancel = true; cancel.Cancel(); };
            Console.CancelKeyPress += onCancel;
            using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, ctx => { ctx.Cancel = true; cancel.Cancel(); });
            try
            {
                if (CliRunner.Err.Profile.Capabilities.Interactive)
                {
                    CliRunner.Err.Progress()
                        .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn())
                        .Start(ctx =>
                        {
                            var task = ctx.AddTask("training", maxValue: s.TotalSteps);
                            task.Value = trainer.Step;
                            trainer.Run(new InlineProgress(p =>
                            {
                                task.Value = p.Step;
                                task.Description = Describe(p);
                            }), cancel.Token);
                        });
                }
                else
                {
                    // Redirected (nohup, CI): one plain line per log interval instead of a redrawn bar.
                    trainer.Run(new InlineProgress(p =>
                    {
                        if (p.Step % s.LogEvery == 0 || p.Step == p.TotalSteps) CliRunner.Err.WriteLine(Describe(p));
                    }), cancel.Token);
                }
            }
            finally
            {
                Console.CancelKeyPress -= onCancel;
            }
            var where = Path.GetFullPath(outDir);
            Console.WriteLine($"{Path.Combine(where, StyleGanTrainer.GeneratorFile)}: step {trainer.Step} of {s.TotalSteps} ({trainer.ImagesSeen / 1000.0:F1} kimg){(cancel.IsCancellationRequested ? ", stopped early; resume with --resume" : "")}");
            return 0;
        });
        return command;
    }

    private static string Describe(StyleGanProgress p) => string.Create(CultureInfo.InvariantCulture,
        $"step {p.Step}/{p.TotalSteps} {p.Kimg:F1} kimg  rec {p.Last.GReconstruction:F3}{(p.Last.GEncoder > 0 ? string.Create(CultureInfo.InvariantCulture, $"  enc {p.Last.GEncoder:F3} match {p.Last.LatentMatch:F3}") : "")}{(p.Last.GAttributes > 0 ? string.Create(CultureInfo.InvariantCulture, $"  attr {p.Last.GAttributes:F3}") : "")}{(double.IsNaN(p.Last.DLoss) ? "  (no discriminator yet)" : string.Create(CultureInfo.InvariantCulture, $"  G {p.Last.GAdversarial:F3} D {p.Last.DLoss:F3}"))}{(p.Last.GFeatureMatch > 0 ? string.Create(CultureInfo.InvariantCulture, $" fm {p.Last.GFeatureMatch:F3}") : "")}  {p.ImagesPerSecond:F1} img/s");

    private static bool ParseCodes(string? value) => value?.Trim().ToLowerInvariant() switch
    {
        "encoder" => false,
        "designed" => true,
        _ => throw new CliException($"--codes {value}: use encoder or designed."),
    };

    private sealed class InlineFit(Action<(int Step, double Mse)> report) : IProgress<(int Step, double Mse)>
    {
        public void Report((int Step, double Mse) value) => report(value);
    }

    /// <summary>Reports on the training thread (Progress&lt;T&gt; would post to the thread pool and reorder lines).</summary>
    private sealed class InlineProgress(Action<StyleGanProgress> report) : IProgress<StyleGanProgress>
    {
        public void Report(StyleGanProgress value) => report(value);
    }
}
