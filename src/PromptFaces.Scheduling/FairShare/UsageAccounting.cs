namespace PromptFaces.Scheduling.FairShare;

/// <summary>
/// A quantity that halves every half-life. It is stored as a value and the time it was last brought up to date, and
/// decayed lazily: reading it at time t gives <c>value · 2^-((t - asOf) / halfLife)</c>.
/// </summary>
public struct DecayingValue
{
    public double Value { get; private set; }
    public DateTimeOffset AsOf { get; private set; }

    /// <summary>The value at <paramref name="now"/> (never grows; a time before <see cref="AsOf"/> reads the stored value).</summary>
    public readonly double At(DateTimeOffset now, TimeSpan halfLife) =>
        Value == 0 || now <= AsOf ? Value : Value * Math.Pow(2, -(now - AsOf) / halfLife);

    /// <summary>Adds <paramref name="amount"/> charged at <paramref name="at"/>. A charge older than the stored
    /// value is decayed to the stored time instead, so charges may arrive in any order.</summary>
    public void Add(double amount, DateTimeOffset at, TimeSpan halfLife)
    {
        if (Value == 0 && AsOf == default)
        {
            Value = amount;
            AsOf = at;
        }
        else if (at >= AsOf)
        {
            Value = At(at, halfLife) + amount;
            AsOf = at;
        }
        else
        {
            Value += amount * Math.Pow(2, -(AsOf - at) / halfLife);
        }
    }
}

/// <summary>
/// Device-seconds used, per user and per team, decayed with <see cref="SchedulerOptions.UsageHalfLife"/> for the
/// fair-share factor, and undecayed per user and UTC day for the daily quota. One instance per process, shared by the
/// workers and the quota gate; thread-safe.
/// </summary>
/// <remarks>
/// This is the in-process view: it is charged at every step, before the store's usage records are written (those are
/// flushed at progress writes, checkpoints and job ends), and is seeded from the store's records when the scheduler
/// starts. Workers in several processes would each seed from, and write to, the shared store; their views then lag
/// each other by one flush interval.
/// </remarks>
public sealed class UsageAccounting(TimeSpan halfLife)
{
    private readonly Lock _gate = new();
    private readonly Dictionary<string, DecayingValue> _users = new(StringComparer.Ordinal);
    private readonly Dictionary<string, DecayingValue> _teams = new(StringComparer.Ordinal);
    private readonly Dictionary<(string User, DateOnly Day), double> _daily = new();
    private readonly Dictionary<string, double> _totals = new(StringComparer.Ordinal);
    private int _seeded;

    public TimeSpan HalfLife { get; } = halfLife;

    /// <summary>Whether <see cref="Seed"/> has run.</summary>
    public bool IsSeeded => Volatile.Read(ref _seeded) == 1;

    /// <summary>Charges <paramref name="deviceSeconds"/> to the user and to the team, at <paramref name="at"/>.</summary>
    public void Charge(string userId, string teamKey, double deviceSeconds, DateTimeOffset at)
    {
        if (!(deviceSeconds > 0)) return;
        lock (_gate)
        {
            Add(_users, userId, deviceSeconds, at);
            Add(_teams, teamKey, deviceSeconds, at);
            var key = (userId, DayOf(at));
            _daily[key] = _daily.GetValueOrDefault(key) + deviceSeconds;
            _totals[userId] = _totals.GetValueOrDefault(userId) + deviceSeconds;
        }
    }

    /// <summary>Charges records read from the store, once per instance (a later call does nothing and returns false).</summary>
    public bool Seed(IEnumerable<UsageCharge> charges)
    {
        if (Interlocked.Exchange(ref _seeded, 1) == 1) return false;
        foreach (var charge in charges) Charge(charge.UserId, charge.TeamKey, charge.DeviceSeconds, charge.At);
        return true;
    }

    public double UserUsage(string userId, DateTimeOffset now)
    {
        lock (_gate) return _users.TryGetValue(userId, out var v) ? v.At(now, HalfLife) : 0;
    }

    public double TeamUsage(string teamKey, DateTimeOffset now)
    {
        lock (_gate) return _teams.TryGetValue(teamKey, out var v) ? v.At(now, HalfLife) : 0;
    }

    /// <summary>Decayed usage of every user known, at <paramref name="now"/>.</summary>
    public IReadOnlyDictionary<string, double> UserUsages(DateTimeOffset now)
    {
        lock (_gate) return _users.ToDictionary(p => p.Key, p => p.Value.At(now, HalfLife), StringComparer.Ordinal);
    }

    /// <summary>Decayed usage of every team known, at <paramref name="now"/>.</summary>
    public IReadOnlyDictionary<string, double> TeamUsages(DateTimeOffset now)
    {
        lock (_gate) return _teams.ToDictionary(p => p.Key, p => p.Value.At(now, HalfLife), StringComparer.Ordinal);
    }

    /// <summary>Device-seconds the user used on the UTC day of <paramref name="now"/> (undecayed).</summary>
    public double UsedToday(string userId, DateTimeOffset now)
    {
        lock (_gate) return _daily.GetValueOrDefault((userId, DayOf(now)));
    }

    /// <summary>All device-seconds charged to the user since this instance was made (seed included), undecayed.</summary>
    public double TotalCharged(string userId)
    {
        lock (_gate) return _totals.GetValueOrDefault(userId);
    }

    /// <summary>When the daily quota of the day of <paramref name="now"/> resets: the next 00:00 UTC.</summary>
    public static DateTimeOffset NextReset(DateTimeOffset now) =>
        new DateTimeOffset(DayOf(now).ToDateTime(TimeOnly.MinValue), TimeSpan.Zero).AddDays(1);

    /// <summary>00:00 UTC of the day of <paramref name="now"/>.</summary>
    public static DateTimeOffset StartOfDay(DateTimeOffset now) => NextReset(now).AddDays(-1);

    private static DateOnly DayOf(DateTimeOffset at) => DateOnly.FromDateTime(at.UtcDateTime);

    private void Add(Dictionary<string, DecayingValue> values, string key, double amount, DateTimeOffset at)
    {
        values.TryGetValue(key, out var value);
        value.Add(amount, at, HalfLife);
        values[key] = value;
    }
}
