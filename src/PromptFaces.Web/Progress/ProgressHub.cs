using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.SignalR;
using Microsoft.EntityFrameworkCore;
using PromptFaces.Data;
using PromptFaces.Scheduling;
using PromptFaces.Web.Security;

namespace PromptFaces.Web.Progress;

/// <summary>
/// Live job progress, at <c>/hubs/progress</c> with the MessagePack protocol. A signed-in user subscribes to one of
/// their own jobs and then receives its frames: <c>frame(jobId, step, totalSteps, similarity, jpegBytes, producedAtUnixMs)</c>. State
/// changes of all their jobs arrive as <c>state(jobId, status, stepsDone, similarity, imageId, error)</c>. Nothing is
/// ever sent to everyone, nor to another user's connections.
/// </summary>
[Authorize]
public sealed class ProgressHub(IDbContextFactory<PromptFacesDbContext> contexts, FrameDispatcher frames, JobProgressFeed feed) : Hub
{
    public const string Path = "/hubs/progress";
    public const string FrameMethod = "frame";
    public const string StateMethod = "state";

    /// <summary>
    /// Starts frames of <paramref name="jobId"/> to this connection and returns where the job is, or null when the
    /// caller owns no such job. A running job's latest frame follows at once, so a page that comes back shows it.
    /// </summary>
    public async Task<JobSnapshot?> Subscribe(string jobId)
    {
        var viewer = Context.User?.ToViewer();
        if (viewer is null || !Guid.TryParse(jobId, out var id)) return null;
        await using var db = await contexts.CreateDbContextAsync(Context.ConnectionAborted);
        // Owner only, admins included: frames are the owner's.
        var job = await db.Jobs.AsNoTracking().Where(j => j.Id == id && j.OwnerId == viewer.UserId)
            .Select(j => new { j.Status, j.StepsDone, j.Steps, j.Similarity, ImageId = j.Image != null ? (Guid?)j.Image.Id : null, j.Error })
            .FirstOrDefaultAsync(Context.ConnectionAborted);
        if (job is null) return null;

        frames.Subscribe(Context.ConnectionId, viewer.UserId, id);
        var live = feed.Get(id);
        if (live?.LatestFrame is { } latest) frames.OfferTo(Context.ConnectionId, latest);
        return new JobSnapshot(jobId, (live?.Status ?? job.Status).ToString(), live?.Step ?? job.StepsDone, job.Steps,
            live?.Similarity ?? job.Similarity, live?.Similarities.ToArray() ?? [], job.ImageId?.ToString(), job.Error);
    }

    public Task Unsubscribe(string jobId)
    {
        if (Guid.TryParse(jobId, out var id)) frames.Unsubscribe(Context.ConnectionId, id);
        return Task.CompletedTask;
    }

    public override Task OnDisconnectedAsync(Exception? exception)
    {
        frames.RemoveConnection(Context.ConnectionId);
        return base.OnDisconnectedAsync(exception);
    }
}

/// <summary>Where a job stands when a client subscribes (plain types, so MessagePack clients in any language read it).</summary>
public sealed record JobSnapshot(string JobId, string Status, int Step, int TotalSteps, double? Similarity, double[] Similarities, string? ImageId, string? Error);

/// <summary>Frames through the hub context to one connection.</summary>
public sealed class HubFrameSender(IHubContext<ProgressHub> hub) : IFrameSender
{
    public Task SendFrameAsync(string connectionId, StepEvent frame, DateTimeOffset producedAt) =>
        hub.Clients.Client(connectionId).SendAsync(ProgressHub.FrameMethod,
            frame.JobId.ToString(), frame.Step, frame.TotalSteps, frame.Similarity, frame.PreviewJpeg ?? [],
            (double)producedAt.ToUnixTimeMilliseconds());
}

/// <summary>
/// The web's <see cref="IProgressNotifier"/>: steps go to the in-process feed (server-side components) and, as
/// frames, to the owner's subscribed hub connections; state changes go to all the owner's connections.
/// </summary>
public sealed class WebProgressNotifier(JobProgressFeed feed, FrameDispatcher frames, IHubContext<ProgressHub> hub, ILogger<WebProgressNotifier> logger)
    : IProgressNotifier
{
    public ValueTask StepAsync(string ownerId, StepEvent step)
    {
        feed.PublishStep(ownerId, step);
        frames.Offer(ownerId, step);
        return ValueTask.CompletedTask;
    }

    public async ValueTask StateChangedAsync(string ownerId, JobStateChange change)
    {
        feed.PublishState(ownerId, change);
        if (change.Status.IsFinal()) frames.RemoveJob(change.JobId);
        try
        {
            // Clients.User: every connection of the owner, and only theirs.
            await hub.Clients.User(ownerId).SendAsync(ProgressHub.StateMethod, change.JobId.ToString(), change.Status.ToString(),
                change.StepsDone, change.Similarity, change.ImageId?.ToString(), change.Error);
        }
        catch (Exception e)
        {
            logger.LogDebug(e, "A state change of job {JobId} could not be sent", change.JobId);
        }
    }
}
