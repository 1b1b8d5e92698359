using System.Security.Claims;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;
using PromptFaces.Data;
using PromptFaces.Web.Jobs;
using PromptFaces.Web.Security;

namespace PromptFaces.Web.Api;

/// <summary>
/// Jobs as JSON, for scripts and tests: <c>POST /api/jobs</c> submits (the same validation and limits as the Create
/// page), <c>GET /api/jobs/{id}</c> reads one, <c>POST /api/jobs/{id}/cancel</c> cancels. JSON bodies only, and the
/// Identity cookie is SameSite=Lax, so another site cannot post here on a user's behalf.
/// </summary>
public static class JobEndpoints
{
    public static RouteGroupBuilder MapJobEndpoints(this IEndpointRouteBuilder app)
    {
        var jobs = app.MapGroup("/api/jobs").RequireAuthorization();
        jobs.MapPost("/", Submit);
        jobs.MapGet("/{id:guid}", Get);
        jobs.MapPost("/{id:guid}/cancel", async Task<Results<NoContent, NotFound>> (Guid id, ClaimsPrincipal user, JobSubmissionService service, CancellationToken ct) =>
            await service.CancelAsync(user.ToViewer()!, id, ct) ? TypedResults.NoContent() : TypedResults.NotFound());
        return jobs;
    }

    public sealed record SubmittedJob(Guid Id, long Seed, int? QueuePosition, double? EstimatedWaitSeconds);

    public sealed record JobView(Guid Id, string Prompt, string? NegativePrompt, long Seed, int Steps, string Status, int StepsDone,
        double? Similarity, string? Error, Guid? ImageId, DateTime CreatedAt, DateTime? StartedAt, DateTime? FinishedAt);

    private static async Task<Results<Accepted<SubmittedJob>, ValidationProblem, ProblemHttpResult>> Submit(
        JobRequest request, ClaimsPrincipal user, JobSubmissionService service, CancellationToken ct)
    {
        var result = await service.SubmitAsync(user.ToViewer()!, request, ct);
        if (result.Errors.Count > 0)
            return TypedResults.ValidationProblem(result.Errors.ToDictionary(e => e.Key, e => new[] { e.Value }));
        if (result.Refusal is not null)
            return TypedResults.Problem(result.Refusal, statusCode: StatusCodes.Status429TooManyRequests, title: "Limit reached");
        return TypedResults.Accepted($"/api/jobs/{result.JobId}",
            new SubmittedJob(result.JobId!.Value, result.Seed, result.Queue?.Position, result.Queue?.EstimatedWait?.TotalSeconds));
    }

    private static async Task<Results<Ok<JobView>, NotFound>> Get(Guid id, ClaimsPrincipal user, PromptFacesDbContext db, CancellationToken ct)
    {
        var job = await db.Jobs.AsNoTracking().VisibleTo(user.ToViewer()!)
            .Where(j => j.Id == id)
            .Select(j => new JobView(j.Id, j.Prompt, j.NegativePrompt, j.Seed, j.Steps, j.Status.ToString(), j.StepsDone, j.Similarity,
                j.Error, j.Image != null ? j.Image.Id : null, j.CreatedAt, j.StartedAt, j.FinishedAt))
            .FirstOrDefaultAsync(ct);
        return job is null ? TypedResults.NotFound() : TypedResults.Ok(job);
    }
}
