using PromptFaces.Generation.Clip;
using TorchSharp;
using static TorchSharp.torch;

namespace PromptFaces.Training.Clip;

/// <summary>
/// The project's own CLIP: the engine's CLIP classes at a size that trains on two CPU cores and reads 64x64 renders.
/// Its images are the generator's size, so the optimiser's cutouts are resampled to 64 pixels rather than 224.
/// </summary>
public static class SmallClip
{
    /// <summary>Renders and the generator are 64 pixels; the vision tower takes exactly this side.</summary>
    public const int ImageSize = 64;

    /// <summary>Captions are short (the longest templates are ~20 tokens); 32 leaves room for typed prompts.</summary>
    public const int ContextLength = 32;

    /// <summary>
    /// The default architecture: ~1.6M parameters (6.5 MB in float32) with a ~1,000-token vocabulary. Patches of 8
    /// pixels keep an eye (4–6 pixels across) inside one or two patches; 64 patches plus the class token at width 128
    /// cost ~1.2 CPU-seconds per step of 128 pairs (forward and backward, one core), which is what a shared two-core
    /// machine affords.
    /// </summary>
    public static ClipConfig Config(int vocabSize) => new()
    {
        ProjectionDim = 128,                          // shared embedding size
        LogitScaleInitValue = Math.Log(1 / 0.07),    // CLIP's initial temperature
        TextConfig = new ClipTextConfig
        {
            VocabSize = vocabSize,                    // the learned BPE vocabulary, special tokens included
            HiddenSize = 128,
            IntermediateSize = 512,
            NumHiddenLayers = 3,
            NumAttentionHeads = 4,
            MaxPositionEmbeddings = ContextLength,
            HiddenAct = "quick_gelu",
            EosTokenId = vocabSize - 1,               // end-of-text is the vocabulary's last id
        },
        VisionConfig = new ClipVisionConfig
        {
            HiddenSize = 128,
            IntermediateSize = 512,
            NumHiddenLayers = 4,
            NumAttentionHeads = 4,
            ImageSize = ImageSize,
            PatchSize = 8,
            HiddenAct = "quick_gelu",
        },
    };

    /// <summary>
    /// A wider, deeper architecture for a GPU run: width 192 (6 heads of 32), 6 vision and 4 text layers, ~4.8M
    /// parameters (19 MB in float32). Each image costs about 3.4 times the default's vision arithmetic, so the
    /// optimiser's steps on a CPU are slower; it is meant to be harder for the optimiser to fool.
    /// </summary>
    public static ClipConfig WideConfig(int vocabSize) => Config(vocabSize) with
    {
        ProjectionDim = 192,
        TextConfig = Config(vocabSize).TextConfig with { HiddenSize = 192, IntermediateSize = 768, NumHiddenLayers = 4, NumAttentionHeads = 6 },
        VisionConfig = Config(vocabSize).VisionConfig with { HiddenSize = 192, IntermediateSize = 768, NumHiddenLayers = 6, NumAttentionHeads = 6 },
    };

    /// <summary>The architectures <c>train clip --size</c> offers, by name; the first is the default.</summary>
    public static IReadOnlyDictionary<string, Func<int, ClipConfig>> Sizes { get; } =
        new Dictionary<string, Func<int, ClipConfig>>(StringComparer.Ordinal)
        {
            ["small"] = Config,
            ["wide"] = WideConfig,
        };

    /// <summary>
    /// A tiny architecture for tests: the same code paths in a fraction of a second per step.
    /// </summary>
    public static ClipConfig TinyConfig(int vocabSize) => Config(vocabSize) with
    {
        ProjectionDim = 16,
        TextConfig = Config(vocabSize).TextConfig with { HiddenSize = 16, IntermediateSize = 32, NumHiddenLayers = 1, NumAttentionHeads = 2 },
        VisionConfig = Config(vocabSize).VisionConfig with { HiddenSize = 16, IntermediateSize = 32, NumHiddenLayers = 1, NumAttentionHeads = 2, PatchSize = 16 },
    };

    /// <summary>Parameters of a model with this configuration.</summary>
    public static long ParameterCount(ClipConfig config)
    {
        using var model = new ClipModel(config, torch.META);
        return model.parameters().Sum(p => p.numel());
    }

    /// <summary>
    /// Re-initialises a freshly built model as Hugging Face's <c>CLIPPreTrainedModel._init_weights</c> does. TorchSharp's
    /// defaults (unit-variance embeddings, Kaiming-uniform projections) give a from-scratch transformer exploding
    /// residual streams and a slow, unstable start; CLIP's scheme scales each projection by its fan-in and depth.
    /// Draws from torch's global generator, so seed it first for a reproducible start.
    /// </summary>
    public static void Initialise(ClipModel model)
    {
        var config = model.Config;
        using var noGrad = no_grad();
        foreach (var (name, p) in model.named_parameters())
        {
            int width = name.StartsWith("vision_model.", StringComparison.Ordinal) ? config.VisionConfig.HiddenSize : config.TextConfig.HiddenSize;
            int layers = name.StartsWith("vision_model.", StringComparison.Ordinal) ? config.VisionConfig.NumHiddenLayers : config.TextConfig.NumHiddenLayers;
            double attnStd = Math.Pow(width, -0.5) * Math.Pow(2.0 * layers, -0.5);   // q, k, v
            double outStd = Math.Pow(width, -0.5);                                     // attention output
            double fc1Std = Math.Pow(2.0 * width, -0.5);
            double fc2Std = Math.Pow(width, -0.5) * Math.Pow(2.0 * layers, -0.5);

            if (name == "logit_scale")
                continue;
            if (name.EndsWith(".bias", StringComparison.Ordinal))
                p.zero_();
            else if (name.Contains("layer_norm", StringComparison.Ordinal) || name.Contains("layrnorm", StringComparison.Ordinal) || name.Contains("layernorm", StringComparison.Ordinal))
                p.fill_(1.0);
            else if (name.EndsWith("token_embedding.weight", StringComparison.Ordinal) || name.EndsWith("position_embedding.weight", StringComparison.Ordinal))
                p.normal_(0, 0.02);
            else if (name.EndsWith("class_embedding", StringComparison.Ordinal))
                p.normal_(0, Math.Pow(width, -0.5));
            else if (name.EndsWith("patch_embedding.weight", StringComparison.Ordinal))
                p.normal_(0, 0.02);
            else if (name.EndsWith("q_proj.weight", StringComparison.Ordinal) || name.EndsWith("k_proj.weight", StringComparison.Ordinal) || name.EndsWith("v_proj.weight", StringComparison.Ordinal))
                p.normal_(0, attnStd);
            else if (name.EndsWith("out_proj.weight", StringComparison.Ordinal))
                p.normal_(0, outStd);
            else if (name.EndsWith("fc1.weight", StringComparison.Ordinal))
                p.normal_(0, fc1Std);
            else if (name.EndsWith("fc2.weight", StringComparison.Ordinal))
                p.normal_(0, fc2Std);
            else if (name == "visual_projection.weight")
                p.normal_(0, Math.Pow(config.VisionConfig.HiddenSize, -0.5));
            else if (name == "text_projection.weight")
                p.normal_(0, Math.Pow(config.TextConfig.HiddenSize, -0.5));
            else
                throw new InvalidOperationException($"SmallClip.Initialise does not know the parameter '{name}'; add its rule.");
        }
    }
}
