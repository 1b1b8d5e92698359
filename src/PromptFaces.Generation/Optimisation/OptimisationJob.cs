namespace PromptFaces.Generation.Optimisation;

/// <summary>One step's report for one job, raised at the step boundary.</summary>
/// <param name="Step">1-based number of the step just taken.</param>
/// <param name="Similarity">cosine similarity of the whole image (before this step's update) to the positive prompts.</param>
/// <param name="Preview">a small encoded image of the face this step scored, or null where previews are off.</param>
public sealed record StepProgress(string JobId, int Step, int TotalSteps, double Loss, double Similarity, double LearningRate,
    byte[]? Preview, string? PreviewContentType, double ElapsedMs);

public enum JobOutcomeStatus { Completed, StoppedEarly, Cancelled, Failed }

/// <summary>How a job ended. <see cref="Image"/> is the best-scoring face (1, 3, R, R) on the CPU, in [−1, 1].</summary>
public sealed record JobOutcome(
    string JobId,
    JobOutcomeStatus Status,
    int StepsRun,
    double SimilarityStart,
    double SimilarityEnd,
    int BestStep,
    TorchSharp.torch.Tensor? Image,
    IReadOnlyList<string> Warnings,
    string? Error,
    double ElapsedMs);

/// <summary>
/// Everything needed to continue a job exactly where it stopped: the latents, Adam's moments, the step and the state
/// of its augmentation random source. Plain arrays, so a job store can persist it anywhere.
/// </summary>
public sealed record OptimisationJobState
{
    public int Step { get; init; }
    public float[] Ws { get; init; } = Array.Empty<float>();        // the optimised latent: ws in W+ and W, z in Z
    public float[] StartWs { get; init; } = Array.Empty<float>();   // the starting latent, in the same space
    // Adam's moments are the latent's shape; BestWs is always ws (num_ws x w_dim), the face to render
    public float[] AdamM { get; init; } = Array.Empty<float>();
    public float[] AdamV { get; init; } = Array.Empty<float>();
    public float[] BestWs { get; init; } = Array.Empty<float>();
    public ulong RngState { get; init; }
    public double SimilarityStart { get; init; }
    public double BestSimilarity { get; init; }
    public int BestStep { get; init; }
    public double PatienceReference { get; init; }
    public int StepsSinceImprovement { get; init; }
}

/// <summary>A job handed to the engine. It joins the batch at the next step boundary.</summary>
public sealed record OptimisationRequest(
    string Id,
    OptimisationSettings Settings,
    Action<StepProgress>? Progress = null,
    OptimisationJobState? ResumeFrom = null,
    CancellationToken Cancellation = default);
