using System.Text.Json;
using System.Text.Json.Nodes;
using PromptFaces.Training.Faces;

namespace PromptFaces.Training.Evaluation;

/// <summary>One evaluation prompt and the attributes it states, as (attribute index in the schema, class index).</summary>
public sealed record EvalPrompt(string Text, IReadOnlyList<(int AttributeIndex, int ClassIndex)> Stated)
{
    /// <summary>The stated attributes by schema name and class name, as the prompt file writes them.</summary>
    public IReadOnlyDictionary<string, string> StatedByName => Stated.ToDictionary(
        s => FaceAttributes.Schema[s.AttributeIndex].Name,
        s => Enum.GetName(FaceAttributes.Schema[s.AttributeIndex].Enum, s.ClassIndex)!);
}

/// <summary>
/// The fixed prompt set of the judged evaluation (<c>models/eval-prompts.json</c>): prompts in natural English with one
/// to three attributes each, stated explicitly, so the judge can check every one without parsing text.
/// </summary>
/// <remarks>
/// The prompts use the renderer's caption vocabulary, so the project's CLIP knows their words, but are phrased as no
/// training caption is ("Show me someone with purple eyes."): the evaluation measures whether the system understands
/// prompts, not whether it remembers captions. <see cref="NormalisedSentences"/> is the exclusion list the CLIP trainer
/// drops from its captions as a second guard; tests check that sampled captions never equal a prompt.
/// </remarks>
public sealed class EvalPromptSet
{
    /// <summary>The file's name in the models folder.</summary>
    public const string DefaultFileName = "eval-prompts.json";

    /// <summary>The same prompts as plain text, one per line, for tools that only read sentences (the CLIP trainer's --exclude).</summary>
    public const string SentencesFileName = "eval-prompts.txt";

    public const int MaxStatedAttributes = 3;

    public EvalPromptSet(IReadOnlyList<EvalPrompt> prompts, string description = "")
    {
        ArgumentNullException.ThrowIfNull(prompts);
        Prompts = prompts;
        Description = description;
        _normalised = NormalisedSentences.ToHashSet(StringComparer.Ordinal);
    }

    private readonly HashSet<string> _normalised;

    public IReadOnlyList<EvalPrompt> Prompts { get; }

    public string Description { get; }

    public int Count => Prompts.Count;

    /// <summary>Every prompt in <see cref="Normalise"/>d form, in file order: what a caption must never equal.</summary>
    public IReadOnlyList<string> NormalisedSentences => Prompts.Select(p => Normalise(p.Text)).ToArray();

    /// <summary>
    /// The comparison form of a sentence, the one the CLIP trainer's exclusion list uses
    /// (<see cref="Clip.ExclusionList.Normalise"/>): case, punctuation, hyphens and spacing never make two sentences differ.
    /// </summary>
    public static string Normalise(string sentence) => Clip.ExclusionList.Normalise(sentence);

    /// <summary>True when <paramref name="caption"/> equals one of the prompts after <see cref="Normalise"/>.</summary>
    public bool Contains(string caption) => _normalised.Contains(Normalise(caption));

    /// <summary>
    /// A subset of <paramref name="count"/> prompts spread evenly over the set (the first, then every k-th), so that a
    /// short run still mixes prompts with one, two and three attributes; the whole set when count is null or larger.
    /// Returns the chosen prompts with their index in the full set, which fixes their seeds.
    /// </summary>
    public IReadOnlyList<(int Index, EvalPrompt Prompt)> Subset(int? count)
    {
        if (count is not int n || n >= Count) return Prompts.Select((p, i) => (i, p)).ToArray();
        if (n < 1) throw new ArgumentOutOfRangeException(nameof(count), count, "The subset needs at least one prompt.");
        return Enumerable.Range(0, n).Select(k => (int)((long)k * Count / n)).Select(i => (i, Prompts[i])).ToArray();
    }

    /// <summary>Reads a prompt file: <c>{"prompts": [{"text": "...", "attributes": {"eye_colour": "Purple"}}, ...]}</c>.</summary>
    public static EvalPromptSet Load(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        if (!File.Exists(path))
            throw new FileNotFoundException($"{path}: no such prompt file. The committed set is models/{DefaultFileName}; pass another with --prompts FILE.", path);
        return Parse(File.ReadAllText(path), path);
    }

    /// <summary>Parses prompt-file JSON; every fault names <paramref name="source"/>, the prompt and the key.</summary>
    public static EvalPromptSet Parse(string json, string source)
    {
        JsonNode? root;
        try { root = JsonNode.Parse(json); }
        catch (JsonException e) { throw new InvalidDataException($"{source}: not valid JSON ({e.Message}).", e); }
        if (root is not JsonObject obj || obj["prompts"] is not JsonArray array)
            throw new InvalidDataException($"{source}: expected a JSON object with a \"prompts\" array.");

        var prompts = new List<EvalPrompt>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        for (int i = 0; i < array.Count; i++)
        {
            string where = $"{source}: prompt {i + 1}";
            if (array[i] is not JsonObject p) throw new InvalidDataException($"{where} is not a JSON object.");
            if (p["text"] is not JsonValue textValue || !textValue.TryGetValue<string>(out var text) || string.IsNullOrWhiteSpace(text))
                throw new InvalidDataException($"{where} has no \"text\" string.");
            where += $" (\"{text}\")";
            if (!seen.Add(Normalise(text))) throw new InvalidDataException($"{where} occurs twice.");
            if (p["attributes"] is not JsonObject attributes || attributes.Count == 0)
                throw new InvalidDataException($"{where} needs an \"attributes\" object naming what it states, for example {{\"eye_colour\": \"Purple\"}}.");
            if (attributes.Count > MaxStatedAttributes)
                throw new InvalidDataException($"{where} states {attributes.Count} attributes; the evaluation uses at most {MaxStatedAttributes}.");
            var stated = new List<(int, int)>();
            foreach (var (name, value) in attributes)
            {
                int a = AttributeIndex(name) ?? throw new InvalidDataException(
                    $"{where}: unknown attribute '{name}'. Known: {string.Join(", ", FaceAttributes.Schema.Select(s => s.Name))}.");
                var type = FaceAttributes.Schema[a].Enum;
                if (value is not JsonValue v || !v.TryGetValue<string>(out var className) ||
                    !Enum.TryParse(type, className, ignoreCase: true, out var parsed) || !Enum.IsDefined(type, parsed!))
                    throw new InvalidDataException(
                        $"{where}: '{name}' is {value?.ToJsonString() ?? "null"}; expected one of {string.Join(", ", Enum.GetNames(type))}.");
                stated.Add((a, (int)parsed!));
            }
            prompts.Add(new EvalPrompt(text.Trim(), stated.OrderBy(s => s.Item1).ToArray()));
        }
        if (prompts.Count == 0) throw new InvalidDataException($"{source}: the \"prompts\" array is empty.");
        return new EvalPromptSet(prompts, obj["description"]?.GetValue<string>() ?? "");
    }

    /// <summary>Writes the prompts' exact text, one per line (the companion <see cref="SentencesFileName"/>).</summary>
    public void WriteSentences(string path)
    {
        var dir = Path.GetDirectoryName(Path.GetFullPath(path));
        if (!string.IsNullOrEmpty(dir)) Directory.CreateDirectory(dir);
        File.WriteAllLines(path, Prompts.Select(p => p.Text));
    }

    private static int? AttributeIndex(string name)
    {
        for (int a = 0; a < FaceAttributes.Schema.Count; a++)
            if (FaceAttributes.Schema[a].Name == name) return a;
        return null;
    }
}
