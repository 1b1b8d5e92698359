namespace PromptFaces.Generation.Clip;

/// <summary>
/// A CLIP vocabulary with no learned merges: one token per byte (plus the end-of-word variants) and the two special
/// tokens, 514 ids in all, end-of-text the largest so CLIP's pooling finds it. It is for random-weight benchmarks and
/// tests, where no vocabulary file exists; real models bring their own vocab.json and merges.txt.
/// </summary>
public static class ByteLevelTokenizer
{
    public static IReadOnlyDictionary<string, int> Vocabulary()
    {
        var symbols = ClipTokenizer.ByteSymbols();
        var vocab = new Dictionary<string, int>();
        foreach (var s in symbols) vocab[s] = vocab.Count;
        foreach (var s in symbols) vocab[s + "</w>"] = vocab.Count;
        vocab[ClipTokenizer.StartOfTextToken] = vocab.Count;
        vocab[ClipTokenizer.EndOfTextToken] = vocab.Count;
        return vocab;
    }

    public static ClipTokenizer Create(int contextLength = ClipTokenizer.DefaultContextLength) =>
        new(Vocabulary(), Array.Empty<(string, string)>(), contextLength);

    /// <summary>Writes vocab.json and merges.txt of this vocabulary into <paramref name="folder"/>.</summary>
    public static void WriteFiles(string folder) => ClipVocabularyFiles.Write(folder, Vocabulary(), Array.Empty<(string, string)>());
}
