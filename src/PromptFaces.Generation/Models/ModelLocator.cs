namespace PromptFaces.Generation.Models;

/// <summary>
/// Finds the default models when none are named: the folder in <c>PROMPTFACES_MODELS</c>, else a <c>models</c> folder
/// next to the executable, in the current folder or in any folder above them (so it works from a clone and from a
/// publish). Shared by the command line and the web app; each host phrases its own "not found" advice.
/// </summary>
public static class ModelLocator
{
    public const string EnvironmentVariable = "PROMPTFACES_MODELS";
    public const string GeneratorFile = "generator.safetensors";
    public const string ClipFolder = "clip";
    /// <summary>A second CLIP that, when a models folder holds it, guides together with <see cref="ClipFolder"/>.</summary>
    public const string SecondClipFolder = "clip-second";
    public const string JudgeFile = "judge.safetensors";
    public const string EvalPromptsFile = "eval-prompts.json";

    /// <summary>
    /// The models folder: the one in <see cref="EnvironmentVariable"/> if set (null when it does not exist), else the
    /// first <c>models</c> folder holding <see cref="GeneratorFile"/> found walking up from each start folder in turn:
    /// <paramref name="extraStarts"/> first (a web app's content root, say), then the executable's folder and the
    /// current folder.
    /// </summary>
    public static string? FindModelsFolder(params string[] extraStarts)
    {
        var env = Environment.GetEnvironmentVariable(EnvironmentVariable);
        if (!string.IsNullOrWhiteSpace(env)) return Directory.Exists(env) ? Path.GetFullPath(env) : null;
        foreach (var dir in CandidateFolders(extraStarts))
        {
            var candidate = Path.Combine(dir, "models");
            if (File.Exists(Path.Combine(candidate, GeneratorFile))) return candidate;
        }
        return null;
    }

    /// <summary>
    /// The file <paramref name="name"/> in the models folders, searched in the same order as the models themselves but
    /// file by file: the judge and the prompt set may sit in a clone's models/ while the generator is named explicitly.
    /// </summary>
    public static string? FindModelFile(string name, params string[] extraStarts)
    {
        var env = Environment.GetEnvironmentVariable(EnvironmentVariable);
        if (!string.IsNullOrWhiteSpace(env))
            return File.Exists(Path.Combine(env, name)) ? Path.GetFullPath(Path.Combine(env, name)) : null;
        foreach (var dir in CandidateFolders(extraStarts))
        {
            var candidate = Path.Combine(dir, "models", name);
            if (File.Exists(candidate)) return candidate;
        }
        return null;
    }

    private static IEnumerable<string> CandidateFolders(string[] extraStarts)
    {
        foreach (var start in extraStarts.Append(AppContext.BaseDirectory).Append(Directory.GetCurrentDirectory()))
        {
            if (string.IsNullOrWhiteSpace(start)) continue;
            for (var dir = new DirectoryInfo(start); dir is not null; dir = dir.Parent)
                yield return dir.FullName;
        }
    }

    /// <summary>The CLIP folders of a models folder that guide by default: <see cref="ClipFolder"/>, then
    /// <see cref="SecondClipFolder"/> when it exists.</summary>
    public static IReadOnlyList<string> DefaultClipFolders(string modelsFolder)
    {
        var folders = new List<string> { Path.Combine(modelsFolder, ClipFolder) };
        var second = Path.Combine(modelsFolder, SecondClipFolder);
        if (Directory.Exists(second)) folders.Add(second);
        return folders;
    }
}
