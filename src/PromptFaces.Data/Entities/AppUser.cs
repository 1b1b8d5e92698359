using Microsoft.AspNetCore.Identity;

namespace PromptFaces.Data.Entities;

/// <summary>A person who signs in. Identity's columns, plus when the account was made.</summary>
public sealed class AppUser : IdentityUser
{
    public DateTime CreatedAt { get; set; }
}

/// <summary>The roles the app knows.</summary>
public static class Roles
{
    public const string User = "User";
    public const string Admin = "Admin";

    public static IReadOnlyList<string> All { get; } = [User, Admin];
}
