using System.Text;

namespace PromptFaces.Training.Clip;

/// <summary>
/// Sentences the CLIP must never be trained on (the evaluation prompts), compared after <see cref="Normalise"/>, so
/// that "A woman with red hair." and "a woman  with red-hair" count as the same sentence. Evaluating on prompts the
/// model was trained on would measure memory, not understanding.
/// </summary>
public sealed class ExclusionList
{
    private readonly HashSet<string> _sentences;

    public static ExclusionList Empty { get; } = new([]);

    public ExclusionList(IEnumerable<string> sentences)
    {
        ArgumentNullException.ThrowIfNull(sentences);
        _sentences = new HashSet<string>(sentences.Select(Normalise).Where(s => s.Length > 0), StringComparer.Ordinal);
    }

    /// <summary>
    /// Reads one sentence per line; blank lines and lines starting with <c>#</c> are skipped. JSON is accepted too, so an
    /// evaluation set file can be passed as it is: an array (or an object's "prompts" array) of strings or of objects
    /// with a "text" or "prompt" string.
    /// </summary>
    public static ExclusionList Load(string path)
    {
        string text;
        try { text = File.ReadAllText(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new FileNotFoundException($"{path}: cannot read the exclusion list ({e.Message}). Give a text file with one sentence per line.", path, e);
        }
        var trimmed = text.TrimStart();
        if (trimmed.StartsWith('[') || trimmed.StartsWith('{'))
            return new ExclusionList(FromJson(trimmed, path));
        return new ExclusionList(text.Split('\n').Select(l => l.Trim()).Where(l => l.Length > 0 && !l.StartsWith('#')));
    }

    private static IEnumerable<string> FromJson(string json, string path)
    {
        System.Text.Json.Nodes.JsonNode? root;
        try { root = System.Text.Json.Nodes.JsonNode.Parse(json); }
        catch (System.Text.Json.JsonException e)
        {
            throw new InvalidDataException($"{path}: looks like JSON but does not parse ({e.Message}). Give one sentence per line, or a JSON array of strings.", e);
        }
        var items = root switch
        {
            System.Text.Json.Nodes.JsonArray a => a,
            System.Text.Json.Nodes.JsonObject o when o["prompts"] is System.Text.Json.Nodes.JsonArray a => a,
            _ => throw new InvalidDataException($"{path}: expected a JSON array of sentences (or an object with a \"prompts\" array)."),
        };
        foreach (var item in items)
        {
            if (item is System.Text.Json.Nodes.JsonValue v && v.TryGetValue(out string? s)) yield return s;
            else if (item is System.Text.Json.Nodes.JsonObject o && (o["text"] ?? o["prompt"]) is System.Text.Json.Nodes.JsonValue p && p.TryGetValue(out string? ps)) yield return ps;
            else throw new InvalidDataException($"{path}: the entry {item?.ToJsonString()} is neither a string nor an object with a \"text\" or \"prompt\" string.");
        }
    }

    public int Count => _sentences.Count;

    /// <summary>The sentences of both lists.</summary>
    public ExclusionList Union(ExclusionList other) => new(_sentences.Concat(other._sentences));

    /// <summary>The normalised sentences, sorted: what a checkpoint stores so that a resumed run excludes the same.</summary>
    public IReadOnlyList<string> Sentences => _sentences.Order(StringComparer.Ordinal).ToList();

    public bool Contains(string sentence) => _sentences.Count > 0 && _sentences.Contains(Normalise(sentence));

    /// <summary>
    /// The comparison form: lower-case runs of letters and digits joined by single spaces, so that case, punctuation,
    /// hyphens and spacing never make two sentences differ ("Clean-shaven." and "clean shaven" are one sentence). The
    /// evaluation set compares the same way, so both sides agree on what "the same sentence" means.
    /// </summary>
    public static string Normalise(string sentence)
    {
        ArgumentNullException.ThrowIfNull(sentence);
        var sb = new StringBuilder(sentence.Length);
        bool gap = false;
        foreach (char c in sentence)
        {
            if (!char.IsLetterOrDigit(c))
            {
                gap = true;
                continue;
            }
            if (gap && sb.Length > 0) sb.Append(' ');
            gap = false;
            sb.Append(char.ToLowerInvariant(c));
        }
        return sb.ToString();
    }
}
