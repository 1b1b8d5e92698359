using Microsoft.AspNetCore.Identity;
using Microsoft.AspNetCore.Identity.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore;
using PromptFaces.Data.Entities;

namespace PromptFaces.Data;

/// <summary>Identity's tables plus the app's: jobs, images, favourites, teams, galleries, and the scheduler's shares,
/// quotas and usage records.</summary>
public sealed class PromptFacesDbContext(DbContextOptions<PromptFacesDbContext> options)
    : IdentityDbContext<AppUser, IdentityRole, string>(options)
{
    public DbSet<Job> Jobs => Set<Job>();
    public DbSet<GeneratedImage> Images => Set<GeneratedImage>();
    public DbSet<Favourite> Favourites => Set<Favourite>();
    public DbSet<Team> Teams => Set<Team>();
    public DbSet<TeamMember> TeamMembers => Set<TeamMember>();
    public DbSet<Gallery> Galleries => Set<Gallery>();
    public DbSet<GalleryShare> GalleryShares => Set<GalleryShare>();
    public DbSet<GalleryItem> GalleryItems => Set<GalleryItem>();
    public DbSet<UserSchedulingSettings> UserScheduling => Set<UserSchedulingSettings>();
    public DbSet<UsageRecord> UsageRecords => Set<UsageRecord>();

    protected override void OnModelCreating(ModelBuilder builder)
    {
        base.OnModelCreating(builder);
        builder.ApplyConfigurationsFromAssembly(typeof(PromptFacesDbContext).Assembly);
    }
}
