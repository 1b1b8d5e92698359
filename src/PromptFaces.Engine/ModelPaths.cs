using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using PromptFaces.Generation.Models;

namespace PromptFaces.Engine;

/// <summary>The generator and CLIP paths the options resolve to, or why there are none.</summary>
public sealed class ModelPaths(IOptions<EngineOptions> options, IHostEnvironment environment)
{
    private readonly Lazy<(string? Generator, IReadOnlyList<string> Clips, string? Problem)> _resolved = new(() => Resolve(options.Value, environment.ContentRootPath));

    public string? Generator => _resolved.Value.Generator;

    /// <summary>The primary CLIP folder (its tokenizer counts the prompt's tokens).</summary>
    public string? Clip => Clips.Count > 0 ? Clips[0] : null;

    /// <summary>Every CLIP folder that guides the optimisation, the primary one first; empty when there is a problem.</summary>
    public IReadOnlyList<string> Clips => _resolved.Value.Clips;

    /// <summary>Null when both paths were found; else a sentence that says what to configure.</summary>
    public string? Problem => _resolved.Value.Problem;

    private static (string?, IReadOnlyList<string>, string?) Resolve(EngineOptions o, string contentRoot)
    {
        string? Full(string? path) => string.IsNullOrWhiteSpace(path) ? null : Path.GetFullPath(path, contentRoot);
        var none = Array.Empty<string>();
        var generator = Full(o.Generator);
        var clip = Full(o.Clip);
        var second = Full(o.SecondClip);
        string? folder = null;
        if (generator is null || clip is null)
        {
            folder = Full(o.ModelsFolder) ?? ModelLocator.FindModelsFolder(contentRoot);
            if (folder is null)
                return (null, none,
                    $"No models were found: set {EngineOptions.Section}:ModelsFolder to a folder holding {ModelLocator.GeneratorFile} and " +
                    $"{ModelLocator.ClipFolder}/, or {EngineOptions.Section}:Generator and :Clip, or the {ModelLocator.EnvironmentVariable} " +
                    "environment variable.");
            generator ??= Path.Combine(folder, ModelLocator.GeneratorFile);
        }
        // A configured CLIP guides alone, a models folder's with its clip-second/; a configured second CLIP replaces that.
        IReadOnlyList<string> clips = clip is null ? ModelLocator.DefaultClipFolders(folder!) : new[] { clip };
        if (second is not null) clips = new[] { clips[0], second };
        if (!File.Exists(generator))
            return (null, none, $"The generator checkpoint {generator} does not exist; check {EngineOptions.Section}:Generator or :ModelsFolder.");
        if (!Directory.Exists(clips[0]))
            return (null, none, $"The CLIP folder {clips[0]} does not exist; check {EngineOptions.Section}:Clip or :ModelsFolder.");
        if (second is not null && !Directory.Exists(second))
            return (null, none, $"The second CLIP folder {second} does not exist; check {EngineOptions.Section}:SecondClip.");
        return (generator, clips, null);
    }
}
