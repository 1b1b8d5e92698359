namespace PromptFaces.Cli;

/// <summary>
/// Finds the default models when none are named: the folder in PROMPTFACES_MODELS, else a <c>models</c> folder next to
/// the executable, in the current folder or in any folder above it (so it works from a clone and from a publish).
/// </summary>
public static class ModelLocator
{
    public const string GeneratorFile = "generator.safetensors";
    public const string ClipFolder = "clip";
    public const string JudgeFile = "judge.safetensors";
    public const string EvalPromptsFile = "eval-prompts.json";

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

    /// <summary>
    /// The file <paramref name="name"/> in the models folders, searched in the same order as the models themselves but
    /// file by file: the judge and the prompt set may sit in a clone's models/ while the generator is named explicitly.
    /// </summary>
    public static string? FindModelFile(string name)
    {
        var env = Environment.GetEnvironmentVariable("PROMPTFACES_MODELS");
        if (!string.IsNullOrWhiteSpace(env))
            return File.Exists(Path.Combine(env, name)) ? Path.GetFullPath(Path.Combine(env, name)) : null;
        foreach (var start in new[] { AppContext.BaseDirectory, Directory.GetCurrentDirectory() })
        {
            for (var dir = new DirectoryInfo(start); dir is not null; dir = dir.Parent)
            {
                var candidate = Path.Combine(dir.FullName, "models", name);
                if (File.Exists(candidate)) return candidate;
            }
        }
        return null;
    }

    /// <summary>The judge to evaluate with: the given path, else models/judge.safetensors.</summary>
    public static string ResolveJudge(string? judge) => judge ?? FindModelFile(JudgeFile) ?? throw new CliException(
        $"No attribute judge was found (models/{JudgeFile}, or PROMPTFACES_MODELS). Train one with " +
        $"'promptfaces train judge --out models/{JudgeFile}', or pass --judge PATH.");

    /// <summary>The evaluation prompt set: the given path, else the committed models/eval-prompts.json.</summary>
    public static string ResolveEvalPrompts(string? prompts) => prompts ?? FindModelFile(EvalPromptsFile) ?? throw new CliException(
        $"The evaluation prompt set models/{EvalPromptsFile} was not found (run from the repository, or set PROMPTFACES_MODELS); pass --prompts FILE.");

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
