using SixLabors.ImageSharp;
using SixLabors.ImageSharp.Formats;
using SixLabors.ImageSharp.Formats.Jpeg;
using SixLabors.ImageSharp.Formats.Png;
using SixLabors.ImageSharp.PixelFormats;

namespace PromptFaces.Generation.Imaging;

/// <summary>
/// Decodes images that may come from users (uploads, files someone sent) with hard limits, so a small hostile file
/// cannot make the server allocate gigabytes.
/// </summary>
/// <remarks>
/// ImageSharp 2.1 has no allocation limit of its own, so the guards are: the encoded size is capped; the dimensions are
/// read with <see cref="Image.Identify(Configuration, Stream, out IImageFormat)"/> (headers only) and anything above
/// <see cref="MaxSide"/> on either side is refused before a pixel is decoded; only PNG and JPEG are accepted (no
/// animated formats, so no frame bombs: PNG here has no APNG support and decodes one frame); and metadata is ignored,
/// because ImageSharp inflates compressed PNG text chunks without a bound.
/// </remarks>
public static class ImageDecoding
{
    /// <summary>The largest width or height accepted from outside (a 4096x4096 RGB image is 48 MiB decoded).</summary>
    public const int MaxSide = 4096;

    /// <summary>The largest encoded file accepted (a 4096x4096 PNG of noise is about 50 MB).</summary>
    public const long MaxEncodedBytes = 64L * 1024 * 1024;

    private static readonly Configuration Untrusted = CreateUntrustedConfiguration();

    /// <summary>Decodes a PNG or JPEG file into RGB, refusing files beyond the limits above.</summary>
    /// <exception cref="InvalidDataException">The file is not a PNG/JPEG, is corrupt, or exceeds a limit.</exception>
    public static Image<Rgb24> LoadRgb24(string path)
    {
        using var stream = File.OpenRead(path);
        try
        {
            return LoadRgb24(stream);
        }
        catch (InvalidDataException e)
        {
            throw new InvalidDataException($"{path}: {e.Message}", e);
        }
    }

    /// <summary>Decodes a PNG or JPEG stream into RGB, refusing input beyond the limits above.</summary>
    /// <exception cref="InvalidDataException">The data is not a PNG/JPEG, is corrupt, or exceeds a limit.</exception>
    public static Image<Rgb24> LoadRgb24(Stream stream)
    {
        ArgumentNullException.ThrowIfNull(stream);
        using var buffered = BufferBounded(stream);
        try
        {
            var info = Image.Identify(Untrusted, buffered, out _)
                ?? throw new InvalidDataException("Not a PNG or JPEG image (the only formats accepted).");
            CheckDimensions(info.Width, info.Height);
            buffered.Position = 0;
            return Image.Load<Rgb24>(Untrusted, buffered);
        }
        catch (ImageFormatException e)
        {
            throw new InvalidDataException($"The image could not be decoded: {e.Message}", e);
        }
    }

    /// <summary>Throws when an image is larger than <see cref="MaxSide"/> on either side or has no pixels.</summary>
    /// <exception cref="InvalidDataException">With the actual and the allowed size.</exception>
    public static void CheckDimensions(long width, long height)
    {
        if (width <= 0 || height <= 0)
            throw new InvalidDataException($"The image claims a size of {width}x{height} pixels, which is invalid.");
        if (width > MaxSide || height > MaxSide)
            throw new InvalidDataException(
                $"The image is {width}x{height} pixels; images larger than {MaxSide}x{MaxSide} are refused.");
    }

    /// <summary>Copies at most <see cref="MaxEncodedBytes"/> into memory, so Identify and Load can both rewind.</summary>
    private static MemoryStream BufferBounded(Stream stream)
    {
        if (stream.CanSeek && stream.Length - stream.Position > MaxEncodedBytes)
            throw TooLarge(stream.Length - stream.Position);
        var memory = new MemoryStream();
        var chunk = new byte[81920];
        int read;
        while ((read = stream.Read(chunk, 0, chunk.Length)) > 0)
        {
            if (memory.Length + read > MaxEncodedBytes)
                throw TooLarge(memory.Length + read);
            memory.Write(chunk, 0, read);
        }
        memory.Position = 0;
        return memory;
    }

    private static InvalidDataException TooLarge(long bytes) =>
        new($"The image file is {bytes} bytes or more; files larger than {MaxEncodedBytes} bytes are refused.");

    private static Configuration CreateUntrustedConfiguration()
    {
        var configuration = new Configuration(new PngConfigurationModule(), new JpegConfigurationModule());
        configuration.ImageFormatsManager.SetDecoder(PngFormat.Instance, new PngDecoder { IgnoreMetadata = true });
        configuration.ImageFormatsManager.SetDecoder(JpegFormat.Instance, new JpegDecoder { IgnoreMetadata = true });
        return configuration;
    }
}
