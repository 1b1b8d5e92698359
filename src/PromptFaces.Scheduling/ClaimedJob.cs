namespace PromptFaces.Scheduling;

/// <summary>A job the store handed to a scheduler worker, with its owner for progress delivery.</summary>
/// <param name="ResumeStep">the step <see cref="GenerationJob.ResumeState"/> was taken at (0 without one).</param>
/// <param name="FirstStart">whether this claim is the job's first start (not a resumption after a requeue); for the
/// wait-time metric.</param>
public sealed record ClaimedJob(GenerationJob Job, string OwnerId, int ResumeStep = 0, bool FirstStart = true);
