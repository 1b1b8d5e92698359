using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PromptFaces.Generation.Clip;

// The transformer blocks both CLIP towers share, read bottom-up: activation → attention → MLP → layer → encoder.
// Field names (or their [ComponentName]) are Hugging Face's, so state-dict keys match CLIPModel's exactly.

/// <summary>The MLP activations Hugging Face CLIP configs name in <c>hidden_act</c>.</summary>
public static class ClipActivation
{
    public static IReadOnlyList<string> Known { get; } = ["quick_gelu", "gelu", "gelu_new", "gelu_pytorch_tanh", "relu"];

    public static bool IsKnown(string name) => Known.Contains(name);

    public static Func<Tensor, Tensor> Resolve(string name) => name switch
    {
        "quick_gelu" => x => x * torch.sigmoid(1.702 * x),          // OpenAI's fast approximation; every released CLIP uses it
        "gelu" => x => nn.functional.gelu(x),                        // exact, with erf
        "gelu_new" or "gelu_pytorch_tanh" => x => nn.functional.gelu(x, GELU.Approximate.tanh),
        "relu" => x => nn.functional.relu(x),
        _ => throw new ArgumentException($"CLIP hidden_act '{name}' is not supported; known: {string.Join(", ", Known)}.", nameof(name)),
    };
}

/// <summary>
/// Multi-head self-attention with separate q/k/v projections, as Hugging Face stores them. Uses libtorch's fused
/// scaled-dot-product attention (its default scale is head_dim^-0.5, as CLIP's); the text tower passes
/// <paramref name="causal"/> so each token sees only itself and earlier tokens.
/// </summary>
public sealed class ClipAttention : nn.Module<Tensor, Tensor>
{
    private readonly int numHeads;
    private readonly bool causal;

    private readonly Linear q_proj;
    private readonly Linear k_proj;
    private readonly Linear v_proj;
    private readonly Linear out_proj;

    public ClipAttention(
        int hiddenSize,     // C, the width of the residual stream
        int numHeads,       // H; the head size is C / H
        bool causal,        // true for the text tower
        Device? device = null)
        : base(nameof(ClipAttention))
    {
        this.numHeads = numHeads;
        this.causal = causal;
        q_proj = nn.Linear(hiddenSize, hiddenSize, device: device);
        k_proj = nn.Linear(hiddenSize, hiddenSize, device: device);
        v_proj = nn.Linear(hiddenSize, hiddenSize, device: device);
        out_proj = nn.Linear(hiddenSize, hiddenSize, device: device);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var (b, t, c) = (x.shape[0], x.shape[1], x.shape[2]);
        var headDim = c / numHeads;
        Tensor Heads(Linear proj) => proj.call(x).view(b, t, numHeads, headDim).transpose(1, 2);   // (B, H, T, D)

        var y = nn.functional.scaled_dot_product_attention(Heads(q_proj), Heads(k_proj), Heads(v_proj), is_casual: causal); // (B, H, T, D)
        y = y.transpose(1, 2).reshape(b, t, c);                                                        // (B, T, C)
        return out_proj.call(y).MoveToOuterDisposeScope();
    }
}

/// <summary>The position-wise feed-forward block: fc1 → activation → fc2.</summary>
public sealed class ClipMlp : nn.Module<Tensor, Tensor>
{
    private readonly Func<Tensor, Tensor> activation;

    private readonly Linear fc1;
    private readonly Linear fc2;

    public ClipMlp(
        int hiddenSize,         // C
        int intermediateSize,   // the hidden layer's width, usually 4C
        string hiddenAct,       // a name from ClipActivation.Known
        Device? device = null)
        : base(nameof(ClipMlp))
    {
        activation = ClipActivation.Resolve(hiddenAct);
        fc1 = nn.Linear(hiddenSize, intermediateSize, device: device);
        fc2 = nn.Linear(intermediateSize, hiddenSize, device: device);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        return fc2.call(activation(fc1.call(x))).MoveToOuterDisposeScope();
    }
}

/// <summary>A pre-norm transformer block: x + attn(ln1(x)), then + mlp(ln2(·)).</summary>
public sealed class ClipEncoderLayer : nn.Module<Tensor, Tensor>
{
    private readonly ClipAttention self_attn;
    private readonly LayerNorm layer_norm1;
    private readonly ClipMlp mlp;
    private readonly LayerNorm layer_norm2;

    public ClipEncoderLayer(int hiddenSize, int intermediateSize, int numHeads, string hiddenAct, double layerNormEps,
        bool causal, Device? device = null)
        : base(nameof(ClipEncoderLayer))
    {
        self_attn = new ClipAttention(hiddenSize, numHeads, causal, device);
        layer_norm1 = nn.LayerNorm(hiddenSize, layerNormEps, device: device);
        mlp = new ClipMlp(hiddenSize, intermediateSize, hiddenAct, device);
        layer_norm2 = nn.LayerNorm(hiddenSize, layerNormEps, device: device);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)   // (B, T, C) → (B, T, C)
    {
        using var scope = NewDisposeScope();
        var h = x + self_attn.call(layer_norm1.call(x));
        return (h + mlp.call(layer_norm2.call(h))).MoveToOuterDisposeScope();
    }
}

/// <summary>A stack of <see cref="ClipEncoderLayer"/>s; stored as <c>layers.N</c>.</summary>
public sealed class ClipEncoder : nn.Module<Tensor, Tensor>
{
    private readonly ModuleList<ClipEncoderLayer> layers;

    public ClipEncoder(int numLayers, int hiddenSize, int intermediateSize, int numHeads, string hiddenAct,
        double layerNormEps, bool causal, Device? device = null)
        : base(nameof(ClipEncoder))
    {
        layers = nn.ModuleList(Enumerable.Range(0, numLayers)
            .Select(_ => new ClipEncoderLayer(hiddenSize, intermediateSize, numHeads, hiddenAct, layerNormEps, causal, device))
            .ToArray());
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)   // (B, T, C) → (B, T, C)
    {
        var h = x;
        foreach (var layer in layers)
        {
            var next = layer.call(h);
            if (!ReferenceEquals(h, x)) h.Dispose();   // free each layer's output as soon as the next one exists
            h = next;
        }
        return ReferenceEquals(h, x) ? x.alias() : h;
    }
}
