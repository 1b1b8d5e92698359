using System.Collections.Concurrent;
using Microsoft.Extensions.Options;
using PromptFaces.Web.Hosting;

namespace PromptFaces.Web.Jobs;

/// <summary>
/// A sliding one-minute window of submissions per user, on the injected clock (so tests can move time). In memory: it
/// protects one app instance; several instances would share a store.
/// </summary>
public sealed class SubmissionRateLimiter(TimeProvider clock, IOptions<LimitsOptions> options)
{
    private static readonly TimeSpan Window = TimeSpan.FromMinutes(1);
    private readonly ConcurrentDictionary<string, Queue<DateTimeOffset>> _recent = new();

    /// <summary>Takes a slot for <paramref name="userId"/>, or says how long until one frees up.</summary>
    public bool TryAcquire(string userId, out TimeSpan retryAfter)
    {
        var now = clock.GetUtcNow();
        var queue = _recent.GetOrAdd(userId, _ => new Queue<DateTimeOffset>());
        lock (queue)
        {
            while (queue.Count > 0 && now - queue.Peek() >= Window) queue.Dequeue();
            if (queue.Count >= options.Value.SubmissionsPerMinute)
            {
                retryAfter = queue.Peek() + Window - now;
                return false;
            }
            queue.Enqueue(now);
            retryAfter = TimeSpan.Zero;
            return true;
        }
    }
}
