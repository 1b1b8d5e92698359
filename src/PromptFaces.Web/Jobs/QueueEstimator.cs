using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using PromptFaces.Data;
using PromptFaces.Scheduling;
using PromptFaces.Scheduling.FairShare;

namespace PromptFaces.Web.Jobs;

/// <summary>A queued job's place (1 = next to start) and a rough wait, null while there is no history to go by.</summary>
public sealed record QueueEstimate(int Position, TimeSpan? EstimatedWait, DateTimeOffset? EstimatedStart);

/// <summary>
/// Estimates when a queued job starts, from the steps ahead of it and how long a step took in recent jobs. With
/// co-batching, every device's batch of jobs advances together, so the steps ahead are divided by the slots of all
/// devices. "Ahead" is the scheduler's present order (fair share, age, boost), so a light user's job is placed before a
/// heavy user's older ones; jobs submitted later may still overtake it, which is what fair share is for. Without the
/// scheduler's ranking (the job not seen yet), it falls back to queue order.
/// </summary>
public sealed class QueueEstimator(IDbContextFactory<PromptFacesDbContext> contexts, IOptions<SchedulerOptions> scheduler, TimeProvider clock,
    FairShareScheduler? ranking = null)
{
    public async Task<QueueEstimate?> EstimateAsync(Guid jobId, CancellationToken ct = default)
    {
        await using var db = await contexts.CreateDbContextAsync(ct);
        var job = await db.Jobs.AsNoTracking().FirstOrDefaultAsync(j => j.Id == jobId, ct);
        if (job is null || job.Status != JobStatus.Queued) return null;

        List<int>? ahead = null;
        if (ranking is not null)
        {
            var ranked = await ranking.RankQueueAsync(ct);
            int index = ranked.ToList().FindIndex(r => r.Job.Id == jobId);
            if (index >= 0) ahead = ranked.Take(index).Select(r => r.Job.Steps).ToList();
        }
        ahead ??= await db.Jobs.AsNoTracking()
            .Where(j => j.Status == JobStatus.Queued && j.CreatedAt < job.CreatedAt)
            .Select(j => j.Steps).ToListAsync(ct);
        var running = await db.Jobs.AsNoTracking().Where(j => j.Status == JobStatus.Running)
            .Select(j => new { j.Steps, j.StepsDone }).ToListAsync(ct);

        int batch = Math.Max(1, scheduler.Value.EffectiveDevices().Sum(d => d.MaxBatch));
        int position = ahead.Count + 1;
        var now = clock.GetUtcNow();
        if (ahead.Count + running.Count < batch) return new QueueEstimate(position, TimeSpan.Zero, now);

        var recent = await db.Jobs.AsNoTracking()
            .Where(j => j.Status == JobStatus.Completed && j.StartedAt != null && j.FinishedAt != null && j.StepsDone > 0)
            .OrderByDescending(j => j.FinishedAt).Take(20)
            .Select(j => new { j.StartedAt, j.FinishedAt, j.StepsDone }).ToListAsync(ct);
        if (recent.Count == 0) return new QueueEstimate(position, null, null);
        double secondsPerStep = recent.Average(r => (r.FinishedAt!.Value - r.StartedAt!.Value).TotalSeconds / r.StepsDone);
        double stepsAhead = ahead.Sum() + running.Sum(r => Math.Max(0, r.Steps - r.StepsDone));
        var wait = TimeSpan.FromSeconds(stepsAhead / batch * secondsPerStep);
        return new QueueEstimate(position, wait, now + wait);
    }
}
