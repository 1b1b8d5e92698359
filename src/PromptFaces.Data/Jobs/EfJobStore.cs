using Microsoft.EntityFrameworkCore;
using PromptFaces.Data.Entities;
using PromptFaces.Data.Files;
using PromptFaces.Scheduling;
using PromptFaces.Scheduling.FairShare;

namespace PromptFaces.Data.Jobs;

/// <summary>
/// The job store on EF Core behind the fair-share scheduler (<see cref="ISchedulerStore"/>). Each call uses its own
/// short-lived context, so the store is safe to share (the scheduler is a singleton). A claim is a conditional update per job (<c>WHERE Status = 'Queued'</c>), so two
/// claimers never get the same job even without a transaction; on PostgreSQL the same statements serve workers in
/// several processes.
/// </summary>
public sealed class EfJobStore(IDbContextFactory<PromptFacesDbContext> contexts, ImageFileStore files, TimeProvider clock)
    : ISchedulerStore
{
    public async Task RecordProgressAsync(Guid jobId, int stepsDone, double similarity, CancellationToken cancellationToken)
    {
        await using var db = await contexts.CreateDbContextAsync(cancellationToken);
        double? value = double.IsFinite(similarity) ? similarity : null;
        await db.Jobs.Where(j => j.Id == jobId && j.Status == JobStatus.Running)
            .ExecuteUpdateAsync(s => s.SetProperty(j => j.StepsDone, stepsDone).SetProperty(j => j.Similarity, value), cancellationToken);
    }

    public async Task<Guid?> CompleteAsync(FinishedJob result, CancellationToken cancellationToken)
    {
        await using var db = await contexts.CreateDbContextAsync(cancellationToken);
        var job = await db.Jobs.FirstOrDefaultAsync(j => j.Id == result.JobId, cancellationToken);
        if (job is null) return null; // deleted while it ran
        var now = clock.GetUtcNow().UtcDateTime;
        job.Status = result.Status switch
        {
            FinishStatus.Completed => JobStatus.Completed,
            FinishStatus.Cancelled => JobStatus.Cancelled,
            _ => JobStatus.Failed,
        };
        job.FinishedAt = now;
        job.StartedAt ??= now;
        job.StepsDone = result.StepsRun;
        job.Similarity = double.IsFinite(result.Similarity) ? result.Similarity : job.Similarity;
        job.Error = Truncate(result.Error);
        job.ResumeState = null;
        job.CheckpointStep = 0;
        job.ClaimedBy = null;

        Guid? imageId = null;
        StoredImageFiles? stored = null;
        if (job.Status == JobStatus.Completed)
        {
            if (result.Png is null)
            {
                job.Status = JobStatus.Failed;
                job.Error = "The engine finished the job without an image.";
            }
            else
            {
                var id = Guid.NewGuid();
                stored = files.Save(id, now, result.Png, result.AnimationGif);
                db.Images.Add(new GeneratedImage
                {
                    Id = id,
                    JobId = job.Id,
                    OwnerId = job.OwnerId,
                    FilePath = stored.FilePath,
                    ThumbnailPath = stored.ThumbnailPath,
                    AnimationPath = stored.AnimationPath,
                    Width = stored.Width,
                    Height = stored.Height,
                    CreatedAt = now,
                });
                imageId = id;
            }
        }
        try
        {
            await db.SaveChangesAsync(cancellationToken);
        }
        catch
        {
            if (stored is not null) files.Delete(stored.FilePath, stored.ThumbnailPath, stored.AnimationPath);
            throw;
        }
        return imageId;
    }

    public async Task<QueueSnapshot> GetQueueAsync(CancellationToken cancellationToken)
    {
        await using var db = await contexts.CreateDbContextAsync(cancellationToken);
        var waiting = await db.Jobs.AsNoTracking()
            .Where(j => j.Status == JobStatus.Queued)
            .OrderBy(j => j.CreatedAt).ThenBy(j => j.Id)
            .Select(j => new { j.Id, j.OwnerId, j.CreatedAt, j.Steps, j.PriorityBoost })
            .ToListAsync(cancellationToken);
        var running = await db.Jobs.AsNoTracking()
            .Where(j => j.Status == JobStatus.Running)
            .GroupBy(j => j.OwnerId)
            .Select(g => new { Owner = g.Key, Count = g.Count() })
            .ToListAsync(cancellationToken);
        return new QueueSnapshot(
            waiting.Select(j => new WaitingJob(j.Id, j.OwnerId, Utc(j.CreatedAt), j.Steps, j.PriorityBoost)).ToList(),
            running.ToDictionary(r => r.Owner, r => r.Count, StringComparer.Ordinal));
    }

    public async Task<IReadOnlyList<ClaimedJob>> ClaimAsync(IReadOnlyList<Guid> jobIds, string workerId, CancellationToken cancellationToken)
    {
        if (jobIds.Count == 0) return Array.Empty<ClaimedJob>();
        await using var db = await contexts.CreateDbContextAsync(cancellationToken);
        var claimed = new List<ClaimedJob>(jobIds.Count);
        foreach (var id in jobIds)
        {
            var now = clock.GetUtcNow().UtcDateTime;
            // Whether the job ever started, read before the claim sets StartedAt (a queued job's row does not change
            // meanwhile except by a claim or a cancel, which the conditional update below detects).
            bool startedBefore = await db.Jobs.AsNoTracking().AnyAsync(j => j.Id == id && j.StartedAt != null, cancellationToken);
            int updated = await db.Jobs
                .Where(j => j.Id == id && j.Status == JobStatus.Queued)
                .ExecuteUpdateAsync(s => s
                    .SetProperty(j => j.Status, JobStatus.Running)
                    .SetProperty(j => j.ClaimedBy, workerId)
                    .SetProperty(j => j.StartedAt, j => j.StartedAt ?? now), cancellationToken);
            if (updated != 1) continue;
            var job = await db.Jobs.AsNoTracking().FirstAsync(j => j.Id == id, cancellationToken);
            claimed.Add(new ClaimedJob(new GenerationJob(job.Id, job.Prompt, job.NegativePrompt, job.Seed, job.Steps,
                job.TruncationPsi, job.LearningRate, job.Cutouts, job.Starts, job.ResumeState), job.OwnerId,
                job.ResumeState is null ? 0 : job.CheckpointStep, FirstStart: !startedBefore));
        }
        return claimed;
    }

    public async Task SaveCheckpointAsync(Guid jobId, int stepsDone, byte[] state, CancellationToken cancellationToken)
    {
        await using var db = await contexts.CreateDbContextAsync(cancellationToken);
        await db.Jobs.Where(j => j.Id == jobId && j.Status == JobStatus.Running)
            .ExecuteUpdateAsync(s => s
                .SetProperty(j => j.ResumeState, state)
                .SetProperty(j => j.CheckpointStep, stepsDone)
                .SetProperty(j => j.StepsDone, stepsDone), cancellationToken);
    }

    public async Task RecordUsageAsync(IReadOnlyList<UsageCharge> charges, CancellationToken cancellationToken)
    {
        if (charges.Count == 0) return;
        await using var db = await contexts.CreateDbContextAsync(cancellationToken);
        await using var transaction = await db.Database.BeginTransactionAsync(cancellationToken);
        foreach (var charge in charges)
        {
            db.UsageRecords.Add(new UsageRecord
            {
                JobId = charge.JobId,
                UserId = charge.UserId,
                TeamKey = charge.TeamKey,
                At = charge.At.UtcDateTime,
                DeviceSeconds = charge.DeviceSeconds,
            });
            double seconds = charge.DeviceSeconds;
            await db.Jobs.Where(j => j.Id == charge.JobId)
                .ExecuteUpdateAsync(s => s.SetProperty(j => j.DeviceSeconds, j => j.DeviceSeconds + seconds), cancellationToken);
        }
        await db.SaveChangesAsync(cancellationToken);
        await transaction.CommitAsync(cancellationToken);
    }

    public async Task<IReadOnlyList<UsageCharge>> GetUsageSinceAsync(DateTimeOffset since, CancellationToken cancellationToken)
    {
        await using var db = await contexts.CreateDbContextAsync(cancellationToken);
        var from = since.UtcDateTime;
        var records = await db.UsageRecords.AsNoTracking().Where(u => u.At >= from).OrderBy(u => u.Id).ToListAsync(cancellationToken);
        return records.Select(u => new UsageCharge(u.JobId, u.UserId, u.TeamKey, Utc(u.At), u.DeviceSeconds)).ToList();
    }

    public async Task RequeueAsync(Guid jobId, int stepsDone, byte[]? state, CancellationToken cancellationToken)
    {
        await using var db = await contexts.CreateDbContextAsync(cancellationToken);
        var running = db.Jobs.Where(j => j.Id == jobId && j.Status == JobStatus.Running);
        if (state is not null)
            await running.ExecuteUpdateAsync(s => s
                .SetProperty(j => j.Status, JobStatus.Queued)
                .SetProperty(j => j.ClaimedBy, (string?)null)
                .SetProperty(j => j.ResumeState, state)
                .SetProperty(j => j.CheckpointStep, stepsDone)
                .SetProperty(j => j.StepsDone, stepsDone), cancellationToken);
        else
            await running.ExecuteUpdateAsync(s => s
                .SetProperty(j => j.Status, JobStatus.Queued)
                .SetProperty(j => j.ClaimedBy, (string?)null)
                .SetProperty(j => j.StepsDone, j => j.ResumeState == null ? 0 : j.CheckpointStep), cancellationToken);
    }

    public async Task<string?> CancelQueuedAsync(Guid jobId, CancellationToken cancellationToken)
    {
        await using var db = await contexts.CreateDbContextAsync(cancellationToken);
        var owner = await db.Jobs.AsNoTracking().Where(j => j.Id == jobId).Select(j => j.OwnerId).FirstOrDefaultAsync(cancellationToken);
        if (owner is null) return null;
        var now = clock.GetUtcNow().UtcDateTime;
        int updated = await db.Jobs.Where(j => j.Id == jobId && j.Status == JobStatus.Queued)
            .ExecuteUpdateAsync(s => s
                .SetProperty(j => j.Status, JobStatus.Cancelled)
                .SetProperty(j => j.FinishedAt, now)
                .SetProperty(j => j.ResumeState, (byte[]?)null), cancellationToken);
        return updated == 1 ? owner : null;
    }

    public async Task<int> RecoverInterruptedAsync(IReadOnlyCollection<string> workerIds, CancellationToken cancellationToken)
    {
        await using var db = await contexts.CreateDbContextAsync(cancellationToken);
        var ids = workerIds.ToList();
        return await db.Jobs
            .Where(j => j.Status == JobStatus.Running && (j.ClaimedBy == null || ids.Contains(j.ClaimedBy)))
            .ExecuteUpdateAsync(s => s
                .SetProperty(j => j.Status, JobStatus.Queued)
                .SetProperty(j => j.ClaimedBy, (string?)null)
                .SetProperty(j => j.StepsDone, j => j.ResumeState == null ? 0 : j.CheckpointStep), cancellationToken);
    }

    public async Task<int> CountOpenJobsAsync(string ownerId, CancellationToken cancellationToken)
    {
        await using var db = await contexts.CreateDbContextAsync(cancellationToken);
        return await db.Jobs.CountAsync(j => j.OwnerId == ownerId && (j.Status == JobStatus.Queued || j.Status == JobStatus.Running), cancellationToken);
    }

    private static DateTimeOffset Utc(DateTime value) => new(DateTime.SpecifyKind(value, DateTimeKind.Utc));

    private static string? Truncate(string? error) =>
        error is null || error.Length <= DataLimits.ErrorLength ? error : error[..(DataLimits.ErrorLength - 1)] + "…";
}
