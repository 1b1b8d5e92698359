using System.ComponentModel.DataAnnotations;
using PromptFaces.Data;

namespace PromptFaces.Web.Hosting;

/// <summary>Per-user limits and form bounds, bound from <c>PromptFaces:Limits</c>.</summary>
public sealed class LimitsOptions
{
    public const string Section = "PromptFaces:Limits";

    [Range(1, DataLimits.PromptLength)]
    public int MaxPromptLength { get; set; } = DataLimits.PromptLength;

    [Range(1, 100_000)]
    public int MaxSteps { get; set; } = 1000;

    /// <summary>Submissions one user may make within any minute.</summary>
    [Range(1, 10_000)]
    public int SubmissionsPerMinute { get; set; } = 10;

    /// <summary>Jobs one user may have queued or running at once.</summary>
    [Range(1, 10_000)]
    public int MaxQueuedJobsPerUser { get; set; } = 5;
}

/// <summary>Account settings, bound from <c>PromptFaces</c>.</summary>
public sealed class AccountOptions
{
    public const string Section = "PromptFaces";

    /// <summary>This account becomes an admin when it registers. Empty: the first account registered does.</summary>
    public string? AdminEmail { get; set; }
}
