using PromptFaces.Data.Entities;

namespace PromptFaces.Data;

/// <summary>Who is asking: a signed-in user, and whether they are an admin.</summary>
public sealed record Viewer(string UserId, bool IsAdmin);

/// <summary>
/// The one definition of who may see what, used by pages, the image endpoints and the hub alike: an image or gallery
/// is visible to its owner, to members of a team a gallery holding it is shared with, and to admins.
/// </summary>
public static class Access
{
    public static IQueryable<Gallery> VisibleTo(this IQueryable<Gallery> galleries, Viewer viewer) =>
        viewer.IsAdmin
            ? galleries
            : galleries.Where(g => g.OwnerId == viewer.UserId
                || g.Shares.Any(s => s.Team!.Members.Any(m => m.UserId == viewer.UserId)));

    public static IQueryable<GeneratedImage> VisibleTo(this IQueryable<GeneratedImage> images, Viewer viewer) =>
        viewer.IsAdmin
            ? images
            : images.Where(i => i.OwnerId == viewer.UserId
                || i.GalleryItems.Any(item => item.Gallery!.Shares.Any(s => s.Team!.Members.Any(m => m.UserId == viewer.UserId))));

    /// <summary>Jobs are private to their owner (and admins).</summary>
    public static IQueryable<Job> VisibleTo(this IQueryable<Job> jobs, Viewer viewer) =>
        viewer.IsAdmin ? jobs : jobs.Where(j => j.OwnerId == viewer.UserId);
}
