using PromptFaces.Scheduling.FairShare;
using Xunit;

namespace PromptFaces.Scheduling.Tests;

/// <summary>The factor, the decay, and the priority formula on their own.</summary>
public sealed class FairShareCalculatorTests
{
    private static readonly DateTimeOffset T0 = new(2026, 3, 2, 8, 0, 0, TimeSpan.Zero);

    [Theory]
    [InlineData(0, 0, 1, 2, 1.0)]          // nothing used yet
    [InlineData(50, 100, 1, 2, 0.5)]       // used exactly its share
    [InlineData(100, 100, 1, 2, 0.25)]     // used everything with half the shares
    [InlineData(0, 100, 1, 2, 1.0)]        // used nothing while others did
    [InlineData(10, 100, 0, 2, 0.0)]       // no share
    public void Scheduler_factor_is_two_to_the_minus_normalised_usage_over_normalised_share(double usage, double total, double share, double shares, double expected)
    {
        Assert.Equal(expected, FairShareCalculator.Factor(usage, total, share, shares), 12);
    }

    [Fact]
    public void Scheduler_usage_halves_every_half_life_and_is_decayed_lazily()
    {
        var usage = new UsageAccounting(TimeSpan.FromHours(1));
        usage.Charge("u", "t", 100, T0);
        usage.Charge("u", "t", 100, T0.AddHours(1));

        Assert.Equal(150, usage.UserUsage("u", T0.AddHours(1)), 9);
        Assert.Equal(75, usage.UserUsage("u", T0.AddHours(2)), 9);
        Assert.Equal(75, usage.TeamUsage("t", T0.AddHours(2)), 9);
        Assert.Equal(200, usage.UsedToday("u", T0.AddHours(2)));
        Assert.Equal(0, usage.UsedToday("u", T0.AddDays(1)));
    }

    [Fact]
    public void Scheduler_user_factor_is_the_product_of_team_and_user_factors_over_active_siblings()
    {
        var policy = new SchedulingPolicy(
            new Dictionary<string, UserPolicy> { ["a"] = new("t1"), ["b"] = new("t1", Share: 3), ["c"] = new("t2"), ["idle"] = new("t3") },
            new Dictionary<string, TeamPolicy> { ["t1"] = new(Share: 1), ["t2"] = new(Share: 1), ["t3"] = new(Share: 100) },
            1, 1, QuotaLimits.None);
        var users = new Dictionary<string, double> { ["a"] = 30, ["b"] = 30, ["c"] = 0 };
        var teams = new Dictionary<string, double> { ["t1"] = 60 };

        var factors = FairShareCalculator.Factors(policy, users, teams, ["c"]);

        Assert.Equal(["a", "b", "c"], factors.Keys.Order());            // "idle" neither used nor waits
        Assert.Equal(Math.Pow(2, -2), factors["a"].TeamFactor, 12);    // t1 used all with half the (active) shares
        Assert.Equal(Math.Pow(2, -0.5 / 0.25), factors["a"].UserFactor, 12);
        Assert.Equal(Math.Pow(2, -0.5 / 0.75), factors["b"].UserFactor, 12);
        Assert.Equal(1.0, factors["c"].Factor, 12);
    }

    [Fact]
    public void Scheduler_priority_adds_weighted_factor_capped_age_and_boost_and_breaks_ties_first_in_first_out()
    {
        var options = new SchedulerOptions { FairShareWeight = 1000, AgeWeight = 500, MaxAge = TimeSpan.FromHours(1) };
        Assert.Equal(1000 * 0.5 + 250 + 7, FairShareCalculator.Priority(0.5, TimeSpan.FromMinutes(30), 7, options), 9);
        Assert.Equal(1000 * 0.5 + 500, FairShareCalculator.Priority(0.5, TimeSpan.FromHours(5), 0, options), 9);

        var early = new WaitingJob(Guid.Parse("00000000-0000-0000-0000-000000000002"), "x", T0, 10);
        var sameTimeSmallerId = new WaitingJob(Guid.Parse("00000000-0000-0000-0000-000000000001"), "y", T0.AddSeconds(1), 10);
        var later = new WaitingJob(Guid.Parse("00000000-0000-0000-0000-000000000003"), "z", T0.AddSeconds(1), 10);
        var zeroAge = new SchedulerOptions { AgeWeight = 0 };
        var ranked = FairShareCalculator.Rank([later, sameTimeSmallerId, early], new Dictionary<string, UserFairShare>(), T0.AddSeconds(1), zeroAge);

        Assert.Equal([early.Id, sameTimeSmallerId.Id, later.Id], ranked.Select(r => r.Job.Id));
    }
}
