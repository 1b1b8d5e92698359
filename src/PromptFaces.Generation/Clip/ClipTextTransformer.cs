using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PromptFaces.Generation.Clip;

/// <summary>Token embedding plus a learned absolute position embedding.</summary>
public sealed class ClipTextEmbeddings : nn.Module<Tensor, Tensor>
{
    private readonly Embedding token_embedding;
    private readonly Embedding position_embedding;

    public ClipTextEmbeddings(ClipTextConfig config, Device? device = null)
        : base(nameof(ClipTextEmbeddings))
    {
        token_embedding = nn.Embedding(config.VocabSize, config.HiddenSize, device: device);
        position_embedding = nn.Embedding(config.MaxPositionEmbeddings, config.HiddenSize, device: device);
        RegisterComponents();
    }

    /// <summary>Hugging Face keeps a <c>position_ids</c> buffer for this; an arange needs no checkpoint entry.</summary>
    public override Tensor forward(Tensor inputIds)   // (B, T) int64 → (B, T, C)
    {
        using var scope = NewDisposeScope();
        var positions = torch.arange(inputIds.shape[1], dtype: ScalarType.Int64, device: inputIds.device); // (T)
        return (token_embedding.call(inputIds) + position_embedding.call(positions)).MoveToOuterDisposeScope();
    }
}

/// <summary>
/// What the text tower gives: every token's final-layer-normed state, and the state at the end-of-text token.
/// </summary>
public sealed record TextOutput(
    Tensor LastHiddenState,   // (B, T, C)
    Tensor Pooled);           // (B, C)

/// <summary>
/// Hugging Face's <c>CLIPTextTransformer</c>: embeddings → causal encoder → final layer norm, pooled at the
/// end-of-text token. The end-of-text token is found as the largest id in each row (OpenAI's rule, and what Hugging Face
/// computes for the released checkpoints); padding after it with the same id is fine, as argmax takes the first.
/// No padding attention mask: the causal mask alone decides what each token sees, as in OpenAI's CLIP.
/// </summary>
public sealed class ClipTextTransformer : nn.Module<Tensor, TextOutput>
{
    private readonly int maxPositions;
    private readonly int vocabSize;

    private readonly ClipTextEmbeddings embeddings;
    private readonly ClipEncoder encoder;
    private readonly LayerNorm final_layer_norm;

    public ClipTextTransformer(ClipTextConfig config, Device? device = null)
        : base(nameof(ClipTextTransformer))
    {
        maxPositions = config.MaxPositionEmbeddings;
        vocabSize = config.VocabSize;
        embeddings = new ClipTextEmbeddings(config, device);
        encoder = new ClipEncoder(config.NumHiddenLayers, config.HiddenSize, config.IntermediateSize,
            config.NumAttentionHeads, config.HiddenAct, config.LayerNormEps, causal: true, device);
        final_layer_norm = nn.LayerNorm(config.HiddenSize, config.LayerNormEps, device: device);
        RegisterComponents();
    }

    public override TextOutput forward(Tensor inputIds)   // (B, T) int64, T ≤ max_position_embeddings
    {
        if (inputIds.dim() != 2)
            throw new ArgumentException($"input_ids must be (batch, tokens); got shape [{string.Join(", ", inputIds.shape)}].", nameof(inputIds));
        if (inputIds.shape[1] > maxPositions)
            throw new ArgumentException($"input_ids has {inputIds.shape[1]} tokens, but this CLIP's context holds {maxPositions} (text_config.max_position_embeddings); truncate with the tokenizer's context length.", nameof(inputIds));
        if (inputIds.dtype != ScalarType.Int64)
            throw new ArgumentException($"input_ids must be int64 token ids; got {inputIds.dtype}.", nameof(inputIds));

        using var scope = NewDisposeScope();
        var b = inputIds.shape[0];
        var hidden = encoder.call(embeddings.call(inputIds));                    // (B, T, C)
        var last = final_layer_norm.call(hidden);                                // (B, T, C)
        var eos = inputIds.argmax(-1);                                           // (B)
        var pooled = last[torch.arange(b, device: last.device), eos];           // (B, C)
        return new TextOutput(last.MoveToOuterDisposeScope(), pooled.MoveToOuterDisposeScope());
    }
}
