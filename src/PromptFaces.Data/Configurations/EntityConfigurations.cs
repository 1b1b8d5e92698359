using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;
using PromptFaces.Data.Entities;

namespace PromptFaces.Data.Configurations;

internal sealed class JobConfiguration : IEntityTypeConfiguration<Job>
{
    public void Configure(EntityTypeBuilder<Job> job)
    {
        job.HasKey(j => j.Id);
        job.Property(j => j.Prompt).HasMaxLength(DataLimits.PromptLength);
        job.Property(j => j.NegativePrompt).HasMaxLength(DataLimits.PromptLength);
        job.Property(j => j.Status).HasConversion<string>().HasMaxLength(16);
        job.Property(j => j.Error).HasMaxLength(DataLimits.ErrorLength);
        job.HasOne(j => j.Owner).WithMany().HasForeignKey(j => j.OwnerId).OnDelete(DeleteBehavior.Cascade);
        job.HasOne(j => j.Image).WithOne(i => i.Job).HasForeignKey<GeneratedImage>(i => i.JobId).OnDelete(DeleteBehavior.Cascade);
        job.Property(j => j.ClaimedBy).HasMaxLength(DataLimits.WorkerIdLength);
        job.HasIndex(j => new { j.Status, j.CreatedAt });     // the queue: oldest queued first
        job.HasIndex(j => new { j.OwnerId, j.CreatedAt });    // a user's history
    }
}

internal sealed class GeneratedImageConfiguration : IEntityTypeConfiguration<GeneratedImage>
{
    public void Configure(EntityTypeBuilder<GeneratedImage> image)
    {
        image.ToTable("Images");
        image.HasKey(i => i.Id);
        image.Property(i => i.FilePath).HasMaxLength(260);
        image.Property(i => i.ThumbnailPath).HasMaxLength(260);
        image.Property(i => i.AnimationPath).HasMaxLength(260);
        image.HasOne(i => i.Owner).WithMany().HasForeignKey(i => i.OwnerId).OnDelete(DeleteBehavior.Cascade);
        image.HasIndex(i => new { i.OwnerId, i.CreatedAt });
    }
}

internal sealed class FavouriteConfiguration : IEntityTypeConfiguration<Favourite>
{
    public void Configure(EntityTypeBuilder<Favourite> favourite)
    {
        favourite.HasKey(f => new { f.UserId, f.ImageId });
        favourite.HasOne(f => f.User).WithMany().HasForeignKey(f => f.UserId).OnDelete(DeleteBehavior.Cascade);
        favourite.HasOne(f => f.Image).WithMany(i => i.Favourites).HasForeignKey(f => f.ImageId).OnDelete(DeleteBehavior.Cascade);
    }
}

internal sealed class TeamConfiguration : IEntityTypeConfiguration<Team>
{
    public void Configure(EntityTypeBuilder<Team> team)
    {
        team.HasKey(t => t.Id);
        team.Property(t => t.Name).HasMaxLength(DataLimits.TeamNameLength);
        team.HasIndex(t => t.Name).IsUnique();
        team.OwnsOne(t => t.DefaultQuotas, q => ConfigureQuotas(q, "Default"));
        team.Navigation(t => t.DefaultQuotas).IsRequired();
    }

    /// <summary>Quota columns named <c>{prefix}MaxQueued</c> and so on, on the owner's table.</summary>
    internal static void ConfigureQuotas<TOwner>(OwnedNavigationBuilder<TOwner, QuotaSettings> quotas, string prefix) where TOwner : class
    {
        quotas.Property(q => q.MaxQueued).HasColumnName(prefix + "MaxQueued");
        quotas.Property(q => q.MaxRunning).HasColumnName(prefix + "MaxRunning");
        quotas.Property(q => q.MaxStepsPerJob).HasColumnName(prefix + "MaxStepsPerJob");
        quotas.Property(q => q.DeviceSecondsPerDay).HasColumnName(prefix + "DeviceSecondsPerDay");
    }
}

internal sealed class UserSchedulingSettingsConfiguration : IEntityTypeConfiguration<UserSchedulingSettings>
{
    public void Configure(EntityTypeBuilder<UserSchedulingSettings> settings)
    {
        settings.ToTable("UserScheduling");
        settings.HasKey(s => s.UserId);
        settings.HasOne(s => s.User).WithOne().HasForeignKey<UserSchedulingSettings>(s => s.UserId).OnDelete(DeleteBehavior.Cascade);
        settings.HasOne<Team>().WithMany().HasForeignKey(s => s.SchedulingTeamId).OnDelete(DeleteBehavior.SetNull);
        settings.OwnsOne(s => s.Quotas, q => TeamConfiguration.ConfigureQuotas(q, ""));
        settings.Navigation(s => s.Quotas).IsRequired();
    }
}

internal sealed class UsageRecordConfiguration : IEntityTypeConfiguration<UsageRecord>
{
    public void Configure(EntityTypeBuilder<UsageRecord> usage)
    {
        usage.HasKey(u => u.Id);
        usage.Property(u => u.UserId).HasMaxLength(450);
        usage.Property(u => u.TeamKey).HasMaxLength(32);
        usage.HasIndex(u => u.At);                          // usage since a time (decay, daily quota)
        usage.HasIndex(u => new { u.UserId, u.At });
    }
}

internal sealed class TeamMemberConfiguration : IEntityTypeConfiguration<TeamMember>
{
    public void Configure(EntityTypeBuilder<TeamMember> member)
    {
        member.HasKey(m => new { m.TeamId, m.UserId });
        member.HasOne(m => m.Team).WithMany(t => t.Members).HasForeignKey(m => m.TeamId).OnDelete(DeleteBehavior.Cascade);
        member.HasOne(m => m.User).WithMany().HasForeignKey(m => m.UserId).OnDelete(DeleteBehavior.Cascade);
        member.HasIndex(m => m.UserId);
    }
}

internal sealed class GalleryConfiguration : IEntityTypeConfiguration<Gallery>
{
    public void Configure(EntityTypeBuilder<Gallery> gallery)
    {
        gallery.HasKey(g => g.Id);
        gallery.Property(g => g.Name).HasMaxLength(DataLimits.GalleryNameLength);
        gallery.Property(g => g.Description).HasMaxLength(DataLimits.GalleryDescriptionLength);
        gallery.HasOne(g => g.Owner).WithMany().HasForeignKey(g => g.OwnerId).OnDelete(DeleteBehavior.Cascade);
        gallery.HasIndex(g => g.OwnerId);
    }
}

internal sealed class GalleryShareConfiguration : IEntityTypeConfiguration<GalleryShare>
{
    public void Configure(EntityTypeBuilder<GalleryShare> share)
    {
        share.HasKey(s => new { s.GalleryId, s.TeamId });
        share.HasOne(s => s.Gallery).WithMany(g => g.Shares).HasForeignKey(s => s.GalleryId).OnDelete(DeleteBehavior.Cascade);
        share.HasOne(s => s.Team).WithMany(t => t.Shares).HasForeignKey(s => s.TeamId).OnDelete(DeleteBehavior.Cascade);
    }
}

internal sealed class GalleryItemConfiguration : IEntityTypeConfiguration<GalleryItem>
{
    public void Configure(EntityTypeBuilder<GalleryItem> item)
    {
        item.HasKey(i => new { i.GalleryId, i.ImageId });
        item.HasOne(i => i.Gallery).WithMany(g => g.Items).HasForeignKey(i => i.GalleryId).OnDelete(DeleteBehavior.Cascade);
        item.HasOne(i => i.Image).WithMany(i => i.GalleryItems).HasForeignKey(i => i.ImageId).OnDelete(DeleteBehavior.Cascade);
    }
}
