using PromptFaces.Generation.StyleGan2;
using static TorchSharp.torch;

namespace PromptFaces.Generation.Optimisation;

/// <summary>
/// Where the mapping network's outputs lie, dimension by dimension: a low and a high quantile of w over many random
/// z, and the spread of each dimension. The range prior lets a latent move freely inside this box and charges it for
/// every step outside, measured in the dimension's own standard deviations, so the optimiser cannot drive a few
/// dimensions to values the synthesis network never saw in training (where CLIP is easily satisfied by colour blobs).
/// </summary>
public sealed class LatentRange : IDisposable
{
    public const int DefaultSamples = 8192;
    public const double DefaultTail = 0.001;

    public Tensor Low { get; }     // (w_dim)
    public Tensor High { get; }    // (w_dim)
    public Tensor Scale { get; }   // (w_dim), at least 1e-3

    private LatentRange(Tensor low, Tensor high, Tensor scale)
    {
        Low = low;
        High = high;
        Scale = scale;
    }

    /// <summary>
    /// Measures the range from <paramref name="samples"/> z drawn with a fixed seed (so it is the same on every run),
    /// without truncation. <paramref name="tail"/> is the fraction cut off at each end.
    /// </summary>
    public static LatentRange Measure(StyleGan2Generator generator, int samples = DefaultSamples, double tail = DefaultTail, ulong seed = 0x5EED)
    {
        if (samples < 16) throw new ArgumentOutOfRangeException(nameof(samples), samples, "The range needs at least 16 samples.");
        if (!(tail >= 0 && tail < 0.5)) throw new ArgumentOutOfRangeException(nameof(tail), tail, "The tail must be in [0, 0.5).");
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        using var rng = new Generator(seed);
        var z = randn(new long[] { samples, generator.Config.ZDim }, generator: rng).to(generator.Device);
        var w = generator.Mapping.Forward(z).select(1, 0);                            // (N, w_dim): every layer's w is the same before truncation
        var sorted = w.sort(0).Values;
        long lowIndex = (long)Math.Floor(tail * (samples - 1));
        long highIndex = (long)Math.Ceiling((1 - tail) * (samples - 1));
        var low = sorted[lowIndex].clone();
        var high = sorted[highIndex].clone();
        var scale = w.std(0).clamp_min(1e-3);
        // Detached from every dispose scope: the range lives as long as the models, even when first measured inside a step's scope.
        return new LatentRange(low.DetachFromDisposeScope(), high.DetachFromDisposeScope(), scale.DetachFromDisposeScope());
    }

    /// <summary>
    /// The prior for ws of shape (B, num_ws, w_dim): the squared distance outside the box in units of each dimension's
    /// spread, summed over dimensions and averaged over layers and batch. Zero anywhere inside the box.
    /// </summary>
    public Tensor Penalty(Tensor ws)
    {
        var over = (ws - High).clamp_min(0) + (Low - ws).clamp_min(0);
        return (over / Scale).square().sum(-1).mean();
    }

    /// <summary>
    /// How far the layers' ws of (B, num_ws, w_dim) have moved apart: the squared distance of each layer's w from the
    /// layers' mean, in units of each dimension's spread, summed over dimensions and averaged over layers and batch.
    /// Zero when every layer holds the same w, as the mapping network's outputs do.
    /// </summary>
    public Tensor LayerSpread(Tensor ws) => ((ws - ws.mean(new long[] { 1 }, keepdim: true)) / Scale).square().sum(-1).mean();

    public void Dispose()
    {
        Low.Dispose();
        High.Dispose();
        Scale.Dispose();
    }
}
