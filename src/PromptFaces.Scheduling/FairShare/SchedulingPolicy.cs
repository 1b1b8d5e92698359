namespace PromptFaces.Scheduling.FairShare;

/// <summary>
/// What admins set, as one immutable snapshot: shares per team and per user, quotas per team (defaults for the team's
/// members) and per user, and which team each user's usage is charged to.
/// </summary>
/// <remarks>
/// A user belongs to at most one scheduling team (<see cref="UserPolicy.TeamKey"/>). Users in no team form one group,
/// <see cref="NoTeam"/>, with <see cref="SchedulerOptions.DefaultTeamShare"/>. Team keys are strings so this project
/// does not depend on how the store numbers teams.
/// </remarks>
public sealed class SchedulingPolicy
{
    /// <summary>The group of users in no team.</summary>
    public const string NoTeam = "";

    public SchedulingPolicy(
        IReadOnlyDictionary<string, UserPolicy> users,
        IReadOnlyDictionary<string, TeamPolicy> teams,
        double defaultUserShare,
        double defaultTeamShare,
        QuotaLimits defaultQuotas)
    {
        Users = users;
        Teams = teams;
        DefaultUserShare = defaultUserShare;
        DefaultTeamShare = defaultTeamShare;
        DefaultQuotas = defaultQuotas;
    }

    public IReadOnlyDictionary<string, UserPolicy> Users { get; }
    public IReadOnlyDictionary<string, TeamPolicy> Teams { get; }
    public double DefaultUserShare { get; }
    public double DefaultTeamShare { get; }
    public QuotaLimits DefaultQuotas { get; }

    /// <summary>Everyone in no team, with the options' shares and quotas.</summary>
    public static SchedulingPolicy FromOptions(SchedulerOptions options) =>
        new(new Dictionary<string, UserPolicy>(), new Dictionary<string, TeamPolicy>(),
            options.DefaultUserShare, options.DefaultTeamShare, options.DefaultQuotas);

    /// <summary>The team the user's usage is charged to (<see cref="NoTeam"/> when none).</summary>
    public string TeamOf(string userId) => Users.TryGetValue(userId, out var user) && user.TeamKey is { } team ? team : NoTeam;

    public double UserShare(string userId) =>
        Users.TryGetValue(userId, out var user) && user.Share is { } share ? share : DefaultUserShare;

    public double TeamShare(string teamKey) =>
        Teams.TryGetValue(teamKey, out var team) && team.Share is { } share ? share : DefaultTeamShare;

    /// <summary>The user's limits: their own, else their team's defaults, else the global defaults.</summary>
    public QuotaLimits QuotasOf(string userId)
    {
        var own = Users.TryGetValue(userId, out var user) ? user.Quotas : null;
        var team = Teams.TryGetValue(TeamOf(userId), out var t) ? t.DefaultQuotas : null;
        return (own ?? QuotaLimits.None).Over((team ?? QuotaLimits.None).Over(DefaultQuotas));
    }
}

/// <summary>A user's scheduling settings; null fields fall back to the team's or the global ones.</summary>
public sealed record UserPolicy(string? TeamKey, double? Share = null, QuotaLimits? Quotas = null);

/// <summary>A team's share, and the quotas its members get unless they have their own.</summary>
public sealed record TeamPolicy(double? Share = null, QuotaLimits? DefaultQuotas = null);

/// <summary>Where the policy comes from (the database in the app; a fixed snapshot in tests).</summary>
public interface ISchedulingPolicySource
{
    Task<SchedulingPolicy> LoadAsync(CancellationToken cancellationToken);
}

/// <summary>A policy source that always answers the same snapshot.</summary>
public sealed class FixedPolicySource(SchedulingPolicy policy) : ISchedulingPolicySource
{
    public SchedulingPolicy Policy { get; set; } = policy;

    public Task<SchedulingPolicy> LoadAsync(CancellationToken cancellationToken) => Task.FromResult(Policy);
}

/// <summary>
/// The policy as last read, read again when older than <see cref="SchedulerOptions.PolicyRefreshInterval"/> or after
/// <see cref="Invalidate"/> (which an admin page calls after an edit, so it takes effect at once). Thread-safe.
/// </summary>
public sealed class SchedulingPolicyCache(ISchedulingPolicySource source, TimeProvider clock, TimeSpan refreshInterval)
{
    private readonly SemaphoreSlim _loading = new(1, 1);
    private volatile Entry? _entry;

    public async Task<SchedulingPolicy> GetAsync(CancellationToken cancellationToken)
    {
        var now = clock.GetUtcNow();
        if (_entry is { } fresh && now - fresh.LoadedAt < refreshInterval) return fresh.Policy;
        await _loading.WaitAsync(cancellationToken);
        try
        {
            if (_entry is { } other && now - other.LoadedAt < refreshInterval) return other.Policy;
            var policy = await source.LoadAsync(cancellationToken);
            _entry = new Entry(policy, now);
            return policy;
        }
        finally
        {
            _loading.Release();
        }
    }

    /// <summary>The next <see cref="GetAsync"/> reads the source again.</summary>
    public void Invalidate() => _entry = null;

    private sealed record Entry(SchedulingPolicy Policy, DateTimeOffset LoadedAt);
}
