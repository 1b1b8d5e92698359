using SixLabors.ImageSharp;
using SixLabors.ImageSharp.Formats.Png;
using SixLabors.ImageSharp.PixelFormats;

namespace PromptFaces.Generation.Imaging;

/// <summary>
/// Writes final images as PNG with text chunks (prompt, seed, models, ...) and reads those chunks back.
/// </summary>
/// <remarks>
/// Values whose characters all fit Latin-1 go into tEXt chunks, others (e.g. a Japanese prompt) into uncompressed
/// UTF-8 iTXt chunks; ImageSharp picks per value. Text is never compressed: prompts are short, and plain chunks stay
/// readable by any tool. The reader lives here so that the pair that must agree sits in one place.
/// </remarks>
public static class PngWriter
{
    private static readonly PngEncoder Encoder = new()
    {
        ColorType = PngColorType.Rgb,
        BitDepth = PngBitDepth.Bit8,
        TextCompressionThreshold = int.MaxValue,
    };

    /// <summary>
    /// Encodes <paramref name="image"/> as PNG with <paramref name="text"/> as text chunks (in the dictionary's order).
    /// Text chunks already on the image are not written; the image itself is not modified.
    /// </summary>
    /// <exception cref="ArgumentException">A keyword is not 1-79 printable Latin-1 characters without leading, trailing
    /// or double spaces, or a value contains a NUL character (PNG forbids both).</exception>
    public static byte[] EncodePng(Image<Rgb24> image, IReadOnlyDictionary<string, string>? text)
    {
        ArgumentNullException.ThrowIfNull(image);
        using var copy = image.Clone();
        var png = copy.Metadata.GetPngMetadata();
        png.TextData.Clear();
        foreach (var (keyword, value) in text ?? new Dictionary<string, string>())
        {
            ValidateKeyword(keyword);
            ArgumentNullException.ThrowIfNull(value, $"{nameof(text)}[{keyword}]");
            if (value.Contains('\0'))
                throw new ArgumentException($"The value of PNG text chunk '{keyword}' contains a NUL character, which PNG cannot store.", nameof(text));
            png.TextData.Add(new PngTextData(keyword, value, languageTag: "", translatedKeyword: ""));
        }
        using var output = new MemoryStream();
        copy.Save(output, Encoder);
        return output.ToArray();
    }

    /// <summary><see cref="EncodePng"/> written atomically to <paramref name="path"/> (temporary file, then move), so a
    /// reader never sees a half-written PNG. Creates the folder if needed.</summary>
    public static void SavePng(string path, Image<Rgb24> image, IReadOnlyDictionary<string, string>? text) =>
        AtomicFile.Write(path, EncodePng(image, text));

    /// <summary><see cref="SavePng(string, Image{Rgb24}, IReadOnlyDictionary{string, string}?)"/> with the generation's
    /// metadata.</summary>
    public static void SavePng(string path, Image<Rgb24> image, GenerationMetadata metadata)
    {
        ArgumentNullException.ThrowIfNull(metadata);
        SavePng(path, image, metadata.ToTextChunks());
    }

    /// <summary>The text chunks of the PNG at <paramref name="path"/>; no pixels are decoded.</summary>
    /// <exception cref="InvalidDataException">Not a PNG, truncated or corrupt, or larger than
    /// <see cref="ImageDecoding.MaxSide"/> on a side; the message names the file.</exception>
    public static IReadOnlyDictionary<string, string> ReadPngText(string path)
    {
        using var stream = File.OpenRead(path);
        try
        {
            return PngTextChunks.Read(stream);
        }
        catch (InvalidDataException e)
        {
            throw new InvalidDataException($"{path}: {e.Message}", e);
        }
    }

    /// <summary>The text chunks of the PNG in <paramref name="stream"/> (which may be untrusted: every size read is
    /// bounded); no pixels are decoded.</summary>
    /// <exception cref="InvalidDataException">Not a PNG, truncated or corrupt, or larger than
    /// <see cref="ImageDecoding.MaxSide"/> on a side.</exception>
    public static IReadOnlyDictionary<string, string> ReadPngText(Stream stream)
    {
        ArgumentNullException.ThrowIfNull(stream);
        return PngTextChunks.Read(stream);
    }

    /// <summary>PNG keywords: 1-79 printable Latin-1 characters, no leading, trailing or consecutive spaces. Checked
    /// here because ImageSharp silently trims them, and a key that changes on the way out would not read back.</summary>
    private static void ValidateKeyword(string keyword)
    {
        bool valid = keyword is { Length: >= 1 and <= 79 }
            && keyword[0] != ' ' && keyword[^1] != ' ' && !keyword.Contains("  ", StringComparison.Ordinal)
            && keyword.All(c => c is >= ' ' and <= '~' or >= '\u00A1' and <= '\u00FF');
        if (!valid)
            throw new ArgumentException(
                $"'{keyword}' is not a valid PNG text keyword: use 1-79 printable Latin-1 characters, without leading, trailing or double spaces.",
                nameof(keyword));
    }
}
