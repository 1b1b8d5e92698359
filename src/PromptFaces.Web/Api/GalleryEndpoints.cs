using System.Security.Claims;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;
using PromptFaces.Data;
using PromptFaces.Web.Security;

namespace PromptFaces.Web.Api;

/// <summary><c>GET /api/galleries/{id}</c>: a gallery and its image ids, for its owner, teams it is shared with and admins.</summary>
public static class GalleryEndpoints
{
    public sealed record GalleryView(Guid Id, string Name, string? Description, string Owner, IReadOnlyList<Guid> ImageIds, IReadOnlyList<string> SharedWith);

    public static RouteGroupBuilder MapGalleryEndpoints(this IEndpointRouteBuilder app)
    {
        var galleries = app.MapGroup("/api/galleries").RequireAuthorization();
        galleries.MapGet("/{id:guid}", async Task<Results<Ok<GalleryView>, NotFound>> (Guid id, ClaimsPrincipal user, PromptFacesDbContext db, CancellationToken ct) =>
        {
            var gallery = await db.Galleries.AsNoTracking().VisibleTo(user.ToViewer()!)
                .Where(g => g.Id == id)
                .Select(g => new GalleryView(g.Id, g.Name, g.Description, g.Owner!.UserName ?? "",
                    g.Items.OrderBy(i => i.AddedAt).Select(i => i.ImageId).ToList(),
                    g.Shares.Select(s => s.Team!.Name).ToList()))
                .FirstOrDefaultAsync(ct);
            return gallery is null ? TypedResults.NotFound() : TypedResults.Ok(gallery);
        });
        return galleries;
    }
}
