using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PromptFaces.Generation.Clip;

/// <summary>
/// Cuts the image into non-overlapping patches with a strided convolution (no bias), prepends the learned class
/// token, and adds a learned position embedding per token.
/// </summary>
public sealed class ClipVisionEmbeddings : nn.Module<Tensor, Tensor>
{
    private readonly ClipVisionConfig config;

    private readonly Parameter class_embedding;
    private readonly Conv2d patch_embedding;
    private readonly Embedding position_embedding;

    public ClipVisionEmbeddings(ClipVisionConfig config, Device? device = null)
        : base(nameof(ClipVisionEmbeddings))
    {
        this.config = config;
        using (no_grad())
            class_embedding = new Parameter(torch.randn(config.HiddenSize, device: device).mul_(Math.Pow(config.HiddenSize, -0.5)));
        patch_embedding = nn.Conv2d(config.NumChannels, config.HiddenSize, config.PatchSize, stride: config.PatchSize,
            bias: false, device: device);
        position_embedding = nn.Embedding(config.NumPositions, config.HiddenSize, device: device);
        RegisterComponents();
    }

    public override Tensor forward(Tensor pixelValues)   // (B, 3, S, S) → (B, 1 + (S/P)², C)
    {
        var s = config.ImageSize;
        if (pixelValues.dim() != 4 || pixelValues.shape[1] != config.NumChannels || pixelValues.shape[2] != s || pixelValues.shape[3] != s)
            throw new ArgumentException($"pixel_values must be (batch, {config.NumChannels}, {s}, {s}) for this CLIP (vision_config.image_size {s}); got shape [{string.Join(", ", pixelValues.shape)}]. Resize the images first.", nameof(pixelValues));

        using var scope = NewDisposeScope();
        var b = pixelValues.shape[0];
        var c = config.HiddenSize;
        var patches = patch_embedding.call(pixelValues.to(patch_embedding.weight!.dtype)); // (B, C, S/P, S/P)
        patches = patches.flatten(2).transpose(1, 2);                                      // (B, N, C)
        var cls = class_embedding.expand(b, 1, c);                                          // (B, 1, C)
        var tokens = torch.cat([cls, patches], 1);                                          // (B, N + 1, C)
        return (tokens + position_embedding.weight!).MoveToOuterDisposeScope();            // positions: (N + 1, C)
    }
}

/// <summary>What the image tower gives: the encoder's states (not post-normed, as Hugging Face) and the post-normed class token.</summary>
public sealed record VisionOutput(
    Tensor LastHiddenState,   // (B, N + 1, C)
    Tensor Pooled);           // (B, C)

/// <summary>
/// Hugging Face's <c>CLIPVisionTransformer</c>: patch embeddings → pre-layernorm → encoder → post-layernorm of the class
/// token. <c>pre_layrnorm</c> is spelled as in the checkpoints.
/// </summary>
public sealed class ClipVisionTransformer : nn.Module<Tensor, VisionOutput>
{
    private readonly ClipVisionEmbeddings embeddings;
    private readonly LayerNorm pre_layrnorm;
    private readonly ClipEncoder encoder;
    private readonly LayerNorm post_layernorm;

    public ClipVisionTransformer(ClipVisionConfig config, Device? device = null)
        : base(nameof(ClipVisionTransformer))
    {
        embeddings = new ClipVisionEmbeddings(config, device);
        pre_layrnorm = nn.LayerNorm(config.HiddenSize, config.LayerNormEps, device: device);
        encoder = new ClipEncoder(config.NumHiddenLayers, config.HiddenSize, config.IntermediateSize,
            config.NumAttentionHeads, config.HiddenAct, config.LayerNormEps, causal: false, device);
        post_layernorm = nn.LayerNorm(config.HiddenSize, config.LayerNormEps, device: device);
        RegisterComponents();
    }

    public override VisionOutput forward(Tensor pixelValues)   // (B, 3, S, S), already normalised
    {
        using var scope = NewDisposeScope();
        var last = encoder.call(pre_layrnorm.call(embeddings.call(pixelValues)));   // (B, N + 1, C)
        var pooled = post_layernorm.call(last.select(1, 0));                        // class token: (B, C)
        return new VisionOutput(last.MoveToOuterDisposeScope(), pooled.MoveToOuterDisposeScope());
    }
}
