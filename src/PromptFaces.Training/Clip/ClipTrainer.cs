using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using PromptFaces.Generation.Clip;
using PromptFaces.Generation.Devices;
using PromptFaces.Generation.Optimisation;
using PromptFaces.Training.Faces;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PromptFaces.Training.Clip;

/// <summary>What one training step did.</summary>
public sealed record ClipStepReport(
    int Step,                    // steps done, this one included
    int TotalSteps,
    double Loss,
    double LearningRate,
    double Temperature,          // exp(logit_scale): the softmax's inverse temperature
    double ImageToText,          // in-batch retrieval accuracy, image → caption
    double TextToImage,          // in-batch retrieval accuracy, caption → image
    double SecondsPerStep);

/// <summary>What an evaluation found on the held-out renders.</summary>
public sealed record ClipEvaluation(int Step, ZeroShotReport ZeroShot, double ImageToText, double TextToImage, string? GridPath);

/// <summary>
/// Trains the project's small CLIP contrastively on (render, caption) pairs: images rendered on the fly (or read from a
/// dataset file), a fresh caption per image and step, soft targets for captions true of several images, augmented
/// views like the optimiser's cutouts, AdamW with a warm-up and cosine decay. Resumable exactly: every random draw of
/// step s comes from a generator seeded by (seed, s), and a checkpoint holds weights, AdamW state and the step.
/// </summary>
/// <remarks>
/// Writes into the output folder: <c>checkpoint/</c> (resumable state), <c>model/</c> (the Hugging Face export, refreshed
/// at every checkpoint so a long run always has a usable model), <c>samples/grid_NNNNNN.png</c> (retrieval grids),
/// <c>log.tsv</c> (every step) and <c>eval.tsv</c> (every evaluation).
/// </remarks>
public sealed class ClipTrainer : IDisposable
{
    /// <summary>The held-out faces come from their own fixed stream, so evaluations compare across runs and seeds.</summary>
    private const ulong HeldOutSeed = 0x5EED_E7A1_0000_0001UL;

    private readonly Device _device;
    private readonly Action<string> _log;
    private readonly TrainingFaces _faces;
    private readonly CaptionSampler _captions;
    private readonly AdamW _optimizer;
    private readonly torch.optim.ILearningRateController[] _groups;
    private readonly Parameter _logitScale;
    private readonly double[]? _twinOdds;
    private readonly FaceAttributes[] _heldOutFaces;
    private readonly Tensor _heldOutImages;
    private readonly Stopwatch _clock = new();
    private double _secondsBefore;
    private double _cpuSecondsBefore;
    private readonly TimeSpan _cpuAtStart = Process.GetCurrentProcess().TotalProcessorTime;
    private bool _disposed;

    public ClipTrainingOptions Options { get; }
    public ClipModel Model { get; }
    public BpeVocabulary Vocabulary { get; }
    public ClipTokenizer Tokenizer { get; }

    /// <summary>Steps done so far (including those before a resume).</summary>
    public int Step { get; private set; }

    /// <summary>Wall-clock seconds spent in training steps, over all sessions of the run.</summary>
    public double TrainingSeconds => _secondsBefore + _clock.Elapsed.TotalSeconds;

    /// <summary>
    /// CPU seconds of the training processes, over all sessions (evaluations and checkpoints included): on a shared
    /// machine the honest measure of the work, where wall-clock time mostly measures the neighbours.
    /// </summary>
    public double CpuSeconds => _cpuSecondsBefore + (Process.GetCurrentProcess().TotalProcessorTime - _cpuAtStart).TotalSeconds;

    public ClipTrainer(ClipTrainingOptions options, Device? device = null, Action<string>? log = null)
    {
        if (options.Validate() is string problem) throw new ArgumentException($"CLIP training: {problem}.");
        _device = device ?? CPU;
        _log = log ?? (_ => { });
        // Each step allocates the same large activations; without this, glibc returns them to the OS and every step
        // pays page faults on first touch again (the engine measured several-fold slower element-wise ops).
        CpuAllocator.KeepFreedBlocksForReuse();
        Directory.CreateDirectory(options.OutputFolder);

        var existing = ClipCheckpoint.Find(options.OutputFolder);
        ClipConfig config;
        ClipCheckpoint.State? saved = null;
        if (options.Resume)
        {
            if (existing is null)
                throw new ArgumentException($"{options.OutputFolder}: there is no checkpoint to resume (no checkpoint/state.json). Leave out --resume to start a new run.");
            saved = ClipCheckpoint.ReadState(existing, options.OutputFolder);
            // What shaped the run so far stays; only its length and the reporting may change, and sentences may be
            // added to the exclusions (an evaluation set written after the run started): from now on they are never drawn.
            Options = saved.Options with
            {
                Steps = options.Steps,
                CheckpointEvery = options.CheckpointEvery,
                GridEvery = options.GridEvery,
                Exclusions = saved.Options.Exclusions.Union(options.Exclusions),
                // A new dataset may replace the old one (say, renders of a newer renderer version); omitted, the saved one stays.
                DataPath = options.DataPath ?? saved.Options.DataPath,
                // Twins may be switched on (or their share changed) for the rest of a run: a fine-tune of its model.
                TwinShare = options.TwinShare > 0 ? options.TwinShare : saved.Options.TwinShare,
                TwinFocus = options.TwinFocus ?? saved.Options.TwinFocus,
            };
            Vocabulary = BpeVocabulary.Read(existing);
            config = saved.Config;
            Step = saved.Step;
            _secondsBefore = saved.TrainingSeconds;
            _cpuSecondsBefore = saved.CpuSeconds;
            _log($"resuming from {existing} at step {Step}");
            if (Options.DataPath != saved.Options.DataPath)
                _log($"data changes from {saved.Options.DataPath ?? "faces rendered on the fly"} to {Options.DataPath}");
        }
        else
        {
            if (existing is not null)
                throw new ArgumentException($"{options.OutputFolder} already holds a CLIP training checkpoint; pass --resume to continue it, or choose another output folder.");
            Options = options;
            if (options.StartFrom is { } from)
            {
                // A fine-tune: the model's own vocabulary and architecture; its weights are loaded below, the optimiser starts fresh.
                Vocabulary = BpeVocabulary.Read(from);
                config = ClipConfig.Load(Path.Combine(from, "config.json"));
                _log($"starting from the weights and vocabulary of {from}");
                if (options.Exclusions.Count == 0)
                    _log("warning: no sentences are excluded; a fine-tune of a model evaluated with 'promptfaces eval' should get --exclude with the evaluation prompts again");
            }
            else
            {
                Vocabulary = LearnVocabulary(options, _log);
                config = options.Architecture(Vocabulary.Count);
            }
        }
        if (config.TextConfig.VocabSize != Vocabulary.Count)
            throw new ArgumentException($"The architecture's vocab_size ({config.TextConfig.VocabSize}) differs from the learned vocabulary's {Vocabulary.Count} tokens.");
        Tokenizer = Vocabulary.CreateTokenizer(config.TextConfig.MaxPositionEmbeddings);
        _captions = new CaptionSampler(Options.Exclusions);

        torch.manual_seed(unchecked((long)Options.Seed));
        Model = new ClipModel(config, _device);
        SmallClip.Initialise(Model);
        Model.train();
        _logitScale = Model.named_parameters().Single(p => p.name == "logit_scale").parameter;

        // Decay weight matrices (and the patch convolution) only: decaying gains, biases, token and position tables or
        // the temperature pulls them towards values that mean nothing (a zero gain, a zero temperature), as CLIP's and
        // GPT's recipes note.
        var decay = new List<Parameter>();
        var keep = new List<Parameter>();
        foreach (var (name, p) in Model.named_parameters())
        {
            bool isTable = name.EndsWith("token_embedding.weight", StringComparison.Ordinal) || name.EndsWith("position_embedding.weight", StringComparison.Ordinal);
            (p.dim() >= 2 && !isTable ? decay : keep).Add(p);
        }
        _optimizer = torch.optim.AdamW(
            [
                new AdamW.ParamGroup(decay, new AdamW.Options { LearningRate = Options.LearningRate, weight_decay = Options.WeightDecay }),
                new AdamW.ParamGroup(keep, new AdamW.Options { LearningRate = Options.LearningRate, weight_decay = 0 }),
            ],
            lr: Options.LearningRate, beta1: 0.9, beta2: 0.98, eps: 1e-6);
        _groups = _optimizer.ParamGroups.ToArray();

        if (saved is not null)
            ClipCheckpoint.LoadInto(existing!, Model, _optimizer);
        else if (Options.StartFrom is { } start)
            Model.LoadWeights(Path.Combine(start, "model.safetensors"));
        _twinOdds = CounterfactualTwins.FocusOdds(Options.TwinFocus);

        _faces = Options.DataPath is null ? new RenderedFaces(config.VisionConfig.ImageSize) : new DatasetFaces(Options.DataPath, Options.Seed);
        _heldOutFaces = TrainingFaces.HeldOut(Options.EvalImages, HeldOutSeed);
        _heldOutImages = TrainingFaces.Render(_heldOutFaces, config.VisionConfig.ImageSize, _device);
        _heldOutImages.DetachFromDisposeScope();
        if (saved is not null && Options.TwinShare != saved.Options.TwinShare)
            _log($"twin share changes from {saved.Options.TwinShare} to {Options.TwinShare}");
        _log($"data: {_faces.Description}; vocabulary {Vocabulary.Count} tokens; {SmallClip.ParameterCount(config):N0} parameters; {Options.Exclusions.Count} excluded sentences");
    }

    /// <summary>The options a run in <paramref name="outputFolder"/> was started with, or null when it has no checkpoint.</summary>
    public static ClipTrainingOptions? SavedOptions(string outputFolder) =>
        ClipCheckpoint.Find(outputFolder) is { } folder ? ClipCheckpoint.ReadState(folder, outputFolder).Options : null;

    /// <summary>
    /// The vocabulary is learned from captions drawn exactly as training draws them (excluded sentences redrawn), from
    /// a stream of its own, so that the evaluation prompts cannot enter the model even through the merges.
    /// </summary>
    public static BpeVocabulary LearnVocabulary(ClipTrainingOptions options, Action<string>? log = null)
    {
        var rng = new SplitMix64(options.Seed ^ 0xB0E5_0C0A_B000_0000UL);
        var corpus = new List<string>(options.BpeCorpusSize);
        for (int i = 0; i < options.BpeCorpusSize; i++)
        {
            var face = AttributeSampler.Sample(rng);
            string text = CaptionWriter.Write(face, rng);
            while (options.Exclusions.Contains(text)) text = CaptionWriter.Write(face, rng);
            corpus.Add(text);
        }
        var clock = Stopwatch.StartNew();
        var vocabulary = BpeTrainer.Train(corpus, options.VocabSize);
        log?.Invoke($"learned a {vocabulary.Count}-token vocabulary ({vocabulary.Merges.Count} merges) from {corpus.Count:N0} captions in {clock.Elapsed.TotalSeconds:F1} s");
        return vocabulary;
    }

    /// <summary>The learning rate of a step: linear warm-up, then a cosine decay to the floor at the last step.</summary>
    public static double LearningRateAt(int step, ClipTrainingOptions o)
    {
        if (step < o.WarmupSteps) return o.LearningRate * (step + 1) / o.WarmupSteps;
        double span = Math.Max(1, o.Steps - o.WarmupSteps);
        double t = Math.Clamp((step - o.WarmupSteps) / span, 0, 1);
        double floor = o.LearningRate * o.MinLearningRateFraction;
        return floor + (o.LearningRate - floor) * 0.5 * (1 + Math.Cos(Math.PI * t));
    }

    /// <summary>
    /// Runs until <see cref="ClipTrainingOptions.Steps"/>, checkpointing, evaluating and exporting on schedule, and once
    /// more at the end (also when cancelled, so that an interrupted run resumes where it stopped).
    /// </summary>
    public ClipEvaluation? Run(Action<ClipStepReport>? onStep = null, Action<ClipEvaluation>? onEvaluation = null, CancellationToken cancel = default)
    {
        ClipEvaluation? last = null;
        while (Step < Options.Steps && !cancel.IsCancellationRequested)
        {
            var report = TrainStep();
            onStep?.Invoke(report);
            if (Step % Options.CheckpointEvery == 0 && Step < Options.Steps) SaveCheckpoint();
            if (Options.GridEvery > 0 && Step % Options.GridEvery == 0 && Step < Options.Steps)
            {
                last = Evaluate();
                onEvaluation?.Invoke(last);
            }
        }
        SaveCheckpoint();
        if (Step >= Options.Steps || last is null || last.Step != Step)
        {
            last = Evaluate();
            onEvaluation?.Invoke(last);
        }
        return last;
    }

    /// <summary>One optimiser step on a fresh batch.</summary>
    public ClipStepReport TrainStep()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        _clock.Start();
        try
        {
            return TrainStepCore();
        }
        finally
        {
            _clock.Stop();
        }
    }

    private ClipStepReport TrainStepCore()
    {
        var started = Stopwatch.GetTimestamp();
        var rng = new SplitMix64(StepSeed(Options.Seed, Step));
        int b = Options.BatchSize;
        double lr = LearningRateAt(Step, Options);

        // C# first (faces, captions, what each caption is true of, tokens, the views' random choices), then the
        // tensor work with the collector paused (see GcQuiet).
        var batch = _faces.Draw(Step, b, rng);
        int[]? partner = null;
        if (Options.TwinShare > 0)
            (batch, partner) = CounterfactualTwins.Apply(batch, (int)(Options.TwinShare * b / 2), _faces.ImageSize, rng, _twinOdds);
        var faces = batch.Faces;
        var captions = faces.Select((f, i) => _captions.Draw(f, rng, partner is { } p && p[i] >= 0 ? faces[p[i]] : null)).ToArray();
        var positives = PositiveMask(captions, batch.Faces, Options.SoftTargets);
        var (ids, length) = TokenBatch.IdArray(Tokenizer, captions.Select(c => c.Text).ToArray());
        var views = Options.Augmentation.Draw(b, rng);

        var (loss, i2t, t2i) = GcQuiet.Run(() =>
        {
            using var scope = NewDisposeScope();
            var images = ClipAugmentation.Apply(batch.Images(_device), views, Model.Config.VisionConfig.ImageSize);
            Model.train();
            var imageFeatures = Model.EncodeImage(ClipGuidance.Normalise(images));                       // (B, D)
            var textFeatures = Model.EncodeText(tensor(ids, [b, length], device: _device));              // (B, D)
            var result = ContrastiveLoss.Compute(imageFeatures, textFeatures, _logitScale, tensor(positives, [b, b], device: _device));

            foreach (var g in _groups) g.LearningRate = lr;
            _optimizer.zero_grad();
            result.Loss.backward();
            nn.utils.clip_grad_norm_(Model.parameters(), 1.0);
            _optimizer.step();
            using (no_grad()) _logitScale.clamp_(max: Math.Log(Options.MaxLogitScale));
            return ((double)result.Loss.item<float>(), result.ImageToTextAccuracy, result.TextToImageAccuracy);
        });
        double temperature = GcQuiet.Run(() => Math.Exp(_logitScale.item<float>()));
        Step++;
        double seconds = Stopwatch.GetElapsedTime(started).TotalSeconds;
        var report = new ClipStepReport(Step, Options.Steps, loss, lr, temperature, i2t, t2i, seconds);
        AppendLog(report);
        return report;
    }

    /// <summary>
    /// Zero-shot attribute accuracy and retrieval on the held-out renders (unaugmented, one caption each), and the probe
    /// grid in <c>samples/</c>.
    /// </summary>
    public ClipEvaluation Evaluate(bool writeGrid = true)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var evaluation = GcQuiet.Run(() => EvaluateCore(writeGrid));
        AppendEval(evaluation);
        return evaluation;
    }

    private ClipEvaluation EvaluateCore(bool writeGrid)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        Model.eval();
        var zeroShot = ZeroShotEvaluator.Evaluate(Model, Tokenizer, _heldOutImages, _heldOutFaces);
        var imageFeatures = ZeroShotEvaluator.EncodeImages(Model, _heldOutImages);

        // Retrieval among held-out pairs in chunks of the training batch size, so the figure is comparable to the log's.
        var rng = new SplitMix64(HeldOutSeed ^ 0xCAB7_1000UL);
        var sampler = new CaptionSampler(Options.Exclusions);   // its own, so evaluation leaves the training counters alone
        var captions = _heldOutFaces.Select(f => sampler.Draw(f, rng)).ToArray();
        double i2t = 0, t2i = 0;
        int chunks = 0;
        int n = _heldOutFaces.Length;
        int chunk = Math.Min(Options.BatchSize, n);
        for (int start = 0; start + chunk <= n; start += chunk, chunks++)
        {
            var part = captions.AsSpan(start, chunk).ToArray();
            var texts = ZeroShotEvaluator.EncodeTexts(Model, Tokenizer, part.Select(c => c.Text).ToArray());
            var images = imageFeatures.narrow(0, start, chunk);
            var positives = tensor(PositiveMask(part, _heldOutFaces.AsSpan(start, chunk).ToArray(), soft: true), [chunk, chunk], device: _device);
            var r = ContrastiveLoss.Compute(images, texts, _logitScale, positives);
            i2t += r.ImageToTextAccuracy;
            t2i += r.TextToImageAccuracy;
        }

        string? grid = null;
        if (writeGrid)
        {
            grid = Path.Combine(Options.OutputFolder, "samples", $"grid_{Step:D6}.png");
            var probes = ZeroShotEvaluator.EncodeTexts(Model, Tokenizer, RetrievalGrid.DefaultProbes);
            RetrievalGrid.Save(grid, _heldOutImages, imageFeatures, RetrievalGrid.DefaultProbes, probes, step: Step);
        }
        Model.train();
        return new ClipEvaluation(Step, zeroShot, i2t / chunks, t2i / chunks, grid);
    }

    /// <summary>Saves the resumable checkpoint and refreshes the exported model folder.</summary>
    public void SaveCheckpoint()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var state = new ClipCheckpoint.State(Step, TrainingSeconds, CpuSeconds, _captions.Redrawn, Options, Model.Config);
        GcQuiet.Run(() => ClipCheckpoint.Save(Options.OutputFolder, state, Model, _optimizer, Vocabulary));
        Export(Path.Combine(Options.OutputFolder, "model"));
    }

    /// <summary>Writes the Hugging Face model folder with a <c>training.json</c> that says how the model was made.</summary>
    public void Export(string folder)
    {
        var state = ClipCheckpoint.ToJson(new ClipCheckpoint.State(Step, TrainingSeconds, CpuSeconds, _captions.Redrawn, Options, Model.Config));
        state.Remove("format_version");
        state.Remove("config");
        state["parameters"] = Model.parameters().Sum(p => p.numel());
        state["hardware"] = $"{CpuModel()}, {Environment.ProcessorCount} logical cores, {System.Runtime.InteropServices.RuntimeInformation.OSDescription}; libtorch threads {torch.get_num_threads()}; device {_device}";
        // The exported folder travels (it is shipped), so it names the dataset file but not where it lay on this machine.
        if (state["data"] is not null) state["data"] = Path.GetFileName(state["data"]!.GetValue<string>());
        if (state["start_from"] is not null) state["start_from"] = Path.GetFileName(Path.TrimEndingDirectorySeparator(state["start_from"]!.GetValue<string>()));
        state["data_description"] = _faces.Description;
        state["exported_utc"] = DateTime.UtcNow.ToString("u", CultureInfo.InvariantCulture);
        GcQuiet.Run(() => ClipExport.Write(folder, Model, Vocabulary, state));
    }

    /// <summary>The processor's name where the OS tells it (Linux), for the model card.</summary>
    private static string CpuModel()
    {
        try
        {
            var line = File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal));
            if (line is not null && line.IndexOf(':') is >= 0 and var colon) return line[(colon + 1)..].Trim();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
        }
        return System.Runtime.InteropServices.RuntimeInformation.ProcessArchitecture.ToString();
    }

    /// <summary>(B·B, row-major) [i, j] when caption i is true of image j; with <paramref name="soft"/> off, only the diagonal.</summary>
    internal static bool[] PositiveMask(IReadOnlyList<CaptionDraw> captions, IReadOnlyList<FaceAttributes> faces, bool soft)
    {
        int b = captions.Count;
        var labels = faces.Select(f => f.ToLabels()).ToArray();
        var mask = new bool[b * b];
        for (int i = 0; i < b; i++)
            for (int j = 0; j < b; j++)
                mask[i * b + j] = i == j || (soft && captions[i].IsTrueOf(labels[j]));
        return mask;
    }

    /// <summary>The seed of step <paramref name="step"/>'s random draws: a SplitMix64 output of seed and step.</summary>
    internal static ulong StepSeed(ulong seed, int step) =>
        new SplitMix64(seed * 0x9E3779B97F4A7C15UL ^ (ulong)step * 0xD6E8FEB86659FD93UL).NextUInt64();

    private void AppendLog(ClipStepReport r)
    {
        var path = Path.Combine(Options.OutputFolder, "log.tsv");
        if (!File.Exists(path)) File.WriteAllText(path, "step\tloss\tlr\ttemperature\ti2t\tt2i\tseconds\n");
        File.AppendAllText(path, string.Create(CultureInfo.InvariantCulture,
            $"{r.Step}\t{r.Loss:F4}\t{r.LearningRate:E3}\t{r.Temperature:F2}\t{r.ImageToText:F3}\t{r.TextToImage:F3}\t{r.SecondsPerStep:F2}\n"));
    }

    private void AppendEval(ClipEvaluation e)
    {
        var path = Path.Combine(Options.OutputFolder, "eval.tsv");
        var names = e.ZeroShot.PerAttribute.Keys.ToArray();
        if (!File.Exists(path))
            File.WriteAllText(path, "step\tzero_shot_mean\tzero_shot_balanced\ti2t\tt2i\t" + string.Join('\t', names.Select(n => n + "_balanced")) + "\n");
        File.AppendAllText(path, string.Create(CultureInfo.InvariantCulture,
            $"{e.Step}\t{e.ZeroShot.Mean:F4}\t{e.ZeroShot.BalancedMean:F4}\t{e.ImageToText:F4}\t{e.TextToImage:F4}\t{string.Join('\t', names.Select(n => e.ZeroShot.BalancedPerAttribute[n].ToString("F4", CultureInfo.InvariantCulture)))}\n"));
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _faces.Dispose();
        _heldOutImages.Dispose();
        _optimizer.Dispose();
        Model.Dispose();
    }
}
