using Microsoft.AspNetCore.Identity;
using Microsoft.Extensions.Options;
using PromptFaces.Data.Entities;
using PromptFaces.Web.Hosting;

namespace PromptFaces.Web.Components.Account;

/// <summary>
/// Registration with the app's role rules: everyone is a User; the account named in <c>PromptFaces:AdminEmail</c>
/// becomes an Admin, or, when none is named, the first account registered.
/// </summary>
public sealed class AccountService(UserManager<AppUser> users, IOptions<AccountOptions> options, TimeProvider clock)
{
    /// <summary>The errors Identity reported (password rules, duplicate email), empty on success.</summary>
    public async Task<IReadOnlyList<string>> RegisterAsync(string email, string password)
    {
        var user = new AppUser { UserName = email.Trim(), Email = email.Trim(), CreatedAt = clock.GetUtcNow().UtcDateTime };
        var created = await users.CreateAsync(user, password);
        if (!created.Succeeded) return created.Errors.Select(e => e.Description).ToList();

        await users.AddToRoleAsync(user, Roles.User);
        var adminEmail = options.Value.AdminEmail;
        bool makeAdmin = string.IsNullOrWhiteSpace(adminEmail)
            ? users.Users.Count() == 1
            : string.Equals(adminEmail.Trim(), user.Email, StringComparison.OrdinalIgnoreCase);
        if (makeAdmin) await users.AddToRoleAsync(user, Roles.Admin);
        return [];
    }
}
