using PromptFaces.Generation.Models;

namespace PromptFaces.Cli;

/// <summary>
/// The command line's side of finding models: <see cref="ModelLocator"/> searches, this class turns "not found" into
/// advice phrased in the CLI's options.
/// </summary>
public static class DefaultModels
{
    /// <summary>The judge to evaluate with: the given path, else models/judge.safetensors.</summary>
    public static string ResolveJudge(string? judge) => judge ?? ModelLocator.FindModelFile(ModelLocator.JudgeFile) ?? throw new CliException(
        $"No attribute judge was found (models/{ModelLocator.JudgeFile}, or {ModelLocator.EnvironmentVariable}). Train one with " +
        $"'promptfaces train judge --out models/{ModelLocator.JudgeFile}', or pass --judge PATH.");

    /// <summary>The evaluation prompt set: the given path, else the committed models/eval-prompts.json.</summary>
    public static string ResolveEvalPrompts(string? prompts) => prompts ?? ModelLocator.FindModelFile(ModelLocator.EvalPromptsFile) ?? throw new CliException(
        $"The evaluation prompt set models/{ModelLocator.EvalPromptsFile} was not found (run from the repository, or set {ModelLocator.EnvironmentVariable}); pass --prompts FILE.");

    /// <summary>
    /// The generator and the guiding CLIP folders: the given ones, else the models folder's (its clip/, and clip-second/
    /// when it exists).
    /// </summary>
    public static (string Generator, IReadOnlyList<string> Clips) Resolve(string? generator, IReadOnlyList<string>? clips)
    {
        if (clips is { Count: 0 }) clips = null;
        if (generator is not null && clips is not null) return (generator, clips);
        var folder = ModelLocator.FindModelsFolder() ?? throw new CliException(
            $"No default models were found (a 'models' folder with {ModelLocator.GeneratorFile} and {ModelLocator.ClipFolder}/, or {ModelLocator.EnvironmentVariable}). " +
            "Pass --generator PATH (.pkl or .safetensors) and --clip DIR (a Hugging Face CLIP folder).");
        return (generator ?? Path.Combine(folder, ModelLocator.GeneratorFile), clips ?? ModelLocator.DefaultClipFolders(folder));
    }
}

/// <summary>A problem the user can fix; printed without a stack trace, exit code 2.</summary>
public sealed class CliException(string message) : Exception(message);
