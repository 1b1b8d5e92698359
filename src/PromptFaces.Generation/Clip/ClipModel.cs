using PromptFaces.Generation.Checkpoints;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PromptFaces.Generation.Clip;

/// <summary>
/// Hugging Face's <c>CLIPModel</c> with its exact state-dict names, so a model folder's <c>model.safetensors</c> loads
/// strictly. Two verbs, as OpenAI's CLIP: <see cref="EncodeText"/> and <see cref="EncodeImage"/> give the projected,
/// unnormalised features; <see cref="Logits"/> compares them as Hugging Face does.
/// </summary>
public sealed class ClipModel : nn.Module
{
    /// <summary>Integer buffers real downloads may carry; this port computes positions instead of storing them.</summary>
    private static readonly HashSet<string> IgnorableKeys =
        ["text_model.embeddings.position_ids", "vision_model.embeddings.position_ids"];

    private readonly ClipTextTransformer text_model;
    private readonly ClipVisionTransformer vision_model;
    private readonly Linear visual_projection;
    private readonly Linear text_projection;
    private readonly Parameter logit_scale;   // log of the softmax temperature's inverse; a scalar

    public ClipConfig Config { get; }

    public ClipTextTransformer TextModel => text_model;
    public ClipVisionTransformer VisionModel => vision_model;

    /// <summary>A randomly initialised model; pass the <c>meta</c> device to get the shapes without memory.</summary>
    public ClipModel(ClipConfig config, Device? device = null)
        : base(nameof(ClipModel))
    {
        config.Validate("the CLIP configuration");
        Config = config;
        text_model = new ClipTextTransformer(config.TextConfig, device);
        vision_model = new ClipVisionTransformer(config.VisionConfig, device);
        visual_projection = nn.Linear(config.VisionConfig.HiddenSize, config.ProjectionDim, hasBias: false, device: device);
        text_projection = nn.Linear(config.TextConfig.HiddenSize, config.ProjectionDim, hasBias: false, device: device);
        logit_scale = new Parameter(torch.full(Array.Empty<long>(), config.LogitScaleInitValue, ScalarType.Float32, device));
        RegisterComponents();
    }

    /// <summary>Text features: the projected end-of-text state, not normalised. (B, T) int64 → (B, projection_dim).</summary>
    public Tensor EncodeText(Tensor inputIds)
    {
        using var scope = NewDisposeScope();
        return text_projection.call(text_model.call(inputIds).Pooled).MoveToOuterDisposeScope();
    }

    /// <summary>Image features: the projected class token, not normalised. (B, 3, S, S) normalised pixels → (B, projection_dim).</summary>
    public Tensor EncodeImage(Tensor pixelValues)
    {
        using var scope = NewDisposeScope();
        return visual_projection.call(vision_model.call(pixelValues).Pooled).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Hugging Face's logits: exp(logit_scale) times the cosine similarity of every image with every text.
    /// logitsPerImage is (images, texts); logitsPerText is its transpose.
    /// </summary>
    public (Tensor LogitsPerImage, Tensor LogitsPerText) Logits(Tensor pixelValues, Tensor inputIds)
    {
        using var scope = NewDisposeScope();
        var image = EncodeImage(pixelValues);                                   // (I, E)
        var text = EncodeText(inputIds);                                        // (N, E)
        image = image / image.norm(-1, keepdim: true);
        text = text / text.norm(-1, keepdim: true);
        var perText = text.matmul(image.t()) * logit_scale.exp();               // (N, I)
        var perImage = perText.t();                                             // (I, N)
        return (perImage.MoveToOuterDisposeScope(), perText.MoveToOuterDisposeScope());
    }

    /// <summary>
    /// Loads a Hugging Face <c>model.safetensors</c> into this model strictly: every key and shape must match its
    /// configuration; only the <c>position_ids</c> buffers are allowed extra.
    /// </summary>
    public void LoadWeights(string weightsPath) =>
        StrictStateDict.Load(this, SafeTensorsFile.Read(weightsPath).Tensors, weightsPath, isIgnorable: IgnorableKeys.Contains);

    /// <summary>
    /// Loads a Hugging Face CLIP model folder (<c>config.json</c> and <c>model.safetensors</c>) strictly: every key and
    /// shape must match the configuration; only the <c>position_ids</c> buffers are allowed extra. The model is built
    /// directly on <paramref name="device"/> (CPU when null) and returned in eval mode.
    /// </summary>
    public static ClipModel FromFolder(string folder, Device? device = null)
    {
        if (!Directory.Exists(folder))
            throw new CheckpointException(folder, "is not a folder. Give the path of a Hugging Face CLIP model folder holding config.json and model.safetensors.");
        var configPath = Path.Combine(folder, "config.json");
        var weightsPath = Path.Combine(folder, "model.safetensors");
        if (!File.Exists(configPath))
            throw new CheckpointException(configPath, "does not exist. A Hugging Face CLIP model folder holds config.json next to model.safetensors; download the whole folder.");
        if (!File.Exists(weightsPath))
        {
            var bin = Path.Combine(folder, "pytorch_model.bin");
            throw File.Exists(bin)
                ? new CheckpointException(bin, "is a pickled PyTorch checkpoint, which is not loaded directly. Convert it to safetensors with `promptfaces convert`, saving model.safetensors in the same folder.")
                : new CheckpointException(weightsPath, "does not exist. Download model.safetensors of the CLIP model into this folder.");
        }

        var config = ClipConfig.Load(configPath);
        var model = new ClipModel(config, device);
        try
        {
            model.LoadWeights(weightsPath);
        }
        catch
        {
            model.Dispose();
            throw;
        }
        model.eval();
        return model;
    }
}
