using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace PromptFaces.Generation.Imaging;

/// <summary>Image filters on (B, C, H, W) tensors, shared by the optimiser's augmented views and the trainers.</summary>
public static class ImageFilters
{
    /// <summary>
    /// Separable Gaussian blur with one sigma (in pixels) per image; a sigma of 0 leaves the image as it is. Edges are
    /// reflected, so a blurred face keeps its background colour in the corners.
    /// </summary>
    /// <param name="images">(B, C, H, W)</param>
    /// <param name="sigmas">(B) on any device</param>
    /// <param name="maxSigma">the largest sigma in <paramref name="sigmas"/>; sets the kernel radius</param>
    public static Tensor GaussianBlur(Tensor images, Tensor sigmas, double maxSigma)
    {
        using var scope = NewDisposeScope();
        var (b, c, h, w) = (images.shape[0], images.shape[1], images.shape[2], images.shape[3]);
        int radius = Math.Max(1, (int)Math.Ceiling(3 * maxSigma));
        radius = (int)Math.Min(radius, Math.Min(h, w) - 1);                           // reflection padding needs radius < side
        var offsets = arange(-radius, radius + 1, dtype: ScalarType.Float32, device: images.device);   // (K)
        var s = sigmas.to(images.device).to(ScalarType.Float32).clamp(min: 1e-3).view(b, 1);
        var kernel = (-(offsets.view(1, -1).square()) / (2 * s.square())).exp();     // (B, K)
        kernel = kernel / kernel.sum(1, keepdim: true);
        var k = kernel.repeat_interleave(c, dim: 0);                                   // (B·C, K): each channel its image's kernel
        var x = images.reshape(1, b * c, h, w);
        x = F.conv2d(F.pad(x, new long[] { radius, radius, 0, 0 }, PaddingModes.Reflect), k.view(b * c, 1, 1, -1), groups: b * c);
        x = F.conv2d(F.pad(x, new long[] { 0, 0, radius, radius }, PaddingModes.Reflect), k.view(b * c, 1, -1, 1), groups: b * c);
        return x.reshape(b, c, h, w).MoveToOuterDisposeScope();
    }

    /// <summary>The same blur for every image of the batch.</summary>
    public static Tensor GaussianBlur(Tensor images, double sigma)
    {
        using var scope = NewDisposeScope();
        var sigmas = full(new[] { images.shape[0] }, sigma, ScalarType.Float32);
        return GaussianBlur(images, sigmas, sigma).MoveToOuterDisposeScope();
    }
}
