namespace PromptFaces.Scheduling;

/// <summary>
/// The seam between scheduling and the networks: "run these jobs a step at a time, report progress, honour
/// cancellation". The real engine runs CLIP-guided StyleGAN2 on TorchSharp; tests use a fast fake.
/// </summary>
/// <remarks>
/// Not thread-safe apart from <see cref="Cancel"/>: one runner owns an engine and calls <see cref="Admit"/>,
/// <see cref="Step"/> and <see cref="Checkpoint"/> from one thread at a time. A job admitted joins the batch at the next
/// <see cref="Step"/>; every job it admitted is eventually returned exactly once in <see cref="EngineStep.Finished"/>.
/// </remarks>
public interface IGenerationEngine
{
    /// <summary>Jobs admitted and not yet returned as finished.</summary>
    int ActiveCount { get; }

    /// <summary>Adds a job; it takes its first step at the next <see cref="Step"/>.</summary>
    void Admit(GenerationJob job);

    /// <summary>One step for every admitted job: what each step produced, and the jobs that ended at this boundary.</summary>
    EngineStep Step();

    /// <summary>Asks for a job to stop; it is returned as <see cref="FinishStatus.Cancelled"/> by a later step.
    /// Unknown ids are ignored. Safe to call from any thread.</summary>
    void Cancel(Guid jobId);

    /// <summary>A snapshot to resume the job from later (see <see cref="GenerationJob.ResumeState"/>), or null when the
    /// job is not running or the engine cannot checkpoint.</summary>
    byte[]? Checkpoint(Guid jobId);
}

/// <summary>What a job asks the engine for. Validated by the web side before it gets here.</summary>
/// <param name="ResumeState">bytes from <see cref="IGenerationEngine.Checkpoint"/> to continue from; null starts afresh.</param>
public sealed record GenerationJob(
    Guid Id,
    string Prompt,
    string? NegativePrompt,
    long Seed,
    int Steps,
    double TruncationPsi,
    double LearningRate,
    int Cutouts,
    int Starts,
    byte[]? ResumeState = null);

/// <summary>One job's step: the 1-based step just taken, the similarity it scored and a small JPEG preview (or null).</summary>
public sealed record StepEvent(Guid JobId, int Step, int TotalSteps, double Similarity, byte[]? PreviewJpeg);

public enum FinishStatus { Completed, Cancelled, Failed }

/// <summary>How a job ended. A completed job has its PNG (generation metadata embedded) and usually an animation.</summary>
public sealed record FinishedJob(
    Guid JobId,
    FinishStatus Status,
    int StepsRun,
    double Similarity,
    byte[]? Png,
    byte[]? AnimationGif,
    string? Error,
    IReadOnlyList<string> Warnings)
{
    public static FinishedJob Failure(Guid jobId, string error) =>
        new(jobId, FinishStatus.Failed, 0, double.NaN, null, null, error, Array.Empty<string>());
}

/// <summary>What one <see cref="IGenerationEngine.Step"/> produced.</summary>
public sealed record EngineStep(IReadOnlyList<StepEvent> Steps, IReadOnlyList<FinishedJob> Finished)
{
    public static EngineStep Empty { get; } = new(Array.Empty<StepEvent>(), Array.Empty<FinishedJob>());
}
