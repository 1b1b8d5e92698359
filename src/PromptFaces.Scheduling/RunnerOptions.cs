using System.ComponentModel.DataAnnotations;

namespace PromptFaces.Scheduling;

/// <summary>Settings of <see cref="SimpleJobRunner"/>, bound from <c>PromptFaces:Runner</c>.</summary>
public sealed class RunnerOptions
{
    public const string Section = "PromptFaces:Runner";

    /// <summary>The most jobs run together in one engine step (co-batching). One step costs more with each job, but
    /// less than running them one after another.</summary>
    [Range(1, 256)]
    public int MaxBatch { get; set; } = 4;

    /// <summary>How often an idle runner looks for queued jobs when nobody wakes it.</summary>
    [Range(typeof(TimeSpan), "00:00:00.050", "00:10:00")]
    public TimeSpan PollInterval { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>The shortest time between two progress writes of one job to the store (the live view does not wait
    /// for these; they keep lists and restarts roughly current).</summary>
    [Range(typeof(TimeSpan), "00:00:00", "00:10:00")]
    public TimeSpan ProgressWriteInterval { get; set; } = TimeSpan.FromSeconds(1);
}
