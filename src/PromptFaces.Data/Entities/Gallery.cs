namespace PromptFaces.Data.Entities;

/// <summary>A named collection of its owner's images, visible to the owner, the teams it is shared with and admins.</summary>
public sealed class Gallery
{
    public Guid Id { get; set; }
    public required string OwnerId { get; set; }
    public AppUser? Owner { get; set; }
    public required string Name { get; set; }
    public string? Description { get; set; }
    public DateTime CreatedAt { get; set; }
    public List<GalleryItem> Items { get; set; } = [];
    public List<GalleryShare> Shares { get; set; } = [];
}

public sealed class GalleryShare
{
    public Guid GalleryId { get; set; }
    public Gallery? Gallery { get; set; }
    public int TeamId { get; set; }
    public Team? Team { get; set; }
}

public sealed class GalleryItem
{
    public Guid GalleryId { get; set; }
    public Gallery? Gallery { get; set; }
    public Guid ImageId { get; set; }
    public GeneratedImage? Image { get; set; }
    public DateTime AddedAt { get; set; }
}
