using System.Collections.Concurrent;
using Microsoft.Extensions.Logging.Abstractions;
using PromptFaces.Scheduling;
using PromptFaces.Web.Progress;
using Xunit;

namespace PromptFaces.Web.Tests;

/// <summary>Latest-frame delivery: a slow connection gets the newest frame next, never a backlog; owners only.</summary>
public sealed class FrameDispatcherTests
{
    /// <summary>Records frames; each send waits until the test releases it, like a client that reads slowly.</summary>
    private sealed class GatedSender : IFrameSender
    {
        private readonly SemaphoreSlim _gate = new(0);
        public ConcurrentQueue<(string Connection, int Step)> Started { get; } = new();
        public ConcurrentQueue<(string Connection, int Step)> Sent { get; } = new();

        public async Task SendFrameAsync(string connectionId, StepEvent frame, DateTimeOffset producedAt)
        {
            Started.Enqueue((connectionId, frame.Step));
            await _gate.WaitAsync(TestContext.Current.CancellationToken);
            Sent.Enqueue((connectionId, frame.Step));
        }

        public void Release(int count = 1) => _gate.Release(count);
    }

    private static readonly Guid Job = Guid.NewGuid();

    private static StepEvent Frame(int step) => new(Job, step, 100, 0.1, [0xFF, 0xD8]);

    private static async Task Until(Func<bool> condition)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        while (!condition()) await Task.Delay(5, timeout.Token);
    }

    [Fact]
    public async Task While_a_send_is_in_flight_only_the_newest_frame_waits()
    {
        var sender = new GatedSender();
        var dispatcher = new FrameDispatcher(sender, NullLogger<FrameDispatcher>.Instance);
        dispatcher.Subscribe("c1", "owner", Job);

        dispatcher.Offer("owner", Frame(1));
        await Until(() => sender.Started.Count == 1);   // frame 1 is being sent, slowly
        for (int step = 2; step <= 50; step++) dispatcher.Offer("owner", Frame(step));

        sender.Release();                                // frame 1 done; the next send must be frame 50
        await Until(() => sender.Started.Count == 2);
        sender.Release();
        await Until(() => sender.Sent.Count == 2);

        Assert.Equal([1, 50], sender.Sent.Select(s => s.Step));
        Assert.Equal(2, sender.Started.Count);
    }

    [Fact]
    public async Task Frames_go_only_to_connections_of_the_owner_that_subscribed()
    {
        var sender = new GatedSender();
        sender.Release(100);
        var dispatcher = new FrameDispatcher(sender, NullLogger<FrameDispatcher>.Instance);
        dispatcher.Subscribe("owner-tab", "owner", Job);
        dispatcher.Subscribe("intruder", "someone-else", Job); // a slot that should never have been made
        // "owner-other-tab" did not subscribe.

        dispatcher.Offer("owner", Frame(1));
        await Until(() => sender.Sent.Count == 1);
        dispatcher.Offer("owner", Frame(2));
        await Until(() => sender.Sent.Count == 2);

        Assert.All(sender.Sent, s => Assert.Equal("owner-tab", s.Connection));
    }

    [Fact]
    public async Task A_removed_connection_gets_nothing_more()
    {
        var sender = new GatedSender();
        sender.Release(100);
        var dispatcher = new FrameDispatcher(sender, NullLogger<FrameDispatcher>.Instance);
        dispatcher.Subscribe("a", "owner", Job);
        dispatcher.Subscribe("b", "owner", Job);
        dispatcher.RemoveConnection("a");

        dispatcher.Offer("owner", Frame(1));
        await Until(() => sender.Sent.Count == 1);

        Assert.Equal("b", Assert.Single(sender.Sent).Connection);
    }
}
