using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using PromptFaces.Data;
using PromptFaces.Data.Entities;
using PromptFaces.Data.Files;
using PromptFaces.Scheduling;
using PromptFaces.Scheduling.FairShare;
using PromptFaces.Web.Hosting;
using PromptFaces.Web.Progress;
using PromptFaces.Web.Security;

namespace PromptFaces.Web.Jobs;

/// <summary>How a submission went: accepted (with its place in the queue), invalid (per field), or refused by a limit.</summary>
public sealed record SubmissionResult
{
    public Guid? JobId { get; init; }
    public long Seed { get; init; }
    public QueueEstimate? Queue { get; init; }
    public IReadOnlyDictionary<string, string> Errors { get; init; } = new Dictionary<string, string>();
    /// <summary>A limit's message (rate or queue cap); null when no limit refused the job.</summary>
    public string? Refusal { get; init; }
    public bool Accepted => JobId is not null;
}

/// <summary>
/// Everything the pages and the API do to jobs: submit (validation, quotas, rate limit), cancel, delete, re-run.
/// Jobs are private: every call takes the <see cref="Viewer"/> and touches only what they own (admins: any).
/// </summary>
public sealed class JobSubmissionService(
    IDbContextFactory<PromptFacesDbContext> contexts,
    SubmissionRateLimiter rateLimiter,
    QueueEstimator estimator,
    IJobControl runner,
    QuotaGate quotas,
    JobProgressFeed feed,
    ImageFileStore files,
    TimeProvider clock,
    IOptions<LimitsOptions> limits,
    DisabledAccounts disabled)
{
    public const string DisabledMessage = "This account has been disabled by an administrator.";

    public async Task<SubmissionResult> SubmitAsync(Viewer viewer, JobRequest request, CancellationToken ct = default)
    {
        var errors = JobRequestValidator.Validate(request, limits.Value);
        if (errors.Count > 0) return new SubmissionResult { Errors = errors };

        var job = new Job
        {
            Id = Guid.NewGuid(),
            OwnerId = viewer.UserId,
            Prompt = request.Prompt.Trim(),
            NegativePrompt = string.IsNullOrWhiteSpace(request.NegativePrompt) ? null : request.NegativePrompt.Trim(),
            Seed = request.Seed ?? Random.Shared.NextInt64(0, int.MaxValue),
            Steps = request.Steps,
            TruncationPsi = request.TruncationPsi,
            LearningRate = request.LearningRate,
            Cutouts = request.Cutouts,
            Starts = request.Starts,
            Status = JobStatus.Queued,
            CreatedAt = clock.GetUtcNow().UtcDateTime,
        };
        // The quotas are checked and the job inserted under the gate, so racing submissions cannot overrun them.
        string? rateRefusal = null;
        var decision = await quotas.SubmitAsync(viewer.UserId, job.Steps, async token =>
        {
            // Checked under the gate: an account disabled meanwhile (its open circuit may still submit) queues nothing.
            if (await disabled.IsDisabledAsync(viewer.UserId, token))
            {
                rateRefusal = DisabledMessage;
                return false;
            }
            if (!rateLimiter.TryAcquire(viewer.UserId, out var retryAfter))
            {
                rateRefusal = $"You have submitted {limits.Value.SubmissionsPerMinute} jobs within a minute, the most allowed. Try again in {Math.Max(1, (int)Math.Ceiling(retryAfter.TotalSeconds))} seconds.";
                return false;
            }
            await using var db = await contexts.CreateDbContextAsync(token);
            db.Jobs.Add(job);
            await db.SaveChangesAsync(token);
            return true;
        }, ct);
        if (!decision.Enqueued) return new SubmissionResult { Refusal = decision.Message ?? rateRefusal ?? "The job was not queued." };
        runner.JobQueued();
        return new SubmissionResult { JobId = job.Id, Seed = job.Seed, Queue = await estimator.EstimateAsync(job.Id, ct) };
    }

    /// <summary>Submits a new job with a finished job's prompt and settings, seed included.</summary>
    public async Task<SubmissionResult> RerunAsync(Viewer viewer, Guid jobId, CancellationToken ct = default)
    {
        await using var db = await contexts.CreateDbContextAsync(ct);
        var job = await db.Jobs.AsNoTracking().VisibleTo(viewer).FirstOrDefaultAsync(j => j.Id == jobId, ct);
        if (job is null) return new SubmissionResult { Refusal = "That job does not exist." };
        return await SubmitAsync(viewer, new JobRequest
        {
            Prompt = job.Prompt,
            NegativePrompt = job.NegativePrompt,
            Seed = job.Seed,
            Steps = job.Steps,
            TruncationPsi = job.TruncationPsi,
            LearningRate = job.LearningRate,
            Cutouts = job.Cutouts,
            Starts = job.Starts,
        }, ct);
    }

    /// <summary>Cancels a queued or running job. False when the viewer has no such job or it has already ended.</summary>
    public async Task<bool> CancelAsync(Viewer viewer, Guid jobId, CancellationToken ct = default)
    {
        await using var db = await contexts.CreateDbContextAsync(ct);
        var job = await db.Jobs.AsNoTracking().VisibleTo(viewer).FirstOrDefaultAsync(j => j.Id == jobId, ct);
        if (job is null || job.Status.IsFinal()) return false;
        // A queued job is cancelled in place; the conditional update loses the race to a claim, and then the runner stops it.
        var now = clock.GetUtcNow().UtcDateTime;
        int updated = await db.Jobs.Where(j => j.Id == jobId && j.Status == JobStatus.Queued)
            .ExecuteUpdateAsync(s => s.SetProperty(j => j.Status, JobStatus.Cancelled).SetProperty(j => j.FinishedAt, now), ct);
        if (updated == 1)
            feed.PublishState(job.OwnerId, new JobStateChange(jobId, JobStatus.Cancelled, 0, null, null, null));
        else
            runner.CancelRunning(jobId);
        return true;
    }

    /// <summary>Deletes a job and its image files. A queued or running job is cancelled instead (delete it once stopped).</summary>
    public async Task<DeleteOutcome> DeleteAsync(Viewer viewer, Guid jobId, CancellationToken ct = default)
    {
        await using var db = await contexts.CreateDbContextAsync(ct);
        var job = await db.Jobs.VisibleTo(viewer).Include(j => j.Image).FirstOrDefaultAsync(j => j.Id == jobId, ct);
        if (job is null) return DeleteOutcome.NotFound;
        if (!job.Status.IsFinal())
        {
            await CancelAsync(viewer, jobId, ct);
            return DeleteOutcome.CancelledInstead;
        }
        var image = job.Image;
        db.Jobs.Remove(job);
        await db.SaveChangesAsync(ct);
        if (image is not null) files.Delete(image.FilePath, image.ThumbnailPath, image.AnimationPath);
        return DeleteOutcome.Deleted;
    }
}

public enum DeleteOutcome { Deleted, CancelledInstead, NotFound }
