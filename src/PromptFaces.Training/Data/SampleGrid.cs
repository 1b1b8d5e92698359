using PromptFaces.Generation.Imaging;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;
using static TorchSharp.torch;

namespace PromptFaces.Training.Data;

/// <summary>
/// Tiles images into one picture, for the periodic sample grids that trainers and <c>promptfaces dataset</c> write.
/// </summary>
public static class SampleGrid
{
    /// <summary>Pixels between tiles and around the edge; dark so that white and grey backgrounds keep their edges.</summary>
    public const int Gap = 2;

    private static readonly Rgb24 GapColour = new(24, 24, 28);

    /// <summary>
    /// The images in rows of <paramref name="columns"/>, left to right and top to bottom. Tiles may differ in size; each
    /// cell is as large as the largest image. The caller disposes the result (and still owns the inputs).
    /// </summary>
    public static Image<Rgb24> Grid(IReadOnlyList<Image<Rgb24>> images, int columns)
    {
        ArgumentNullException.ThrowIfNull(images);
        if (images.Count == 0) throw new ArgumentException("A sample grid needs at least one image.", nameof(images));
        if (columns < 1) throw new ArgumentOutOfRangeException(nameof(columns), columns, "A sample grid needs at least one column.");
        columns = Math.Min(columns, images.Count);
        int rows = (images.Count + columns - 1) / columns;
        int cellW = images.Max(i => i.Width), cellH = images.Max(i => i.Height);
        int width = columns * (cellW + Gap) + Gap, height = rows * (cellH + Gap) + Gap;
        var canvas = new byte[checked(width * height * 3)];
        for (int i = 0; i < canvas.Length; i += 3) (canvas[i], canvas[i + 1], canvas[i + 2]) = (GapColour.R, GapColour.G, GapColour.B);
        var tile = Array.Empty<byte>();
        for (int k = 0; k < images.Count; k++)
        {
            var image = images[k];
            int rowBytes = image.Width * 3;
            if (tile.Length < rowBytes * image.Height) tile = new byte[rowBytes * image.Height];
            image.CopyPixelDataTo(tile.AsSpan(0, rowBytes * image.Height));
            int x0 = Gap + (k % columns) * (cellW + Gap), y0 = Gap + (k / columns) * (cellH + Gap);
            for (int y = 0; y < image.Height; y++)
                tile.AsSpan(y * rowBytes, rowBytes).CopyTo(canvas.AsSpan(((y0 + y) * width + x0) * 3));
        }
        return Image.LoadPixelData<Rgb24>(canvas, width, height);
    }

    /// <summary>A grid of a generator-style batch: shape (N, 3, H, W) in [-1, 1], any device.</summary>
    public static Image<Rgb24> Grid(Tensor images, int columns)
    {
        var tiles = ImageTensors.ToImages(images);
        try { return Grid(tiles, columns); }
        finally { foreach (var t in tiles) t.Dispose(); }
    }

    /// <summary>Writes <paramref name="grid"/> as PNG (atomically), with optional text chunks such as the step.</summary>
    public static void Save(string path, Image<Rgb24> grid, IReadOnlyDictionary<string, string>? text = null) =>
        PngWriter.SavePng(path, grid, text);

    /// <summary>
    /// Enlarges an image by an integer factor with nearest-neighbour sampling, so 64x64 tiles can be inspected without
    /// blurring what the networks actually see.
    /// </summary>
    public static Image<Rgb24> Upscale(Image<Rgb24> image, int factor)
    {
        ArgumentNullException.ThrowIfNull(image);
        if (factor < 1) throw new ArgumentOutOfRangeException(nameof(factor), factor, "The factor must be at least 1.");
        var source = new byte[image.Width * image.Height * 3];
        image.CopyPixelDataTo(source);
        int width = image.Width * factor, height = image.Height * factor;
        var result = new byte[checked(width * height * 3)];
        for (int y = 0; y < height; y++)
        for (int x = 0; x < width; x++)
            source.AsSpan(((y / factor) * image.Width + x / factor) * 3, 3).CopyTo(result.AsSpan((y * width + x) * 3));
        return Image.LoadPixelData<Rgb24>(result, width, height);
    }
}
