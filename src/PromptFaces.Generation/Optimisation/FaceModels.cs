using PromptFaces.Generation.Clip;
using PromptFaces.Generation.Devices;
using PromptFaces.Generation.StyleGan2;
using static TorchSharp.torch;

namespace PromptFaces.Generation.Optimisation;

/// <summary>One CLIP that guides the optimisation, with its own tokenizer (every CLIP has its own vocabulary).</summary>
public sealed record ClipGuide(ClipModel Model, ClipTokenizer Tokenizer, string Name);

/// <summary>
/// The generator, the CLIP (or CLIPs) and tokenizers that one optimisation engine uses, all on one device, frozen:
/// latent optimisation only needs gradients for the latents, never for the weights.
/// </summary>
/// <remarks>
/// With more than one CLIP the optimiser follows their mean loss. Two independently trained CLIPs seldom share a blind
/// spot, so a face that satisfies both has to show the prompt rather than a pattern that one of them over-reads. The
/// first CLIP is the primary one: evaluation reads faces with it.
/// </remarks>
public sealed class FaceModels : IDisposable
{
    public StyleGan2Generator Generator { get; }
    public IReadOnlyList<ClipGuide> Guides { get; }
    public ClipModel Clip => Guides[0].Model;
    public ClipTokenizer Tokenizer => Guides[0].Tokenizer;
    public string GeneratorName { get; }
    /// <summary>The CLIP's name; with several, their names joined by "+".</summary>
    public string ClipName => string.Join("+", Guides.Select(g => g.Name));
    public Device Device { get; }

    public FaceModels(StyleGan2Generator generator, ClipModel clip, ClipTokenizer tokenizer, string generatorName, string clipName)
        : this(generator, new[] { new ClipGuide(clip, tokenizer, clipName) }, generatorName)
    {
    }

    public FaceModels(StyleGan2Generator generator, IReadOnlyList<ClipGuide> guides, string generatorName)
    {
        if (guides.Count == 0) throw new ArgumentException("At least one CLIP is needed to guide the optimisation.", nameof(guides));
        foreach (var g in guides)
        {
            if (g.Tokenizer.ContextLength != g.Model.Config.TextConfig.MaxPositionEmbeddings)
                throw new ArgumentException($"CLIP {g.Name}: the tokenizer's context length ({g.Tokenizer.ContextLength}) differs from CLIP's max_position_embeddings ({g.Model.Config.TextConfig.MaxPositionEmbeddings}).");
            if (g.Tokenizer.VocabSize > g.Model.Config.TextConfig.VocabSize)
                throw new ArgumentException($"CLIP {g.Name}: the tokenizer has {g.Tokenizer.VocabSize} tokens but CLIP's text model only {g.Model.Config.TextConfig.VocabSize}: they do not belong together.");
            if (g.Model.Config.VisionConfig.ImageSize != guides[0].Model.Config.VisionConfig.ImageSize)
                throw new ArgumentException($"CLIP {g.Name} reads {g.Model.Config.VisionConfig.ImageSize}x{g.Model.Config.VisionConfig.ImageSize} images but CLIP {guides[0].Name} reads " +
                    $"{guides[0].Model.Config.VisionConfig.ImageSize}x{guides[0].Model.Config.VisionConfig.ImageSize}: CLIPs that guide together must share an input size.");
        }
        CpuAllocator.KeepFreedBlocksForReuse();
        Generator = generator.Freeze();
        foreach (var g in guides)
        {
            foreach (var p in g.Model.parameters()) p.requires_grad = false;
            g.Model.eval();
        }
        Guides = guides.ToArray();
        GeneratorName = generatorName;
        Device = generator.Device;
    }

    /// <summary>
    /// Loads a generator checkpoint (.pkl or .safetensors) and a CLIP model folder (config.json, model.safetensors,
    /// vocab.json, merges.txt) onto <paramref name="device"/>.
    /// </summary>
    public static FaceModels Load(string generatorPath, string clipFolder, Device? device = null) =>
        Load(generatorPath, new[] { clipFolder }, device);

    /// <summary>
    /// Loads a generator checkpoint and one or more CLIP folders that guide together (the first is the primary one).
    /// </summary>
    public static FaceModels Load(string generatorPath, IReadOnlyList<string> clipFolders, Device? device = null)
    {
        if (clipFolders.Count == 0) throw new ArgumentException("At least one CLIP folder is needed.", nameof(clipFolders));
        var generator = StyleGan2Checkpoint.Load(generatorPath, device);
        var guides = new List<ClipGuide>();
        try
        {
            foreach (var folder in clipFolders)
            {
                var clip = ClipModel.FromFolder(folder, device);
                try
                {
                    var tokenizer = ClipTokenizer.FromFolder(folder, clip.Config.TextConfig.MaxPositionEmbeddings);
                    guides.Add(new ClipGuide(clip, tokenizer, Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(folder)))));
                }
                catch
                {
                    clip.Dispose();
                    throw;
                }
            }
            return new FaceModels(generator, guides, Path.GetFileName(Path.GetFullPath(generatorPath)));
        }
        catch
        {
            foreach (var g in guides) g.Model.Dispose();
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

    /// <summary>CLIP's input side in pixels (the same for every guiding CLIP).</summary>
    public int ClipImageSize => Clip.Config.VisionConfig.ImageSize;

    public void Dispose()
    {
        _latentRange?.Dispose();
        Generator.Dispose();
        foreach (var g in Guides) g.Model.Dispose();
    }
}
