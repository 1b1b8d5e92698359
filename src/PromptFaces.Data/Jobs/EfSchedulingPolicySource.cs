using System.Globalization;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using PromptFaces.Scheduling.FairShare;

namespace PromptFaces.Data.Jobs;

/// <summary>
/// Reads the scheduling policy from the database: team shares and default quotas, users' shares, quotas and
/// scheduling team, with the configured defaults beneath them.
/// </summary>
/// <remarks>
/// A user's scheduling team is the one named in their settings if they are a member of it, else the team they joined
/// first (then the lowest id); users in no team share the <see cref="SchedulingPolicy.NoTeam"/> group. Team keys are
/// team ids as text.
/// </remarks>
public sealed class EfSchedulingPolicySource(IDbContextFactory<PromptFacesDbContext> contexts, IOptions<SchedulerOptions> options)
    : ISchedulingPolicySource
{
    public async Task<SchedulingPolicy> LoadAsync(CancellationToken cancellationToken)
    {
        var defaults = options.Value;
        await using var db = await contexts.CreateDbContextAsync(cancellationToken);
        var teams = await db.Teams.AsNoTracking().ToListAsync(cancellationToken);
        var memberships = await db.TeamMembers.AsNoTracking()
            .Select(m => new { m.UserId, m.TeamId, m.AddedAt }).ToListAsync(cancellationToken);
        var settings = await db.UserScheduling.AsNoTracking().ToDictionaryAsync(s => s.UserId, cancellationToken);

        var users = new Dictionary<string, UserPolicy>(StringComparer.Ordinal);
        foreach (var group in memberships.GroupBy(m => m.UserId))
        {
            settings.TryGetValue(group.Key, out var own);
            int team = own?.SchedulingTeamId is { } chosen && group.Any(m => m.TeamId == chosen)
                ? chosen
                : group.OrderBy(m => m.AddedAt).ThenBy(m => m.TeamId).First().TeamId;
            users[group.Key] = new UserPolicy(Key(team), own?.Share, own?.Quotas.ToLimits());
        }
        foreach (var (userId, own) in settings)
            if (!users.ContainsKey(userId)) users[userId] = new UserPolicy(null, own.Share, own.Quotas.ToLimits());

        var teamPolicies = teams.ToDictionary(t => Key(t.Id), t => new TeamPolicy(t.Share, t.DefaultQuotas.ToLimits()), StringComparer.Ordinal);
        return new SchedulingPolicy(users, teamPolicies, defaults.DefaultUserShare, defaults.DefaultTeamShare, defaults.DefaultQuotas);
    }

    public static string Key(int teamId) => teamId.ToString(CultureInfo.InvariantCulture);
}
