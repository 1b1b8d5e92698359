using System.Security.Claims;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;
using PromptFaces.Data;
using PromptFaces.Data.Entities;
using PromptFaces.Data.Files;
using PromptFaces.Web.Security;

namespace PromptFaces.Web.Api;

/// <summary>
/// Image files: <c>/api/images/{id}</c> (the PNG), <c>/thumbnail</c>, <c>/download</c> (the PNG as an attachment, its
/// generation metadata embedded) and <c>/animation</c> (the GIF). Only those who may see the image get it; anyone
/// else gets 404, the same as for an id that does not exist, so ids cannot be probed.
/// </summary>
public static class ImageEndpoints
{
    public static RouteGroupBuilder MapImageEndpoints(this IEndpointRouteBuilder app)
    {
        var images = app.MapGroup("/api/images").RequireAuthorization();
        images.MapGet("/{id:guid}", (Guid id, ClaimsPrincipal user, PromptFacesDbContext db, ImageFileStore files, CancellationToken ct) =>
            Serve(id, user, db, files, i => i.FilePath, "image/png", null, ct));
        images.MapGet("/{id:guid}/thumbnail", (Guid id, ClaimsPrincipal user, PromptFacesDbContext db, ImageFileStore files, CancellationToken ct) =>
            Serve(id, user, db, files, i => i.ThumbnailPath, "image/jpeg", null, ct));
        images.MapGet("/{id:guid}/download", (Guid id, ClaimsPrincipal user, PromptFacesDbContext db, ImageFileStore files, CancellationToken ct) =>
            Serve(id, user, db, files, i => i.FilePath, "image/png", DownloadName, ct));
        images.MapGet("/{id:guid}/animation", (Guid id, ClaimsPrincipal user, PromptFacesDbContext db, ImageFileStore files, CancellationToken ct) =>
            Serve(id, user, db, files, i => i.AnimationPath, "image/gif", null, ct));
        return images;
    }

    private static string DownloadName(GeneratedImage image) => $"promptfaces-{image.Id:N}.png";

    private static async Task<Results<FileStreamHttpResult, NotFound>> Serve(Guid id, ClaimsPrincipal user, PromptFacesDbContext db,
        ImageFileStore files, Func<GeneratedImage, string?> pathOf, string contentType, Func<GeneratedImage, string>? downloadName, CancellationToken ct)
    {
        var viewer = user.ToViewer();
        if (viewer is null) return TypedResults.NotFound();
        var image = await db.Images.AsNoTracking().VisibleTo(viewer).FirstOrDefaultAsync(i => i.Id == id, ct);
        if (image is null || pathOf(image) is not { } path || files.OpenRead(path) is not { } stream) return TypedResults.NotFound();
        // Private: the response depends on who asks, so no shared cache may keep it.
        return TypedResults.Stream(stream, contentType, downloadName?.Invoke(image),
            lastModified: DateTime.SpecifyKind(image.CreatedAt, DateTimeKind.Utc), enableRangeProcessing: false);
    }
}
