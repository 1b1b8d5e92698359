using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;
using TorchSharp;
using static TorchSharp.torch;

namespace PromptFaces.Generation.Imaging;

/// <summary>
/// Converts between generator tensors (N, 3, H, W) in [-1, 1] and 8-bit RGB images.
/// </summary>
/// <remarks>
/// The quantisation is NVIDIA's (<c>(x * 127.5 + 128).clamp(0, 255).to(uint8)</c>), so saved images match what the
/// reference StyleGAN2 code writes for the same tensor. The arithmetic runs in TorchSharp on the tensor's own device
/// and only bytes cross to the CPU (a quarter of the float traffic from a GPU); C# touches each image once, to copy
/// the contiguous HWC buffer into ImageSharp.
/// </remarks>
public static class ImageTensors
{
    /// <summary>
    /// One image per batch item of <paramref name="images"/>: shape (N, 3, H, W), any floating dtype, any device, with
    /// or without autograd history. Values outside [-1, 1] are clamped. The caller disposes the images.
    /// </summary>
    public static Image<Rgb24>[] ToImages(Tensor images)
    {
        ArgumentNullException.ThrowIfNull(images);
        if (images.dim() != 4 || images.shape[1] != 3)
            throw new ArgumentException($"Expected an image batch of shape (N, 3, H, W), got {ShapeText(images)}.", nameof(images));
        if (!images.is_floating_point())
            throw new ArgumentException($"Expected a floating-point tensor in [-1, 1], got {images.dtype}.", nameof(images));

        int count = checked((int)images.shape[0]), height = checked((int)images.shape[2]), width = checked((int)images.shape[3]);
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var hwc = (images.detach().to(ScalarType.Float32) * 127.5 + 128)
            .clamp(0, 255)
            .to(ScalarType.Byte)         // truncates: with the +128 above this rounds x*127.5+127.5 to nearest
            .permute(0, 2, 3, 1)         // (N, H, W, 3): the byte order of Rgb24 rows
            .contiguous()
            .cpu();

        ReadOnlySpan<byte> bytes = hwc.bytes;
        int perImage = checked(height * width * 3);
        var result = new Image<Rgb24>[count];
        for (int i = 0; i < count; i++)
            result[i] = Image.LoadPixelData<Rgb24>(bytes.Slice(i * perImage, perImage), width, height);
        return result;
    }

    /// <summary>The single image in <paramref name="image"/>: shape (3, H, W) or (1, 3, H, W).</summary>
    public static Image<Rgb24> ToImage(Tensor image)
    {
        ArgumentNullException.ThrowIfNull(image);
        if (image.dim() == 3)
        {
            using var batched = image.unsqueeze(0);
            return ToImages(batched)[0];
        }
        if (image.dim() != 4 || image.shape[0] != 1)
            throw new ArgumentException($"Expected one image of shape (3, H, W) or (1, 3, H, W), got {ShapeText(image)}.", nameof(image));
        return ToImages(image)[0];
    }

    /// <summary>
    /// <paramref name="image"/> as a (1, 3, H, W) float32 tensor in [-1, 1] on <paramref name="device"/> (default CPU).
    /// Each byte maps to the centre of the interval that <see cref="ToImages"/> quantises to it, so
    /// image → tensor → image is exact and tensor → image → tensor is within 0.5/127.5.
    /// </summary>
    public static Tensor FromImage(Image<Rgb24> image, Device? device = null)
    {
        ArgumentNullException.ThrowIfNull(image);
        var pixels = new byte[checked(image.Width * image.Height * 3)];
        image.CopyPixelDataTo(pixels);
        using var scope = NewDisposeScope();
        var hwc = tensor(pixels, [1, image.Height, image.Width, 3], ScalarType.Byte);
        var result = hwc.to(device ?? CPU)  // move bytes, not floats
            .to(ScalarType.Float32)
            .permute(0, 3, 1, 2)           // (1, 3, H, W)
            .div(127.5)
            .sub(1.0)
            .contiguous();
        return result.MoveToOuterDisposeScope();
    }

    private static string ShapeText(Tensor t) => "(" + string.Join(", ", t.shape) + ")";
}
