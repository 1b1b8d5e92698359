namespace PromptFaces.Generation.Tests;

/// <summary>
/// Locates the reference fixtures, which live outside the repository at <c>../shared/fixtures</c> relative to the
/// repository root (the folder holding PromptFaces.sln). Where that folder is absent (a clone elsewhere) tests that
/// need it skip with a reason; wherever it exists they run.
/// </summary>
public static class Fixtures
{
    public const string MissingReason = "The reference fixtures folder ../shared/fixtures (next to the repository root) does not exist on this machine.";

    public static string? Root { get; } = Locate();

    public static string Path(params string[] parts) =>
        System.IO.Path.Combine(new[] { Root ?? throw new InvalidOperationException(MissingReason) }.Concat(parts).ToArray());

    private static string? Locate()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(System.IO.Path.Combine(dir.FullName, "PromptFaces.sln")))
            {
                var candidate = System.IO.Path.GetFullPath(System.IO.Path.Combine(dir.FullName, "..", "shared", "fixtures"));
                return Directory.Exists(candidate) ? candidate : null;
            }
        }
        return null;
    }
}
