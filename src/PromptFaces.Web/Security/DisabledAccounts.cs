using System.Collections.Concurrent;
using Microsoft.EntityFrameworkCore;
using PromptFaces.Data;

namespace PromptFaces.Web.Security;

/// <summary>
/// Accounts an admin has disabled. A disabled account is one whose Identity lockout ends at or after
/// <see cref="LockedUntil"/> (so the sign-in form refuses it like any locked account, without a column of its own);
/// the short lockouts after failed sign-ins never reach that date. The set is read from the database once and kept
/// current by <see cref="Services.SchedulingAdminService"/>, so the sign-in cookie's validation checks it on every request without
/// a query.
/// </summary>
public sealed class DisabledAccounts(IDbContextFactory<PromptFacesDbContext> contexts)
{
    /// <summary>The lockout end that marks an account as disabled (and what disabling sets it to).</summary>
    public static readonly DateTimeOffset LockedUntil = new(9999, 12, 31, 0, 0, 0, TimeSpan.Zero);

    private readonly SemaphoreSlim _loading = new(1, 1);
    private volatile ConcurrentDictionary<string, byte>? _ids;

    public static bool IsDisabledLockout(DateTimeOffset? lockoutEnd) => lockoutEnd is { } end && end >= LockedUntil;

    public async ValueTask<bool> IsDisabledAsync(string userId, CancellationToken ct = default) =>
        (await IdsAsync(ct)).ContainsKey(userId);

    internal async ValueTask SetAsync(string userId, bool disabled, CancellationToken ct = default)
    {
        var ids = await IdsAsync(ct);
        if (disabled) ids[userId] = 0;
        else ids.TryRemove(userId, out _);
    }

    private async ValueTask<ConcurrentDictionary<string, byte>> IdsAsync(CancellationToken ct)
    {
        if (_ids is { } loaded) return loaded;
        await _loading.WaitAsync(ct);
        try
        {
            if (_ids is { } other) return other;
            await using var db = await contexts.CreateDbContextAsync(ct);
            // SQLite cannot compare DateTimeOffset columns; the few locked rows are filtered here.
            var locked = await db.Users.AsNoTracking().Where(u => u.LockoutEnd != null)
                .Select(u => new { u.Id, u.LockoutEnd }).ToListAsync(ct);
            var ids = new ConcurrentDictionary<string, byte>(
                locked.Where(u => IsDisabledLockout(u.LockoutEnd)).Select(u => KeyValuePair.Create(u.Id, (byte)0)), StringComparer.Ordinal);
            _ids = ids;
            return ids;
        }
        finally
        {
            _loading.Release();
        }
    }
}
