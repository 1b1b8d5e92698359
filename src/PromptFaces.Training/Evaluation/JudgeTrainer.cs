using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using PromptFaces.Generation.Imaging;
using PromptFaces.Generation.Optimisation;
using PromptFaces.Training.Data;
using PromptFaces.Training.Faces;
using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace PromptFaces.Training.Evaluation;

/// <summary>Everything that decides one training run of the judge.</summary>
public sealed record JudgeTrainingOptions
{
    public AttributeJudgeConfig Model { get; init; } = new();
    public JudgeAugmentation Augmentation { get; init; } = new();
    public int TrainFaces { get; init; } = 30_000;        // rendered once, then seen with fresh augmentation every epoch
    public int HeldOutFaces { get; init; } = 2_000;       // rendered from another seed; never trained on
    public int ImageSize { get; init; } = 64;             // render side; the judge resizes to its input size anyway
    public int Steps { get; init; } = 4_000;
    public int BatchSize { get; init; } = 64;
    public double LearningRate { get; init; } = 2e-3;     // AdamW peak, after a linear warm-up over the first 3%
    public double MinLearningRateFraction { get; init; } = 0.02; // the cosine decay ends at this fraction of the peak
    public double WeightDecay { get; init; } = 1e-4;
    public double LabelSmoothing { get; init; } = 0.05;   // keeps logits finite on a task the judge learns perfectly
    public int EvaluateEvery { get; init; } = 250;        // held-out accuracy every k steps (and at the end); 0: end only
    public ulong Seed { get; init; } = 7;                 // faces, initial weights, batch order and augmentation

    /// <summary>The first problem with the options, phrased for the person who chose them, or null.</summary>
    public string? Validate()
    {
        if (TrainFaces < 1) return $"The number of training faces must be at least 1 (got {TrainFaces}).";
        if (HeldOutFaces < 1) return $"The number of held-out faces must be at least 1 (got {HeldOutFaces}).";
        if (ImageSize < FaceRenderer.MinSize) return $"The render size must be at least {FaceRenderer.MinSize} (got {ImageSize}).";
        if (Steps < 1) return $"Steps must be at least 1 (got {Steps}).";
        if (BatchSize < 2) return $"The batch size must be at least 2 for batch norm (got {BatchSize}).";
        if (!(LearningRate > 0)) return $"The learning rate must be positive (got {LearningRate}).";
        if (EvaluateEvery < 0) return "EvaluateEvery must not be negative.";
        return null;
    }
}

/// <summary>Reported after every step; <see cref="HeldOutAccuracy"/> only on evaluation steps.</summary>
public sealed record JudgeTrainingProgress(int Step, int TotalSteps, double Loss, double LearningRate, double SecondsPerStep,
    IReadOnlyList<double>? HeldOutAccuracy, string Phase);

/// <summary>The trained judge and its held-out accuracy per attribute (schema order), on clean and on softened renders.</summary>
public sealed record JudgeTrainingResult(
    AttributeJudge Judge,
    IReadOnlyList<double> HeldOutAccuracy,
    IReadOnlyList<double> HeldOutAccuracyBlurred,
    int Steps,
    double Seconds)
{
    /// <summary>What <see cref="AttributeJudge.Save"/> should record about this run.</summary>
    public IReadOnlyDictionary<string, string> Metadata(JudgeTrainingOptions options) => new Dictionary<string, string>
    {
        ["held_out_accuracy"] = JsonSerializer.Serialize(JudgeTrainer.ByName(HeldOutAccuracy)),
        ["held_out_accuracy_blurred"] = JsonSerializer.Serialize(JudgeTrainer.ByName(HeldOutAccuracyBlurred)),
        ["steps"] = Steps.ToString(CultureInfo.InvariantCulture),
        ["train_faces"] = options.TrainFaces.ToString(CultureInfo.InvariantCulture),
        ["held_out_faces"] = options.HeldOutFaces.ToString(CultureInfo.InvariantCulture),
        ["seed"] = options.Seed.ToString(CultureInfo.InvariantCulture),
        ["training_options"] = JsonSerializer.Serialize(options),
        ["training_seconds"] = Seconds.ToString("F1", CultureInfo.InvariantCulture),
    };
}

/// <summary>
/// Trains the <see cref="AttributeJudge"/> on renders with their true labels: a fixed rendered training set seen with
/// fresh augmentation each time (rendering is cheap, but rendering every batch would cost as much CPU as the network),
/// a held-out set from another seed, AdamW with warm-up and cosine decay, and the sum of one cross-entropy per attribute.
/// </summary>
public static class JudgeTrainer
{
    /// <summary>Sigma in pixels (at 64x64) of the "blurred" held-out measurement: softer than a good generator's output.</summary>
    public const double HeldOutBlurSigma = 1.0;

    /// <summary>The held-out faces' seed, derived from the training seed so that the two sets never share a face.</summary>
    public static ulong HeldOutSeed(ulong seed) => seed ^ 0x4E1D_0000_0000_0007UL;

    public static JudgeTrainingResult Train(JudgeTrainingOptions options, Device? device = null,
        Action<JudgeTrainingProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (options.Validate() is string problem) throw new ArgumentException(problem, nameof(options));
        device ??= CPU;
        var clock = Stopwatch.StartNew();

        progress?.Invoke(new JudgeTrainingProgress(0, options.Steps, double.NaN, 0, 0, null, $"rendering {options.TrainFaces + options.HeldOutFaces} faces"));
        var train = FaceDataset.Generate(options.TrainFaces, options.ImageSize, options.Seed, cancellationToken: cancellationToken);
        var heldOut = FaceDataset.Generate(options.HeldOutFaces, options.ImageSize, HeldOutSeed(options.Seed), cancellationToken: cancellationToken);

        torch.manual_seed(unchecked((long)options.Seed));
        var judge = new AttributeJudge(options.Model, device);
        using var optimizer = optim.AdamW(judge.parameters(), options.LearningRate, weight_decay: options.WeightDecay);
        using var augmentRng = new Generator(options.Seed + 1);
        var order = new BatchOrder(options.TrainFaces, options.Seed + 2);
        int warmup = Math.Max(1, (int)(options.Steps * 0.03));
        IReadOnlyList<double>? accuracy = null;
        var stepClock = Stopwatch.StartNew();

        for (int step = 1; step <= options.Steps; step++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            double lr = LearningRateAt(step, options.Steps, warmup, options.LearningRate, options.MinLearningRateFraction);
            foreach (var group in optimizer.ParamGroups) group.LearningRate = lr;
            double loss;
            judge.train();
            using (var scope = NewDisposeScope())
            {
                var indices = order.Next(options.BatchSize);
                var images = options.Augmentation.Apply(train.Images(indices, device), augmentRng);
                var labels = train.LabelTensor(indices, device);                          // (B, A)
                var logits = judge.SplitLogits(judge.call(images));
                var total = zeros(1, device: device);
                for (int a = 0; a < logits.Length; a++)
                    total = total + F.cross_entropy(logits[a], labels.select(1, a), label_smoothing: options.LabelSmoothing);
                optimizer.zero_grad();
                total.backward();
                optimizer.step();
                loss = total.item<float>();
            }
            double secondsPerStep = stepClock.Elapsed.TotalSeconds;
            stepClock.Restart();
            bool evaluate = step == options.Steps || (options.EvaluateEvery > 0 && step % options.EvaluateEvery == 0);
            if (evaluate) accuracy = Accuracy(judge, heldOut, Enumerable.Range(0, heldOut.Count).ToArray());
            progress?.Invoke(new JudgeTrainingProgress(step, options.Steps, loss, lr, secondsPerStep, evaluate ? accuracy : null, "training"));
        }
        var blurred = Accuracy(judge, heldOut, Enumerable.Range(0, heldOut.Count).ToArray(), blurSigma: HeldOutBlurSigma);
        judge.Freeze();
        return new JudgeTrainingResult(judge, accuracy!, blurred, options.Steps, clock.Elapsed.TotalSeconds);
    }

    /// <summary>
    /// The share of faces whose class the judge gets right, per attribute in schema order, on <paramref name="indices"/>
    /// of <paramref name="dataset"/>, optionally after a Gaussian blur of <paramref name="blurSigma"/> pixels (at 64x64).
    /// Leaves the judge in evaluation mode.
    /// </summary>
    public static double[] Accuracy(AttributeJudge judge, FaceDataset dataset, int[] indices, double blurSigma = 0, int batchSize = 250)
    {
        ArgumentNullException.ThrowIfNull(judge);
        ArgumentNullException.ThrowIfNull(dataset);
        judge.eval();
        var correct = new long[FaceAttributes.Schema.Count];
        for (int start = 0; start < indices.Length; start += batchSize)
        {
            using var scope = NewDisposeScope();
            var batch = indices.AsSpan(start, Math.Min(batchSize, indices.Length - start));
            var images = dataset.Images(batch, judge.Device);
            if (blurSigma > 0) images = ImageFilters.GaussianBlur(images, blurSigma * dataset.Size / 64.0);
            var hits = judge.Predict(images).eq(dataset.LabelTensor(batch, judge.Device)).to(ScalarType.Int64).sum(new long[] { 0 }).cpu();   // (A)
            var counts = hits.data<long>().ToArray();
            for (int a = 0; a < correct.Length; a++) correct[a] += counts[a];
        }
        return correct.Select(c => indices.Length == 0 ? double.NaN : (double)c / indices.Length).ToArray();
    }

    /// <summary>Attribute name → value, in schema order, for JSON and tables.</summary>
    public static Dictionary<string, double> ByName(IReadOnlyList<double> values) =>
        FaceAttributes.Schema.Select((s, a) => (s.Name, a)).ToDictionary(p => p.Name, p => Math.Round(values[p.a], 5));

    internal static double LearningRateAt(int step, int steps, int warmup, double peak, double minFraction)
    {
        if (step <= warmup) return peak * step / warmup;
        double t = (double)(step - warmup) / Math.Max(1, steps - warmup);
        return peak * (minFraction + (1 - minFraction) * 0.5 * (1 + Math.Cos(Math.PI * t)));
    }

    /// <summary>Shuffled passes over the training faces, reshuffled every epoch, drawn from a seed.</summary>
    private sealed class BatchOrder(int count, ulong seed)
    {
        private readonly SplitMix64 _rng = new(seed);
        private int[] _order = [];
        private int _next;

        public int[] Next(int batch)
        {
            var result = new int[batch];
            for (int k = 0; k < batch; k++)
            {
                if (_next >= _order.Length) Reshuffle();
                result[k] = _order[_next++];
            }
            return result;
        }

        private void Reshuffle()
        {
            _order = Enumerable.Range(0, count).ToArray();
            for (int i = _order.Length - 1; i > 0; i--)
            {
                int j = (int)(_rng.NextDouble() * (i + 1));
                (_order[i], _order[j]) = (_order[j], _order[i]);
            }
            _next = 0;
        }
    }
}
