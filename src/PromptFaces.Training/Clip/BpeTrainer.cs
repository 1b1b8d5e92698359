using PromptFaces.Generation.Clip;

namespace PromptFaces.Training.Clip;

/// <summary>
/// A learned CLIP vocabulary: token → id and the merge list, best first. Ids 0..511 are the byte symbols (alone, then
/// with <c>&lt;/w&gt;</c>), then one id per new merge result, then <c>&lt;|startoftext|&gt;</c> and
/// <c>&lt;|endoftext|&gt;</c> as the two largest: the text tower pools at the largest id in a row, so end-of-text must
/// be it.
/// </summary>
public sealed record BpeVocabulary(IReadOnlyDictionary<string, int> Vocab, IReadOnlyList<(string Left, string Right)> Merges)
{
    public int Count => Vocab.Count;

    /// <summary>A tokenizer for this vocabulary; <paramref name="contextLength"/> must match the text tower's positions.</summary>
    public ClipTokenizer CreateTokenizer(int contextLength) => new(Vocab, Merges, contextLength);

    /// <summary>Writes <c>vocab.json</c> and <c>merges.txt</c> in Hugging Face's layout.</summary>
    public void Write(string folder) => ClipVocabularyFiles.Write(folder, Vocab, Merges);

    /// <summary>
    /// Reads back what <see cref="Write"/> wrote. The files are checked by building a tokenizer from them, so a
    /// damaged pair fails here with the tokenizer's message (file, line, token) rather than later in training.
    /// </summary>
    public static BpeVocabulary Read(string folder)
    {
        _ = ClipTokenizer.FromFolder(folder);
        var vocab = System.Text.Json.JsonSerializer.Deserialize<Dictionary<string, int>>(File.ReadAllBytes(Path.Combine(folder, "vocab.json")))!;
        var merges = File.ReadAllLines(Path.Combine(folder, "merges.txt"))
            .Where(l => l.Length > 0 && !l.StartsWith("#version", StringComparison.Ordinal))
            .Select(l => l.Split(' ') is [var left, var right] ? (left, right) : throw new InvalidDataException($"{folder}/merges.txt: \"{l}\" is not a merge."))
            .ToList();
        return new BpeVocabulary(vocab, merges);
    }
}

/// <summary>
/// Learns a byte-level BPE vocabulary from a caption corpus, as OpenAI learned CLIP's: the words are exactly those
/// <see cref="ClipTokenizer"/> will see (its clean-up, lower-casing, split pattern and byte alphabet, with
/// <c>&lt;/w&gt;</c> on each word's last symbol), and merges are learned greedily by pair frequency. Because the
/// tokenizer applies merges by rank, it reproduces the segmentation learned here word for word.
/// </summary>
/// <remarks>
/// The pre-tokenisation is taken from the tokenizer itself rather than re-implemented: a merge-less byte-level
/// tokenizer encodes each word as its bytes with the last one in its <c>&lt;/w&gt;</c> form (ids 256..511), so the
/// word boundaries can be read off its ids. A second copy of CLIP's split rules could drift from the real one, and a
/// word split differently at training time would never meet its merges at inference time.
/// </remarks>
public static class BpeTrainer
{
    private const string EndOfWord = "</w>";

    /// <param name="corpus">Training texts (captions); each is split into words as the tokenizer would.</param>
    /// <param name="vocabSize">The largest vocabulary wanted, special tokens included; at least 514. Learning stops
    /// earlier when no adjacent pair occurs <paramref name="minFrequency"/> times.</param>
    /// <param name="minFrequency">A pair seen fewer times than this is never merged: one-off words are better spelt
    /// from pieces than given a token the text tower would see once.</param>
    public static BpeVocabulary Train(IEnumerable<string> corpus, int vocabSize, int minFrequency = 2)
    {
        ArgumentNullException.ThrowIfNull(corpus);
        ArgumentOutOfRangeException.ThrowIfLessThan(vocabSize, 514);
        ArgumentOutOfRangeException.ThrowIfLessThan(minFrequency, 1);

        var wordCounts = CountWords(corpus);
        // Each distinct word as its current symbols; merging edits these lists in place.
        var words = wordCounts.OrderBy(kv => kv.Key, StringComparer.Ordinal)
            .Select(kv => (Symbols: SplitSymbols(kv.Key), Count: kv.Value)).ToList();

        var vocab = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var s in ClipTokenizer.ByteSymbols()) vocab[s] = vocab.Count;
        foreach (var s in ClipTokenizer.ByteSymbols()) vocab[s + EndOfWord] = vocab.Count;

        var merges = new List<(string, string)>();
        int target = vocabSize - 2;   // room for the two special tokens
        while (vocab.Count < target)
        {
            var best = BestPair(words, minFrequency);
            if (best is not var (left, right)) break;
            merges.Add((left, right));
            // Two different pairs can spell the same token ("ab"+"c", "a"+"bc"); it keeps its first id.
            vocab.TryAdd(left + right, vocab.Count);
            foreach (var (symbols, _) in words) MergeInPlace(symbols, left, right);
        }

        vocab[ClipTokenizer.StartOfTextToken] = vocab.Count;
        vocab[ClipTokenizer.EndOfTextToken] = vocab.Count;
        return new BpeVocabulary(vocab, merges);
    }

    /// <summary>Word → occurrences, each word as its byte symbols joined, the last with <c>&lt;/w&gt;</c>.</summary>
    private static Dictionary<string, long> CountWords(IEnumerable<string> corpus)
    {
        var bytes = ByteLevelTokenizer.Create();
        var symbolOf = ByteLevelTokenizer.Vocabulary().ToDictionary(kv => kv.Value, kv => kv.Key);
        var counts = new Dictionary<string, long>(StringComparer.Ordinal);
        var word = new System.Text.StringBuilder();
        foreach (var text in corpus)
        {
            foreach (int id in bytes.Encode(text))
            {
                if (id >= 512)
                {
                    // A typed special token: the tokenizer maps it to its id without BPE, so it is no word to learn.
                    word.Clear();
                    continue;
                }
                word.Append(symbolOf[id]);
                if (id >= 256)
                {
                    var w = word.ToString();
                    counts[w] = counts.GetValueOrDefault(w) + 1;
                    word.Clear();
                }
            }
        }
        return counts;
    }

    /// <summary>A joined word back to its symbols: one character each, the last keeping its <c>&lt;/w&gt;</c>.</summary>
    private static List<string> SplitSymbols(string word)
    {
        int last = word.Length - EndOfWord.Length - 1;
        var symbols = new List<string>(last + 1);
        for (int i = 0; i < last; i++) symbols.Add(word[i].ToString());
        symbols.Add(word[last..]);
        return symbols;
    }

    /// <summary>
    /// The most frequent adjacent pair over all words (weighted by word counts). Ties go to the pair that sorts first by
    /// ordinal comparison of left then right symbol, so the result never depends on dictionary order.
    /// </summary>
    private static (string Left, string Right)? BestPair(List<(List<string> Symbols, long Count)> words, int minFrequency)
    {
        var counts = new Dictionary<(string, string), long>();
        foreach (var (symbols, count) in words)
            for (int i = 0; i + 1 < symbols.Count; i++)
            {
                var pair = (symbols[i], symbols[i + 1]);
                counts[pair] = counts.GetValueOrDefault(pair) + count;
            }

        (string, string)? best = null;
        long bestCount = minFrequency - 1;
        foreach (var (pair, count) in counts)
        {
            // bestCount starts below minFrequency, so a rarer pair is never taken.
            if (count > bestCount || (count == bestCount && best is { } b && Compare(pair, b) < 0))
            {
                best = pair;
                bestCount = count;
            }
        }
        return best;
    }

    private static int Compare((string Left, string Right) a, (string Left, string Right) b)
    {
        int c = string.CompareOrdinal(a.Left, b.Left);
        return c != 0 ? c : string.CompareOrdinal(a.Right, b.Right);
    }

    /// <summary>Merges every occurrence of the pair, left to right, as the tokenizer does within one rank.</summary>
    private static void MergeInPlace(List<string> symbols, string left, string right)
    {
        for (int i = 0; i + 1 < symbols.Count; i++)
        {
            if (symbols[i] == left && symbols[i + 1] == right)
            {
                symbols[i] = left + right;
                symbols.RemoveAt(i + 1);
            }
        }
    }
}
