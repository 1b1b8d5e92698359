using Microsoft.Extensions.Options;
using PromptFaces.Scheduling;
using PromptFaces.Web.Hosting;

namespace PromptFaces.Web.Tests;

/// <summary>Counts words as tokens in a 16-token context; returns null when told there are no models.</summary>
public sealed class FakeTokenizer(bool available = true) : IPromptTokenizer
{
    public const int Context = 16;

    public PromptTokenCount? Count(string prompt)
    {
        if (!available) return null;
        int tokens = prompt.Split(' ', StringSplitOptions.RemoveEmptyEntries).Length + 2;
        return new PromptTokenCount(tokens, Context, tokens > Context ? $"The last {tokens - Context} tokens will be dropped." : null);
    }
}

/// <summary>A clock that moves only when told to.</summary>
public sealed class ManualClock(DateTimeOffset start) : TimeProvider
{
    private DateTimeOffset _now = start;

    public override DateTimeOffset GetUtcNow() => _now;

    public void Advance(TimeSpan by) => _now += by;
}

public static class TestOptions
{
    public static IOptions<LimitsOptions> Limits(int perMinute = 10, int maxQueued = 5) =>
        Options.Create(new LimitsOptions { SubmissionsPerMinute = perMinute, MaxQueuedJobsPerUser = maxQueued });
}
