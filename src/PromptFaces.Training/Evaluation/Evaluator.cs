using System.Diagnostics;
using PromptFaces.Generation.Devices;
using PromptFaces.Generation.Imaging;
using PromptFaces.Generation.Optimisation;
using PromptFaces.Generation.StyleGan2;
using PromptFaces.Training.Clip;
using PromptFaces.Training.Data;
using PromptFaces.Training.Faces;
using PromptFaces.Training.StyleGan;
using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace PromptFaces.Training.Evaluation;

/// <summary>What one evaluation run does; the defaults are the issue's figures.</summary>
public sealed record EvaluationOptions
{
    public int SeedsPerPrompt { get; init; } = 3;         // jobs per prompt; each seed draws its own starting face
    public int FirstSeed { get; init; }                   // index k of each prompt's first seed: 0 is the evaluation's; higher gives seeds it never uses, to tune on
    public int? PromptLimit { get; init; }                // an evenly spread subset of the prompts; null: all
    public int BatchSize { get; init; } = 8;              // jobs co-batched per engine step
    public int RealismSamples { get; init; } = 1_000;     // generator samples and renders each, for the Fréchet distances; 0 skips realism
    public int JudgeFaces { get; init; } = 2_000;         // fresh renders for the judge's held-out accuracy
    public double JudgeBlurSigma { get; init; } = JudgeTrainer.HeldOutBlurSigma;
    public double BaselineBlurSigma { get; init; } = 3.0; // the realism baseline's Gaussian blur, pixels at 64x64: heavy
    public int DiversityReferencePairs { get; init; } = 500;
    public ulong RenderSeed { get; init; } = 0xE7A1_0001UL; // renders of the evaluation; differs from the judge's training seeds
    public long SampleSeed { get; init; } = 0xE7A1_0002L;   // the generator's random samples for realism
    public LatentFaceMap? LatentTie { get; init; }        // what the generator's z is tied to (a latent-tied generator); null: no tied-attribute figure

    /// <summary>The optimisation every job runs: the engine's defaults with 100 steps and no previews.</summary>
    public OptimisationSettings Optimisation { get; init; } = new() { Steps = 100, PreviewSize = 0 };

    public string? Validate()
    {
        if (SeedsPerPrompt < 1 || SeedsPerPrompt > 1000) return $"Seeds per prompt must be between 1 and 1000 (got {SeedsPerPrompt}).";
        if (FirstSeed < 0 || FirstSeed + SeedsPerPrompt > 1000) return $"The first seed must be at least 0 and leave room for the seeds below 1000 (got {FirstSeed} with {SeedsPerPrompt} seeds).";
        if (PromptLimit is < 1) return $"The prompt limit must be at least 1 (got {PromptLimit}).";
        if (BatchSize < 1) return $"The batch size must be at least 1 (got {BatchSize}).";
        if (RealismSamples < 0 || RealismSamples == 1) return $"Realism needs at least 2 samples, or 0 to skip it (got {RealismSamples}).";
        if (JudgeFaces < 1) return $"The judge needs at least 1 held-out face (got {JudgeFaces}).";
        return (Optimisation with { Prompts = [new WeightedPrompt("x")] }).Validate();
    }

    /// <summary>The seed of a prompt's k-th job: fixed by the prompt's place in the full set, so a subset runs the
    /// same jobs as the full evaluation, and every job starts from its own face.</summary>
    public static long SeedFor(int promptIndex, int k) => 1000L * promptIndex + k;
}

/// <summary>One progress report: the phase and how far it is.</summary>
public sealed record EvaluationProgress(string Phase, long Done, long Total);

/// <summary>
/// The judged evaluation of a generator and CLIP pair: (1) how well the judge reads held-out renders, (2) how often the
/// optimised faces show what the prompts state, next to the starting faces, (3) how close generator samples are to
/// renders in the judge's feature space, next to blurred renders, and (4) how different the faces of different seeds are.
/// </summary>
/// <remarks>
/// The judge, not CLIP, decides: CLIP is what the faces were optimised against, so its own score would reward
/// adversarial pixels. Every figure is computed by the same code that <c>promptfaces eval</c> prints; nothing here
/// times anything except to report speed.
/// </remarks>
public sealed class Evaluator
{
    public const double JudgeGoal = 0.95;
    public const double PromptGoal = 0.80;

    private readonly FaceModels _models;
    private readonly AttributeJudge _judge;
    private readonly EvaluationOptions _options;

    public Evaluator(FaceModels models, AttributeJudge judge, EvaluationOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(models);
        ArgumentNullException.ThrowIfNull(judge);
        _options = options ?? new EvaluationOptions();
        if (_options.Validate() is string problem) throw new ArgumentException(problem, nameof(options));
        if (judge.Device.type != models.Device.type)
            throw new ArgumentException($"The judge is on {judge.Device} but the models on {models.Device}; load both on one device.", nameof(judge));
        _models = models;
        _judge = judge.Freeze();
    }

    private int Resolution => _models.Generator.Config.Resolution;

    /// <summary>Runs every part and assembles the report.</summary>
    /// <param name="judgeName">how the report names the judge (its file name).</param>
    /// <param name="faces">receives each evaluated prompt's starting and final faces, (S, 3, R, R) on the CPU in [−1, 1],
    /// before they are disposed; for sample grids.</param>
    public EvaluationReport Run(EvalPromptSet prompts, string judgeName, Action<EvaluationProgress>? progress = null,
        Action<IReadOnlyList<Tensor>, IReadOnlyList<Tensor>>? faces = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(prompts);
        var clock = Stopwatch.StartNew();
        var judge = JudgeAccuracy(progress, cancellationToken);
        var (promptFigures, starts, finals) = PromptAccuracy(prompts, progress, cancellationToken);
        RealismFigures? realism;
        DiversityFigures? diversity;
        try
        {
            faces?.Invoke(starts, finals);
            realism = _options.RealismSamples > 0 ? Realism(progress, cancellationToken, starts, finals) : null;
            diversity = _options.SeedsPerPrompt > 1 ? Diversity(starts, finals) : null;
        }
        finally
        {
            foreach (var t in starts.Concat(finals)) t.Dispose();
        }
        var models = new EvaluatedModels(_models.GeneratorName, Resolution, _models.ClipName, judgeName, _judge.RendererVersion,
            FaceRenderer.Version, ComputeDevices.DescribeDevice(_models.Device), torch.get_num_threads());
        return new EvaluationReport(models, judge, promptFigures, realism, diversity, Math.Round(clock.Elapsed.TotalSeconds, 1));
    }

    // ---- (1) The judge ----

    /// <summary>The judge's per-attribute accuracy on fresh renders at the generator's resolution, clean and blurred.</summary>
    public JudgeFigures JudgeAccuracy(Action<EvaluationProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        int n = _options.JudgeFaces;
        progress?.Invoke(new EvaluationProgress("judge: rendering held-out faces", 0, n));
        var faces = FaceDataset.Generate(n, RenderSize, _options.RenderSeed ^ 0x1UL, cancellationToken: cancellationToken);
        var indices = Enumerable.Range(0, n).ToArray();
        var clean = JudgeTrainer.Accuracy(_judge, faces, indices);
        var blurred = JudgeTrainer.Accuracy(_judge, faces, indices, _options.JudgeBlurSigma);
        progress?.Invoke(new EvaluationProgress("judge: rendering held-out faces", n, n));
        double min = clean.Min();
        return new JudgeFigures(n, JudgeTrainer.ByName(clean), JudgeTrainer.ByName(blurred), _options.JudgeBlurSigma,
            Math.Round(min, 5), JudgeGoal, min >= JudgeGoal);
    }

    // ---- (2) Prompt accuracy ----

    /// <summary>
    /// Optimises every (prompt, seed) job, co-batched, and judges the stated attributes on the starting and the final
    /// faces. Also returns each prompt's starting and final faces, (S, 3, R, R) on the CPU, for <see cref="Diversity"/>;
    /// the caller disposes them.
    /// </summary>
    public (PromptFigures Figures, List<Tensor> Starts, List<Tensor> Finals) PromptAccuracy(EvalPromptSet prompts,
        Action<EvaluationProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(prompts);
        var chosen = prompts.Subset(_options.PromptLimit);
        int seeds = _options.SeedsPerPrompt;
        var settings = _options.Optimisation;
        var jobs = chosen.SelectMany((c, p) => Enumerable.Range(0, seeds).Select(k =>
            (Id: $"{p}/{k}", Prompt: p, K: k, Seed: EvaluationOptions.SeedFor(c.Index, _options.FirstSeed + k)))).ToList();

        // The baseline: each seed's first draw, a random face: what chance gets right. A best-of-1 job starts from exactly
        // this face; with best of N the optimiser starts from the one of the seed's N draws CLIP likes most.
        var startImages = new Tensor[jobs.Count];
        for (int j = 0; j < jobs.Count; j += 16)
        {
            var batch = jobs.Skip(j).Take(16).ToList();
            using var images = StartImages(batch.Select(b => b.Seed).ToArray(), settings.TruncationPsi, settings.TruncationCutoff);
            for (int i = 0; i < batch.Count; i++) startImages[j + i] = images.narrow(0, i, 1).clone();
        }

        long total = (long)jobs.Count * settings.Steps, done = 0;
        progress?.Invoke(new EvaluationProgress("prompts: optimising", 0, total));
        var outcomes = new Dictionary<string, JobOutcome>();
        var engineClock = Stopwatch.StartNew();
        int engineSteps = 0;
        using (var engine = new CoBatchedOptimiser(_models))
        {
            int next = 0;
            while (next < jobs.Count || !engine.IsIdle)
            {
                cancellationToken.ThrowIfCancellationRequested();
                while (next < jobs.Count && engine.ActiveCount + engine.PendingCount < _options.BatchSize)
                {
                    var job = jobs[next++];
                    var request = settings with { Prompts = [new WeightedPrompt(chosen[job.Prompt].Prompt.Text)], Seed = job.Seed };
                    engine.Enqueue(new OptimisationRequest(job.Id, request, _ => done++));
                }
                foreach (var outcome in engine.Step()) outcomes[outcome.JobId] = outcome;
                engineSteps++;
                progress?.Invoke(new EvaluationProgress("prompts: optimising", done, total));
            }
        }
        double secondsPerStep = engineClock.Elapsed.TotalSeconds / Math.Max(1, engineSteps);

        var finalImages = new Tensor[jobs.Count];
        for (int j = 0; j < jobs.Count; j++)
        {
            var o = outcomes[jobs[j].Id];
            if (o.Image is null) throw new InvalidOperationException($"The optimisation of '{chosen[jobs[j].Prompt].Prompt.Text}' (seed {jobs[j].Seed}) failed: {o.Error ?? o.Status.ToString()}");
            finalImages[j] = o.Image.clamp_(-1, 1);   // what the saved PNG shows
        }
        var judgedStart = JudgeAll(startImages);
        var judgedFinal = JudgeAll(finalImages);
        var clipStart = ClipReadAll(startImages);
        var clipFinal = ClipReadAll(finalImages);

        // Tally the stated attributes, overall, per attribute and by how many a prompt states.
        int attributes = FaceAttributes.Schema.Count;
        var checks = new int[attributes];
        var baseHits = new int[attributes];
        var finalHits = new int[attributes];
        var byCount = new Dictionary<int, (int Checks, int Base, int Final)>();
        int allBase = 0, allFinal = 0;
        var clipBaseHits = new int[attributes];
        var clipFinalHits = new int[attributes];
        int clipAgree = 0, clipOnly = 0;
        var perPrompt = new List<PromptResult>();
        for (int p = 0; p < chosen.Count; p++)
        {
            var prompt = chosen[p].Prompt;
            int pChecks = 0, pBase = 0, pFinal = 0;
            var readStart = new List<IReadOnlyDictionary<string, string>>();
            var readFinal = new List<IReadOnlyDictionary<string, string>>();
            var promptSeeds = new List<long>();
            double simStart = 0, simEnd = 0;
            for (int k = 0; k < seeds; k++)
            {
                int j = p * seeds + k;
                promptSeeds.Add(jobs[j].Seed);
                simStart += outcomes[jobs[j].Id].SimilarityStart / seeds;
                simEnd += outcomes[jobs[j].Id].SimilarityEnd / seeds;
                bool everyBase = true, everyFinal = true;
                foreach (var (a, c) in prompt.Stated)
                {
                    bool b = judgedStart[j][a] == c, f = judgedFinal[j][a] == c;
                    checks[a]++; pChecks++;
                    if (b) { baseHits[a]++; pBase++; } else everyBase = false;
                    if (f) { finalHits[a]++; pFinal++; } else everyFinal = false;
                    if (clipStart[j][a] == c) clipBaseHits[a]++;
                    if (clipFinal[j][a] == c) { clipFinalHits[a]++; if (!f) clipOnly++; }
                    if (clipFinal[j][a] == judgedFinal[j][a]) clipAgree++;
                }
                if (everyBase) allBase++;
                if (everyFinal) allFinal++;
                var n = prompt.Stated.Count;
                var tally = byCount.GetValueOrDefault(n);
                byCount[n] = (tally.Checks + n, tally.Base + prompt.Stated.Count(s => judgedStart[j][s.AttributeIndex] == s.ClassIndex),
                    tally.Final + prompt.Stated.Count(s => judgedFinal[j][s.AttributeIndex] == s.ClassIndex));
                readStart.Add(Reading(prompt, judgedStart[j]));
                readFinal.Add(Reading(prompt, judgedFinal[j]));
            }
            perPrompt.Add(new PromptResult(prompt.Text, prompt.StatedByName, promptSeeds, Round((double)pBase / pChecks), Round((double)pFinal / pChecks),
                readStart, readFinal, Round(simStart), Round(simEnd)));
        }

        int allChecks = checks.Sum();
        double optimised = (double)finalHits.Sum() / allChecks;
        var perAttribute = new Dictionary<string, AttributeAccuracy>();
        for (int a = 0; a < attributes; a++)
            if (checks[a] > 0)
                perAttribute[FaceAttributes.Schema[a].Name] = new AttributeAccuracy(checks[a], Round((double)baseHits[a] / checks[a]), Round((double)finalHits[a] / checks[a]));
        var figures = new PromptFigures(
            chosen.Count, seeds, settings.Steps, jobs.Count, allChecks,
            Round((double)baseHits.Sum() / allChecks), Round(optimised),
            Round((double)allBase / jobs.Count), Round((double)allFinal / jobs.Count),
            perAttribute,
            byCount.OrderBy(kv => kv.Key).ToDictionary(kv => kv.Key, kv => new AttributeAccuracy(kv.Value.Checks, Round((double)kv.Value.Base / kv.Value.Checks), Round((double)kv.Value.Final / kv.Value.Checks))),
            Round(outcomes.Values.Average(o => o.SimilarityStart)), Round(outcomes.Values.Average(o => o.SimilarityEnd)),
            Math.Round(secondsPerStep, 3), _options.BatchSize, PromptGoal, optimised >= PromptGoal, perPrompt)
        {
            Optimisation = OptimisationUsed.From(settings),
            FirstSeed = _options.FirstSeed,
            ClipReading = new ClipReadingFigures(
                Round((double)clipBaseHits.Sum() / allChecks), Round((double)clipFinalHits.Sum() / allChecks),
                Round((double)clipAgree / allChecks), Round((double)clipOnly / allChecks),
                Enumerable.Range(0, attributes).Where(a => checks[a] > 0).ToDictionary(a => FaceAttributes.Schema[a].Name,
                    a => new AttributeAccuracy(checks[a], Round((double)clipBaseHits[a] / checks[a]), Round((double)clipFinalHits[a] / checks[a])))),
        };

        var starts = new List<Tensor>();
        var finals = new List<Tensor>();
        for (int p = 0; p < chosen.Count; p++)
        {
            starts.Add(cat(startImages.Skip(p * seeds).Take(seeds).ToArray(), 0));
            finals.Add(cat(finalImages.Skip(p * seeds).Take(seeds).ToArray(), 0));
        }
        foreach (var t in startImages.Concat(finalImages)) t.Dispose();
        return (figures, starts, finals);
    }

    /// <summary>
    /// The first face each of these seeds draws, exactly as the optimiser draws it: z from the seed's own generator,
    /// mapping with truncation, synthesis with constant noise. A best-of-1 job starts from this face; best of N draws
    /// it first among N. (N, 3, R, R) on the CPU.
    /// </summary>
    public Tensor StartImages(IReadOnlyList<long> seeds, double psi = 0.7, int? cutoff = null)
    {
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        var g = _models.Generator;
        var zs = seeds.Select(s =>
        {
            using var rng = new Generator((ulong)s);
            return randn(new long[] { 1, g.Config.ZDim }, generator: rng);                 // (1, z_dim), as ChooseStart draws it
        }).ToArray();
        var z = cat(zs, 0).to(_models.Device);                                              // (N, z_dim)
        var ws = g.Mapping.Forward(z, psi, cutoff);                                         // (N, num_ws, w_dim)
        return g.Synthesis.Forward(ws, NoiseMode.Const).clamp(-1, 1).cpu().MoveToOuterDisposeScope();   // (N, 3, R, R)
    }

    /// <summary>The judge's classes for each image, one int[] per image in schema order.</summary>
    private List<int[]> JudgeAll(IReadOnlyList<Tensor> images)
    {
        var result = new List<int[]>(images.Count);
        for (int start = 0; start < images.Count; start += 64)
        {
            using var scope = NewDisposeScope();
            var batch = cat(images.Skip(start).Take(64).ToArray(), 0);
            var predicted = _judge.Predict(batch).cpu().to(ScalarType.Int32);               // (B, A)
            var values = predicted.data<int>().ToArray();
            int a = FaceAttributes.Schema.Count;
            for (int i = 0; i < predicted.shape[0]; i++) result.Add(values.AsSpan(i * a, a).ToArray());
        }
        return result;
    }

    /// <summary>CLIP's zero-shot class for every attribute of each image (see <see cref="ClipReadingFigures"/>), in schema order.</summary>
    internal List<int[]> ClipReadAll(IReadOnlyList<Tensor> images)
    {
        if (images.Count == 0) return new List<int[]>();
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        int size = _models.ClipImageSize;
        var features = new List<Tensor>();
        for (int start = 0; start < images.Count; start += 64)
        {
            using var batchScope = NewDisposeScope();
            var batch = cat(images.Skip(start).Take(64).ToArray(), 0).to(_models.Device);
            if (batch.shape[2] != size)   // as the optimiser's whole-image view sees the face
                batch = F.interpolate(batch, new long[] { size, size }, mode: InterpolationMode.Bilinear, align_corners: false);
            features.Add(ZeroShotEvaluator.EncodeImages(_models.Clip, batch).MoveToOuterDisposeScope());   // (B, D)
        }
        var readings = ZeroShotEvaluator.Classify(_models.Clip, _models.Tokenizer, cat(features, 0));   // per attribute, (N)
        return Enumerable.Range(0, readings[0].Length).Select(i => readings.Select(r => (int)r[i]).ToArray()).ToList();   // one row per image, not per tensor
    }

    private static Dictionary<string, string> Reading(EvalPrompt prompt, int[] judged) => prompt.Stated.ToDictionary(
        s => FaceAttributes.Schema[s.AttributeIndex].Name,
        s => Enum.GetName(FaceAttributes.Schema[s.AttributeIndex].Enum, judged[s.AttributeIndex])!);

    // ---- (3) Realism ----

    /// <summary>
    /// Fréchet distances in the judge's feature space: generator samples (psi 1 and 0.7, constant noise) against
    /// renders, next to heavily blurred renders against the same renders (a trivial baseline any useful generator must
    /// beat by far) and unblurred other renders (the floor that sampling noise alone gives). Given the evaluated jobs'
    /// starting and optimised faces (tensors of (S, 3, R, R), as <see cref="PromptAccuracy"/> returns them), it also
    /// measures both against the renders.
    /// </summary>
    public RealismFigures Realism(Action<EvaluationProgress>? progress = null, CancellationToken cancellationToken = default,
        IReadOnlyList<Tensor>? startingFaces = null, IReadOnlyList<Tensor>? optimisedFaces = null)
    {
        int n = _options.RealismSamples;
        const string phase = "realism: features";
        progress?.Invoke(new EvaluationProgress(phase, 0, 5));
        using var reference = RenderFeatures(n, _options.RenderSeed, blurSigma: 0, cancellationToken);
        progress?.Invoke(new EvaluationProgress(phase, 1, 5));
        using var other = RenderFeatures(n, _options.RenderSeed ^ 0x2UL, blurSigma: 0, cancellationToken);
        progress?.Invoke(new EvaluationProgress(phase, 2, 5));
        using var blurred = RenderFeatures(n, _options.RenderSeed ^ 0x2UL, _options.BaselineBlurSigma, cancellationToken);
        progress?.Invoke(new EvaluationProgress(phase, 3, 5));
        var (psi1Features, tied) = GeneratorFeatures(n, psi: 1.0, cancellationToken, _options.LatentTie);
        using var psi1 = psi1Features;
        progress?.Invoke(new EvaluationProgress(phase, 4, 5));
        using var psi07 = GeneratorFeatures(n, psi: 0.7, cancellationToken).Features;
        progress?.Invoke(new EvaluationProgress(phase, 5, 5));

        RequireFinite(psi1, "the generator's samples at psi 1");
        RequireFinite(psi07, "the generator's samples at psi 0.7");
        RequireFinite(blurred, "the blurred renders");
        double generator = FrechetDistance(psi1, reference);
        double baseline = FrechetDistance(blurred, reference);
        var figures = new RealismFigures(n, Round(generator), Round(FrechetDistance(psi07, reference)), Round(baseline), _options.BaselineBlurSigma,
            Round(FrechetDistance(other, reference)), Round(baseline / generator), generator < baseline / 4, TiedAttributes: tied);

        using var started = FacesFeatures(startingFaces);
        using var optimised = FacesFeatures(optimisedFaces);
        if (started is null || optimised is null) return figures;
        if (started.shape[0] != optimised.shape[0])
            throw new ArgumentException($"{started.shape[0]} starting faces but {optimised.shape[0]} optimised ones: give both of the same jobs.");
        RequireFinite(optimised, "the optimised faces");
        return figures with
        {
            JobFaces = (int)optimised.shape[0],
            StartingFaces = Round(FrechetDistance(started, reference)),
            OptimisedFaces = Round(FrechetDistance(optimised, reference)),
        };
    }

    /// <summary>The judge's features of every face in <paramref name="faces"/>, (N, D) on the CPU; null for fewer than 2 faces.</summary>
    private Tensor? FacesFeatures(IReadOnlyList<Tensor>? faces)
    {
        if (faces is null || faces.Count == 0) return null;
        using var all = cat(faces.ToArray(), 0);                                  // (N, 3, R, R)
        long n = all.shape[0];
        if (n < 2) return null;
        var features = new List<Tensor>();
        for (long start = 0; start < n; start += 64)
        {
            using var noGrad = no_grad();
            using var scope = NewDisposeScope();
            var batch = all.narrow(0, start, Math.Min(64, n - start)).to(_models.Device);
            features.Add(_judge.Features(batch).cpu().MoveToOuterDisposeScope());
        }
        return JoinAndDispose(features);
    }

    /// <summary>The parts concatenated along the first dimension; the parts are disposed.</summary>
    private static Tensor JoinAndDispose(List<Tensor> parts)
    {
        var all = cat(parts.ToArray(), 0);
        foreach (var part in parts) part.Dispose();
        return all;
    }

    private static void RequireFinite(Tensor features, string what)
    {
        using var finite = features.isfinite().all();
        if (!finite.item<bool>())
            throw new InvalidDataException($"The judge's features of {what} hold NaN or infinite values: those images are not finite (a diverged or corrupt generator?).");
    }

    /// <summary>The side renders are compared at: the generator's own (the renderer needs 32 at least; smaller
    /// generators get renders drawn at 64 and area-downscaled).</summary>
    private int RenderSize => Math.Max(Resolution, FaceRenderer.MinSize);

    /// <summary>Renders at the generator's resolution, as float (B, 3, R, R) in [−1, 1].</summary>
    private Tensor Renders(FaceDataset faces, int[] indices)
    {
        using var scope = NewDisposeScope();
        var images = faces.Images(indices, _models.Device);
        if (faces.Size != Resolution)
            images = F.interpolate(images, new long[] { Resolution, Resolution }, mode: InterpolationMode.Area);
        return images.MoveToOuterDisposeScope();
    }

    private Tensor RenderFeatures(int n, ulong seed, double blurSigma, CancellationToken cancellationToken)
    {
        var faces = FaceDataset.Generate(n, RenderSize, seed, cancellationToken: cancellationToken);
        var features = new List<Tensor>();
        for (int start = 0; start < n; start += 100)
        {
            using var scope = NewDisposeScope();
            var images = Renders(faces, Enumerable.Range(start, Math.Min(100, n - start)).ToArray());
            if (blurSigma > 0) images = ImageFilters.GaussianBlur(images, blurSigma * Resolution / 64.0);
            using var noGrad = no_grad();
            features.Add(_judge.Features(images).cpu().MoveToOuterDisposeScope());
        }
        return JoinAndDispose(features);
    }

    /// <summary>
    /// The judge's features of <paramref name="n"/> random generator samples at truncation <paramref name="psi"/>;
    /// given the generator's latent tie, also how often the judge reads each attribute as the class the sample's z is
    /// tied to.
    /// </summary>
    private (Tensor Features, TiedAttributeFigures? Tied) GeneratorFeatures(int n, double psi, CancellationToken cancellationToken, LatentFaceMap? tie = null)
    {
        var g = _models.Generator;
        using var rng = new Generator((ulong)_options.SampleSeed);
        var features = new List<Tensor>();
        var schema = FaceAttributes.Schema;
        var agree = new int[schema.Count];
        var tiedCounts = schema.Select(a => new int[a.Classes]).ToArray();
        for (int start = 0; start < n; start += 50)
        {
            cancellationToken.ThrowIfCancellationRequested();
            using var noGrad = no_grad();
            using var scope = NewDisposeScope();
            var z = randn(new long[] { Math.Min(50, n - start), g.Config.ZDim }, generator: rng);
            var images = g.Synthesis.Forward(g.Mapping.Forward(z.to(_models.Device), psi), NoiseMode.Const).clamp(-1, 1);
            features.Add(_judge.Features(images).cpu().MoveToOuterDisposeScope());
            if (tie is null) continue;
            var judged = _judge.Predict(images).cpu().to(ScalarType.Int32).data<int>().ToArray();   // (B, A) row-major
            var tiedTo = tie.Attributes(z.contiguous().data<float>().ToArray());
            for (int i = 0; i < tiedTo.Length; i++)
            {
                var labels = tiedTo[i].ToLabels();
                for (int a = 0; a < schema.Count; a++)
                {
                    tiedCounts[a][labels[a]]++;
                    if (judged[i * schema.Count + a] == labels[a]) agree[a]++;
                }
            }
        }
        TiedAttributeFigures? tied = null;
        if (tie is not null)
        {
            var agreement = schema.Select((s, a) => (s.Name, Share: Round((double)agree[a] / n))).ToDictionary(x => x.Name, x => x.Share);
            var mostCommon = schema.Select((s, a) => (s.Name, Share: Round((double)tiedCounts[a].Max() / n))).ToDictionary(x => x.Name, x => x.Share);
            tied = new TiedAttributeFigures(n, agreement, Round(agree.Sum() / (double)(n * schema.Count)), mostCommon);
        }
        return (JoinAndDispose(features), tied);
    }

    /// <summary>
    /// The Fréchet distance between Gaussians fitted to two feature sets (N, D): ‖μa − μb‖² + tr(Σa + Σb − 2(Σa½ Σb Σa½)½),
    /// in float64. The matrix square roots come from symmetric eigendecompositions (negative eigenvalues, which are
    /// rounding, clipped to 0), which stays stable where the covariances are singular, as they are when N ≤ D or when
    /// some features are never active. Should LAPACK's eigensolver still fail to converge, singular value
    /// decompositions, which coincide with it for symmetric positive semi-definite matrices, take over.
    /// </summary>
    public static double FrechetDistance(Tensor a, Tensor b)
    {
        ArgumentNullException.ThrowIfNull(a);
        ArgumentNullException.ThrowIfNull(b);
        if (a.dim() != 2 || b.dim() != 2 || a.shape[1] != b.shape[1])
            throw new ArgumentException($"Feature sets must be (N, D) with the same D; got [{string.Join(", ", a.shape)}] and [{string.Join(", ", b.shape)}].");
        if (a.shape[0] < 2 || b.shape[0] < 2) throw new ArgumentException("Each feature set needs at least 2 rows for a covariance.");
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        if (!a.isfinite().all().item<bool>() || !b.isfinite().all().item<bool>())
            throw new ArgumentException("A feature set holds NaN or infinite values; the images it came from are not finite (a diverged generator?).");
        var (muA, covA) = MeanAndCovariance(a);
        var (muB, covB) = MeanAndCovariance(b);
        Tensor traceRoot;
        try
        {
            traceRoot = TraceOfRoot(covA, covB, useSvd: false);
        }
        catch (System.Runtime.InteropServices.ExternalException)
        {
            traceRoot = TraceOfRoot(covA, covB, useSvd: true);
        }
        var distance = (muA - muB).square().sum() + covA.trace() + covB.trace() - 2 * traceRoot;
        return Math.Max(0, distance.item<double>());
    }

    /// <summary>tr((Σa½ Σb Σa½)½), which equals tr((Σa Σb)½) but only ever takes roots of symmetric matrices.</summary>
    private static Tensor TraceOfRoot(Tensor covA, Tensor covB, bool useSvd)
    {
        var rootA = SymmetricSqrt(covA, useSvd);
        var middle = rootA.matmul(covB).matmul(rootA);
        middle = (middle + middle.t()) / 2;                                      // symmetric up to rounding; make it exact
        var eigenvalues = useSvd ? linalg.svdvals(middle) : linalg.eigvalsh(middle);
        return eigenvalues.clamp(min: 0).sqrt().sum();
    }

    private static (Tensor Mean, Tensor Covariance) MeanAndCovariance(Tensor x)
    {
        var d = x.to(ScalarType.Float64).cpu();
        var mean = d.mean(new long[] { 0 });                                     // (D)
        var centred = d - mean;
        return (mean, centred.t().matmul(centred) / (d.shape[0] - 1));           // (D, D)
    }

    private static Tensor SymmetricSqrt(Tensor m, bool useSvd)
    {
        if (useSvd)
        {
            var (u, s, _) = linalg.svd(m);
            return (u * s.clamp(min: 0).sqrt()).matmul(u.t());                    // U diag(√σ) Uᵀ
        }
        var (values, vectors) = linalg.eigh(m);
        return (vectors * values.clamp(min: 0).sqrt()).matmul(vectors.t());      // V diag(√λ) Vᵀ
    }

    // ---- (4) Diversity ----

    /// <summary>
    /// Mean pairwise distances between the faces of different seeds for the same prompt (final and starting faces),
    /// and between unrelated renders as a reference for how different two faces of this domain usually are.
    /// </summary>
    public DiversityFigures Diversity(IReadOnlyList<Tensor> startsPerPrompt, IReadOnlyList<Tensor> finalsPerPrompt)
    {
        ArgumentNullException.ThrowIfNull(startsPerPrompt);
        ArgumentNullException.ThrowIfNull(finalsPerPrompt);
        var (finalFeature, finalPixel, pairs) = WithinGroups(finalsPerPrompt);
        var (startFeature, startPixel, _) = WithinGroups(startsPerPrompt);

        int referencePairs = _options.DiversityReferencePairs;
        var faces = FaceDataset.Generate(2 * referencePairs, RenderSize, _options.RenderSeed ^ 0x3UL);
        double refFeature = 0, refPixel = 0;
        for (int start = 0; start < referencePairs; start += 100)
        {
            using var scope = NewDisposeScope();
            int count = Math.Min(100, referencePairs - start);
            var first = Renders(faces, Enumerable.Range(start, count).Select(i => 2 * i).ToArray());
            var second = Renders(faces, Enumerable.Range(start, count).Select(i => 2 * i + 1).ToArray());
            var (f, p) = PairDistances(first, second);
            refFeature += f.sum().item<double>();
            refPixel += p.sum().item<double>();
        }
        return new DiversityFigures(pairs, Round(finalFeature), Round(startFeature), Round(refFeature / referencePairs),
            Round(finalPixel), Round(startPixel), Round(refPixel / referencePairs), referencePairs);
    }

    /// <summary>Mean over every unordered pair within each group: feature L2 distance, pixel difference, pair count.</summary>
    private (double Feature, double Pixel, int Pairs) WithinGroups(IReadOnlyList<Tensor> groups)
    {
        double feature = 0, pixel = 0;
        int pairs = 0;
        foreach (var group in groups)
        {
            using var scope = NewDisposeScope();
            long s = group.shape[0];
            var left = new List<long>();
            var right = new List<long>();
            for (long i = 0; i < s; i++)
                for (long j = i + 1; j < s; j++) { left.Add(i); right.Add(j); }
            if (left.Count == 0) continue;
            var (f, p) = PairDistances(group.index_select(0, tensor(left.ToArray(), device: group.device)), group.index_select(0, tensor(right.ToArray(), device: group.device)));
            feature += f.sum().item<double>();
            pixel += p.sum().item<double>();
            pairs += left.Count;
        }
        return pairs == 0 ? (double.NaN, double.NaN, 0) : (feature / pairs, pixel / pairs, pairs);
    }

    /// <summary>Per pair: the L2 distance of judge features and the mean absolute pixel difference in [0, 1] units.</summary>
    private (Tensor Feature, Tensor Pixel) PairDistances(Tensor a, Tensor b)
    {
        using var noGrad = no_grad();
        var fa = _judge.Features(a).to(ScalarType.Float64);
        var fb = _judge.Features(b).to(ScalarType.Float64);
        var feature = (fa - fb).square().sum(1).sqrt().cpu();                             // (P)
        var pixel = ((a - b).abs() / 2).mean(new long[] { 1, 2, 3 }).to(ScalarType.Float64).cpu();   // (P)
        return (feature, pixel);
    }

    private static double Round(double v) => Math.Round(v, 5);
}
