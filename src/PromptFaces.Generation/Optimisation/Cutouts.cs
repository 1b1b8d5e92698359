using PromptFaces.Generation.Imaging;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace PromptFaces.Generation.Optimisation;

/// <summary>
/// Random square crops (with random horizontal flips) of the rendered images, resampled to CLIP's input size in one
/// batched grid-sample. CLIP scoring many views makes the gradient robust: it rewards the prompt's features rather than
/// adversarial pixel patterns. View 0 of every image is the whole image, unflipped, so similarity can be reported on it.
/// </summary>
public static class Cutouts
{
    /// <summary>The affine sampling matrices for one job's views: (K, 2, 3), mapping output to input coordinates.</summary>
    public static float[] DrawThetas(SplitMix64 rng, int count, double minScale)
    {
        var theta = new float[count * 6];
        for (int k = 0; k < count; k++)
        {
            double s = 1, tx = 0, ty = 0, flip = 1;
            if (k > 0)
            {
                s = minScale + (1 - minScale) * rng.NextDouble();
                tx = (1 - s) * (2 * rng.NextDouble() - 1);
                ty = (1 - s) * (2 * rng.NextDouble() - 1);
                flip = rng.NextDouble() < 0.5 ? -1 : 1;
            }
            theta[k * 6 + 0] = (float)(s * flip);
            theta[k * 6 + 2] = (float)tx;
            theta[k * 6 + 4] = (float)s;
            theta[k * 6 + 5] = (float)ty;
        }
        return theta;
    }

    /// <summary>
    /// The weights, summing to 1, of a job's <paramref name="count"/> views in its guidance loss: the whole image (view 0)
    /// counts <paramref name="wholeViewWeight"/> crops, so 1 is the plain mean. Small crops mostly show the face; a heavier
    /// whole view gives more say to what only the whole image shows, such as the background around the head (on the
    /// shipped pair it did not help: see models/README.md).
    /// </summary>
    public static float[] Weights(int count, double wholeViewWeight)
    {
        var w = new double[count];
        Array.Fill(w, 1.0);
        w[0] = wholeViewWeight;
        double total = w.Sum();
        return w.Select(x => (float)(x / total)).ToArray();
    }

    /// <summary>
    /// <paramref name="views"/> (K, 3, S, S) with Gaussian noise of standard deviation <paramref name="std"/> added to
    /// every view but the first (the whole image, on which similarity is reported). Noise makes pixel-level patterns
    /// that fool CLIP worth less than the features it reads through noise. Drawn from a generator seeded by the job's
    /// stream, so a job's run stays reproducible and independent of what it is batched with.
    /// </summary>
    public static Tensor AddNoise(Tensor views, SplitMix64 rng, double std)
    {
        using var generator = new Generator(rng.NextUInt64());
        var noise = randn(views.shape, generator: generator).to(views.device).mul_(std);   // drawn on the CPU: the same on every device
        noise.narrow(0, 0, 1).zero_();
        return views + noise;
    }

    /// <summary>
    /// <paramref name="views"/> (K, 3, S, S) with every view but the first blurred by a Gaussian whose standard deviation
    /// (in pixels of the view) is drawn uniformly from [0, <paramref name="maxSigma"/>] per view. Blur takes away the
    /// fine pixel patterns through which the optimiser can fool CLIP, so the gradient has to change what CLIP still
    /// reads in a soft image: colours, shapes and layout. One separable, grouped convolution for all views; reflect
    /// padding keeps the border colours. The sigmas come from the job's stream, so a run stays reproducible and
    /// independent of its batch.
    /// </summary>
    public static Tensor Blur(Tensor views, SplitMix64 rng, double maxSigma)
    {
        var sigmas = new float[views.shape[0]];
        for (int k = 1; k < sigmas.Length; k++) sigmas[k] = (float)(maxSigma * rng.NextDouble());
        using var s = tensor(sigmas);
        return ImageFilters.GaussianBlur(views, s, maxSigma);
    }

    /// <param name="images">(B, 3, R, R)</param>
    /// <param name="thetas">(B·K, 2, 3), the views of image b at rows b·K … b·K + K − 1</param>
    /// <returns>(B·K, 3, size, size)</returns>
    public static Tensor Sample(Tensor images, Tensor thetas, int viewsPerImage, int size)
    {
        var source = images.repeat_interleave(viewsPerImage, dim: 0);        // (B·K, 3, R, R)
        var grid = F.affine_grid(thetas, new long[] { source.shape[0], source.shape[1], size, size }, align_corners: false);
        return F.grid_sample(source, grid, GridSampleMode.Bilinear, GridSamplePaddingMode.Border, align_corners: false);
    }
}
