using Microsoft.EntityFrameworkCore;
using PromptFaces.Data;
using PromptFaces.Data.Entities;

namespace PromptFaces.Web.Services;

public sealed record TeamView(int Id, string Name, IReadOnlyList<(string UserId, string Email)> Members);

/// <summary>Teams and their members; admins only (the Admin page checks the role, and so does every call here).</summary>
public sealed class TeamService(IDbContextFactory<PromptFacesDbContext> contexts, TimeProvider clock)
{
    public async Task<IReadOnlyList<TeamView>> TeamsAsync(Viewer admin, CancellationToken ct = default)
    {
        RequireAdmin(admin);
        await using var db = await contexts.CreateDbContextAsync(ct);
        var rows = await db.Teams.AsNoTracking().OrderBy(t => t.Name)
            .Select(t => new { t.Id, t.Name, Members = t.Members.OrderBy(m => m.User!.Email).Select(m => new { m.UserId, m.User!.Email }).ToList() })
            .ToListAsync(ct);
        return rows.Select(r => new TeamView(r.Id, r.Name, r.Members.Select(m => (m.UserId, m.Email ?? "")).ToList())).ToList();
    }

    /// <summary>Null on success, else a message.</summary>
    public async Task<string?> CreateTeamAsync(Viewer admin, string name, CancellationToken ct = default)
    {
        RequireAdmin(admin);
        name = (name ?? "").Trim();
        if (name.Length == 0) return "Enter a team name.";
        if (name.Length > DataLimits.TeamNameLength) return $"Team names are at most {DataLimits.TeamNameLength} characters.";
        if (name.Any(char.IsControl)) return "Team names cannot contain control characters.";
        await using var db = await contexts.CreateDbContextAsync(ct);
        if (await db.Teams.AnyAsync(t => t.Name == name, ct)) return $"A team named \"{name}\" already exists.";
        db.Teams.Add(new Team { Name = name, CreatedAt = clock.GetUtcNow().UtcDateTime });
        await db.SaveChangesAsync(ct);
        return null;
    }

    public async Task DeleteTeamAsync(Viewer admin, int teamId, CancellationToken ct = default)
    {
        RequireAdmin(admin);
        await using var db = await contexts.CreateDbContextAsync(ct);
        await db.Teams.Where(t => t.Id == teamId).ExecuteDeleteAsync(ct);
    }

    /// <summary>Null on success, else a message.</summary>
    public async Task<string?> AddMemberAsync(Viewer admin, int teamId, string email, CancellationToken ct = default)
    {
        RequireAdmin(admin);
        await using var db = await contexts.CreateDbContextAsync(ct);
        var normalized = (email ?? "").Trim().ToUpperInvariant();
        var user = await db.Users.FirstOrDefaultAsync(u => u.NormalizedEmail == normalized, ct);
        if (user is null) return $"No account has the email \"{email}\".";
        if (!await db.Teams.AnyAsync(t => t.Id == teamId, ct)) return "That team no longer exists.";
        if (await db.TeamMembers.AnyAsync(m => m.TeamId == teamId && m.UserId == user.Id, ct)) return $"{user.Email} is already a member.";
        db.TeamMembers.Add(new TeamMember { TeamId = teamId, UserId = user.Id, AddedAt = clock.GetUtcNow().UtcDateTime });
        await db.SaveChangesAsync(ct);
        return null;
    }

    public async Task RemoveMemberAsync(Viewer admin, int teamId, string userId, CancellationToken ct = default)
    {
        RequireAdmin(admin);
        await using var db = await contexts.CreateDbContextAsync(ct);
        await db.TeamMembers.Where(m => m.TeamId == teamId && m.UserId == userId).ExecuteDeleteAsync(ct);
    }

    private static void RequireAdmin(Viewer viewer)
    {
        if (!viewer.IsAdmin) throw new UnauthorizedAccessException("Only admins manage teams.");
    }
}
