namespace PromptFaces.Data.Entities;

/// <summary>
/// The face a completed job produced. Paths are relative to the data folder's image store, never absolute, so the
/// data folder can move.
/// </summary>
public sealed class GeneratedImage
{
    public Guid Id { get; set; }
    public Guid JobId { get; set; }
    public Job? Job { get; set; }
    public required string OwnerId { get; set; }
    public AppUser? Owner { get; set; }

    public required string FilePath { get; set; }
    public required string ThumbnailPath { get; set; }
    public string? AnimationPath { get; set; }
    public int Width { get; set; }
    public int Height { get; set; }
    public DateTime CreatedAt { get; set; }

    public List<Favourite> Favourites { get; set; } = [];
    public List<GalleryItem> GalleryItems { get; set; } = [];
}

/// <summary>A user's star on an image they can see.</summary>
public sealed class Favourite
{
    public required string UserId { get; set; }
    public AppUser? User { get; set; }
    public Guid ImageId { get; set; }
    public GeneratedImage? Image { get; set; }
    public DateTime CreatedAt { get; set; }
}
