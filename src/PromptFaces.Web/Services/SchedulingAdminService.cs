using System.Globalization;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using PromptFaces.Data;
using PromptFaces.Data.Entities;
using PromptFaces.Data.Jobs;
using PromptFaces.Scheduling;
using PromptFaces.Scheduling.FairShare;
using PromptFaces.Web.Jobs;
using PromptFaces.Web.Security;

namespace PromptFaces.Web.Services;

/// <summary>
/// What the admin pages and <c>/api/admin</c> do: the live queue with usage, factors and priorities; the devices'
/// utilisation and throughput; share and quota editing (in force at once: the policy cache is invalidated and the
/// workers woken); cancelling any job; priority boosts; disabling and enabling accounts. Admins only: every call
/// checks the <see cref="Viewer"/>.
/// </summary>
public sealed class SchedulingAdminService(
    IDbContextFactory<PromptFacesDbContext> contexts,
    FairShareScheduler scheduler,
    UsageAccounting usage,
    SchedulingPolicyCache policyCache,
    JobSubmissionService jobs,
    DisabledAccounts disabled,
    TimeProvider clock,
    IOptions<SchedulerOptions> options)
{
    /// <summary>The name shown for the group of users in no team.</summary>
    public const string NoTeamName = "(no team)";

    /// <summary>The queue, the running jobs, every active user's and team's usage and factor, and the workers, now.</summary>
    public async Task<AdminQueueView> QueueAsync(Viewer admin, CancellationToken ct = default)
    {
        RequireAdmin(admin);
        var ranked = await scheduler.RankQueueAsync(ct);
        var running = scheduler.RunningJobs();
        var shares = await scheduler.FairSharesAsync(ct);
        var policy = await policyCache.GetAsync(ct);
        var now = clock.GetUtcNow();
        var userUsage = usage.UserUsages(now);
        var teamUsage = usage.TeamUsages(now);

        await using var db = await contexts.CreateDbContextAsync(ct);
        var jobIds = ranked.Select(r => r.Job.Id).Concat(running.Select(r => r.JobId)).ToList();
        var rows = await db.Jobs.AsNoTracking().Where(j => jobIds.Contains(j.Id))
            .Select(j => new { j.Id, j.Prompt, j.Steps, j.StepsDone, j.DeviceSeconds, j.PriorityBoost, j.CreatedAt })
            .ToDictionaryAsync(j => j.Id, ct);
        var userIds = ranked.Select(r => r.Job.OwnerId).Concat(running.Select(r => r.OwnerId)).Concat(shares.Keys)
            .Concat(userUsage.Where(u => u.Value > FairShareCalculator.ActiveUsageThreshold).Select(u => u.Key))
            .Distinct(StringComparer.Ordinal).ToList();
        var emails = await db.Users.AsNoTracking().Where(u => userIds.Contains(u.Id))
            .Select(u => new { u.Id, u.Email, u.LockoutEnd }).ToDictionaryAsync(u => u.Id, ct);
        var teamNames = await TeamNamesAsync(db, ct);

        string Email(string id) => emails.TryGetValue(id, out var u) ? u.Email ?? id : id;
        string TeamName(string key) => teamNames.GetValueOrDefault(key, key.Length == 0 ? NoTeamName : key);
        double FactorOf(string id) => shares.TryGetValue(id, out var f) ? f.Factor : 1;

        var waiting = ranked.Select((r, i) =>
        {
            rows.TryGetValue(r.Job.Id, out var job);
            return new QueuedJobRow(i + 1, r.Job.Id, r.Job.OwnerId, Email(r.Job.OwnerId), TeamName(policy.TeamOf(r.Job.OwnerId)),
                job?.Prompt ?? "", r.Job.Steps, job?.StepsDone ?? 0, job?.DeviceSeconds ?? 0, r.Factor, r.Priority, r.Job.Boost,
                r.Job.EnqueuedAt);
        }).ToList();

        var workers = scheduler.Workers();
        var devices = workers.ToDictionary(w => w.Id, w => w.Device ?? "default", StringComparer.Ordinal);
        var runningRows = running.Select(r =>
        {
            rows.TryGetValue(r.JobId, out var job);
            double boost = job?.PriorityBoost ?? 0;
            var queuedAt = job is null ? now : new DateTimeOffset(DateTime.SpecifyKind(job.CreatedAt, DateTimeKind.Utc));
            double factor = FactorOf(r.OwnerId);
            return new RunningJobRow(r.JobId, r.OwnerId, Email(r.OwnerId), TeamName(r.TeamKey), r.WorkerId,
                devices.GetValueOrDefault(r.WorkerId, "default"), job?.Prompt ?? "", r.StepsDone, r.TotalSteps,
                Math.Max(job?.DeviceSeconds ?? 0, r.ChargedSeconds), factor,
                FairShareCalculator.Priority(factor, now - queuedAt, boost, options.Value), boost);
        }).OrderBy(r => r.Worker, StringComparer.Ordinal).ThenBy(r => r.JobId).ToList();

        var users = userIds.Select(id =>
        {
            shares.TryGetValue(id, out var share);
            string team = policy.TeamOf(id);
            return new UserUsageRow(id, Email(id), TeamName(team), policy.UserShare(id), userUsage.GetValueOrDefault(id),
                usage.UsedToday(id, now), share?.TeamFactor ?? 1, share?.UserFactor ?? 1, share?.Factor ?? 1,
                waiting.Count(w => w.OwnerId == id), runningRows.Count(r => r.OwnerId == id),
                emails.TryGetValue(id, out var u) && DisabledAccounts.IsDisabledLockout(u.LockoutEnd));
        }).OrderByDescending(u => u.Usage).ThenBy(u => u.Email, StringComparer.OrdinalIgnoreCase).ToList();

        var teamKeys = teamNames.Keys.Concat(shares.Values.Select(s => s.TeamKey))
            .Concat(teamUsage.Where(t => t.Value > FairShareCalculator.ActiveUsageThreshold).Select(t => t.Key))
            .Distinct(StringComparer.Ordinal);
        var teams = teamKeys.Select(key =>
        {
            var member = shares.Values.FirstOrDefault(s => s.TeamKey == key);
            return new TeamUsageRow(key, TeamName(key), policy.TeamShare(key), teamUsage.GetValueOrDefault(key), member?.TeamFactor);
        }).OrderByDescending(t => t.Usage).ThenBy(t => t.Name, StringComparer.OrdinalIgnoreCase).ToList();

        var workerRows = workers.Select(w => new WorkerRow(w.Id, w.Device ?? "default", w.MaxBatch, w.Running, w.Steps, w.JobSteps,
            w.BusyFraction, w.JobStepsPerSecond, w.Window)).ToList();
        return new AdminQueueView(now, waiting, runningRows, users, teams, workerRows);
    }

    /// <summary>Every team's and user's share and quotas as stored (null: inherited), with the defaults beneath them.</summary>
    public async Task<SchedulingSettingsView> SettingsAsync(Viewer admin, CancellationToken ct = default)
    {
        RequireAdmin(admin);
        await using var db = await contexts.CreateDbContextAsync(ct);
        var teams = await db.Teams.AsNoTracking().OrderBy(t => t.Name)
            .Select(t => new { t.Id, t.Name, t.Share, t.DefaultQuotas, Members = t.Members.Count }).ToListAsync(ct);
        var users = await db.Users.AsNoTracking().OrderBy(u => u.Email)
            .Select(u => new { u.Id, u.Email, u.LockoutEnd }).ToListAsync(ct);
        var memberships = await db.TeamMembers.AsNoTracking().Select(m => new { m.UserId, m.TeamId }).ToListAsync(ct);
        var settings = await db.UserScheduling.AsNoTracking().ToDictionaryAsync(s => s.UserId, ct);
        var adminRole = await db.Roles.AsNoTracking().Where(r => r.Name == Roles.Admin).Select(r => r.Id).FirstOrDefaultAsync(ct);
        var admins = adminRole is null
            ? new HashSet<string>()
            : (await db.UserRoles.AsNoTracking().Where(r => r.RoleId == adminRole).Select(r => r.UserId).ToListAsync(ct)).ToHashSet();
        var policy = await policyCache.GetAsync(ct);
        var names = teams.ToDictionary(t => t.Id, t => t.Name);

        var teamRows = teams.Select(t => new TeamPolicyEdit
        {
            TeamId = t.Id,
            Name = t.Name,
            Members = t.Members,
            Share = t.Share,
            Quotas = Copy(t.DefaultQuotas),
        }).ToList();
        var userRows = users.Select(u =>
        {
            settings.TryGetValue(u.Id, out var own);
            return new UserPolicyEdit
            {
                UserId = u.Id,
                Email = u.Email ?? u.Id,
                IsAdmin = admins.Contains(u.Id),
                Disabled = DisabledAccounts.IsDisabledLockout(u.LockoutEnd),
                Teams = memberships.Where(m => m.UserId == u.Id).Select(m => new TeamChoice(m.TeamId, names.GetValueOrDefault(m.TeamId, "?")))
                    .OrderBy(t => t.Name, StringComparer.OrdinalIgnoreCase).ToList(),
                ChargedTo = policy.TeamOf(u.Id) is { Length: > 0 } key && int.TryParse(key, NumberStyles.None, CultureInfo.InvariantCulture, out var id)
                    ? names.GetValueOrDefault(id, NoTeamName) : NoTeamName,
                SchedulingTeamId = own?.SchedulingTeamId,
                Share = own?.Share,
                Quotas = Copy(own?.Quotas),
                Effective = policy.QuotasOf(u.Id),
            };
        }).ToList();
        var defaults = options.Value;
        return new SchedulingSettingsView(teamRows, userRows, defaults.DefaultTeamShare, defaults.DefaultUserShare, defaults.DefaultQuotas);
    }

    /// <summary>Sets a team's share and its members' default quotas (nulls: inherit). Null on success, else why not.</summary>
    public async Task<string?> SetTeamPolicyAsync(Viewer admin, int teamId, double? share, QuotaSettings quotas, CancellationToken ct = default)
    {
        RequireAdmin(admin);
        if (Validate(share, quotas) is { } error) return error;
        await using var db = await contexts.CreateDbContextAsync(ct);
        var team = await db.Teams.FirstOrDefaultAsync(t => t.Id == teamId, ct);
        if (team is null) return "That team no longer exists.";
        team.Share = share;
        CopyInto(quotas, team.DefaultQuotas);
        await db.SaveChangesAsync(ct);
        PolicyChanged();
        return null;
    }

    /// <summary>Sets a user's share within their team, their own quotas and the team they are charged to (nulls:
    /// inherit; the team must be one of theirs). Null on success, else why not.</summary>
    public async Task<string?> SetUserPolicyAsync(Viewer admin, string userId, double? share, QuotaSettings quotas, int? schedulingTeamId,
        CancellationToken ct = default)
    {
        RequireAdmin(admin);
        if (Validate(share, quotas) is { } error) return error;
        await using var db = await contexts.CreateDbContextAsync(ct);
        if (!await db.Users.AnyAsync(u => u.Id == userId, ct)) return "That account no longer exists.";
        if (schedulingTeamId is { } teamId && !await db.TeamMembers.AnyAsync(m => m.UserId == userId && m.TeamId == teamId, ct))
            return "The user is not a member of that team.";
        var own = await db.UserScheduling.FirstOrDefaultAsync(s => s.UserId == userId, ct);
        if (own is null) db.UserScheduling.Add(own = new UserSchedulingSettings { UserId = userId });
        own.Share = share;
        own.SchedulingTeamId = schedulingTeamId;
        CopyInto(quotas, own.Quotas);
        await db.SaveChangesAsync(ct);
        PolicyChanged();
        return null;
    }

    /// <summary>Cancels any job: a queued one at once, a running one at its next step boundary. False when there is no
    /// such job or it has already ended.</summary>
    public Task<bool> CancelJobAsync(Viewer admin, Guid jobId, CancellationToken ct = default)
    {
        RequireAdmin(admin);
        return jobs.CancelAsync(admin, jobId, ct);
    }

    /// <summary>Sets a queued or running job's priority boost (added to its priority; a requeued job keeps it). False
    /// when there is no such job or it has ended.</summary>
    public async Task<bool> SetBoostAsync(Viewer admin, Guid jobId, double boost, CancellationToken ct = default)
    {
        RequireAdmin(admin);
        if (!double.IsFinite(boost) || Math.Abs(boost) > MaxBoost) return false;
        await using var db = await contexts.CreateDbContextAsync(ct);
        int updated = await db.Jobs.Where(j => j.Id == jobId && (j.Status == JobStatus.Queued || j.Status == JobStatus.Running))
            .ExecuteUpdateAsync(s => s.SetProperty(j => j.PriorityBoost, boost), ct);
        if (updated == 1) scheduler.JobQueued();
        return updated == 1;
    }

    /// <summary>The largest boost, up or down, an admin may give.</summary>
    public const double MaxBoost = 1e6;

    /// <summary>
    /// Disables an account: it can no longer sign in, its sign-in cookies stop working at their next request, it can
    /// submit nothing more, and all its queued and running jobs are cancelled (running ones at their next step
    /// boundary). An admin cannot disable their own account.
    /// </summary>
    public async Task<DisableResult> DisableUserAsync(Viewer admin, string userId, CancellationToken ct = default)
    {
        RequireAdmin(admin);
        if (userId == admin.UserId) return new DisableResult(false, "You cannot disable your own account.", 0);
        await using var db = await contexts.CreateDbContextAsync(ct);
        DateTimeOffset? until = DisabledAccounts.LockedUntil;
        int updated = await db.Users.Where(u => u.Id == userId).ExecuteUpdateAsync(s => s
            .SetProperty(u => u.LockoutEnabled, true)
            .SetProperty(u => u.LockoutEnd, until)
            .SetProperty(u => u.SecurityStamp, Guid.NewGuid().ToString("N"))
            .SetProperty(u => u.ConcurrencyStamp, Guid.NewGuid().ToString()), ct);
        if (updated == 0) return new DisableResult(false, "That account no longer exists.", 0);
        // From here on the account's submissions are refused; a second pass catches one that was being inserted.
        await disabled.SetAsync(userId, true, ct);
        var cancelled = new HashSet<Guid>();
        for (int pass = 0; pass < 2; pass++)
        {
            var open = await db.Jobs.AsNoTracking()
                .Where(j => j.OwnerId == userId && (j.Status == JobStatus.Queued || j.Status == JobStatus.Running))
                .Select(j => j.Id).ToListAsync(ct);
            // A running job stays Running until its worker stops it at the next step boundary: ask once.
            foreach (var id in open.Where(id => !cancelled.Contains(id)))
                if (await jobs.CancelAsync(admin, id, ct)) cancelled.Add(id);
        }
        return new DisableResult(true, null, cancelled.Count);
    }

    /// <summary>Lets a disabled account sign in again. False when there is no such account.</summary>
    public async Task<bool> EnableUserAsync(Viewer admin, string userId, CancellationToken ct = default)
    {
        RequireAdmin(admin);
        await using var db = await contexts.CreateDbContextAsync(ct);
        int updated = await db.Users.Where(u => u.Id == userId).ExecuteUpdateAsync(s => s
            .SetProperty(u => u.LockoutEnd, (DateTimeOffset?)null)
            .SetProperty(u => u.AccessFailedCount, 0)
            .SetProperty(u => u.ConcurrencyStamp, Guid.NewGuid().ToString()), ct);
        if (updated == 0) return false;
        await disabled.SetAsync(userId, false, ct);
        return true;
    }

    private void PolicyChanged()
    {
        policyCache.Invalidate();
        scheduler.JobQueued(); // wake the workers: a raised running limit admits at once
    }

    private static async Task<Dictionary<string, string>> TeamNamesAsync(PromptFacesDbContext db, CancellationToken ct)
    {
        var teams = await db.Teams.AsNoTracking().Select(t => new { t.Id, t.Name }).ToListAsync(ct);
        var names = teams.ToDictionary(t => EfSchedulingPolicySource.Key(t.Id), t => t.Name, StringComparer.Ordinal);
        names[SchedulingPolicy.NoTeam] = NoTeamName;
        return names;
    }

    /// <summary>Null when the share and quotas are acceptable, else the message.</summary>
    public static string? Validate(double? share, QuotaSettings quotas)
    {
        if (share is { } s && (!double.IsFinite(s) || s < 0 || s > 1e9)) return "A share is a number from 0 to 1,000,000,000.";
        if (quotas.MaxQueued is < 0) return "Max queued cannot be negative.";
        if (quotas.MaxRunning is < 0) return "Max running cannot be negative.";
        if (quotas.MaxStepsPerJob is < 1) return "Max steps per job must be at least 1.";
        if (quotas.DeviceSecondsPerDay is { } d && (!double.IsFinite(d) || d < 0)) return "Device-seconds per day cannot be negative.";
        return null;
    }

    private static QuotaSettings Copy(QuotaSettings? q) => new()
    {
        MaxQueued = q?.MaxQueued,
        MaxRunning = q?.MaxRunning,
        MaxStepsPerJob = q?.MaxStepsPerJob,
        DeviceSecondsPerDay = q?.DeviceSecondsPerDay,
    };

    // Quotas are owned entities stored in their owner's row: changed in place, never replaced.
    private static void CopyInto(QuotaSettings from, QuotaSettings to)
    {
        to.MaxQueued = from.MaxQueued;
        to.MaxRunning = from.MaxRunning;
        to.MaxStepsPerJob = from.MaxStepsPerJob;
        to.DeviceSecondsPerDay = from.DeviceSecondsPerDay;
    }

    private static void RequireAdmin(Viewer viewer)
    {
        if (!viewer.IsAdmin) throw new UnauthorizedAccessException("Only admins manage scheduling.");
    }
}

/// <summary>The live queue as the admin page shows it.</summary>
public sealed record AdminQueueView(
    DateTimeOffset At,
    IReadOnlyList<QueuedJobRow> Waiting,
    IReadOnlyList<RunningJobRow> Running,
    IReadOnlyList<UserUsageRow> Users,
    IReadOnlyList<TeamUsageRow> Teams,
    IReadOnlyList<WorkerRow> Workers);

/// <summary>A waiting job, in the order the scheduler would admit it (quotas aside).</summary>
public sealed record QueuedJobRow(int Rank, Guid JobId, string OwnerId, string Owner, string Team, string Prompt, int Steps, int StepsDone,
    double DeviceSeconds, double Factor, double Priority, double Boost, DateTimeOffset QueuedAt);

/// <summary>A running job; its priority is the one it would have if it were waiting now.</summary>
public sealed record RunningJobRow(Guid JobId, string OwnerId, string Owner, string Team, string Worker, string Device, string Prompt,
    int StepsDone, int Steps, double DeviceSeconds, double Factor, double Priority, double Boost);

/// <summary>An active user: share, decayed usage (device-seconds), today's undecayed usage, and factors.</summary>
public sealed record UserUsageRow(string UserId, string Email, string Team, double Share, double Usage, double UsedToday,
    double TeamFactor, double UserFactor, double Factor, int Waiting, int Running, bool Disabled);

/// <summary>A team: share, decayed usage (device-seconds), and its factor when it is active.</summary>
public sealed record TeamUsageRow(string TeamKey, string Name, double Share, double Usage, double? Factor);

/// <summary>A worker: busy fraction and job-steps per second over <see cref="Window"/>, and totals since start.</summary>
public sealed record WorkerRow(string Id, string Device, int MaxBatch, int Running, long Steps, long JobSteps, double BusyFraction,
    double JobStepsPerSecond, TimeSpan Window);

public sealed record SchedulingSettingsView(IReadOnlyList<TeamPolicyEdit> Teams, IReadOnlyList<UserPolicyEdit> Users,
    double DefaultTeamShare, double DefaultUserShare, QuotaLimits DefaultQuotas);

public sealed record TeamChoice(int Id, string Name);

/// <summary>A team's scheduling settings as the editor holds them.</summary>
public sealed class TeamPolicyEdit
{
    public int TeamId { get; init; }
    public string Name { get; init; } = "";
    public int Members { get; init; }
    public double? Share { get; set; }
    public QuotaSettings Quotas { get; set; } = new();
}

/// <summary>A user's scheduling settings as the editor holds them, with what is in force now.</summary>
public sealed class UserPolicyEdit
{
    public string UserId { get; init; } = "";
    public string Email { get; init; } = "";
    public bool IsAdmin { get; init; }
    public bool Disabled { get; set; }
    public IReadOnlyList<TeamChoice> Teams { get; init; } = [];
    public string ChargedTo { get; init; } = "";
    public int? SchedulingTeamId { get; set; }
    public double? Share { get; set; }
    public QuotaSettings Quotas { get; set; } = new();
    public QuotaLimits Effective { get; init; } = QuotaLimits.None;
}

public sealed record DisableResult(bool Disabled, string? Error, int CancelledJobs);
