namespace PromptFaces.Cli;

/// <summary>
/// Finds the default models when none are named: the folder in PROMPTFACES_MODELS, else a <c>models</c> folder next to
/// the executable, in the current folder or in any folder above it (so it works from a clone and from a publish).
/// </summary>
public static class ModelLocator
{
    public const string GeneratorFile = "generator.safetensors";
    public const string ClipFolder = "clip";

    public static string? FindModelsFolder()
    {
        var env = Environment.GetEnvironmentVariable("PROMPTFACES_MODELS");
        if (!string.IsNullOrWhiteSpace(env)) return Directory.Exists(env) ? Path.GetFullPath(env) : null;
        foreach (var start in new[] { AppContext.BaseDirectory, Directory.GetCurrentDirectory() })
        {
            for (var dir = new DirectoryInfo(start); dir is not null; dir = dir.Parent)
            {
                var candidate = Path.Combine(dir.FullName, "models");
                if (File.Exists(Path.Combine(candidate, GeneratorFile))) return candidate;
            }
        }
        return null;
    }

    public static (string Generator, string Clip) Resolve(string? generator, string? clip)
    {
        if (generator is not null && clip is not null) return (generator, clip);
        var folder = FindModelsFolder() ?? throw new CliException(
            "No default models were found (a 'models' folder with generator.safetensors and clip/, or PROMPTFACES_MODELS). " +
            "Pass --generator PATH (.pkl or .safetensors) and --clip DIR (a Hugging Face CLIP folder).");
        return (generator ?? Path.Combine(folder, GeneratorFile), clip ?? Path.Combine(folder, ClipFolder));
    }
}

/// <summary>A problem the user can fix; printed without a stack trace, exit code 2.</summary>
public sealed class CliException(string message) : Exception(message);
