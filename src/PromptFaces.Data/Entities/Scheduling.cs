using PromptFaces.Scheduling.FairShare;

namespace PromptFaces.Data.Entities;

/// <summary>Per-user quota limits, stored as columns of their owner; a null limit falls back to the next level.</summary>
public sealed class QuotaSettings
{
    public int? MaxQueued { get; set; }
    public int? MaxRunning { get; set; }
    public int? MaxStepsPerJob { get; set; }
    public double? DeviceSecondsPerDay { get; set; }

    public QuotaLimits ToLimits() => new()
    {
        MaxQueued = MaxQueued,
        MaxRunning = MaxRunning,
        MaxStepsPerJob = MaxStepsPerJob,
        DeviceSecondsPerDay = DeviceSecondsPerDay,
    };
}

/// <summary>An admin's scheduling settings for one user: their share within their team, their own quotas, and the
/// team their usage is charged to when they belong to several.</summary>
public sealed class UserSchedulingSettings
{
    public required string UserId { get; set; }
    public AppUser? User { get; set; }

    /// <summary>The user's share within their scheduling team; null: the configured default.</summary>
    public double? Share { get; set; }

    /// <summary>The team the user's usage is charged to; null (or a team they are not in): the team they joined first.</summary>
    public int? SchedulingTeamId { get; set; }

    public QuotaSettings Quotas { get; set; } = new();
}

/// <summary>
/// Device-seconds charged to a job, its owner and the owner's scheduling team at that time. Rows are appended by the
/// scheduler (one per job per progress write, checkpoint or end) and read back to rebuild decayed usage and the daily
/// quota after a restart. Kept when the job is deleted.
/// </summary>
public sealed class UsageRecord
{
    public long Id { get; set; }
    public Guid JobId { get; set; }
    public required string UserId { get; set; }
    /// <summary>The scheduling team's key (its id as text), or empty for users in no team.</summary>
    public required string TeamKey { get; set; }
    public DateTime At { get; set; }
    public double DeviceSeconds { get; set; }
}
