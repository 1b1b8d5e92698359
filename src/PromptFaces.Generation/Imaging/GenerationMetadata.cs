using System.Globalization;

namespace PromptFaces.Generation.Imaging;

/// <summary>
/// What a generated face was made from, stored as PNG text chunks so that a saved file alone is enough to reproduce or
/// credit it (and so the web app can show the prompt of an image it is given back).
/// </summary>
/// <remarks>
/// Numbers are written with the invariant culture and read back the same way, so a file written on a German-locale
/// machine reads identically everywhere; the similarity uses the shortest round-trip form.
/// </remarks>
public sealed record GenerationMetadata
{
    /// <summary>The PNG keywords used. <see cref="Software"/> is the PNG-registered keyword; the rest are ours.</summary>
    public static class Keys
    {
        public const string Prompt = "prompt";
        public const string NegativePrompt = "negative_prompt";
        public const string Seed = "seed";
        public const string Steps = "steps";
        public const string GeneratorModel = "generator";
        public const string ClipModel = "clip";
        public const string FinalSimilarity = "similarity";
        public const string Software = "Software";
    }

    /// <summary>The value of the <see cref="Keys.Software"/> chunk.</summary>
    public const string SoftwareName = "PromptFaces";

    public required string Prompt { get; init; }

    /// <summary>Null or empty: no negative prompt (the chunk is then omitted).</summary>
    public string? NegativePrompt { get; init; }

    public required long Seed { get; init; }

    public required int Steps { get; init; }

    /// <summary>The generator checkpoint's name, e.g. <c>faces-256</c>.</summary>
    public required string GeneratorModel { get; init; }

    /// <summary>The CLIP checkpoint's name, e.g. <c>ViT-B/32</c>.</summary>
    public required string ClipModel { get; init; }

    /// <summary>Cosine similarity between the final image and the prompt, as the optimiser measured it.</summary>
    public required double FinalSimilarity { get; init; }

    /// <summary>The text chunks to write, including the <see cref="Keys.Software"/> tag.</summary>
    public IReadOnlyDictionary<string, string> ToTextChunks()
    {
        var text = new Dictionary<string, string>(StringComparer.Ordinal)
        {
            [Keys.Prompt] = Prompt,
            [Keys.Seed] = Seed.ToString(CultureInfo.InvariantCulture),
            [Keys.Steps] = Steps.ToString(CultureInfo.InvariantCulture),
            [Keys.GeneratorModel] = GeneratorModel,
            [Keys.ClipModel] = ClipModel,
            [Keys.FinalSimilarity] = FinalSimilarity.ToString("R", CultureInfo.InvariantCulture),
            [Keys.Software] = SoftwareName,
        };
        if (!string.IsNullOrEmpty(NegativePrompt))
            text[Keys.NegativePrompt] = NegativePrompt;
        return text;
    }

    /// <summary>Reads the fields back from text chunks (e.g. from <see cref="PngWriter.ReadPngText(string)"/>).</summary>
    /// <exception cref="InvalidDataException">A required key is missing or a number does not parse; names the key.</exception>
    public static GenerationMetadata FromTextChunks(IReadOnlyDictionary<string, string> text)
    {
        ArgumentNullException.ThrowIfNull(text);
        return new GenerationMetadata
        {
            Prompt = Required(text, Keys.Prompt),
            NegativePrompt = text.GetValueOrDefault(Keys.NegativePrompt),
            Seed = Parse(text, Keys.Seed, s => long.Parse(s, NumberStyles.Integer, CultureInfo.InvariantCulture)),
            Steps = Parse(text, Keys.Steps, s => int.Parse(s, NumberStyles.Integer, CultureInfo.InvariantCulture)),
            GeneratorModel = Required(text, Keys.GeneratorModel),
            ClipModel = Required(text, Keys.ClipModel),
            FinalSimilarity = Parse(text, Keys.FinalSimilarity, s => double.Parse(s, NumberStyles.Float, CultureInfo.InvariantCulture)),
        };
    }

    private static string Required(IReadOnlyDictionary<string, string> text, string key) =>
        text.TryGetValue(key, out var value)
            ? value
            : throw new InvalidDataException($"The PNG has no '{key}' text chunk; it was not written by {SoftwareName}, or was stripped.");

    private static T Parse<T>(IReadOnlyDictionary<string, string> text, string key, Func<string, T> parse)
    {
        var value = Required(text, key);
        try
        {
            return parse(value);
        }
        catch (Exception e) when (e is FormatException or OverflowException)
        {
            throw new InvalidDataException($"The PNG's '{key}' text chunk holds '{value}', which is not a valid number.", e);
        }
    }
}
