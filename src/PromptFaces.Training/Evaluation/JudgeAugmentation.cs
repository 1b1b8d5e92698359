using PromptFaces.Generation.Imaging;
using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace PromptFaces.Training.Evaluation;

/// <summary>
/// Light, label-preserving distortions of renders for training the judge, so that it also reads generator outputs,
/// which are a little soft, slightly off-centre and grainy, and not only the renderer's crisp pixels. Colours change
/// only by a few percent: hair, eye, skin and background classes are colours, and the renderer's own shade variation
/// already spans what a class may look like.
/// </summary>
public sealed record JudgeAugmentation
{
    public double FlipProbability { get; init; } = 0.5;   // faces are symmetric enough that a mirror changes no label
    public double MaxShift { get; init; } = 0.05;         // translation, as a fraction of the side, each axis
    public double MaxScaleChange { get; init; } = 0.08;   // zoom by a factor in [1 − s, 1 + s]
    public double BlurProbability { get; init; } = 0.3;   // share of images blurred at all
    public double MaxBlurSigma { get; init; } = 1.0;      // Gaussian sigma in pixels at 64x64, drawn from [0.3, max]
    public double MaxNoise { get; init; } = 0.04;         // per-pixel Gaussian noise std in [−1, 1] units, drawn from [0, max]
    public double MaxBrightness { get; init; } = 0.03;    // added offset in [−1, 1] units
    public double MaxContrast { get; init; } = 0.05;      // contrast factor in [1 − c, 1 + c]

    /// <summary>No distortion at all (for held-out measurements).</summary>
    public static JudgeAugmentation None { get; } = new()
    {
        FlipProbability = 0, MaxShift = 0, MaxScaleChange = 0, BlurProbability = 0, MaxNoise = 0, MaxBrightness = 0, MaxContrast = 0,
    };

    /// <summary>Distorts a batch (B, 3, H, W) in [−1, 1]; every image draws its own parameters from <paramref name="rng"/>.</summary>
    public Tensor Apply(Tensor images, Generator rng)
    {
        using var scope = NewDisposeScope();
        long b = images.shape[0];
        var device = images.device;
        Tensor U(double lo, double hi) => (rand(new[] { b }, generator: rng) * (hi - lo) + lo).to(device);   // (B)

        var x = images;
        if (MaxShift > 0 || MaxScaleChange > 0 || FlipProbability > 0)
        {
            // affine_grid maps output to input coordinates: a scale above 1 zooms out. Border padding extends the
            // background gradient, which is what the renderer would have drawn there.
            var scale = U(1 - MaxScaleChange, 1 + MaxScaleChange);
            var flip = (U(0, 1) < FlipProbability).to(ScalarType.Float32) * -2 + 1;
            var tx = U(-2 * MaxShift, 2 * MaxShift);
            var ty = U(-2 * MaxShift, 2 * MaxShift);
            var zero = zeros_like(scale);
            var theta = stack(new[] { scale * flip, zero, tx, zero, scale, ty }, 1).reshape(b, 2, 3);   // (B, 2, 3)
            var grid = F.affine_grid(theta, x.shape, align_corners: false);
            x = F.grid_sample(x, grid, GridSampleMode.Bilinear, GridSamplePaddingMode.Border, align_corners: false);
        }
        if (BlurProbability > 0 && MaxBlurSigma > 0)
        {
            var sigma = U(Math.Min(0.3, MaxBlurSigma), MaxBlurSigma) * (U(0, 1) < BlurProbability).to(ScalarType.Float32);
            x = ImageFilters.GaussianBlur(x, sigma * (x.shape[2] / 64.0), MaxBlurSigma * x.shape[2] / 64.0);
        }
        if (MaxContrast > 0 || MaxBrightness > 0)
        {
            var mean = x.mean(new long[] { 1, 2, 3 }, keepdim: true);
            x = (x - mean) * U(1 - MaxContrast, 1 + MaxContrast).view(b, 1, 1, 1) + mean + U(-MaxBrightness, MaxBrightness).view(b, 1, 1, 1);
        }
        if (MaxNoise > 0)
            x = x + randn(x.shape, generator: rng).to(device) * U(0, MaxNoise).view(b, 1, 1, 1);
        return x.clamp(-1, 1).MoveToOuterDisposeScope();
    }
}
