using System.Diagnostics;
using System.Text.Json.Nodes;
using PromptFaces.Generation.Devices;
using PromptFaces.Generation.Optimisation;
using PromptFaces.Generation.StyleGan2;
using PromptFaces.Training.Data;
using PromptFaces.Training.Evaluation;
using PromptFaces.Training.Faces;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace PromptFaces.Training.StyleGan;

/// <summary>The losses of one training step (means over the batch).</summary>
public sealed record StyleGanStepStats(
    int Step,                       // the step these numbers belong to (1-based: the count of steps done)
    double GAdversarial,            // softplus(-D(fake)): the non-saturating logistic G loss, over G(z) and the code path's faces
    double GReconstruction,         // latent-tying L1 over three scales (0 when disabled)
    double GEncoder,                // the encoder path's L1 over three scales (0 without the encoder)
    double LatentMatch,             // mean squared distance of mapping(z) to the encoder's code of z's render (0 when off)
    double GAttributes,             // the attribute classifier's cross-entropy on G(z), summed over attributes (0 when off)
    double GFeatureMatch,           // mean L1 between D's block features of G's faces and of their renders (0 when off)
    double DLoss,                   // softplus(D(fake)) + softplus(-D(real))
    double? R1Penalty,              // |∇D(real)|² on R1 steps, before weighting; null on other steps
    double RealLogit,
    double FakeLogit);

/// <summary>
/// What <see cref="StyleGanTrainer.FitMapping"/> reached: the last step's mean squared error, the same on held-out z,
/// and per attribute the share of held-out z whose w has its largest class entry at the tied class.
/// </summary>
public sealed record MappingFit(double TrainMse, double HeldOutMse, IReadOnlyDictionary<string, double> ClassAccuracy);

/// <summary>Where a run stands, reported after every step.</summary>
public sealed record StyleGanProgress(int Step, int TotalSteps, double Kimg, double ImagesPerSecond, StyleGanStepStats Last);

/// <summary>
/// Trains the StyleGAN2 generator with NVIDIA's recipe (non-saturating logistic loss, lazy R1 on reals, an EMA copy of
/// G, the residual discriminator) plus the latent-tying reconstruction objective of <see cref="LatentFaceMap"/>.
/// </summary>
/// <remarks>
/// <para>One step: draw z; render the target face of each z; G phase: fake = G(z) with random noise,
/// loss = softplus(−D(fake)) + λ·L1₃(fake, target), Adam step on G, update w_avg; D phase on the same fakes (detached,
/// which saves a second generator forward per step), loss = softplus(D(fake)) + softplus(−D(real)), and every
/// <see cref="StyleGanTrainingSettings.R1Interval"/> steps + γ/2·k·|∇D(real)|² on the same real logits (one D forward
/// serves both, so the lazy-regularisation Adam adjustment NVIDIA applies to a separate reg phase does not apply);
/// finally the EMA update of G_ema.</para>
/// <para>Reals for D are the target renders of the same z's unless a dataset is given. Because D has no labels, the
/// pairing is invisible to it; it only makes D's real and fake batches show the same attribute mix, so D's gradient
/// is about how faces are drawn (edges, shading) rather than what they show, which is what the GAN term is for here:
/// the L1 term alone fixes layout and colours but is blurry at edges; the adversarial term sharpens them.</para>
/// <para>Every random draw of step s comes from generators seeded by (seed, s), so a run is deterministic for its
/// seed on a given device and thread count, and a resumed run continues exactly: the checkpoint holds G, D, G_ema
/// (parameters and buffers), both optimisers' moments and step counts, and the step.</para>
/// </remarks>
public sealed class StyleGanTrainer : IDisposable
{
    public const string CheckpointFile = "checkpoint.safetensors";
    public const string GeneratorFile = "generator.safetensors";
    public const string LogFile = "log.jsonl";
    private const string SettingsKey = "promptfaces_stylegan_training";

    private readonly Device _device;
    private readonly FaceDataset? _reals;
    private readonly LatentFaceMap? _map;
    private readonly NamedAdam _optG;
    private readonly NamedAdam _optD;
    private readonly RenderEncoder? _encoder;
    private readonly NamedAdam? _optE;
    private readonly AttributeJudge? _classifier;
    private readonly string? _classifierId;
    private readonly string _outputDir;

    public StyleGanTrainingSettings Settings { get; private set; }
    public StyleGan2Generator Generator { get; }
    public StyleGan2Generator GeneratorEma { get; }
    public StyleGan2Discriminator Discriminator { get; }

    /// <summary>Steps completed.</summary>
    public int Step { get; private set; }

    public long ImagesSeen => (long)Step * Settings.BatchSize;

    private StyleGanTrainer(StyleGanTrainingSettings settings, string outputDir, Device device, FaceDataset? reals, string? attributeClassifier,
        string? initialGenerator = null)
    {
        if (settings.Validate() is string problem) throw new ArgumentException(problem);
        if (settings.AttributeWeight > 0 && attributeClassifier is null)
            throw new ArgumentException("The attribute loss (--attribute-weight) needs a trained attribute classifier: give --attribute-classifier (train one with 'promptfaces train judge', with a seed of its own: never the evaluation's judge).");
        if (reals is not null && reals.Size != settings.Generator.Resolution)
            throw new ArgumentException($"The dataset's images are {reals.Size}x{reals.Size} but the generator makes {settings.Generator.Resolution}x{settings.Generator.Resolution}; generate a dataset at the generator's resolution.");
        CpuAllocator.KeepFreedBlocksForReuse();
        Settings = settings;
        _device = device;
        _reals = reals;
        _outputDir = outputDir;
        Directory.CreateDirectory(outputDir);
        _map = settings.ReconstructionWeight > 0 || settings.EncoderWeight > 0 || settings.AttributeWeight > 0 || reals is null ? new LatentFaceMap(settings.Generator.ZDim, settings.LatentLayout) : null;

        // Initial weights from the seed, built directly on the device; G_ema starts as an exact copy of G.
        random.manual_seed(settings.Seed);
        Generator = new StyleGan2Generator(settings.Generator, device);
        Discriminator = new StyleGan2Discriminator(settings.Discriminator, device);
        GeneratorEma = new StyleGan2Generator(settings.Generator, device);
        if (initialGenerator is not null)
        {
            LoadInitialGenerator(initialGenerator, settings, Generator);
            Settings = settings = settings with { InitialGenerator = FileId(initialGenerator) };
        }
        CopyState(Generator, GeneratorEma);
        GeneratorEma.Freeze();
        _optG = new NamedAdam(Generator, settings.GLearningRate, settings.Beta1, settings.Beta2, settings.AdamEps);
        _optD = new NamedAdam(Discriminator, settings.DLearningRate, settings.Beta1, settings.Beta2, settings.AdamEps);
        if (settings.EncoderWeight > 0 && !settings.DesignedCodes)
        {
            // Seeded on its own, after G and D, so that switching the encoder on leaves their initial weights as they were.
            random.manual_seed(settings.Seed ^ 0xE4C0DE);
            _encoder = new RenderEncoder(settings.Generator, device);
            _optE = new NamedAdam(_encoder, settings.GLearningRate, settings.Beta1, settings.Beta2, settings.AdamEps);
        }
        if (settings.AttributeWeight > 0)
        {
            _classifier = AttributeJudge.Load(attributeClassifier!, device).Freeze();
            _classifierId = FileId(attributeClassifier!);
        }
    }

    /// <summary>
    /// Loads an exported generator (<see cref="GeneratorFile"/> of an earlier run) into <paramref name="generator"/>. It
    /// must have the run's architecture, and, when the run ties latents to renders, the layout it learned them in.
    /// </summary>
    private static void LoadInitialGenerator(string path, StyleGanTrainingSettings settings, StyleGan2Generator generator)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"The generator to start from, {path}, does not exist: give the generator.safetensors of an earlier run.", path);
        var contents = StyleGan2Checkpoint.Read(path);
        if (contents.Config != settings.Generator)
            throw new ArgumentException($"{path} has the architecture {contents.Config.ToKwargs().ToJsonString()}, but the run was set up for {settings.Generator.ToKwargs().ToJsonString()}: a run starts from a generator of its own shape.");
        if (settings.ReconstructionWeight > 0 || settings.EncoderWeight > 0 || settings.AttributeWeight > 0)
        {
            var learned = LatentFaceMap.FromGeneratorFile(path, settings.Generator.ZDim)?.Layout;
            if (learned is LatentLayout layout && layout != settings.LatentLayout && !settings.DesignedCodes)
                throw new ArgumentException($"{path} learned the {LatentFaceMap.Name(layout)} latent layout; give --latent-layout {LatentFaceMap.Name(layout)} (only a run with designed codes may change it, after --fit-mapping).");
        }
        generator.LoadStateDict(contents.Tensors, path);
    }

    /// <summary>A file's name and the start of its SHA-256: which weights a run used, without a path.</summary>
    private static string FileId(string path)
    {
        using var stream = File.OpenRead(path);
        var hash = Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(stream));
        return $"{Path.GetFileName(path)} sha256:{hash[..16]}";
    }

    /// <summary>The training-only encoder of the encoder path, or null when <see cref="StyleGanTrainingSettings.EncoderWeight"/> is 0.</summary>
    public RenderEncoder? Encoder => _encoder;

    /// <summary>A fresh run writing into <paramref name="outputDir"/>; <paramref name="reals"/> null renders D's reals on the fly.</summary>
    public static StyleGanTrainer Create(StyleGanTrainingSettings settings, string outputDir, Device? device = null, FaceDataset? reals = null,
        string? attributeClassifier = null, string? initialGenerator = null) =>
        new(settings, outputDir, device ?? CPU, reals, attributeClassifier, initialGenerator);

    /// <summary>
    /// Continues the run saved in <paramref name="checkpointPath"/>. The checkpoint's settings are used; from
    /// <paramref name="runControl"/> only the run-control fields (total steps and intervals) are taken. The adversarial
    /// schedule may be moved (<paramref name="adversarialStartKimg"/>, <paramref name="adversarialRampKimg"/>): the
    /// supervised phase can be lengthened while it still pays, and the checkpoint records the schedule in force. With
    /// <paramref name="keepTotalSteps"/> the run keeps its own length and only the intervals change. A
    /// <paramref name="learningRate"/> replaces G's and D's (a step decay late in a phase); the Adam moments are kept.
    /// <paramref name="encoderWeight"/> and <paramref name="latentMatchWeight"/> switch the encoder path on (or change
    /// its weights); a checkpoint saved without an encoder starts one fresh. <paramref name="adversarialWeight"/> replaces
    /// the adversarial loss's weight (a supervised run can end with a gentle adversarial phase), and
    /// <paramref name="featureMatchWeight"/> the feature-matching loss's.
    /// </summary>
    public static StyleGanTrainer Resume(string checkpointPath, string outputDir, Device? device = null, FaceDataset? reals = null,
        StyleGanTrainingSettings? runControl = null, double? adversarialStartKimg = null, double? adversarialRampKimg = null,
        bool keepTotalSteps = false, double? learningRate = null, double? encoderWeight = null, double? latentMatchWeight = null,
        double? attributeWeight = null, string? attributeClassifier = null, bool? designedCodes = null, double? codeNoise = null,
        LatentLayout? latentLayout = null, double? adversarialWeight = null, double? featureMatchWeight = null)
    {
        var checkpoint = TrainingCheckpoint.Read(checkpointPath);
        var settings = StyleGanTrainingSettings.FromJson(checkpoint.Metadata(SettingsKey), checkpointPath);
        var checkpointLayout = settings.LatentLayout;
        if (runControl is not null)
            settings = settings.WithRunControl(keepTotalSteps ? runControl with { TotalSteps = settings.TotalSteps } : runControl);
        settings = settings with
        {
            AdversarialStartKimg = adversarialStartKimg ?? settings.AdversarialStartKimg,
            AdversarialRampKimg = adversarialRampKimg ?? settings.AdversarialRampKimg,
            AdversarialWeight = adversarialWeight ?? settings.AdversarialWeight,
            FeatureMatchWeight = featureMatchWeight ?? settings.FeatureMatchWeight,
            GLearningRate = learningRate ?? settings.GLearningRate,
            DLearningRate = learningRate ?? settings.DLearningRate,
            EncoderWeight = encoderWeight ?? settings.EncoderWeight,
            LatentMatchWeight = latentMatchWeight ?? settings.LatentMatchWeight,
            AttributeWeight = attributeWeight ?? settings.AttributeWeight,
            DesignedCodes = designedCodes ?? settings.DesignedCodes,
            CodeNoise = codeNoise ?? settings.CodeNoise,
            LatentLayout = latentLayout ?? settings.LatentLayout,
        };
        // The layout says how z is tied to a face. A run whose synthesis network draws from designed codes has learned
        // the codes, not z, so only its mapping network must learn a new layout (fit it with FitMapping).
        if (settings.LatentLayout != checkpointLayout && !settings.DesignedCodes)
            throw new ArgumentException($"{checkpointPath} was trained with the {LatentFaceMap.Name(checkpointLayout)} layout, and a run keeps its layout (its generator has learned it). Only a run with designed codes (--codes designed) may change it, and then its mapping network needs a refit (--fit-mapping).");
        if (settings.Validate() is string problem) throw new ArgumentException(problem);
        var trainer = new StyleGanTrainer(settings, outputDir, device ?? CPU, reals, attributeClassifier);
        try
        {
            checkpoint.LoadModule("G.", trainer.Generator);
            checkpoint.LoadModule("G_ema.", trainer.GeneratorEma);
            checkpoint.LoadModule("D.", trainer.Discriminator);
            checkpoint.LoadOptimiser("opt_G.", trainer._optG, long.Parse(checkpoint.Metadata("opt_G_steps")));
            checkpoint.LoadOptimiser("opt_D.", trainer._optD, long.Parse(checkpoint.Metadata("opt_D_steps")));
            if (trainer._encoder is not null && checkpoint.HasMetadata("opt_E_steps"))
            {
                checkpoint.LoadModule("E.", trainer._encoder);
                checkpoint.LoadOptimiser("opt_E.", trainer._optE!, long.Parse(checkpoint.Metadata("opt_E_steps")));
            }
            trainer.Step = int.Parse(checkpoint.Metadata("step"));
        }
        catch
        {
            trainer.Dispose();
            throw;
        }
        return trainer;
    }

    /// <summary>One G phase, one D phase (with R1 on every k-th step) and the EMA update.</summary>
    public StyleGanStepStats TrainStep()
    {
        var s = Settings;
        int batch = s.BatchSize, step = Step;
        using var scope = NewDisposeScope();
        // Latents and target renders first, outside the GC-quiet region below: rendering allocates managed memory.
        float[] z;
        using (var zScope = NewDisposeScope())
        {
            using var zRng = new TorchSharp.torch.Generator(StepSeed(step, stream: 1), CPU);
            z = randn(new long[] { batch, s.Generator.ZDim }, generator: zRng).data<float>().ToArray();   // (B, z_dim)
        }
        var attributes = _map?.Attributes(z);
        var targetBytes = attributes is null ? null : Render(attributes);
        var labels = _classifier is null ? null : attributes!.SelectMany(a => a.ToLabels().Select(l => (long)l)).ToArray();
        var dataIndices = _reals is null ? null : DatasetIndices(step, batch);
        var codes = Settings.DesignedCodes ? _map!.Codes(z, attributes!, s.Generator.WDim) : null;
        return GcQuiet.Run(() => TrainStepTensors(z, targetBytes, labels, dataIndices, codes));
    }

    /// <summary>
    /// The tensor work of a step. It runs with the garbage collector paused (<see cref="GcQuiet"/>): TorchSharp leaves
    /// the Scalars behind every double argument to finalizers, which could otherwise free one while an op still reads it.
    /// </summary>
    private StyleGanStepStats TrainStepTensors(float[] zValues, byte[]? targetBytes, long[]? labelValues, int[]? dataIndices, float[]? codeValues)
    {
        var s = Settings;
        int batch = s.BatchSize, step = Step;
        using var noiseRng = new TorchSharp.torch.Generator(StepSeed(step, stream: 3));
        var z = tensor(zValues, new long[] { batch, s.Generator.ZDim }).to(_device);               // (B, z_dim)
        var targets = targetBytes is null ? null : ToImages(targetBytes, batch);                   // (B, 3, R, R)
        var reals = dataIndices is null ? targets! : _reals!.Images(dataIndices, _device);

        // G phase: D's weights get no gradient, its input does.
        SetRequiresGrad(Discriminator, false);
        var ws = Generator.Mapping.Forward(z);                                    // (B, num_ws, w_dim)
        var fake = Generator.Synthesis.Forward(ws, s.TrainingNoise, noiseRng);  // (B, 3, R, R)
        bool adversarial = s.AdversarialActiveAt(ImagesSeen);                      // the G term and the D phase, both or neither
        var adversarialWeight = s.AdversarialWeightAt(ImagesSeen);
        var gRec = targets is null || s.ReconstructionWeight == 0 ? zeros(1, device: _device).squeeze() : ReconstructionLoss(fake, targets);
        var gLoss = gRec * s.ReconstructionWeight;

        // The code path: the synthesis network draws each target back from a code of it (the encoder's reading, or the
        // designed code), and the mapping network is pulled towards that code (held fixed there, so an encoder's codes
        // answer only to the drawing).
        Tensor? gEnc = null, wMatch = null, drawnFromCodes = null;
        if (_encoder is not null || codeValues is not null)
        {
            var code = codeValues is null
                ? _encoder!.Forward(targets!)                                                   // (B, w_dim)
                : tensor(codeValues, new long[] { batch, s.Generator.WDim }).to(_device);
            var drawFrom = code;
            if (codeValues is not null && s.CodeNoise > 0)
            {
                using var codeRng = new TorchSharp.torch.Generator(StepSeed(step, stream: 4));
                drawFrom = code + randn(code.shape, generator: codeRng).to(_device) * s.CodeNoise;
            }
            var drawn = Generator.Synthesis.Forward(drawFrom.unsqueeze(1).expand(-1, ws.shape[1], -1), s.TrainingNoise, noiseRng);
            gEnc = ReconstructionLoss(drawn, targets!);
            gLoss = gLoss + gEnc * s.EncoderWeight;
            drawnFromCodes = drawn;
            if (s.LatentMatchWeight > 0)
            {
                wMatch = (ws.select(1, 0) - code.detach()).square().mean();
                gLoss = gLoss + wMatch * s.LatentMatchWeight;
            }
            _encoder?.zero_grad();
        }
        // The attribute loss: the frozen classifier's cross-entropy against z's tied attributes, on every face G drew
        // this step, each distorted afresh by the judge's augmentations; only G gets gradients.
        Tensor? gAttr = null;
        if (_classifier is not null && labelValues is not null)
        {
            var labels = tensor(labelValues, new long[] { batch, FaceAttributes.Schema.Count }).to(_device);   // (B, A)
            var drawnFaces = fake;
            if (drawnFromCodes is not null)
            {
                drawnFaces = cat(new[] { fake, drawnFromCodes }, 0);                                       // (2B, 3, R, R)
                labels = cat(new[] { labels, labels }, 0);
            }
            using var augmentRng = new TorchSharp.torch.Generator(StepSeed(step, stream: 5), CPU);
            var logits = _classifier.SplitLogits(_classifier.forward(ClassifierAugmentation.Apply(drawnFaces, augmentRng)));
            gAttr = zeros(1, device: _device).squeeze();
            for (int a = 0; a < logits.Length; a++) gAttr = gAttr + F.cross_entropy(logits[a], labels.select(1, a));
            gLoss = gLoss + gAttr * s.AttributeWeight;
        }

        // The adversarial term sees every face G drew this step: from z and, in a run with a code path, from the codes
        // (the same synthesis network; the code path's faces are the sharper ones for the discriminator to judge).
        Tensor? fakes = null, gFm = null;
        var gAdv = zeros(1, device: _device).squeeze();
        if (adversarial)
        {
            fakes = drawnFromCodes is null ? fake : cat(new[] { fake, drawnFromCodes }, 0);     // (B or 2B, 3, R, R)
            bool matchFeatures = s.FeatureMatchWeight > 0 && targets is not null;
            var fakeFeatures = matchFeatures ? new List<Tensor>() : null;
            gAdv = F.softplus(-Discriminator.Forward(fakes, fakeFeatures)).mean();
            gLoss = gLoss + gAdv * adversarialWeight;
            if (matchFeatures)
            {
                // Each face against its own render. D's block features are per image (the batch is mixed only in the
                // epilogue), so the targets go through D once, and both paths, which drew the same targets, reuse them.
                var targetFeatures = new List<Tensor>();
                using (no_grad()) Discriminator.Forward(targets!, targetFeatures);
                gFm = zeros(1, device: _device).squeeze();
                for (int l = 0; l < fakeFeatures!.Count; l++)
                {
                    var paired = drawnFromCodes is null ? targetFeatures[l] : cat(new[] { targetFeatures[l], targetFeatures[l] }, 0);
                    gFm = gFm + (fakeFeatures[l] - paired).abs().mean();
                }
                gFm = gFm / fakeFeatures.Count;
                gLoss = gLoss + gFm * s.FeatureMatchWeight;
            }
        }
        Generator.zero_grad();
        gLoss.backward();
        var gBeta1 = adversarial ? null : s.ReconstructionBeta1;
        _optG.Step(gBeta1);
        _optE?.Step(gBeta1);
        using (no_grad())
        {
            var wAvg = Generator.Mapping.WAvg;                                   // w_avg ← lerp(mean w, w_avg, β)
            wAvg.copy_(ws.select(1, 0).mean(new long[] { 0 }) * (1 - s.WAvgBeta) + wAvg * s.WAvgBeta);
        }

        // D phase on the same (now detached) fakes; R1 shares the real logits. Skipped while reconstruction runs alone.
        Tensor? dLoss = null, dReal = null, dFake = null, r1 = null;
        if (adversarial)
        {
            SetRequiresGrad(Discriminator, true);
            bool doR1 = step % s.R1Interval == 0;
            var realInput = doR1 ? reals.detach().requires_grad_(true) : reals;
            dFake = Discriminator.Forward(fakes!.detach());
            dReal = Discriminator.Forward(realInput);
            dLoss = F.softplus(dFake).mean() + F.softplus(-dReal).mean();
            var dTotal = dLoss;
            if (doR1)
            {
                var grad = autograd.grad(new[] { dReal.sum() }, new[] { realInput }, retain_graph: true, create_graph: true)[0];   // (B, 3, R, R)
                r1 = grad.square().sum(new long[] { 1, 2, 3 }).mean();
                dTotal = dLoss + r1 * (s.ResolvedR1Gamma / 2 * s.R1Interval);
            }
            Discriminator.zero_grad();
            dTotal.backward();
            _optD.Step();
        }

        UpdateEma();
        Step++;
        return new StyleGanStepStats(Step, gAdv.item<float>(), gRec.item<float>(), gEnc?.item<float>() ?? 0, wMatch?.item<float>() ?? 0, gAttr?.item<float>() ?? 0, gFm?.item<float>() ?? 0, dLoss?.item<float>() ?? double.NaN, r1?.item<float>(),
            dReal?.mean().item<float>() ?? double.NaN, dFake?.mean().item<float>() ?? double.NaN);
    }

    /// <summary>
    /// Trains until <see cref="StyleGanTrainingSettings.TotalSteps"/>, writing log lines, sample grids and checkpoints on
    /// their intervals; when cancelled, stops between steps. Either way it ends with a checkpoint and an export of
    /// G_ema, so the run can be resumed and used.
    /// </summary>
    public void Run(IProgress<StyleGanProgress>? progress = null, CancellationToken cancel = default)
    {
        var s = Settings;
        if (Step == 0) WriteSampleGrid(Path.Combine(_outputDir, "grid-000000.png"));
        WriteTargetGrid();
        var clock = Stopwatch.StartNew();
        var windowClock = Stopwatch.StartNew();
        var window = new List<StyleGanStepStats>();
        double imagesPerSecond = 0;
        int windowStart = Step;
        while (Step < s.TotalSteps && !cancel.IsCancellationRequested)
        {
            var stats = TrainStep();
            window.Add(stats);
            if (Step % s.LogEvery == 0 || Step == s.TotalSteps)
            {
                imagesPerSecond = (Step - windowStart) * s.BatchSize / Math.Max(windowClock.Elapsed.TotalSeconds, 1e-9);
                AppendLog(window, imagesPerSecond, clock.Elapsed.TotalSeconds);
                window.Clear();
                windowClock.Restart();
                windowStart = Step;
            }
            progress?.Report(new StyleGanProgress(Step, s.TotalSteps, ImagesSeen / 1000.0, imagesPerSecond, stats));
            if (s.GridEvery > 0 && Step % s.GridEvery == 0) WriteSampleGrid(Path.Combine(_outputDir, $"grid-{Step:D6}.png"));
            if (s.CheckpointEvery > 0 && Step % s.CheckpointEvery == 0 && Step < s.TotalSteps) SaveAll();
        }
        if (Step == s.TotalSteps && s.GridEvery > 0 && Step % s.GridEvery != 0) WriteSampleGrid(Path.Combine(_outputDir, $"grid-{Step:D6}.png"));
        SaveAll();
    }

    /// <summary>
    /// Fits the mapping network to the designed codes by regression alone (mean squared error, Adam, large batches of
    /// fresh z), then copies it into G_ema and re-centres w_avg on its new outputs. The mapping network is a small
    /// MLP, so thousands of such steps take minutes, where the same regression inside <see cref="TrainStep"/> would see
    /// one batch of 16 per synthesis step. The learning rate falls from <paramref name="learningRate"/> to a tenth of it
    /// on a cosine over the steps. The synthesis network is untouched. Draws come from streams of their own, so a fit
    /// does not disturb the run's later steps.
    /// </summary>
    public MappingFit FitMapping(int steps, int batch = 256, double learningRate = 1e-3, IProgress<(int Step, double Mse)>? progress = null)
    {
        if (_map is null || !Settings.DesignedCodes) throw new InvalidOperationException("Fitting the mapping network needs designed codes (--codes designed).");
        if (steps < 1 || batch < 1) throw new ArgumentException("The fit needs at least one step and a batch of at least one.");
        var mapping = Generator.Mapping;
        int zDim = Settings.Generator.ZDim, wDim = Settings.Generator.WDim;
        using var opt = new NamedAdam(mapping, learningRate, 0.9, 0.99, 1e-8);
        double mse = double.NaN;
        for (int i = 0; i < steps; i++)
        {
            opt.LearningRate = learningRate * (0.55 + 0.45 * Math.Cos(Math.PI * i / steps));
            var (z, _, codes) = DrawCodes(0xF17_0000UL + (ulong)Step * 100_003UL + (ulong)i, batch);
            mse = GcQuiet.Run(() =>
            {
                using var scope = NewDisposeScope();
                var w = mapping.Forward(tensor(z, new long[] { batch, zDim }).to(_device)).select(1, 0);
                var loss = (w - tensor(codes, new long[] { batch, wDim }).to(_device)).square().mean();
                mapping.zero_grad();
                loss.backward();
                opt.Step();
                return (double)loss.item<float>();
            });
            progress?.Report((i + 1, mse));
        }

        // Held-out check, copy into G_ema, w_avg from the fitted outputs.
        const int heldOut = 2048;
        var (zh, faces, ch) = DrawCodes(0xF17_FFFFUL + (ulong)Step, heldOut);
        var labels = faces.Select(a => a.ToLabels()).ToArray();
        var schema = FaceAttributes.Schema;
        var (heldMse, wValues) = GcQuiet.Run(() =>
        {
            using var scope = NewDisposeScope();
            using var noGrad = no_grad();
            var w = mapping.Forward(tensor(zh, new long[] { heldOut, zDim }).to(_device)).select(1, 0);
            var m = (double)(w - tensor(ch, new long[] { heldOut, wDim }).to(_device)).square().mean().item<float>();
            mapping.WAvg.copy_(w.mean(new long[] { 0 }));
            var source = mapping.state_dict();
            foreach (var (name, t) in GeneratorEma.Mapping.state_dict()) t.copy_(source[name]);
            return (m, w.cpu().data<float>().ToArray());
        });
        var accuracy = new double[schema.Count];
        for (int row = 0; row < heldOut; row++)
            for (int a = 0, offset = 0; a < schema.Count; offset += schema[a].Classes, a++)
            {
                int best = 0;
                for (int c = 1; c < schema[a].Classes; c++)
                    if (wValues[row * wDim + offset + c] > wValues[row * wDim + offset + best]) best = c;
                if (best == labels[row][a]) accuracy[a] += 1.0 / heldOut;
            }
        return new MappingFit(mse, heldMse, schema.Select(a => a.Name).Zip(accuracy).ToDictionary(p => p.First, p => p.Second));
    }

    private (float[] Z, FaceAttributes[] Faces, float[] Codes) DrawCodes(ulong seed, int count)
    {
        using var rng = new TorchSharp.torch.Generator(seed ^ (ulong)Settings.Seed, CPU);
        var z = randn(new long[] { count, Settings.Generator.ZDim }, generator: rng).data<float>().ToArray();
        var faces = _map!.Attributes(z);
        return (z, faces, _map.Codes(z, faces, Settings.Generator.WDim));
    }

    /// <summary>Writes the checkpoint and the G_ema export into the output folder.</summary>
    public void SaveAll()
    {
        SaveCheckpoint(Path.Combine(_outputDir, CheckpointFile));
        ExportGenerator(Path.Combine(_outputDir, GeneratorFile));
    }

    /// <summary>Everything a resume needs, as one safetensors file (written to a temporary name, then renamed).</summary>
    public void SaveCheckpoint(string path)
    {
        var tensors = new List<KeyValuePair<string, Tensor>>();
        tensors.AddRange(Generator.state_dict().Select(kv => new KeyValuePair<string, Tensor>("G." + kv.Key, kv.Value)));
        tensors.AddRange(GeneratorEma.state_dict().Select(kv => new KeyValuePair<string, Tensor>("G_ema." + kv.Key, kv.Value)));
        tensors.AddRange(Discriminator.state_dict().Select(kv => new KeyValuePair<string, Tensor>("D." + kv.Key, kv.Value)));
        tensors.AddRange(_optG.State("opt_G."));
        tensors.AddRange(_optD.State("opt_D."));
        if (_encoder is not null)
        {
            tensors.AddRange(_encoder.state_dict().Select(kv => new KeyValuePair<string, Tensor>("E." + kv.Key, kv.Value)));
            tensors.AddRange(_optE!.State("opt_E."));
        }
        var metadata = new Dictionary<string, string>
        {
            [SettingsKey] = Settings.ToJson(),
            [StyleGan2Checkpoint.ConfigMetadataKey] = Settings.Generator.ToKwargs().ToJsonString(),
            ["step"] = Step.ToString(),
            ["images_seen"] = ImagesSeen.ToString(),
            ["renderer_version"] = FaceRenderer.Version.ToString(),
            ["opt_G_steps"] = _optG.StepCount.ToString(),
            ["opt_D_steps"] = _optD.StepCount.ToString(),
            ["rng"] = "every random draw of step s derives from (seed, s); no other random state exists",
        };
        if (_optE is not null) metadata["opt_E_steps"] = _optE.StepCount.ToString();
        if (_classifierId is not null) metadata["attribute_classifier"] = _classifierId;
        TrainingCheckpoint.Write(path, tensors, metadata);
    }

    /// <summary>G_ema as a generator checkpoint that <see cref="StyleGan2Checkpoint.Load"/> and the optimiser read directly.</summary>
    public void ExportGenerator(string path)
    {
        var tmp = path + ".tmp";
        var metadata = new Dictionary<string, string>
        {
            ["training_step"] = Step.ToString(),
            ["training_kimg"] = (ImagesSeen / 1000.0).ToString("F1"),
            ["training_settings"] = Settings.ToJson(),
            ["renderer_version"] = FaceRenderer.Version.ToString(),
            ["training_objective"] = Settings.DesignedCodes
                ? "StyleGAN2 (non-saturating logistic, lazy R1, G_ema, resnet D) + latent-tying L1 to procedural renders + designed-code path (renders drawn from a code that spells out their classes, geometry and styles; mapping regressed onto the codes)"
                : Settings.EncoderWeight > 0
                ? "StyleGAN2 (non-saturating logistic, lazy R1, G_ema, resnet D) + latent-tying L1 to procedural renders + encoder path (renders drawn back from an encoder's code; mapping regressed onto the codes)"
                : Settings.ReconstructionWeight > 0
                ? "StyleGAN2 (non-saturating logistic, lazy R1, G_ema, resnet D) + latent-tying L1 to procedural renders"
                : "StyleGAN2 (non-saturating logistic, lazy R1, G_ema, resnet D)",
        };
        if (_classifierId is not null)
        {
            metadata["training_objective"] += " + attribute cross-entropy of G(z) under a frozen classifier trained on renders (not the evaluation's judge)";
            metadata["attribute_classifier"] = _classifierId;
        }
        StyleGan2Checkpoint.Save(GeneratorEma, tmp, metadata);
        File.Move(tmp, path, overwrite: true);
    }

    /// <summary>
    /// G_ema's faces for fixed latents (8x8, truncation off, constant noise): the same faces at every step. With the
    /// encoder on, also <c>grid-encoded-*.png</c> beside it: G_ema's synthesis drawing the grid's target renders back from
    /// the encoder's codes, which shows what the synthesis network can draw apart from what the mapping network gives it.
    /// </summary>
    public void WriteSampleGrid(string path)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var images = GcQuiet.Run(() => GeneratorEma.Forward(FixedGridLatents(), noise: NoiseMode.Const).cpu());
        SaveGrid(images, path);
        if ((_encoder is null && !Settings.DesignedCodes) || _map is null) return;
        var (z, faces) = FixedGridFaces(_map);
        var targets = TargetImages(faces);
        var designed = Settings.DesignedCodes ? _map.Codes(z, faces, Settings.Generator.WDim) : null;
        var encoded = GcQuiet.Run(() =>
        {
            var code = designed is null ? _encoder!.Forward(targets) : tensor(designed, new long[] { GridSide * GridSide, Settings.Generator.WDim }).to(_device);
            return GeneratorEma.Synthesis.Forward(code.unsqueeze(1).expand(-1, GeneratorEma.NumWs, -1), NoiseMode.Const).cpu();
        });
        var name = Path.GetFileName(path);
        SaveGrid(encoded, Path.Combine(Path.GetDirectoryName(path) ?? ".", name.StartsWith("grid-", StringComparison.Ordinal) ? "grid-encoded-" + name[5..] : "encoded-" + name));
    }

    /// <summary>The renders the fixed grid latents are tied to: what <see cref="WriteSampleGrid"/> should converge to.</summary>
    private void WriteTargetGrid()
    {
        var path = Path.Combine(_outputDir, "grid-targets.png");
        if (_map is null || File.Exists(path)) return;
        using var scope = NewDisposeScope();
        SaveGrid(TargetImages(FixedGridFaces(_map).Faces), path);
    }

    /// <summary>The fixed grid latents' values and the faces they are tied to.</summary>
    private (float[] Z, FaceAttributes[] Faces) FixedGridFaces(LatentFaceMap map)
    {
        var z = FixedGridLatents().cpu().data<float>().ToArray();
        return (z, map.Attributes(z));
    }

    /// <summary>The renders of <paramref name="faces"/>, (N, 3, R, R) in [-1, 1] on the device.</summary>
    private Tensor TargetImages(FaceAttributes[] faces)
    {
        var bytes = Render(faces);                      // outside the GC-quiet region: rendering allocates managed memory
        return GcQuiet.Run(() => ToImages(bytes, faces.Length));
    }

    private Tensor FixedGridLatents()
    {
        using var rng = new TorchSharp.torch.Generator((ulong)Settings.Seed ^ 0x5EED_6A1DUL, CPU);
        return randn(new long[] { GridSide * GridSide, Settings.Generator.ZDim }, generator: rng).to(_device);
    }

    private const int GridSide = 8;

    /// <summary>The distortions the attribute classifier's input gets: those the judges are trained with.</summary>
    private static readonly JudgeAugmentation ClassifierAugmentation = new();

    private void SaveGrid(Tensor images, string path)
    {
        using var grid = GcQuiet.Run(() => SampleGrid.Grid(images, GridSide));
        SampleGrid.Save(path, grid, new Dictionary<string, string> { ["step"] = Step.ToString(), ["kimg"] = (ImagesSeen / 1000.0).ToString("F1") });
    }

    /// <summary>Mean L1 at full, half and quarter resolution: the coarse terms weigh layout and colour, the fine one edges.</summary>
    private static Tensor ReconstructionLoss(Tensor fake, Tensor target)
    {
        var loss = (fake - target).abs().mean();
        for (int k = 2; k <= 4; k *= 2)
            loss = loss + (F.avg_pool2d(fake, k) - F.avg_pool2d(target, k)).abs().mean();
        return loss;
    }

    /// <summary>Renders each face on the CPU into one HWC byte buffer (one face per thread of libtorch's count).</summary>
    private byte[] Render(FaceAttributes[] attributes)
    {
        int r = Settings.Generator.Resolution, perImage = r * r * 3;
        var bytes = new byte[attributes.Length * perImage];
        Parallel.For(0, attributes.Length, new ParallelOptions { MaxDegreeOfParallelism = Math.Max(1, get_num_threads()) },
            i => FaceRenderer.RenderInto(attributes[i], r, bytes.AsSpan(i * perImage, perImage)));
        return bytes;
    }

    /// <summary>HWC bytes → (B, 3, R, R) float32 in [-1, 1] on the device, mapped as the datasets map them.</summary>
    private Tensor ToImages(byte[] bytes, int count)
    {
        int r = Settings.Generator.Resolution;
        var hwc = tensor(bytes, new long[] { count, r, r, 3 }, ScalarType.Byte);
        return hwc.to(_device).to(ScalarType.Float32).permute(0, 3, 1, 2).div(127.5).sub(1.0).contiguous();
    }

    private int[] DatasetIndices(int step, int batch)
    {
        var rng = new SplitMix64(StepSeed(step, stream: 2));
        var indices = new int[batch];
        for (int i = 0; i < batch; i++) indices[i] = (int)(rng.NextUInt64() % (ulong)_reals!.Count);
        return indices;
    }

    private ulong StepSeed(int step, int stream)
    {
        var mix = new SplitMix64((ulong)Settings.Seed * 0x9E3779B97F4A7C15UL ^ ((ulong)step << 8) ^ (ulong)stream);
        return mix.NextUInt64();
    }

    /// <summary>G_ema ← lerp(G, G_ema, β) with β = 0.5^(batch / half-life in images), buffers (w_avg, noise) copied.</summary>
    private void UpdateEma()
    {
        var s = Settings;
        double emaImages = s.ResolvedEmaKimg * 1000;
        if (s.EmaRampup > 0) emaImages = Math.Min(emaImages, ImagesSeen * s.EmaRampup);
        double beta = Math.Pow(0.5, s.BatchSize / Math.Max(emaImages, 1e-8));
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var source = Generator.named_parameters().ToDictionary(kv => kv.Item1, kv => kv.Item2);
        foreach (var (name, p) in GeneratorEma.named_parameters())
            p.mul_(beta).add_(source[name], alpha: 1 - beta);
        var buffers = Generator.named_buffers().ToDictionary(kv => kv.Item1, kv => kv.Item2);
        foreach (var (name, b) in GeneratorEma.named_buffers())
            b.copy_(buffers[name]);
    }

    private static void CopyState(nn.Module from, nn.Module to)
    {
        using var noGrad = no_grad();
        var source = from.state_dict();
        foreach (var (name, t) in to.state_dict()) t.copy_(source[name]);
    }

    private static void SetRequiresGrad(nn.Module module, bool value)
    {
        foreach (var p in module.parameters()) p.requires_grad = value;
    }

    private void AppendLog(List<StyleGanStepStats> window, double imagesPerSecond, double seconds)
    {
        var r1 = window.Where(w => w.R1Penalty is not null).Select(w => w.R1Penalty!.Value).ToList();
        static JsonNode? N(double v, int digits) => double.IsFinite(v) ? JsonValue.Create(Math.Round(v, digits)) : JsonValue.Create(v.ToString());
        var line = new JsonObject
        {
            ["step"] = Step,
            ["kimg"] = Math.Round(ImagesSeen / 1000.0, 3),
            ["g_adv"] = N(window.Average(w => w.GAdversarial), 5),
            ["g_rec"] = N(window.Average(w => w.GReconstruction), 5),
            ["g_enc"] = N(window.Average(w => w.GEncoder), 5),
            ["w_match"] = N(window.Average(w => w.LatentMatch), 5),
            ["g_attr"] = N(window.Average(w => w.GAttributes), 5),
            ["g_fm"] = N(window.Average(w => w.GFeatureMatch), 5),
            ["d_loss"] = N(window.Average(w => w.DLoss), 5),   // NaN (as a string) while D is not yet training
            ["r1"] = r1.Count == 0 ? null : N(r1.Average(), 5),
            ["real_logit"] = N(window.Average(w => w.RealLogit), 4),
            ["fake_logit"] = N(window.Average(w => w.FakeLogit), 4),
            ["images_per_second"] = N(imagesPerSecond, 2),
            ["seconds"] = Math.Round(seconds, 1),
        };
        File.AppendAllText(Path.Combine(_outputDir, LogFile), line.ToJsonString() + "\n");
    }

    public void Dispose()
    {
        _optG.Dispose();
        _optD.Dispose();
        _optE?.Dispose();
        _encoder?.Dispose();
        _classifier?.Dispose();
        Generator.Dispose();
        GeneratorEma.Dispose();
        Discriminator.Dispose();
    }
}
