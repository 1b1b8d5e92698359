namespace PromptFaces.Scheduling.FairShare;

/// <summary>
/// The fair-share factor and job priorities. Pure: everything comes in as arguments.
/// </summary>
/// <remarks>
/// <para>
/// The factor is Slurm's classic one at two levels, teams and users within a team. At each level, for an entity e
/// among its active siblings (those with decayed usage or a job waiting or running):
/// <c>F(e) = 2^(-U/S)</c> with <c>U = usage(e) / Σ usage(siblings)</c> (0 when no sibling has usage) and
/// <c>S = share(e) / Σ share(siblings)</c>. Usage is decayed device-seconds (<see cref="UsageAccounting"/>). Teams
/// are the siblings of teams (users in no team count as one more team); the users charged to one team are siblings.
/// </para>
/// <para>
/// A user's factor is the product <c>F(team) · F(user within team)</c>, between 0 and 1. An entity that has used
/// exactly its share has F = 1/2; an idle one has F = 1; one with no share has F = 0. Normalising over active siblings
/// only means idle teams and users do not dilute the others' shares. The ordering this produces converges on usage
/// in proportion to share at both levels: two users (or teams) that both want the device end up charged in the ratio
/// of their shares.
/// </para>
/// <para>
/// A waiting job's priority is <c>w_fs · F + w_age · min(age / maxAge, 1) + boost</c>
/// (<see cref="SchedulerOptions.FairShareWeight"/>, <see cref="SchedulerOptions.AgeWeight"/>,
/// <see cref="SchedulerOptions.MaxAge"/>, and the job's admin boost). Ties go to the job queued first, then to the
/// smaller id.
/// </para>
/// </remarks>
public static class FairShareCalculator
{
    /// <summary>Usage below this many device-seconds counts as none when deciding who is active.</summary>
    public const double ActiveUsageThreshold = 1e-6;

    /// <summary><c>2^(-(usage/totalUsage)/(share/totalShare))</c>; 1 when nothing was used, 0 without a share.</summary>
    public static double Factor(double usage, double totalUsage, double share, double totalShare)
    {
        if (!(share > 0) || !(totalShare > 0)) return 0;
        double normalisedUsage = totalUsage > 0 ? Math.Max(0, usage) / totalUsage : 0;
        double normalisedShare = share / totalShare;
        return Math.Pow(2, -normalisedUsage / normalisedShare);
    }

    /// <summary>
    /// The factors of every active user: those in <paramref name="usersWithJobs"/> and those whose decayed usage is
    /// above <see cref="ActiveUsageThreshold"/>.
    /// </summary>
    public static IReadOnlyDictionary<string, UserFairShare> Factors(
        SchedulingPolicy policy,
        IReadOnlyDictionary<string, double> userUsage,
        IReadOnlyDictionary<string, double> teamUsage,
        IEnumerable<string> usersWithJobs)
    {
        var active = new HashSet<string>(usersWithJobs, StringComparer.Ordinal);
        foreach (var (user, usage) in userUsage)
            if (usage > ActiveUsageThreshold) active.Add(user);

        var byTeam = active.GroupBy(policy.TeamOf, StringComparer.Ordinal).ToDictionary(g => g.Key, g => g.ToList(), StringComparer.Ordinal);
        // A team whose users were all idle but which still has decayed usage stays a sibling (its usage counts in the total).
        foreach (var (team, usage) in teamUsage)
            if (usage > ActiveUsageThreshold && !byTeam.ContainsKey(team)) byTeam[team] = [];

        double teamUsageTotal = byTeam.Keys.Sum(t => teamUsage.GetValueOrDefault(t));
        double teamShareTotal = byTeam.Keys.Sum(policy.TeamShare);
        var result = new Dictionary<string, UserFairShare>(StringComparer.Ordinal);
        foreach (var (team, users) in byTeam)
        {
            double teamFactor = Factor(teamUsage.GetValueOrDefault(team), teamUsageTotal, policy.TeamShare(team), teamShareTotal);
            double usageTotal = users.Sum(u => userUsage.GetValueOrDefault(u));
            double shareTotal = users.Sum(policy.UserShare);
            foreach (var user in users)
            {
                double userFactor = Factor(userUsage.GetValueOrDefault(user), usageTotal, policy.UserShare(user), shareTotal);
                result[user] = new UserFairShare(user, team, teamFactor, userFactor, userUsage.GetValueOrDefault(user),
                    teamUsage.GetValueOrDefault(team));
            }
        }
        return result;
    }

    /// <summary>The priority of a job of a user with factor <paramref name="factor"/> that has waited <paramref name="age"/>.</summary>
    public static double Priority(double factor, TimeSpan age, double boost, SchedulerOptions options)
    {
        double ageFraction = age <= TimeSpan.Zero ? 0 : Math.Min(1, age / options.MaxAge);
        return options.FairShareWeight * factor + options.AgeWeight * ageFraction + boost;
    }

    /// <summary>Waiting jobs, best first, with their owner's factor and their priority.</summary>
    public static IReadOnlyList<RankedJob> Rank(
        IReadOnlyList<WaitingJob> waiting,
        IReadOnlyDictionary<string, UserFairShare> factors,
        DateTimeOffset now,
        SchedulerOptions options)
    {
        var ranked = new List<RankedJob>(waiting.Count);
        foreach (var job in waiting)
        {
            double factor = factors.TryGetValue(job.OwnerId, out var f) ? f.Factor : 1;
            ranked.Add(new RankedJob(job, factor, Priority(factor, now - job.EnqueuedAt, job.Boost, options)));
        }
        ranked.Sort(static (a, b) =>
        {
            int byPriority = b.Priority.CompareTo(a.Priority);
            if (byPriority != 0) return byPriority;
            int byAge = a.Job.EnqueuedAt.CompareTo(b.Job.EnqueuedAt);
            return byAge != 0 ? byAge : a.Job.Id.CompareTo(b.Job.Id);
        });
        return ranked;
    }
}

/// <summary>A user's fair-share standing: <see cref="Factor"/> = <see cref="TeamFactor"/> · <see cref="UserFactor"/>.</summary>
public sealed record UserFairShare(string UserId, string TeamKey, double TeamFactor, double UserFactor, double UserUsage, double TeamUsage)
{
    public double Factor => TeamFactor * UserFactor;
}

/// <summary>A waiting job with its owner's factor and its priority.</summary>
public sealed record RankedJob(WaitingJob Job, double Factor, double Priority);
