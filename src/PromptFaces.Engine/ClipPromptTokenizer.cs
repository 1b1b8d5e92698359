using Microsoft.Extensions.Logging;
using PromptFaces.Generation.Clip;
using PromptFaces.Scheduling;

namespace PromptFaces.Engine;

/// <summary>
/// Counts tokens with the CLIP tokenizer of the configured models. Only the tokenizer files and CLIP's config are read
/// (milliseconds), not the networks, so the live count works before the first job has loaded the models.
/// </summary>
public sealed class ClipPromptTokenizer(ModelPaths paths, ILogger<ClipPromptTokenizer> logger) : IPromptTokenizer
{
    private readonly Lazy<ClipTokenizer?> _tokenizer = new(() => Load(paths, logger));

    public PromptTokenCount? Count(string prompt)
    {
        var tokenizer = _tokenizer.Value;
        if (tokenizer is null) return null;
        var tokenized = tokenizer.Tokenize(prompt ?? "");
        return new PromptTokenCount(tokenized.TokenCount, tokenized.ContextLength, tokenized.Warning);
    }

    private static ClipTokenizer? Load(ModelPaths paths, ILogger logger)
    {
        if (paths.Clip is null)
        {
            logger.LogWarning("No token counts: {Problem}", paths.Problem);
            return null;
        }
        try
        {
            var config = ClipConfig.Load(Path.Combine(paths.Clip, "config.json"));
            return ClipTokenizer.FromFolder(paths.Clip, config.TextConfig.MaxPositionEmbeddings);
        }
        catch (Exception e) when (e is IOException or InvalidDataException or ClipTokenizerException or UnauthorizedAccessException)
        {
            logger.LogWarning(e, "No token counts: the CLIP tokenizer in {Folder} could not be loaded", paths.Clip);
            return null;
        }
    }
}
