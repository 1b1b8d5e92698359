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

    /// <summary>Engine state to resume from after the app stopped under the job; cleared once it runs again.</summary>
    public byte[]? ResumeState { get; set; }

    public GeneratedImage? Image { get; set; }
}
