namespace PromptFaces.Data.Entities;

/// <summary>A group of users that galleries can be shared with. A user may belong to several teams.</summary>
public sealed class Team
{
    public int Id { get; set; }
    public required string Name { get; set; }
    public DateTime CreatedAt { get; set; }

    /// <summary>The team's fair-share share; null: the configured default.</summary>
    public double? Share { get; set; }

    /// <summary>Quotas of the team's members who have none of their own; null limits fall back to the configured
    /// defaults.</summary>
    public QuotaSettings DefaultQuotas { get; set; } = new();

    public List<TeamMember> Members { get; set; } = [];
    public List<GalleryShare> Shares { get; set; } = [];
}

public sealed class TeamMember
{
    public int TeamId { get; set; }
    public Team? Team { get; set; }
    public required string UserId { get; set; }
    public AppUser? User { get; set; }
    public DateTime AddedAt { get; set; }
}
