using PromptFaces.Generation.Optimisation;
using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace PromptFaces.Training.Clip;

/// <summary>
/// What the CLIP sees in training, made to resemble what it scores during latent optimisation: <see cref="Cutouts"/>
/// hands it random square crops of 70–100% of the side, randomly flipped and bilinearly resampled, of generator images
/// that are slightly soft and noisy. A CLIP trained only on crisp, centred renders has gradients that point at
/// pixel-exact render features; trained on such views, it rewards the attribute wherever and however it appears.
/// Colour is changed only in shade (brightness, contrast), never in hue or saturation: hue is what the captions name.
/// </summary>
public sealed record ClipAugmentation
{
    public double MinScale { get; init; } = 0.7;        // smallest crop side, as a fraction of the image (Cutouts' default)
    public double WholeImage { get; init; } = 0.25;     // probability of the uncropped view, which the optimiser's view 0 is
    public double FlipProbability { get; init; } = 0.5;
    public double BlurProbability { get; init; } = 0.3; // a blend towards a 3x3 Gaussian blur, of random strength
    public double MaxNoise { get; init; } = 0.03;       // largest per-pixel noise std, in [-1, 1] units
    public double MaxBrightness { get; init; } = 0.04;  // largest shift of all channels together, in [-1, 1] units
    public double MaxContrast { get; init; } = 0.06;    // largest relative contrast change around the image's mean

    /// <summary>No augmentation at all: whole images, resampled only if the size differs.</summary>
    public static ClipAugmentation None { get; } = new()
    {
        MinScale = 1, WholeImage = 1, FlipProbability = 0, BlurProbability = 0, MaxNoise = 0, MaxBrightness = 0, MaxContrast = 0,
    };

    /// <summary>One augmented view of each image, every random choice drawn from <paramref name="rng"/>.</summary>
    /// <param name="images">(B, 3, R, R) in [-1, 1]</param>
    /// <param name="size">the CLIP input side S</param>
    /// <returns>(B, 3, S, S) in [-1, 1]</returns>
    public Tensor Apply(Tensor images, SplitMix64 rng, int size) => Apply(images, Draw((int)images.shape[0], rng), size);

    /// <summary>
    /// The random choices for <paramref name="count"/> views, drawn in C# from <paramref name="rng"/> (the noise through
    /// a torch generator seeded from it), so that a step's views are reproducible from the run's seed and step, and so
    /// that drawing them needs no tensor work.
    /// </summary>
    public AugmentationDraw Draw(int count, SplitMix64 rng)
    {
        var d = new AugmentationDraw(count);
        for (int i = 0; i < count; i++)
        {
            // The crop as Cutouts draws it: side s, centre anywhere that keeps the crop inside, optional mirror.
            double s = 1, tx = 0, ty = 0;
            if (rng.NextDouble() >= WholeImage)
            {
                s = MinScale + (1 - MinScale) * rng.NextDouble();
                tx = (1 - s) * (2 * rng.NextDouble() - 1);
                ty = (1 - s) * (2 * rng.NextDouble() - 1);
            }
            double flip = rng.NextDouble() < FlipProbability ? -1 : 1;
            d.Theta[i * 6 + 0] = (float)(s * flip);
            d.Theta[i * 6 + 2] = (float)tx;
            d.Theta[i * 6 + 4] = (float)s;
            d.Theta[i * 6 + 5] = (float)ty;
            d.Blur[i] = rng.NextDouble() < BlurProbability ? (float)rng.NextDouble() : 0f;
            d.Noise[i] = (float)(MaxNoise * rng.NextDouble());
            d.Brightness[i] = (float)(MaxBrightness * (2 * rng.NextDouble() - 1));
            d.Contrast[i] = (float)(1 + MaxContrast * (2 * rng.NextDouble() - 1));
        }
        d.NoiseSeed = rng.NextUInt64();
        return d;
    }

    /// <summary>The views <paramref name="draw"/> describes.</summary>
    /// <param name="images">(B, 3, R, R) in [-1, 1], B as drawn</param>
    /// <returns>(B, 3, S, S) in [-1, 1]</returns>
    public static Tensor Apply(Tensor images, AugmentationDraw draw, int size)
    {
        int b = draw.Count;
        if (images.shape[0] != b) throw new ArgumentException($"{b} views were drawn for {images.shape[0]} images.", nameof(images));

        using var scope = NewDisposeScope();
        var device = images.device;
        Tensor PerImage(float[] v) => tensor(v, device: device).reshape(b, 1, 1, 1);

        var thetas = tensor(draw.Theta, device: device).reshape(b, 2, 3);
        var grid = F.affine_grid(thetas, [b, 3, size, size], align_corners: false);
        var x = F.grid_sample(images, grid, GridSampleMode.Bilinear, GridSamplePaddingMode.Border, align_corners: false); // (B, 3, S, S)

        if (draw.Blur.Any(v => v > 0))
        {
            // Separable [1 2 1]/4 kernel as shifted sums (libtorch's grouped conv2d is ~30x slower on CPU); edges
            // replicated so the border does not darken.
            var padded = F.pad(x, [1, 1, 1, 1], PaddingModes.Replicate);                  // (B, 3, S + 2, S + 2)
            var rows = padded.narrow(3, 0, size) + 2 * padded.narrow(3, 1, size) + padded.narrow(3, 2, size);   // (B, 3, S + 2, S)
            var blurred = (rows.narrow(2, 0, size) + 2 * rows.narrow(2, 1, size) + rows.narrow(2, 2, size)) / 16;  // (B, 3, S, S)
            x = x + PerImage(draw.Blur) * (blurred - x);
        }
        var mean = x.mean([1, 2, 3], keepdim: true);
        x = (x - mean) * PerImage(draw.Contrast) + mean + PerImage(draw.Brightness);
        if (draw.Noise.Any(v => v > 0))
        {
            // Drawn on the CPU and moved: a seeded generator is a CPU one, and the draw is then the same on every device.
            using var generator = new Generator(draw.NoiseSeed);
            x = x + PerImage(draw.Noise) * torch.randn(x.shape, generator: generator).to(device);
        }
        return x.clamp(-1, 1).MoveToOuterDisposeScope();
    }
}

/// <summary>The random choices behind one batch of augmented views.</summary>
public sealed class AugmentationDraw(int count)
{
    public int Count { get; } = count;
    public float[] Theta { get; } = new float[count * 6];   // (B, 2, 3) affine maps, output to input coordinates
    public float[] Blur { get; } = new float[count];        // blend towards the blurred image, 0..1
    public float[] Noise { get; } = new float[count];       // noise std
    public float[] Brightness { get; } = new float[count];  // added to all channels
    public float[] Contrast { get; } = new float[count];    // factor around the image's mean
    public ulong NoiseSeed { get; set; }
}
