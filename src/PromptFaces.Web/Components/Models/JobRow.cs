using PromptFaces.Scheduling;

namespace PromptFaces.Web.Components.Models;

/// <summary>A job as pages show it.</summary>
public sealed record JobRow(Guid Id, string Prompt, string? NegativePrompt, long Seed, int Steps, JobStatus Status, int StepsDone,
    double? Similarity, string? Error, Guid? ImageId);
