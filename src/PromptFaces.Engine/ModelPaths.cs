using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using PromptFaces.Generation.Models;

namespace PromptFaces.Engine;

/// <summary>The generator and CLIP paths the options resolve to, or why there are none.</summary>
public sealed class ModelPaths(IOptions<EngineOptions> options, IHostEnvironment environment)
{
    private readonly Lazy<(string? Generator, string? Clip, string? Problem)> _resolved = new(() => Resolve(options.Value, environment.ContentRootPath));

    public string? Generator => _resolved.Value.Generator;
    public string? Clip => _resolved.Value.Clip;

    /// <summary>Null when both paths were found; else a sentence that says what to configure.</summary>
    public string? Problem => _resolved.Value.Problem;

    private static (string?, string?, string?) Resolve(EngineOptions o, string contentRoot)
    {
        string? Full(string? path) => string.IsNullOrWhiteSpace(path) ? null : Path.GetFullPath(path, contentRoot);
        var generator = Full(o.Generator);
        var clip = Full(o.Clip);
        if (generator is null || clip is null)
        {
            var folder = Full(o.ModelsFolder) ?? ModelLocator.FindModelsFolder(contentRoot);
            if (folder is null)
                return (null, null,
                    $"No models were found: set {EngineOptions.Section}:ModelsFolder to a folder holding {ModelLocator.GeneratorFile} and " +
                    $"{ModelLocator.ClipFolder}/, or {EngineOptions.Section}:Generator and :Clip, or the {ModelLocator.EnvironmentVariable} " +
                    "environment variable.");
            generator ??= Path.Combine(folder, ModelLocator.GeneratorFile);
            clip ??= Path.Combine(folder, ModelLocator.ClipFolder);
        }
        if (!File.Exists(generator))
            return (null, null, $"The generator checkpoint {generator} does not exist; check {EngineOptions.Section}:Generator or :ModelsFolder.");
        if (!Directory.Exists(clip))
            return (null, null, $"The CLIP folder {clip} does not exist; check {EngineOptions.Section}:Clip or :ModelsFolder.");
        return (generator, clip, null);
    }
}
