using Microsoft.EntityFrameworkCore;
using PromptFaces.Data.Entities;
using PromptFaces.Data.Files;
using PromptFaces.Scheduling;

namespace PromptFaces.Data.Jobs;

/// <summary>
/// The job store on EF Core. Each call uses its own short-lived context, so the store is safe to share (the runner is
/// a singleton). A claim is a conditional update per job (<c>WHERE Status = 'Queued'</c>), so two claimers never get
/// the same job even without a transaction.
/// </summary>
public sealed class EfJobStore(IDbContextFactory<PromptFacesDbContext> contexts, ImageFileStore files, TimeProvider clock) : IJobStore
{
    public async Task<IReadOnlyList<ClaimedJob>> ClaimNextAsync(int max, CancellationToken cancellationToken)
    {
        if (max <= 0) return Array.Empty<ClaimedJob>();
        await using var db = await contexts.CreateDbContextAsync(cancellationToken);
        var candidates = await db.Jobs.AsNoTracking()
            .Where(j => j.Status == JobStatus.Queued)
            .OrderBy(j => j.CreatedAt).ThenBy(j => j.Id)
            .Take(max)
            .ToListAsync(cancellationToken);
        var claimed = new List<ClaimedJob>(candidates.Count);
        foreach (var job in candidates)
        {
            var now = clock.GetUtcNow().UtcDateTime;
            int updated = await db.Jobs
                .Where(j => j.Id == job.Id && j.Status == JobStatus.Queued)
                .ExecuteUpdateAsync(s => s.SetProperty(j => j.Status, JobStatus.Running).SetProperty(j => j.StartedAt, now), cancellationToken);
            if (updated == 1)
                claimed.Add(new ClaimedJob(new GenerationJob(job.Id, job.Prompt, job.NegativePrompt, job.Seed, job.Steps,
                    job.TruncationPsi, job.LearningRate, job.Cutouts, job.Starts, job.ResumeState), job.OwnerId));
        }
        return claimed;
    }

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

    public async Task RequeueAsync(Guid jobId, byte[]? resumeState, CancellationToken cancellationToken)
    {
        await using var db = await contexts.CreateDbContextAsync(cancellationToken);
        await db.Jobs.Where(j => j.Id == jobId && j.Status == JobStatus.Running)
            .ExecuteUpdateAsync(s => s.SetProperty(j => j.Status, JobStatus.Queued).SetProperty(j => j.ResumeState, resumeState), cancellationToken);
    }

    public async Task<int> RequeueInterruptedAsync(CancellationToken cancellationToken)
    {
        await using var db = await contexts.CreateDbContextAsync(cancellationToken);
        return await db.Jobs.Where(j => j.Status == JobStatus.Running)
            .ExecuteUpdateAsync(s => s.SetProperty(j => j.Status, JobStatus.Queued), cancellationToken);
    }

    private static string? Truncate(string? error) =>
        error is null || error.Length <= DataLimits.ErrorLength ? error : error[..(DataLimits.ErrorLength - 1)] + "…";
}
