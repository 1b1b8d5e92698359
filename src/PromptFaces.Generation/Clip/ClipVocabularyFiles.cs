using System.Text;
using System.Text.Json;

namespace PromptFaces.Generation.Clip;

/// <summary>
/// Writes a tokenizer vocabulary in the layout Hugging Face CLIP folders use (<c>vocab.json</c>, and <c>merges.txt</c>
/// starting with <c>#version: 0.2</c>), so that <see cref="ClipTokenizer.FromFolder"/> and other tools read it back.
/// </summary>
public static class ClipVocabularyFiles
{
    public static void Write(string folder, IReadOnlyDictionary<string, int> vocab, IEnumerable<(string Left, string Right)> merges)
    {
        Directory.CreateDirectory(folder);
        var ordered = vocab.OrderBy(kv => kv.Value).ToDictionary(kv => kv.Key, kv => kv.Value);
        File.WriteAllText(Path.Combine(folder, "vocab.json"), JsonSerializer.Serialize(ordered), new UTF8Encoding(false));
        var text = new StringBuilder("#version: 0.2\n");
        foreach (var (left, right) in merges) text.Append(left).Append(' ').Append(right).Append('\n');
        File.WriteAllText(Path.Combine(folder, "merges.txt"), text.ToString(), new UTF8Encoding(false));
    }
}
