using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using PromptFaces.Generation.Devices;
using PromptFaces.Generation.Imaging;
using PromptFaces.Generation.Optimisation;
using PromptFaces.Scheduling;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;
using static TorchSharp.torch;

namespace PromptFaces.Engine;

/// <summary>
/// <see cref="IGenerationEngine"/> over <see cref="FaceModels"/> and <see cref="CoBatchedOptimiser"/>: the models load
/// once, on the first step that has work (so the app starts at once and a missing model fails jobs with a sentence
/// that says what to configure, rather than the host). A host that wants the first job's first frame at once calls
/// <see cref="WarmUpAsync"/> when it starts. Results are PNGs with the generation's metadata embedded and an animated
/// GIF of the run.
/// </summary>
public sealed class TorchGenerationEngine(ModelPaths paths, IOptions<EngineOptions> options, ILogger<TorchGenerationEngine> logger)
    : IGenerationEngine, IDisposable
{
    private readonly EngineOptions _options = options.Value;
    private readonly ConcurrentDictionary<Guid, ActiveJob> _jobs = new();
    private readonly List<Guid> _waiting = new();      // admitted, not yet handed to the optimiser
    private readonly List<StepEvent> _stepEvents = new();
    private FaceModels? _models;
    private CoBatchedOptimiser? _optimiser;
    private Image<Rgb24>? _lastFrame;                   // see EncodePreview
    private readonly Lock _loading = new();             // model loading and warm-up against the first Step
    private bool _warm;

    public int ActiveCount => _jobs.Count;

    public void Admit(GenerationJob job)
    {
        var active = new ActiveJob(job, new CancellationTokenSource(),
            new AnimationWriter(captureInterval: Math.Max(1, _options.AnimationEvery), maxFrameSize: Math.Max(1, _options.PreviewSize)));
        if (!_jobs.TryAdd(job.Id, active))
        {
            active.Dispose();
            throw new InvalidOperationException($"Job {job.Id} is already running.");
        }
        lock (_waiting) _waiting.Add(job.Id);
    }

    public void Cancel(Guid jobId)
    {
        if (_jobs.TryGetValue(jobId, out var job)) job.Cancellation.Cancel();
    }

    public byte[]? Checkpoint(Guid jobId) =>
        _optimiser?.Checkpoint(jobId.ToString()) is { } state ? JobStateSerializer.Serialize(state) : null;

    public EngineStep Step()
    {
        var finished = new List<FinishedJob>();
        List<Guid> waiting;
        lock (_waiting)
        {
            waiting = _waiting.ToList();
            _waiting.Clear();
        }
        string problem = "";
        bool loaded;
        CoBatchedOptimiser? optimiser;
        lock (_loading)
        {
            loaded = waiting.Count == 0 || EnsureModels(out problem);
            optimiser = _optimiser;
            // From here on this step uses the optimiser, so a warm-up must not start on it (it would only compete).
            if (optimiser is not null) _warm = true;
        }
        if (!loaded)
        {
            foreach (var id in waiting)
                if (_jobs.TryRemove(id, out var job))
                {
                    job.Dispose();
                    finished.Add(FinishedJob.Failure(id, problem));
                }
            return new EngineStep(Array.Empty<StepEvent>(), finished);
        }
        if (optimiser is null) return EngineStep.Empty;
        foreach (var id in waiting)
            if (_jobs.TryGetValue(id, out var job)) optimiser.Enqueue(ToRequest(job));

        _stepEvents.Clear();
        foreach (var outcome in optimiser.Step())
        {
            if (_jobs.TryRemove(Guid.Parse(outcome.JobId), out var job))
            {
                finished.Add(Finish(job, outcome));
                job.Dispose();
            }
            outcome.Image?.Dispose();
        }
        _lastFrame?.Dispose();
        _lastFrame = null;
        return new EngineStep(_stepEvents.ToArray(), finished);
    }

    /// <summary>
    /// Loads the models and runs a throwaway two-step optimisation, so that the first real job's first step pays for
    /// neither the loading nor libtorch's first-call costs (one-off allocations, kernel selection). Runs on a pool
    /// thread; a <see cref="Step"/> that comes meanwhile waits for it. Failing to load is logged and left to the first
    /// job to report, as without a warm-up.
    /// </summary>
    public Task WarmUpAsync() => Task.Run(() =>
    {
        lock (_loading)
        {
            if (_warm || !EnsureModels(out _)) return;
            var started = System.Diagnostics.Stopwatch.StartNew();
            try
            {
                // The jobs' own optimiser and preview encoder, so their first use is paid here. No step uses it yet: a
                // Step that goes on to use it sets _warm under this lock first. The id is a Guid no job has, so an
                // outcome left behind by a failure is dropped like an unknown job's.
                _optimiser!.Enqueue(new OptimisationRequest(Guid.NewGuid().ToString(), new OptimisationSettings
                {
                    Prompts = [new WeightedPrompt("a face")],
                    Steps = 2,
                    PreviewSize = Math.Max(1, _options.PreviewSize),
                    PreviewEvery = 1,
                }));
                foreach (var outcome in _optimiser.RunToCompletion()) outcome.Image?.Dispose();
                _lastFrame?.Dispose(); // the warm-up's last preview, parked by EncodePreview with no job to take it
                _lastFrame = null;
                _warm = true;
                logger.LogInformation("The engine is warm ({Milliseconds} ms)", started.ElapsedMilliseconds);
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                logger.LogWarning(e, "Warming the engine up failed; the first job will be slower");
            }
        }
    });

    private bool EnsureModels(out string problem)
    {
        problem = "";
        if (_models is not null) return true;
        if (paths.Problem is { } missing)
        {
            problem = missing;
            return false;
        }
        try
        {
            NativeLogging.QuietLibTorchWarnings();
            var device = ComputeDevices.Resolve(_options.Device, _options.LibTorch);
            logger.LogInformation("Loading {Generator} and {Clip} on {Device}", paths.Generator, string.Join(" + ", paths.Clips), ComputeDevices.DescribeDevice(device));
            _models = FaceModels.Load(paths.Generator!, paths.Clips, device);
            _optimiser = new CoBatchedOptimiser(_models, EncodePreview);
            return true;
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            // Not cached: the models may be fixed (or finish training) while the app runs.
            logger.LogError(e, "The models could not be loaded");
            problem = $"The models could not be loaded: {e.Message}";
            return false;
        }
    }

    private OptimisationRequest ToRequest(ActiveJob active)
    {
        var job = active.Job;
        var prompts = new List<WeightedPrompt> { new(job.Prompt) };
        if (!string.IsNullOrWhiteSpace(job.NegativePrompt)) prompts.Add(new WeightedPrompt(job.NegativePrompt, _options.NegativeWeight));
        var settings = new OptimisationSettings
        {
            Prompts = prompts,
            Seed = job.Seed,
            Steps = job.Steps,
            TruncationPsi = job.TruncationPsi,
            LearningRate = job.LearningRate,
            Cutouts = job.Cutouts,
            Starts = job.Starts,
            PreviewSize = Math.Max(1, _options.PreviewSize),
            PreviewEvery = 1,
        };
        OptimisationJobState? resume = null;
        if (job.ResumeState is { } bytes)
        {
            resume = JobStateSerializer.TryDeserialize(bytes);
            if (resume is null) logger.LogWarning("Job {JobId}: its saved state is unreadable; starting again", job.Id);
        }
        return new OptimisationRequest(job.Id.ToString(), settings, p => OnProgress(active, p), resume, active.Cancellation.Token);
    }

    /// <summary>
    /// The optimiser's preview encoder. It is called for a job's step right before that job's progress callback, on
    /// the same thread, so the decoded frame is parked in <see cref="_lastFrame"/> for <see cref="OnProgress"/> to add
    /// to the job's animation without converting the tensor twice.
    /// </summary>
    private (byte[], string) EncodePreview(Tensor frame, int maxSize)
    {
        var image = ImageTensors.ToImage(frame);
        _lastFrame?.Dispose();
        _lastFrame = image;
        return (PreviewEncoder.EncodePreview(image, maxSize), PreviewEncoder.ContentType);
    }

    private void OnProgress(ActiveJob job, StepProgress progress)
    {
        var frame = _lastFrame;
        _lastFrame = null;
        if (frame is not null)
        {
            if (job.Animation.ShouldCapture(progress.Step)) job.Animation.AddFrame(frame);
            frame.Dispose();
        }
        _stepEvents.Add(new StepEvent(job.Job.Id, progress.Step, progress.TotalSteps, progress.Similarity, progress.Preview));
    }

    private FinishedJob Finish(ActiveJob active, JobOutcome outcome)
    {
        var job = active.Job;
        var status = outcome.Status switch
        {
            JobOutcomeStatus.Completed or JobOutcomeStatus.StoppedEarly => FinishStatus.Completed,
            JobOutcomeStatus.Cancelled => FinishStatus.Cancelled,
            _ => FinishStatus.Failed,
        };
        if (status != FinishStatus.Completed || outcome.Image is null)
            return new FinishedJob(job.Id, status == FinishStatus.Completed ? FinishStatus.Failed : status, outcome.StepsRun, outcome.SimilarityEnd,
                null, null, outcome.Error ?? (status == FinishStatus.Completed ? "The optimisation produced no image." : null), outcome.Warnings);
        try
        {
            using var image = ImageTensors.ToImage(outcome.Image);
            var png = PngWriter.EncodePng(image, new GenerationMetadata
            {
                Prompt = job.Prompt,
                NegativePrompt = job.NegativePrompt,
                Seed = job.Seed,
                Steps = outcome.StepsRun,
                GeneratorModel = _models!.GeneratorName,
                ClipModel = _models.ClipName,
                FinalSimilarity = outcome.SimilarityEnd,
            }.ToTextChunks());
            active.Animation.AddFrame(image); // end on the result
            return new FinishedJob(job.Id, FinishStatus.Completed, outcome.StepsRun, outcome.SimilarityEnd, png, active.Animation.EncodeGif(), null, outcome.Warnings);
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException or IOException)
        {
            return new FinishedJob(job.Id, FinishStatus.Failed, outcome.StepsRun, outcome.SimilarityEnd, null, null, $"Encoding the result failed: {e.Message}", outcome.Warnings);
        }
    }

    public void Dispose()
    {
        foreach (var job in _jobs.Values) job.Dispose();
        _jobs.Clear();
        _lastFrame?.Dispose();
        _optimiser?.Dispose();
        _models?.Dispose();
    }

    private sealed record ActiveJob(GenerationJob Job, CancellationTokenSource Cancellation, AnimationWriter Animation) : IDisposable
    {
        public void Dispose()
        {
            Cancellation.Dispose();
            Animation.Dispose();
        }
    }
}
