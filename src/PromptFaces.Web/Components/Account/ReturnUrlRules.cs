namespace PromptFaces.Web.Components.Account;

/// <summary>Only paths on this site are followed after signing in, so a link cannot send a user elsewhere.</summary>
public static class ReturnUrlRules
{
    public static string Local(string? returnUrl) =>
        string.IsNullOrEmpty(returnUrl) || !returnUrl.StartsWith('/') || returnUrl.StartsWith("//") || returnUrl.StartsWith("/\\")
            || returnUrl.StartsWith("/account/", StringComparison.OrdinalIgnoreCase)
            ? "/"
            : returnUrl;
}
