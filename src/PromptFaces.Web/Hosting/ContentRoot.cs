namespace PromptFaces.Web.Hosting;

/// <summary>
/// The app's settings and static files live at the repository root (appsettings.json, wwwroot/), so that
/// <c>dotnet run --project src/PromptFaces.Web</c> from a clone uses them and keeps its data folder there. A published
/// app finds its copies next to the executable instead.
/// </summary>
public static class ContentRoot
{
    /// <summary>
    /// The content root to use, or null to keep ASP.NET Core's choice: an explicit <c>--contentRoot</c> argument or
    /// content-root environment variable wins; otherwise the repository root when the app runs from a clone.
    /// </summary>
    public static string? Choose(string[] args)
    {
        if (args.Any(a => a.StartsWith("--contentRoot", StringComparison.OrdinalIgnoreCase))
            || !string.IsNullOrEmpty(Environment.GetEnvironmentVariable("ASPNETCORE_CONTENTROOT"))
            || !string.IsNullOrEmpty(Environment.GetEnvironmentVariable("DOTNET_CONTENTROOT")))
            return null;
        return FindRepositoryRoot(Directory.GetCurrentDirectory()) ?? FindRepositoryRoot(AppContext.BaseDirectory);
    }

    /// <summary>The nearest folder at or above <paramref name="start"/> holding both PromptFaces.sln and appsettings.json.</summary>
    public static string? FindRepositoryRoot(string start)
    {
        for (var dir = new DirectoryInfo(start); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "PromptFaces.sln")) && File.Exists(Path.Combine(dir.FullName, "appsettings.json")))
                return dir.FullName;
        }
        return null;
    }
}
