using System.ComponentModel.DataAnnotations;

namespace PromptFaces.Scheduling.FairShare;

/// <summary>
/// Settings of <see cref="FairShareScheduler"/>, bound from <c>PromptFaces:Scheduler</c>: the devices and their batch
/// sizes, the fair-share formula's knobs, checkpointing, and the defaults for shares and quotas that admins override per
/// team and per user.
/// </summary>
/// <remarks>
/// A waiting job's priority is <c>FairShareWeight·F + AgeWeight·min(age / MaxAge, 1) + boost</c>, where F is the owner's
/// fair-share factor (see <see cref="FairShareCalculator"/>), age is the time since the job was queued and boost is
/// the job's admin boost. Equal priorities go first in, first out.
/// </remarks>
public sealed class SchedulerOptions
{
    public const string Section = "PromptFaces:Scheduler";

    /// <summary>One worker per entry, each with its own engine. Empty: one worker on the engine's configured device
    /// with <see cref="DefaultMaxBatch"/>.</summary>
    public List<SchedulerDevice> Devices { get; set; } = [];

    /// <summary>The batch size of the worker made when <see cref="Devices"/> is empty.</summary>
    [Range(1, 256)]
    public int DefaultMaxBatch { get; set; } = 4;

    /// <summary>Names this process's workers in claims (<c>node/device</c>), so that after a restart a node takes back
    /// only the jobs its own workers held. Empty: the machine name.</summary>
    public string? NodeName { get; set; }

    /// <summary>Usage loses half its weight in this time.</summary>
    [Range(typeof(TimeSpan), "00:00:01", "3650.00:00:00")]
    public TimeSpan UsageHalfLife { get; set; } = TimeSpan.FromHours(1);

    /// <summary>w_fs: weight of the fair-share factor F (0 to 1) in a job's priority.</summary>
    [Range(0, 1e9)]
    public double FairShareWeight { get; set; } = 1000;

    /// <summary>w_age: weight of a job's age in its priority; a job that has waited <see cref="MaxAge"/> or longer gets
    /// all of it. This is what keeps a heavy user's jobs from waiting for ever.</summary>
    [Range(0, 1e9)]
    public double AgeWeight { get; set; } = 500;

    /// <summary>The age at which the age term stops growing.</summary>
    [Range(typeof(TimeSpan), "00:00:01", "3650.00:00:00")]
    public TimeSpan MaxAge { get; set; } = TimeSpan.FromHours(1);

    /// <summary>A running job's latent and optimiser state are stored every this many steps (0: only when the host
    /// stops).</summary>
    [Range(0, 1_000_000)]
    public int CheckpointEvery { get; set; } = 10;

    /// <summary>How often an idle worker looks for queued jobs when nobody wakes it.</summary>
    [Range(typeof(TimeSpan), "00:00:00.010", "00:10:00")]
    public TimeSpan PollInterval { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>The shortest time between two writes of a worker's progress to the store (the live view does not
    /// wait for these). Checkpoints, ends and requeues always write.</summary>
    [Range(typeof(TimeSpan), "00:00:00", "00:10:00")]
    public TimeSpan ProgressWriteInterval { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>The shortest time between two writes of a worker's usage records for its running jobs (one record per
    /// job per write). The in-process usage is charged at every step; these records rebuild it after a restart, so a
    /// crash loses at most this much charged time. Checkpoints, ends and requeues always write.</summary>
    [Range(typeof(TimeSpan), "00:00:00", "01:00:00")]
    public TimeSpan UsageWriteInterval { get; set; } = TimeSpan.FromSeconds(15);

    /// <summary>How long shares and quotas read from the store are used before they are read again (admins' edits
    /// take effect within this time, or at once where the editor invalidates the cache).</summary>
    [Range(typeof(TimeSpan), "00:00:00", "01:00:00")]
    public TimeSpan PolicyRefreshInterval { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>How far back a worker's busy fraction and step throughput look (admin pages and the
    /// <c>promptfaces.scheduler.device.busy</c> gauge).</summary>
    [Range(typeof(TimeSpan), "00:00:01", "1.00:00:00")]
    public TimeSpan ActivityWindow { get; set; } = TimeSpan.FromMinutes(1);

    /// <summary>The share of a user with no share of their own.</summary>
    [Range(0, 1e9)]
    public double DefaultUserShare { get; set; } = 1;

    /// <summary>The share of a team with no share of its own, and of the group of users in no team.</summary>
    [Range(0, 1e9)]
    public double DefaultTeamShare { get; set; } = 1;

    /// <summary>Quotas of users whose team and own settings leave a limit unset. A null limit is no limit.</summary>
    public QuotaLimits DefaultQuotas { get; set; } = new();

    /// <summary>The devices in use: <see cref="Devices"/>, or the single default one.</summary>
    public IReadOnlyList<SchedulerDevice> EffectiveDevices() =>
        Devices.Count > 0 ? Devices : [new SchedulerDevice { Device = null, MaxBatch = DefaultMaxBatch }];
}

/// <summary>One worker: the device its engine runs on and how many jobs it steps together.</summary>
public sealed class SchedulerDevice
{
    /// <summary>"cpu", "cuda" or "cuda:N"; null: the engine's configured device.</summary>
    public string? Device { get; set; }

    /// <summary>B: the most jobs stepped together (co-batching).</summary>
    [Range(1, 256)]
    public int MaxBatch { get; set; } = 4;

    /// <summary>The device's name in worker ids and logs.</summary>
    public string Name => string.IsNullOrWhiteSpace(Device) ? "default" : Device.Trim().ToLowerInvariant();
}

/// <summary>
/// Per-user limits. Set globally (<see cref="SchedulerOptions.DefaultQuotas"/>), per team (the team's members'
/// defaults) and per user; the most specific value that is set wins. Null: not limited at this level.
/// </summary>
public sealed record QuotaLimits
{
    /// <summary>Jobs a user may have open (queued or running) at once; enforced when a job is submitted.</summary>
    public int? MaxQueued { get; init; }

    /// <summary>Jobs of a user that run at once, over all workers; enforced when jobs are admitted.</summary>
    public int? MaxRunning { get; init; }

    /// <summary>The most steps one job may ask for; enforced when a job is submitted.</summary>
    public int? MaxStepsPerJob { get; init; }

    /// <summary>Device-seconds a user may use per UTC day (resets at 00:00 UTC). A hard cap: submissions are refused,
    /// queued jobs wait, and running jobs are checkpointed and put back in the queue once it is reached.</summary>
    public double? DeviceSecondsPerDay { get; init; }

    /// <summary>Each limit from this set, else from <paramref name="fallback"/>.</summary>
    public QuotaLimits Over(QuotaLimits? fallback) => fallback is null ? this : new QuotaLimits
    {
        MaxQueued = MaxQueued ?? fallback.MaxQueued,
        MaxRunning = MaxRunning ?? fallback.MaxRunning,
        MaxStepsPerJob = MaxStepsPerJob ?? fallback.MaxStepsPerJob,
        DeviceSecondsPerDay = DeviceSecondsPerDay ?? fallback.DeviceSecondsPerDay,
    };

    public static QuotaLimits None { get; } = new();
}
