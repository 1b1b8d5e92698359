using Microsoft.EntityFrameworkCore;
using PromptFaces.Data;
using PromptFaces.Data.Entities;

namespace PromptFaces.Web.Services;

/// <summary>An image as lists and cards show it.</summary>
public sealed record ImageCardModel(Guid Id, Guid JobId, string Prompt, string OwnerName, bool OwnedByViewer, bool IsFavourite, DateTime CreatedAt, double? Similarity);

/// <summary>A gallery as lists show it.</summary>
public sealed record GallerySummary(Guid Id, string Name, string? Description, string OwnerName, bool OwnedByViewer, int ImageCount, IReadOnlyList<string> SharedWith);

/// <summary>
/// Favourites and galleries. Every read goes through <see cref="Access"/>, every change checks ownership first; a
/// failed check looks the same as a missing id.
/// </summary>
public sealed class LibraryService(IDbContextFactory<PromptFacesDbContext> contexts, TimeProvider clock)
{
    public async Task<ImageCardModel?> GetImageAsync(Viewer viewer, Guid imageId, CancellationToken ct = default)
    {
        await using var db = await contexts.CreateDbContextAsync(ct);
        return await Cards(db.Images.AsNoTracking().VisibleTo(viewer).Where(i => i.Id == imageId), viewer).FirstOrDefaultAsync(ct);
    }

    public async Task<IReadOnlyList<ImageCardModel>> FavouritesAsync(Viewer viewer, CancellationToken ct = default)
    {
        await using var db = await contexts.CreateDbContextAsync(ct);
        var images = db.Images.AsNoTracking().VisibleTo(viewer).Where(i => i.Favourites.Any(f => f.UserId == viewer.UserId));
        return await Cards(images.OrderByDescending(i => i.CreatedAt), viewer).ToListAsync(ct);
    }

    /// <summary>The viewer's own images, newest first (for adding to galleries).</summary>
    public async Task<IReadOnlyList<ImageCardModel>> OwnImagesAsync(Viewer viewer, int take, CancellationToken ct = default)
    {
        await using var db = await contexts.CreateDbContextAsync(ct);
        return await Cards(db.Images.AsNoTracking().Where(i => i.OwnerId == viewer.UserId).OrderByDescending(i => i.CreatedAt).Take(take), viewer)
            .ToListAsync(ct);
    }

    /// <summary>Stars or unstars an image the viewer can see; returns the new state, or null when it is not visible.</summary>
    public async Task<bool?> SetFavouriteAsync(Viewer viewer, Guid imageId, bool favourite, CancellationToken ct = default)
    {
        await using var db = await contexts.CreateDbContextAsync(ct);
        if (!await db.Images.VisibleTo(viewer).AnyAsync(i => i.Id == imageId, ct)) return null;
        var existing = await db.Favourites.FindAsync([viewer.UserId, imageId], ct);
        if (favourite && existing is null)
            db.Favourites.Add(new Favourite { UserId = viewer.UserId, ImageId = imageId, CreatedAt = clock.GetUtcNow().UtcDateTime });
        else if (!favourite && existing is not null)
            db.Favourites.Remove(existing);
        await db.SaveChangesAsync(ct);
        return favourite;
    }

    public async Task<IReadOnlyList<GallerySummary>> GalleriesAsync(Viewer viewer, CancellationToken ct = default)
    {
        await using var db = await contexts.CreateDbContextAsync(ct);
        // Admins see all galleries through Access, but the list shows their own and those shared with their teams.
        var personal = viewer with { IsAdmin = false };
        var ordered = db.Galleries.AsNoTracking().VisibleTo(personal).OrderByDescending(g => g.OwnerId == viewer.UserId).ThenBy(g => g.Name);
        return await Summaries(ordered, viewer).ToListAsync(ct);
    }

    public async Task<GallerySummary?> GetGalleryAsync(Viewer viewer, Guid galleryId, CancellationToken ct = default)
    {
        await using var db = await contexts.CreateDbContextAsync(ct);
        return await Summaries(db.Galleries.AsNoTracking().VisibleTo(viewer).Where(g => g.Id == galleryId), viewer).FirstOrDefaultAsync(ct);
    }

    public async Task<IReadOnlyList<ImageCardModel>> GalleryImagesAsync(Viewer viewer, Guid galleryId, CancellationToken ct = default)
    {
        await using var db = await contexts.CreateDbContextAsync(ct);
        if (!await db.Galleries.VisibleTo(viewer).AnyAsync(g => g.Id == galleryId, ct)) return [];
        var images = db.Images.AsNoTracking().Where(i => i.GalleryItems.Any(gi => gi.GalleryId == galleryId)).OrderByDescending(i => i.CreatedAt);
        return await Cards(images, viewer).ToListAsync(ct);
    }

    public async Task<Guid> CreateGalleryAsync(Viewer viewer, string name, string? description, CancellationToken ct = default)
    {
        await using var db = await contexts.CreateDbContextAsync(ct);
        var gallery = new Gallery
        {
            Id = Guid.NewGuid(),
            OwnerId = viewer.UserId,
            Name = name.Trim(),
            Description = string.IsNullOrWhiteSpace(description) ? null : description.Trim(),
            CreatedAt = clock.GetUtcNow().UtcDateTime,
        };
        db.Galleries.Add(gallery);
        await db.SaveChangesAsync(ct);
        return gallery.Id;
    }

    public async Task<bool> DeleteGalleryAsync(Viewer viewer, Guid galleryId, CancellationToken ct = default)
    {
        await using var db = await contexts.CreateDbContextAsync(ct);
        return await db.Galleries.Where(g => g.Id == galleryId && (g.OwnerId == viewer.UserId || viewer.IsAdmin)).ExecuteDeleteAsync(ct) == 1;
    }

    /// <summary>The owner's galleries, for "add to gallery" menus.</summary>
    public async Task<IReadOnlyList<GallerySummary>> OwnGalleriesAsync(Viewer viewer, CancellationToken ct = default)
    {
        await using var db = await contexts.CreateDbContextAsync(ct);
        return await Summaries(db.Galleries.AsNoTracking().Where(g => g.OwnerId == viewer.UserId).OrderBy(g => g.Name), viewer).ToListAsync(ct);
    }

    /// <summary>Adds one of the viewer's own images to one of their galleries. False when either is not theirs.</summary>
    public async Task<bool> AddToGalleryAsync(Viewer viewer, Guid galleryId, Guid imageId, CancellationToken ct = default)
    {
        await using var db = await contexts.CreateDbContextAsync(ct);
        bool ownsGallery = await db.Galleries.AnyAsync(g => g.Id == galleryId && g.OwnerId == viewer.UserId, ct);
        bool ownsImage = await db.Images.AnyAsync(i => i.Id == imageId && i.OwnerId == viewer.UserId, ct);
        if (!ownsGallery || !ownsImage) return false;
        if (!await db.GalleryItems.AnyAsync(i => i.GalleryId == galleryId && i.ImageId == imageId, ct))
        {
            db.GalleryItems.Add(new GalleryItem { GalleryId = galleryId, ImageId = imageId, AddedAt = clock.GetUtcNow().UtcDateTime });
            await db.SaveChangesAsync(ct);
        }
        return true;
    }

    public async Task<bool> RemoveFromGalleryAsync(Viewer viewer, Guid galleryId, Guid imageId, CancellationToken ct = default)
    {
        await using var db = await contexts.CreateDbContextAsync(ct);
        return await db.GalleryItems
            .Where(i => i.GalleryId == galleryId && i.ImageId == imageId && (i.Gallery!.OwnerId == viewer.UserId || viewer.IsAdmin))
            .ExecuteDeleteAsync(ct) == 1;
    }

    /// <summary>The teams the viewer belongs to, with whether the gallery is shared with each.</summary>
    public async Task<IReadOnlyList<(int TeamId, string Name, bool Shared)>> ShareOptionsAsync(Viewer viewer, Guid galleryId, CancellationToken ct = default)
    {
        await using var db = await contexts.CreateDbContextAsync(ct);
        var rows = await db.Teams.AsNoTracking()
            .Where(t => t.Members.Any(m => m.UserId == viewer.UserId))
            .OrderBy(t => t.Name)
            .Select(t => new { t.Id, t.Name, Shared = t.Shares.Any(s => s.GalleryId == galleryId) })
            .ToListAsync(ct);
        return rows.Select(r => (r.Id, r.Name, r.Shared)).ToList();
    }

    /// <summary>Shares the viewer's gallery with one of the viewer's teams, or stops sharing. False when not allowed.</summary>
    public async Task<bool> SetShareAsync(Viewer viewer, Guid galleryId, int teamId, bool shared, CancellationToken ct = default)
    {
        await using var db = await contexts.CreateDbContextAsync(ct);
        bool ownsGallery = await db.Galleries.AnyAsync(g => g.Id == galleryId && g.OwnerId == viewer.UserId, ct);
        bool inTeam = await db.TeamMembers.AnyAsync(m => m.TeamId == teamId && m.UserId == viewer.UserId, ct);
        if (!ownsGallery || !inTeam) return false;
        var existing = await db.GalleryShares.FindAsync([galleryId, teamId], ct);
        if (shared && existing is null) db.GalleryShares.Add(new GalleryShare { GalleryId = galleryId, TeamId = teamId });
        else if (!shared && existing is not null) db.GalleryShares.Remove(existing);
        await db.SaveChangesAsync(ct);
        return true;
    }

    private static IQueryable<ImageCardModel> Cards(IQueryable<GeneratedImage> images, Viewer viewer) =>
        images.Select(i => new ImageCardModel(i.Id, i.JobId, i.Job!.Prompt, i.Owner!.UserName ?? "", i.OwnerId == viewer.UserId,
            i.Favourites.Any(f => f.UserId == viewer.UserId), i.CreatedAt, i.Job!.Similarity));

    private static IQueryable<GallerySummary> Summaries(IQueryable<Gallery> galleries, Viewer viewer) =>
        galleries.Select(g => new GallerySummary(g.Id, g.Name, g.Description, g.Owner!.UserName ?? "", g.OwnerId == viewer.UserId,
            g.Items.Count, g.Shares.Select(s => s.Team!.Name).ToList()));
}
