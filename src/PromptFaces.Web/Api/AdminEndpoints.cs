using System.Security.Claims;
using Microsoft.AspNetCore.Http.HttpResults;
using PromptFaces.Data.Entities;
using PromptFaces.Web.Security;
using PromptFaces.Web.Services;

namespace PromptFaces.Web.Api;

/// <summary>
/// The admin pages' operations as JSON, for scripts and tests; admins only (others get 403, anonymous callers 401):
/// <c>GET /api/admin/queue</c>, <c>POST /api/admin/jobs/{id}/cancel</c>, <c>PUT /api/admin/jobs/{id}/boost</c>,
/// <c>PUT /api/admin/teams/{id}/scheduling</c>, <c>PUT /api/admin/users/{id}/scheduling</c>,
/// <c>POST /api/admin/users/{id}/disable</c> and <c>/enable</c>. Edits of shares and quotas take effect at once.
/// </summary>
public static class AdminEndpoints
{
    public static RouteGroupBuilder MapAdminEndpoints(this IEndpointRouteBuilder app)
    {
        var admin = app.MapGroup("/api/admin").RequireAuthorization(p => p.RequireRole(Roles.Admin));
        admin.MapGet("/queue", async (ClaimsPrincipal user, SchedulingAdminService service, CancellationToken ct) =>
            TypedResults.Ok(await service.QueueAsync(user.ToViewer()!, ct)));
        admin.MapPost("/jobs/{id:guid}/cancel", async Task<Results<NoContent, NotFound>> (Guid id, ClaimsPrincipal user,
            SchedulingAdminService service, CancellationToken ct) =>
            await service.CancelJobAsync(user.ToViewer()!, id, ct) ? TypedResults.NoContent() : TypedResults.NotFound());
        admin.MapPut("/jobs/{id:guid}/boost", async Task<Results<NoContent, NotFound>> (Guid id, BoostRequest request, ClaimsPrincipal user,
            SchedulingAdminService service, CancellationToken ct) =>
            await service.SetBoostAsync(user.ToViewer()!, id, request.Boost, ct) ? TypedResults.NoContent() : TypedResults.NotFound());
        admin.MapPut("/teams/{id:int}/scheduling", async Task<Results<NoContent, ProblemHttpResult>> (int id, PolicyRequest request,
            ClaimsPrincipal user, SchedulingAdminService service, CancellationToken ct) =>
            await service.SetTeamPolicyAsync(user.ToViewer()!, id, request.Share, request.ToQuotas(), ct) is { } error
                ? TypedResults.Problem(error, statusCode: StatusCodes.Status400BadRequest)
                : TypedResults.NoContent());
        admin.MapPut("/users/{id}/scheduling", async Task<Results<NoContent, ProblemHttpResult>> (string id, PolicyRequest request,
            ClaimsPrincipal user, SchedulingAdminService service, CancellationToken ct) =>
            await service.SetUserPolicyAsync(user.ToViewer()!, id, request.Share, request.ToQuotas(), request.SchedulingTeamId, ct) is { } error
                ? TypedResults.Problem(error, statusCode: StatusCodes.Status400BadRequest)
                : TypedResults.NoContent());
        admin.MapPost("/users/{id}/disable", async Task<Results<Ok<DisableResult>, ProblemHttpResult>> (string id, ClaimsPrincipal user,
            SchedulingAdminService service, CancellationToken ct) =>
            await service.DisableUserAsync(user.ToViewer()!, id, ct) is { Disabled: true } result
                ? TypedResults.Ok(result)
                : TypedResults.Problem("The account was not disabled.", statusCode: StatusCodes.Status400BadRequest));
        admin.MapPost("/users/{id}/enable", async Task<Results<NoContent, NotFound>> (string id, ClaimsPrincipal user,
            SchedulingAdminService service, CancellationToken ct) =>
            await service.EnableUserAsync(user.ToViewer()!, id, ct) ? TypedResults.NoContent() : TypedResults.NotFound());
        return admin;
    }

    public sealed record BoostRequest(double Boost);

    /// <summary>A share and quotas; null fields inherit (team defaults, then the configured defaults).</summary>
    public sealed record PolicyRequest(double? Share, int? MaxQueued, int? MaxRunning, int? MaxStepsPerJob, double? DeviceSecondsPerDay,
        int? SchedulingTeamId = null)
    {
        public QuotaSettings ToQuotas() => new()
        {
            MaxQueued = MaxQueued,
            MaxRunning = MaxRunning,
            MaxStepsPerJob = MaxStepsPerJob,
            DeviceSecondsPerDay = DeviceSecondsPerDay,
        };
    }
}
