using PromptFaces.Generation.Clip;
using PromptFaces.Generation.Devices;
using PromptFaces.Generation.StyleGan2;
using static TorchSharp.torch;

namespace PromptFaces.Generation.Optimisation;

/// <summary>
/// The generator, CLIP and its tokenizer that one optimisation engine uses, all on one device, frozen: latent
/// optimisation only needs gradients for the latents, never for the weights.
/// </summary>
public sealed class FaceModels : IDisposable
{
    public StyleGan2Generator Generator { get; }
    public ClipModel Clip { get; }
    public ClipTokenizer Tokenizer { get; }
    public string GeneratorName { get; }
    public string ClipName { get; }
    public Device Device { get; }

    public FaceModels(StyleGan2Generator generator, ClipModel clip, ClipTokenizer tokenizer, string generatorName, string clipName)
    {
        if (tokenizer.ContextLength != clip.Config.TextConfig.MaxPositionEmbeddings)
            throw new ArgumentException($"The tokenizer's context length ({tokenizer.ContextLength}) differs from CLIP's max_position_embeddings ({clip.Config.TextConfig.MaxPositionEmbeddings}).");
        if (tokenizer.VocabSize > clip.Config.TextConfig.VocabSize)
            throw new ArgumentException($"The tokenizer has {tokenizer.VocabSize} tokens but CLIP's text model only {clip.Config.TextConfig.VocabSize}: they do not belong together.");
        CpuAllocator.KeepFreedBlocksForReuse();
        Generator = generator.Freeze();
        Clip = clip;
        foreach (var p in clip.parameters()) p.requires_grad = false;
        clip.eval();
        Tokenizer = tokenizer;
        GeneratorName = generatorName;
        ClipName = clipName;
        Device = generator.Device;
    }

    /// <summary>
    /// Loads a generator checkpoint (.pkl or .safetensors) and a CLIP model folder (config.json, model.safetensors,
    /// vocab.json, merges.txt) onto <paramref name="device"/>.
    /// </summary>
    public static FaceModels Load(string generatorPath, string clipFolder, Device? device = null)
    {
        var generator = StyleGan2Checkpoint.Load(generatorPath, device);
        try
        {
            var clip = ClipModel.FromFolder(clipFolder, device);
            var tokenizer = ClipTokenizer.FromFolder(clipFolder, clip.Config.TextConfig.MaxPositionEmbeddings);
            return new FaceModels(generator, clip, tokenizer, Path.GetFileName(Path.GetFullPath(generatorPath)), Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(clipFolder))));
        }
        catch
        {
            generator.Dispose();
            throw;
        }
    }

    private LatentRange? _latentRange;
    private readonly object _rangeLock = new();

    /// <summary>The range of the mapping network's outputs (measured once, on first use) for the optimiser's range prior.</summary>
    public LatentRange LatentRange
    {
        get
        {
            lock (_rangeLock) return _latentRange ??= LatentRange.Measure(Generator);
        }
    }

    /// <summary>CLIP's input side in pixels.</summary>
    public int ClipImageSize => Clip.Config.VisionConfig.ImageSize;

    public void Dispose()
    {
        _latentRange?.Dispose();
        Generator.Dispose();
        Clip.Dispose();
    }
}
