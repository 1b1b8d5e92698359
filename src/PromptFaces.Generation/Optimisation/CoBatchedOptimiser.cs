using System.Diagnostics;
using System.Runtime.InteropServices;
using PromptFaces.Generation.Devices;
using PromptFaces.Generation.StyleGan2;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace PromptFaces.Generation.Optimisation;

/// <summary>
/// Runs several independent latent optimisations as one batch: one generator forward, one CLIP forward and one
/// backward per step for all of them. Each job's loss is summed into the total, and since no layer mixes batch items,
/// each job's gradient is exactly its own. Every job keeps its own latents, Adam moments, schedule, step count and
/// random source, so its result does not depend on its batch-mates (up to float rounding). Jobs join, finish or are
/// cancelled at step boundaries while the others go on (continuous batching).
/// </summary>
public sealed class CoBatchedOptimiser : IDisposable
{
    private const double Beta1 = 0.9, Beta2 = 0.999, AdamEps = 1e-8;

    private readonly FaceModels _models;
    private readonly Func<Tensor, int, (byte[] Bytes, string ContentType)>? _previewEncoder;
    private readonly List<ActiveJob> _active = new();
    private readonly Queue<OptimisationRequest> _pending = new();
    private readonly object _pendingLock = new();

    /// <param name="previewEncoder">turns one (1, 3, H, W) CPU image in [−1, 1] of at most the given side into encoded bytes.</param>
    public CoBatchedOptimiser(FaceModels models, Func<Tensor, int, (byte[] Bytes, string ContentType)>? previewEncoder = null)
    {
        _models = models;
        _previewEncoder = previewEncoder;
    }

    public int ActiveCount => _active.Count;

    public int PendingCount { get { lock (_pendingLock) return _pending.Count; } }

    public bool IsIdle => ActiveCount == 0 && PendingCount == 0;

    public IReadOnlyList<string> ActiveJobIds => _active.Select(j => j.Request.Id).ToArray();

    /// <summary>Queues a job; it joins the batch at the next step boundary. Thread-safe.</summary>
    public void Enqueue(OptimisationRequest request)
    {
        lock (_pendingLock) _pending.Enqueue(request);
    }

    /// <summary>
    /// One step boundary: admit queued jobs, release cancelled ones, run one step for every active job, and return the
    /// jobs that ended at this boundary.
    /// </summary>
    public IReadOnlyList<JobOutcome> Step()
    {
        var ended = new List<JobOutcome>();
        AdmitPending(ended);

        var cancelled = _active.Where(j => j.Request.Cancellation.IsCancellationRequested).ToList();
        if (cancelled.Count > 0) ended.AddRange(Finish(cancelled, JobOutcomeStatus.Cancelled));
        if (_active.Count == 0) return ended;

        var finished = new List<(ActiveJob Job, JobOutcomeStatus Status)>();
        try
        {
            // No garbage collection inside the step: see GcQuiet (TorchSharp's temporary Scalars).
            GcQuiet.Run(() => RunStep(finished));
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            // A failure of the shared step fails every job in it, with the reason; the engine stays usable.
            var all = _active.ToList();
            foreach (var o in Finish(all, JobOutcomeStatus.Failed, renderImage: false))
                ended.Add(o with { Error = $"The optimisation step failed: {e.Message}" });
            return ended;
        }
        foreach (var group in finished.GroupBy(f => f.Status))
            ended.AddRange(Finish(group.Select(f => f.Job).ToList(), group.Key));
        return ended;
    }

    /// <summary>Steps until every queued and active job has ended.</summary>
    public IReadOnlyList<JobOutcome> RunToCompletion()
    {
        var outcomes = new List<JobOutcome>();
        while (!IsIdle) outcomes.AddRange(Step());
        return outcomes;
    }

    /// <summary>A resumable snapshot of an active job, or null if the job is not active.</summary>
    public OptimisationJobState? Checkpoint(string jobId) => _active.FirstOrDefault(j => j.Request.Id == jobId)?.ExportState();

    private void AdmitPending(List<JobOutcome> ended)
    {
        List<OptimisationRequest> admitted;
        lock (_pendingLock)
        {
            admitted = _pending.ToList();
            _pending.Clear();
        }
        foreach (var request in admitted)
        {
            if (request.Cancellation.IsCancellationRequested)
            {
                ended.Add(new JobOutcome(request.Id, JobOutcomeStatus.Cancelled, 0, double.NaN, double.NaN, 0, null, Array.Empty<string>(), null, 0));
                continue;
            }
            try
            {
                _active.Add(ActiveJob.Start(_models, request));
            }
            catch (Exception e) when (e is ArgumentException or InvalidOperationException or InvalidDataException or ExternalException)
            {
                ended.Add(new JobOutcome(request.Id, JobOutcomeStatus.Failed, 0, double.NaN, double.NaN, 0, null, Array.Empty<string>(), e.Message, 0));
            }
        }
    }

    private void RunStep(List<(ActiveJob, JobOutcomeStatus)> finished)
    {
        using var scope = NewDisposeScope();
        var jobs = _active;
        int n = jobs.Count;
        int size = _models.ClipImageSize;

        var ws = cat(jobs.Select(j => j.CurrentWs(_models)).ToArray(), 0);                  // (n, num_ws, w_dim)
        var images = _models.Generator.Synthesis.Forward(ws, NoiseMode.Const);                // (n, 3, R, R)

        // Every job draws its own views; jobs may ask for different numbers, so sample each job's block separately.
        var features = new List<Tensor>(n);
        var views = new List<Tensor>(n);
        for (int j = 0; j < n; j++)
        {
            var job = jobs[j];
            var thetas = tensor(Cutouts.DrawThetas(job.Rng, job.Settings.Cutouts, job.Settings.CutoutMinScale), device: _models.Device)
                .reshape(job.Settings.Cutouts, 2, 3);
            var jobViews = Cutouts.Sample(images.narrow(0, j, 1), thetas, job.Settings.Cutouts, size);  // (K_j, 3, S, S)
            if (job.Settings.CutoutBlur > 0 && job.Settings.Cutouts > 1)
                jobViews = Cutouts.Blur(jobViews, job.Rng, job.Settings.CutoutBlur);
            if (job.Settings.CutoutNoise > 0 && job.Settings.Cutouts > 1)
                jobViews = Cutouts.AddNoise(jobViews, job.Rng, job.Settings.CutoutNoise);
            views.Add(jobViews);
        }
        // Every guiding CLIP reads the same views; the loss is their mean.
        var pixels = ClipGuidance.Normalise(cat(views.ToArray(), 0));
        var guideFeatures = _models.Guides.Select(g => F.normalize(g.Model.EncodeImage(pixels), dim: -1)).ToArray(); // G × (ΣK, D_g)
        int guides = guideFeatures.Length;

        var losses = new List<Tensor>(n);
        var stats = new (double Loss, double Similarity, double Lr)[n];
        long offset = 0;
        for (int j = 0; j < n; j++)
        {
            var job = jobs[j];
            var guideLosses = new Tensor[guides];
            var guideCos = new Tensor[guides];
            for (int g = 0; g < guides; g++)
            {
                var f = guideFeatures[g].narrow(0, offset, job.Settings.Cutouts);              // (K, D)
                var distance = ClipGuidance.Distance(f, job.TextFeatures[g], job.Settings.Loss); // (K, P)
                guideLosses[g] = (distance * job.ViewWeights.unsqueeze(1) * job.PromptWeights).sum();
                using (no_grad()) guideCos[g] = f.narrow(0, 0, 1).matmul(job.TextFeatures[g].t()).squeeze(0);  // (P), whole image
            }
            offset += job.Settings.Cutouts;
            var loss = stack(guideLosses).mean();                                             // a mean of one is that one, exactly
            Tensor cos;
            using (no_grad()) cos = stack(guideCos).mean(new long[] { 0 });                  // (P)
            if (job.Settings.LatentPullWeight > 0)
                loss = loss + job.Settings.LatentPullWeight * (job.Latent - job.StartLatent).square().sum(-1).mean();
            var jobWs = ws.narrow(0, j, 1);                                                    // (1, num_ws, w_dim), with its gradient path
            if (job.Settings.RangePriorWeight > 0)
                loss = loss + job.Settings.RangePriorWeight * _models.LatentRange.Penalty(jobWs);
            if (job.Settings.LayerTieWeight > 0 && job.Settings.Space == LatentSpace.WPlus)
                loss = loss + job.Settings.LayerTieWeight * _models.LatentRange.LayerSpread(jobWs);
            losses.Add(loss);
            using (no_grad())
                stats[j] = (loss.item<float>(), (cos * job.PositiveWeights).sum().item<float>(), job.LearningRate());
        }
        stack(losses.ToArray()).sum().backward();

        using (no_grad())
        {
            var previews = images.detach();
            for (int j = 0; j < n; j++)
            {
                var job = jobs[j];
                job.RecordSimilarity(stats[j].Similarity, ws.narrow(0, j, 1));
                job.AdamStep(stats[j].Lr);
                var done = job.StepIndex >= job.Settings.Steps;
                var stale = !done && job.Settings.Patience > 0 && job.StepsSinceImprovement >= job.Settings.Patience;
                if (done) finished.Add((job, JobOutcomeStatus.Completed));
                else if (stale) finished.Add((job, JobOutcomeStatus.StoppedEarly));
                job.Report(stats[j].Loss, stats[j].Similarity, stats[j].Lr, previews.narrow(0, j, 1), done || stale, _previewEncoder);
            }
        }
    }

    private List<JobOutcome> Finish(List<ActiveJob> jobs, JobOutcomeStatus status, bool renderImage = true)
    {
        var outcomes = new List<JobOutcome>(jobs.Count);
        Tensor? images = null;
        if (renderImage && jobs.Count > 0)
        {
            using var noGrad = no_grad();
            using var scope = NewDisposeScope();
            var best = cat(jobs.Select(j => j.BestWs).ToArray(), 0);
            images = _models.Generator.Synthesis.Forward(best, NoiseMode.Const).cpu().MoveToOuterDisposeScope();
        }
        for (int i = 0; i < jobs.Count; i++)
        {
            var job = jobs[i];
            var image = images?.narrow(0, i, 1).clone();
            outcomes.Add(new JobOutcome(job.Request.Id, status, job.StepIndex, job.SimilarityStart,
                job.StepIndex == 0 ? job.SimilarityStart : job.BestSimilarity, job.BestStep, image, job.Warnings, null, job.Clock.Elapsed.TotalMilliseconds));
            _active.Remove(job);
            job.Dispose();
        }
        images?.Dispose();
        return outcomes;
    }

    public void Dispose()
    {
        foreach (var job in _active) job.Dispose();
        _active.Clear();
    }

    private sealed class ActiveJob : IDisposable
    {
        public required OptimisationRequest Request { get; init; }
        public OptimisationSettings Settings => Request.Settings;
        public required Tensor Latent { get; init; }         // the leaf that is optimised: (1, num_ws, w_dim) in W+ and W, (1, z_dim) in Z
        public required Tensor StartLatent { get; init; }
        public required Tensor BestWs { get; init; }         // (1, num_ws, w_dim) of the best step, in every space
        public required Tensor M { get; init; }
        public required Tensor V { get; init; }
        public required Tensor[] TextFeatures { get; init; } // per guiding CLIP, (P, D) unit length
        public required Tensor PromptWeights { get; init; }  // (P)
        public required Tensor PositiveWeights { get; init; } // (P): positive weights normalised to sum 1, zero elsewhere
        public required Tensor ViewWeights { get; init; }    // (K): the views' weights in the guidance mean, summing to 1
        public required SplitMix64 Rng { get; init; }
        public required IReadOnlyList<string> Warnings { get; init; }
        public Stopwatch Clock { get; } = Stopwatch.StartNew();
        public int StepIndex { get; private set; }
        public double SimilarityStart { get; private set; } = double.NaN;
        public double BestSimilarity { get; private set; } = double.NegativeInfinity;
        public int BestStep { get; private set; }
        public double PatienceReference { get; private set; } = double.NegativeInfinity;
        public int StepsSinceImprovement { get; private set; }

        public static ActiveJob Start(FaceModels models, OptimisationRequest request)
        {
            var settings = request.Settings;
            if (settings.Validate() is string problem) throw new ArgumentException(problem);
            var g = models.Generator;
            using var scope = NewDisposeScope();
            var (text, warnings) = ClipGuidance.EncodePrompts(models, settings.Prompts);
            var weights = tensor(settings.Prompts.Select(p => (float)p.Weight).ToArray(), device: models.Device);
            var positive = weights.clamp(min: 0);
            positive = positive / positive.sum();

            Tensor start;
            var resume = request.ResumeFrom;
            bool z = settings.Space == LatentSpace.Z;
            if (resume is null)
                start = ChooseStart(models, settings, text, positive);
            else
                start = FromArray(resume.StartWs, g, z, models.Device, "StartWs");
            // The best face so far: the start's own ws on a fresh start, the saved one on a resume (always ws, in every space).
            Tensor bestWs;
            if (resume is not null) bestWs = FromArray(resume.BestWs, g, false, models.Device, "BestWs");
            else using (no_grad()) bestWs = z ? MapToWs(g, settings, start) : start.clone();

            var job = new ActiveJob
            {
                Request = request,
                Latent = (resume is null ? start.clone() : FromArray(resume.Ws, g, z, models.Device, "Ws")).detach().requires_grad_(true).MoveToOuterDisposeScope(),
                StartLatent = start.detach().clone().MoveToOuterDisposeScope(),
                BestWs = bestWs.detach().MoveToOuterDisposeScope(),
                M = (resume is null ? zeros_like(start) : FromArray(resume.AdamM, g, z, models.Device, "AdamM")).MoveToOuterDisposeScope(),
                V = (resume is null ? zeros_like(start) : FromArray(resume.AdamV, g, z, models.Device, "AdamV")).MoveToOuterDisposeScope(),
                TextFeatures = text.Select(t => t.MoveToOuterDisposeScope()).ToArray(),
                PromptWeights = weights.MoveToOuterDisposeScope(),
                PositiveWeights = positive.MoveToOuterDisposeScope(),
                ViewWeights = tensor(Cutouts.Weights(settings.Cutouts, settings.WholeViewWeight), device: models.Device).MoveToOuterDisposeScope(),
                // The augmentation stream is derived from the seed but independent of the latent draw.
                Rng = new SplitMix64(resume?.RngState ?? unchecked((ulong)settings.Seed * 0x2545F4914F6CDD1DUL + 0x5851F42D4C957F2DUL)),
                Warnings = warnings,
            };
            if (resume is not null) job.Restore(resume);
            return job;
        }

        /// <summary>
        /// The starting latent: z from the seed, and in W+ and W its ws through mapping and truncation. With best-of-N,
        /// the candidate CLIP scores highest.
        /// </summary>
        private static Tensor ChooseStart(FaceModels models, OptimisationSettings settings, Tensor[] text, Tensor positive)
        {
            using var noGrad = no_grad();
            var g = models.Generator;
            using var rng = new Generator((ulong)settings.Seed);
            var z = randn(new long[] { settings.Starts, g.Config.ZDim }, generator: rng).to(models.Device);  // (N, z_dim)
            var ws = MapToWs(g, settings, z);                                                                  // (N, num_ws, w_dim)
            var latents = settings.Space == LatentSpace.Z ? z : ws;
            if (settings.Starts == 1) return latents;
            var images = g.Synthesis.Forward(ws, NoiseMode.Const);
            var pixels = F.interpolate(images, new long[] { models.ClipImageSize, models.ClipImageSize }, mode: InterpolationMode.Bilinear, align_corners: false);
            var input = ClipGuidance.Normalise(pixels);
            var score = stack(models.Guides.Select((guide, gi) =>
                (F.normalize(guide.Model.EncodeImage(input), dim: -1).matmul(text[gi].t()) * positive).sum(-1)).ToArray()).mean(new long[] { 0 });  // (N), the guides' mean
            var best = score.argmax().item<long>();
            return latents.narrow(0, best, 1);
        }

        /// <summary>z through the mapping network and the job's truncation: (B, z_dim) → (B, num_ws, w_dim).</summary>
        private static Tensor MapToWs(StyleGan2Generator g, OptimisationSettings settings, Tensor z) =>
            g.Mapping.Forward(z, settings.TruncationPsi, settings.TruncationCutoff);

        /// <summary>The ws this step renders: the latent itself in W+ and W, the mapped z in Z (with its gradient path).</summary>
        public Tensor CurrentWs(FaceModels models) => Settings.Space == LatentSpace.Z ? MapToWs(models.Generator, Settings, Latent) : Latent;

        private static Tensor FromArray(float[] values, StyleGan2Generator g, bool z, Device device, string name)
        {
            long[] shape = z ? new long[] { 1, g.Config.ZDim } : new long[] { 1, g.NumWs, g.Config.WDim };
            long expected = shape.Aggregate(1L, (a, b) => a * b);
            if (values.Length != expected)
                throw new InvalidDataException(z
                    ? $"The checkpointed job state's {name} has {values.Length} values; optimising z with this generator needs {expected}. It was saved with another model or another latent space."
                    : $"The checkpointed job state's {name} has {values.Length} values; this generator needs {expected} ({g.NumWs} x {g.Config.WDim}). It was saved with another model or another latent space.");
            return tensor(values, device: device).reshape(shape);
        }

        private void Restore(OptimisationJobState s)
        {
            StepIndex = s.Step;
            SimilarityStart = s.SimilarityStart;
            BestSimilarity = s.BestSimilarity;
            BestStep = s.BestStep;
            PatienceReference = s.PatienceReference;
            StepsSinceImprovement = s.StepsSinceImprovement;
        }

        public OptimisationJobState ExportState()
        {
            static float[] Arr(Tensor t) => t.detach().cpu().contiguous().data<float>().ToArray();
            return new OptimisationJobState
            {
                Step = StepIndex,
                Ws = Arr(Latent),
                StartWs = Arr(StartLatent),
                AdamM = Arr(M),
                AdamV = Arr(V),
                BestWs = Arr(BestWs),
                RngState = Rng.State,
                SimilarityStart = SimilarityStart,
                BestSimilarity = BestSimilarity,
                BestStep = BestStep,
                PatienceReference = PatienceReference,
                StepsSinceImprovement = StepsSinceImprovement,
            };
        }

        public double LearningRate() =>
            LearningRateSchedule.At(StepIndex, Settings.Steps, Settings.LearningRate, Settings.WarmupFraction, Settings.RampDownFraction);

        /// <summary>Records the similarity of the current latents (rendered from <paramref name="ws"/>), which the step about to be taken scored.</summary>
        public void RecordSimilarity(double similarity, Tensor ws)
        {
            if (StepIndex == 0) SimilarityStart = similarity;
            if (similarity > BestSimilarity)
            {
                BestSimilarity = similarity;
                BestStep = StepIndex;
                BestWs.copy_(ws.detach());
            }
            if (similarity > PatienceReference + Settings.MinImprovement)
            {
                PatienceReference = similarity;
                StepsSinceImprovement = 0;
            }
            else
            {
                StepsSinceImprovement++;
            }
        }

        public void AdamStep(double lr)
        {
            var grad = Latent.grad ?? throw new InvalidOperationException("no gradient reached the latents");
            // In W, every layer's latent takes the same step: the layers' gradients are averaged (Adam ignores the scale),
            // so the per-layer offsets of the start (truncation cutoff) stay as they were.
            if (Settings.Space == LatentSpace.W) grad.copy_(grad.mean(new long[] { 1 }, keepdim: true).expand_as(grad));
            StepIndex++;
            M.mul_(Beta1).add_(grad, alpha: 1 - Beta1);
            V.mul_(Beta2).addcmul_(grad, grad, value: 1 - Beta2);
            var mHat = M / (1 - Math.Pow(Beta1, StepIndex));
            var vHat = V / (1 - Math.Pow(Beta2, StepIndex));
            Latent.sub_(mHat / (vHat.sqrt() + AdamEps) * lr);
            grad.zero_();
        }

        public void Report(double loss, double similarity, double lr, Tensor image, bool last,
            Func<Tensor, int, (byte[] Bytes, string ContentType)>? encoder)
        {
            if (Request.Progress is null) return;
            byte[]? preview = null;
            string? type = null;
            if (encoder is not null && Settings.PreviewSize > 0 && (last || StepIndex % Settings.PreviewEvery == 0 || StepIndex == 1))
            {
                var side = image.shape[2];
                var small = side > Settings.PreviewSize
                    ? F.interpolate(image, new long[] { Settings.PreviewSize, Settings.PreviewSize }, mode: InterpolationMode.Area)
                    : image;
                (preview, type) = encoder(small.cpu(), Settings.PreviewSize);
            }
            Request.Progress(new StepProgress(Request.Id, StepIndex, Settings.Steps, loss, similarity, lr, preview, type, Clock.Elapsed.TotalMilliseconds));
        }

        public void Dispose()
        {
            Latent.Dispose(); StartLatent.Dispose(); BestWs.Dispose(); M.Dispose(); V.Dispose();
            foreach (var t in TextFeatures) t.Dispose();
            PromptWeights.Dispose(); PositiveWeights.Dispose(); ViewWeights.Dispose();
        }
    }
}
