using System.Globalization;

namespace PromptFaces.Scheduling.FairShare;

/// <summary>
/// Checks a submission against its owner's quotas and queues it, as one step that concurrent submissions cannot
/// interleave: the check and the insert run under one lock, so 20 racing submissions against a limit of 5 queue exactly
/// 5.
/// </summary>
/// <remarks>
/// The lock is per process, which is enough while one process accepts submissions. Several web processes sharing
/// PostgreSQL would take the same section under a database lock on the user instead (a transaction-scoped advisory
/// lock keyed by the user id) around the count and the insert.
/// </remarks>
public sealed class QuotaGate(ISchedulerStore store, SchedulingPolicyCache policy, UsageAccounting usage, TimeProvider clock)
{
    private readonly SemaphoreSlim _gate = new(1, 1);

    /// <summary>
    /// Checks the user's quotas for a job of <paramref name="steps"/> steps and, when they allow it, runs
    /// <paramref name="enqueue"/> (which inserts the job and may itself decline by returning false, for the caller's own
    /// limits such as a rate limit) before any other submission is checked.
    /// </summary>
    /// <returns>Whether the job was queued, or the quota's message.</returns>
    public async Task<QuotaDecision> SubmitAsync(string userId, int steps, Func<CancellationToken, Task<bool>> enqueue,
        CancellationToken cancellationToken)
    {
        var quotas = (await policy.GetAsync(cancellationToken)).QuotasOf(userId);
        if (quotas.MaxStepsPerJob is { } maxSteps && steps > maxSteps)
            return QuotaDecision.Refuse(QuotaKind.StepsPerJob,
                $"A job may run at most {maxSteps} steps; this one asks for {steps}. Choose fewer steps.");

        await _gate.WaitAsync(cancellationToken);
        try
        {
            var now = clock.GetUtcNow();
            if (quotas.DeviceSecondsPerDay is { } cap && usage.UsedToday(userId, now) >= cap)
            {
                var reset = UsageAccounting.NextReset(now);
                return QuotaDecision.Refuse(QuotaKind.DeviceSecondsPerDay,
                    $"You have used your {Format(cap)} device-seconds for today. The allowance resets at 00:00 UTC " +
                    $"({reset.UtcDateTime.ToString("yyyy-MM-dd HH:mm", CultureInfo.InvariantCulture)} UTC, in {Until(reset - now)}).");
            }
            if (quotas.MaxQueued is { } maxQueued)
            {
                int open = await store.CountOpenJobsAsync(userId, cancellationToken);
                if (open >= maxQueued)
                    return QuotaDecision.Refuse(QuotaKind.QueuedJobs,
                        $"You already have {open} jobs queued or running, the most allowed at once. Wait for one to finish, or cancel one, then submit again.");
            }
            return await enqueue(cancellationToken) ? QuotaDecision.Queued : QuotaDecision.Declined;
        }
        finally
        {
            _gate.Release();
        }
    }

    private static string Format(double seconds) => seconds.ToString("0.##", CultureInfo.InvariantCulture);

    private static string Until(TimeSpan wait)
    {
        int minutes = Math.Max(1, (int)Math.Ceiling(wait.TotalMinutes));
        return minutes < 60 ? $"{minutes} min" : minutes % 60 == 0 ? $"{minutes / 60} h" : $"{minutes / 60} h {minutes % 60} min";
    }
}

public enum QuotaKind { StepsPerJob, QueuedJobs, DeviceSecondsPerDay }

/// <summary>How a submission went at the gate: queued, declined by the caller's own check, or refused by a quota.</summary>
public sealed record QuotaDecision(bool Enqueued, QuotaKind? Refused, string? Message)
{
    public static QuotaDecision Queued { get; } = new(true, null, null);
    public static QuotaDecision Declined { get; } = new(false, null, null);
    public static QuotaDecision Refuse(QuotaKind kind, string message) => new(false, kind, message);
}
