using System.Collections.Concurrent;
using PromptFaces.Scheduling;

namespace PromptFaces.Web.Progress;

/// <summary>
/// Sends one frame to one hub connection; completes when the connection has taken it. <paramref name="producedAt"/> is
/// when the engine handed the step over, so a client on the same clock can tell how old a frame is when it arrives.
/// </summary>
public interface IFrameSender
{
    Task SendFrameAsync(string connectionId, StepEvent frame, DateTimeOffset producedAt);
}

/// <summary>
/// Delivers step frames to the hub connections that subscribed to a job, each through a latest-frame slot: while a
/// send to a slow client is in flight, newer frames overwrite the waiting one, so a client always gets the newest
/// frame next and memory stays at one frame per connection and job, however slow the client. A frame is only ever
/// put in a slot whose connection belongs to the job's owner.
/// </summary>
public sealed class FrameDispatcher(IFrameSender sender, ILogger<FrameDispatcher> logger, TimeProvider? clock = null)
{
    private readonly TimeProvider _clock = clock ?? TimeProvider.System;
    private readonly ConcurrentDictionary<Guid, ConcurrentDictionary<string, Slot>> _byJob = new();
    private readonly ConcurrentDictionary<string, ConcurrentDictionary<Guid, byte>> _byConnection = new();
    private readonly ConcurrentDictionary<Guid, StampedFrame> _latest = new();   // each running job's newest frame

    /// <summary>Frames sent so far (for diagnostics and tests).</summary>
    public long FramesSent => Interlocked.Read(ref _sent);
    private long _sent;

    /// <summary>Routes frames of <paramref name="jobId"/> to the connection. The caller has checked that the
    /// connection's user owns the job.</summary>
    public void Subscribe(string connectionId, string userId, Guid jobId)
    {
        _byJob.GetOrAdd(jobId, _ => new()).GetOrAdd(connectionId, _ => new Slot(connectionId, userId, jobId));
        _byConnection.GetOrAdd(connectionId, _ => new())[jobId] = 0;
    }

    public void Unsubscribe(string connectionId, Guid jobId)
    {
        if (_byJob.TryGetValue(jobId, out var slots)) slots.TryRemove(connectionId, out _);
        if (_byConnection.TryGetValue(connectionId, out var jobs)) jobs.TryRemove(jobId, out _);
    }

    public void RemoveConnection(string connectionId)
    {
        if (!_byConnection.TryRemove(connectionId, out var jobs)) return;
        foreach (var jobId in jobs.Keys)
            if (_byJob.TryGetValue(jobId, out var slots)) slots.TryRemove(connectionId, out _);
    }

    /// <summary>Forgets a job's subscriptions once it has ended.</summary>
    public void RemoveJob(Guid jobId)
    {
        _latest.TryRemove(jobId, out _);
        if (!_byJob.TryRemove(jobId, out var slots)) return;
        foreach (var connectionId in slots.Keys)
            if (_byConnection.TryGetValue(connectionId, out var jobs)) jobs.TryRemove(jobId, out _);
    }

    /// <summary>Offers a frame of <paramref name="ownerId"/>'s job to every connection of that owner subscribed to it.</summary>
    public void Offer(string ownerId, StepEvent frame)
    {
        var stamped = new StampedFrame(frame, _clock.GetUtcNow());
        _latest[frame.JobId] = stamped;
        if (!_byJob.TryGetValue(frame.JobId, out var slots)) return;
        foreach (var slot in slots.Values)
            if (slot.UserId == ownerId) Put(slot, stamped);
    }

    /// <summary>Offers a frame to one subscribed connection only (a client that just subscribed gets the latest frame).
    /// It keeps the time it was first offered at, when it is the one this dispatcher saw last.</summary>
    public void OfferTo(string connectionId, StepEvent frame)
    {
        var stamped = _latest.TryGetValue(frame.JobId, out var latest) && latest.Frame == frame ? latest : new StampedFrame(frame, _clock.GetUtcNow());
        if (_byJob.TryGetValue(frame.JobId, out var slots) && slots.TryGetValue(connectionId, out var slot)) Put(slot, stamped);
    }

    private void Put(Slot slot, StampedFrame frame)
    {
        Interlocked.Exchange(ref slot.Waiting, frame);
        if (Interlocked.CompareExchange(ref slot.Sending, 1, 0) == 0) _ = PumpAsync(slot);
    }

    private async Task PumpAsync(Slot slot)
    {
        while (true)
        {
            var frame = Interlocked.Exchange(ref slot.Waiting, null);
            if (frame is null)
            {
                Volatile.Write(ref slot.Sending, 0);
                // A frame put after the exchange above but before the flag was cleared would otherwise wait for the next one.
                if (Volatile.Read(ref slot.Waiting) is null || Interlocked.CompareExchange(ref slot.Sending, 1, 0) != 0) return;
                continue;
            }
            try
            {
                await sender.SendFrameAsync(slot.ConnectionId, frame.Frame, frame.ProducedAt);
                Interlocked.Increment(ref _sent);
            }
            catch (Exception e)
            {
                logger.LogDebug(e, "A frame could not be sent to connection {ConnectionId}", slot.ConnectionId);
            }
        }
    }

    private sealed class Slot(string connectionId, string userId, Guid jobId)
    {
        public string ConnectionId { get; } = connectionId;
        public string UserId { get; } = userId;
        public Guid JobId { get; } = jobId;
        public StampedFrame? Waiting;
        public int Sending;
    }

    private sealed record StampedFrame(StepEvent Frame, DateTimeOffset ProducedAt);
}
