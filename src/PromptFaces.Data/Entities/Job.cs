using PromptFaces.Scheduling;

namespace PromptFaces.Data.Entities;

/// <summary>One request for a face: what was asked, with which settings, and how far it got. Times are UTC.</summary>
public sealed class Job
{
    public Guid Id { get; set; }
    public required string OwnerId { get; set; }
    public AppUser? Owner { get; set; }

    public required string Prompt { get; set; }
    public string? NegativePrompt { get; set; }
    public long Seed { get; set; }
    public int Steps { get; set; }
    public double TruncationPsi { get; set; }
    public double LearningRate { get; set; }
    public int Cutouts { get; set; }
    public int Starts { get; set; }

    public JobStatus Status { get; set; }
    public DateTime CreatedAt { get; set; }
    public DateTime? StartedAt { get; set; }
    public DateTime? FinishedAt { get; set; }
    public int StepsDone { get; set; }
    public double? Similarity { get; set; }
    public string? Error { get; set; }

    /// <summary>The latest checkpoint: engine state (latent and optimiser) to resume from after a restart or a
    /// pause. Cleared when the job ends.</summary>
    public byte[]? ResumeState { get; set; }

    /// <summary>The step <see cref="ResumeState"/> was taken at (0 without one).</summary>
    public int CheckpointStep { get; set; }

    /// <summary>An admin's addition to the job's scheduling priority (0: none).</summary>
    public double PriorityBoost { get; set; }

    /// <summary>The worker (<c>node/device</c>) that claimed the job while it runs; null otherwise.</summary>
    public string? ClaimedBy { get; set; }

    /// <summary>Device-seconds charged to the job so far (its share of each co-batched step).</summary>
    public double DeviceSeconds { get; set; }

    public GeneratedImage? Image { get; set; }
}
