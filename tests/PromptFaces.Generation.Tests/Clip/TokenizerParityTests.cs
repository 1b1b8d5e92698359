using System.Diagnostics;
using System.Text;
using System.Text.Json;
using PromptFaces.Generation.Clip;
using Xunit;

namespace PromptFaces.Generation.Tests.Clip;

/// <summary>
/// The tokenizer against OpenAI's reference (<c>clip-tokenizer/tokenizer_cases.json</c>): every case's ids, its
/// 77-token truncation and its decoded text must match exactly, since the text tower only understands those ids.
/// </summary>
public sealed class TokenizerParityTests
{
    private const string SkipReason = "CLIP tokenizer fixtures (../shared/fixtures/clip-tokenizer) are not on this machine.";
    private const string NoFixtures = "(fixtures missing)";

    private static readonly Lazy<ClipTokenizer> Tokenizer = new(() => ClipTokenizer.FromFolder(Fixtures.Path("clip-tokenizer")));
    private static readonly Lazy<IReadOnlyList<ReferenceCase>> Cases = new(LoadCases);

    /// <summary>One row per reference case, named by its text; a placeholder row (skipped) where the fixtures are absent,
    /// because a theory without rows fails rather than skips.</summary>
    public static TheoryData<string> CaseTexts
    {
        get
        {
            var data = new TheoryData<string>();
            if (Fixtures.Root is null)
            {
                data.Add(NoFixtures);
                return data;
            }
            foreach (var c in Cases.Value)
            {
                data.Add(c.Text);
            }
            return data;
        }
    }

    [Theory]
    [MemberData(nameof(CaseTexts))]
    public void Parity_EncodeMatchesReferenceIds(string text)
    {
        var c = Case(text);
        var tok = Tokenizer.Value;
        int[] actual = [tok.BosId, .. tok.Encode(c.Text), tok.EosId];
        Assert.Equal(c.Ids, actual);
        Assert.Equal(c.Ids.Length, tok.CountTokens(c.Text));
    }

    [Theory]
    [MemberData(nameof(CaseTexts))]
    public void Parity_TokenizeToContext77MatchesReferenceTruncation(string text)
    {
        var c = Case(text);
        var tok = Tokenizer.Value;
        var prompt = tok.Tokenize(c.Text, 77);

        Assert.Equal(77, prompt.Ids.Length);
        Assert.Equal(c.Truncated, prompt.Ids[..prompt.KeptTokenCount]);
        Assert.All(prompt.Ids[prompt.KeptTokenCount..], id => Assert.Equal(tok.PadId, id));
        Assert.Equal(c.Ids.Length, prompt.TokenCount);
        Assert.Equal(c.Ids.Length - c.Truncated.Length, prompt.DroppedTokenCount);
        Assert.Equal(tok.EosId, prompt.Ids[prompt.EndOfTextIndex]);
        Assert.Equal(prompt.DroppedTokenCount > 0, prompt.Warning is not null);

        // The default context is CLIP's 77 too.
        Assert.Equal(prompt.Ids, tok.Tokenize(c.Text).Ids);
    }

    [Theory]
    [MemberData(nameof(CaseTexts))]
    public void Parity_DecodeMatchesReferenceText(string text)
    {
        var c = Case(text);
        Assert.Equal(c.Decoded, Tokenizer.Value.Decode(c.Ids));
    }

    [Fact]
    public void Parity_SpecialIdsAndSizeAreOpenAIs()
    {
        Assert.SkipWhen(Fixtures.Root is null, SkipReason);
        var tok = Tokenizer.Value;
        Assert.Equal(49406, tok.BosId);
        Assert.Equal(49407, tok.EosId);
        Assert.Equal(49408, tok.VocabSize);
        Assert.Equal(77, tok.ContextLength);
        Assert.Equal(tok.EosId, tok.PadId);
    }

    [Fact]
    public void Parity_ByteSymbolsAreTheVocabularysFirst512Tokens()
    {
        Assert.SkipWhen(Fixtures.Root is null, SkipReason);
        var vocab = JsonSerializer.Deserialize<Dictionary<string, int>>(File.ReadAllText(Fixtures.Path("clip-tokenizer", "vocab.json")))!;
        var symbols = ClipTokenizer.ByteSymbols();
        Assert.Equal(256, symbols.Count);
        for (int i = 0; i < 256; i++)
        {
            Assert.Equal(i, vocab[symbols[i]]);
            Assert.Equal(256 + i, vocab[symbols[i] + "</w>"]);
        }
    }

    [Fact]
    public void Parity_FixtureExercisesTruncation()
    {
        // Guards the truncation parity above against a fixture that stops holding a long case.
        Assert.SkipWhen(Fixtures.Root is null, SkipReason);
        Assert.Contains(Cases.Value, c => c.Ids.Length > 77 && c.Truncated.Length == 77);
    }

    [Fact]
    public void Parity_LongReferencePromptWarnsWithTheDroppedCount()
    {
        Assert.SkipWhen(Fixtures.Root is null, SkipReason);
        var longest = Cases.Value.MaxBy(c => c.Ids.Length)!;
        var prompt = Tokenizer.Value.Tokenize(longest.Text);
        int dropped = longest.Ids.Length - 77;
        Assert.Equal(
            $"The prompt is {longest.Ids.Length} tokens long; the last {dropped} were dropped to fit CLIP's 77-token context.",
            prompt.Warning);
    }

    private static ReferenceCase Case(string text)
    {
        Assert.SkipWhen(Fixtures.Root is null, SkipReason);
        return Cases.Value.First(c => c.Text == text);
    }

    private static IReadOnlyList<ReferenceCase> LoadCases()
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Fixtures.Path("clip-tokenizer", "tokenizer_cases.json")));
        return doc.RootElement.GetProperty("cases").EnumerateArray()
            .Select(c => new ReferenceCase(
                c.GetProperty("text").GetString()!,
                c.GetProperty("ids").EnumerateArray().Select(e => e.GetInt32()).ToArray(),
                c.GetProperty("ids_context77_truncated").EnumerateArray().Select(e => e.GetInt32()).ToArray(),
                c.GetProperty("decoded").GetString()!))
            .ToList();
    }

    private sealed record ReferenceCase(string Text, int[] Ids, int[] Truncated, string Decoded);
}

/// <summary>
/// Behaviour that needs no reference data: load errors that tell the user what to do, truncation warnings, Python's
/// text semantics, and the fast BPE against a literal port of OpenAI's loop. Vocabularies here are built in the test.
/// </summary>
public sealed class ClipTokenizerTests
{
    // ---------------------------------------------------------------- loading errors

    [Fact]
    public void FromFolder_MissingVocab_NamesTheFileAndWhatToDo()
    {
        using var dir = new TempDir();
        dir.Write("merges.txt", "#version: 0.2\n");
        var ex = Assert.Throws<ClipTokenizerException>(() => ClipTokenizer.FromFolder(dir.Path));
        Assert.Contains(Path.Combine(dir.Path, "vocab.json"), ex.Message);
        Assert.Contains("not found", ex.Message);
        Assert.Contains("vocab.json and merges.txt", ex.Message);
    }

    [Fact]
    public void FromFolder_MissingFolder_NamesTheFolder()
    {
        string missing = Path.Combine(Path.GetTempPath(), "promptfaces-no-such-folder-" + Guid.NewGuid().ToString("N"));
        var ex = Assert.Throws<ClipTokenizerException>(() => ClipTokenizer.FromFolder(missing));
        Assert.Contains(missing, ex.Message);
        Assert.Contains("does not exist", ex.Message);
    }

    [Fact]
    public void FromFolder_MalformedVocabJson_NamesTheFileAndLine()
    {
        using var dir = new TempDir();
        dir.Write("vocab.json", "{\n  \"a\": 0,\n  \"b\": ,\n}");
        dir.Write("merges.txt", "#version: 0.2\n");
        var ex = Assert.Throws<ClipTokenizerException>(() => ClipTokenizer.FromFolder(dir.Path));
        Assert.StartsWith(Path.Combine(dir.Path, "vocab.json") + ", line 3:", ex.Message);
        Assert.Contains("not valid JSON", ex.Message);
        Assert.Equal(3, ex.Line);
    }

    [Fact]
    public void FromFolder_NonNumericId_NamesTheToken()
    {
        using var dir = new TempDir();
        dir.Write("vocab.json", "{\"a\": 0,\n\"b\": \"one\"}");
        dir.Write("merges.txt", "#version: 0.2\n");
        var ex = Assert.Throws<ClipTokenizerException>(() => ClipTokenizer.FromFolder(dir.Path));
        Assert.Contains("vocab.json, line 2:", ex.Message);
        Assert.Contains("\"b\"", ex.Message);
        Assert.Equal("b", ex.Key);
    }

    [Fact]
    public void FromFolder_VocabWithoutSpecialTokens_SaysWhichIsMissing()
    {
        using var dir = new TempDir();
        var vocab = ByteVocab([]);
        vocab.Remove(ClipTokenizer.StartOfTextToken);
        vocab.Remove(ClipTokenizer.EndOfTextToken);
        dir.Write("vocab.json", JsonSerializer.Serialize(vocab));
        dir.Write("merges.txt", "#version: 0.2\n");
        var ex = Assert.Throws<ClipTokenizerException>(() => ClipTokenizer.FromFolder(dir.Path));
        Assert.Contains("vocab.json", ex.Message);
        Assert.Contains("<|startoftext|>", ex.Message);
    }

    [Fact]
    public void FromFolder_MalformedMergeLine_NamesTheFileAndLine()
    {
        using var dir = new TempDir();
        dir.Write("vocab.json", JsonSerializer.Serialize(ByteVocab([("i", "n")])));
        dir.Write("merges.txt", "#version: 0.2\ni n\nt h e\n");
        var ex = Assert.Throws<ClipTokenizerException>(() => ClipTokenizer.FromFolder(dir.Path));
        Assert.StartsWith(Path.Combine(dir.Path, "merges.txt") + ", line 3:", ex.Message);
        Assert.Contains("\"t h e\"", ex.Message);
        Assert.Equal(3, ex.Line);
    }

    [Fact]
    public void FromFolder_MergeResultMissingFromVocab_NamesTheLineAndTheOtherFile()
    {
        using var dir = new TempDir();
        dir.Write("vocab.json", JsonSerializer.Serialize(ByteVocab([("i", "n")])));
        dir.Write("merges.txt", "#version: 0.2\ni n\nt h\n");
        var ex = Assert.Throws<ClipTokenizerException>(() => ClipTokenizer.FromFolder(dir.Path));
        Assert.Contains("merges.txt, line 3:", ex.Message);
        Assert.Contains("\"th\"", ex.Message);
        Assert.Contains("vocab.json", ex.Message);
    }

    [Fact]
    public void FromFolder_LoadsHuggingFaceLayoutWithCrLfAndNoTrailingNewline()
    {
        using var dir = new TempDir();
        dir.Write("vocab.json", JsonSerializer.Serialize(ByteVocab([("i", "n"), ("in", "k</w>")])));
        dir.Write("merges.txt", "#version: 0.2\r\ni n\r\nin k</w>");
        var tok = ClipTokenizer.FromFolder(dir.Path);
        Assert.Equal(["ink</w>"], Symbols(tok, tok.Encode("INK")));
    }

    // ---------------------------------------------------------------- truncation and padding

    [Fact]
    public void Tokenize_LongPrompt_WarnsWithTheRightCount()
    {
        var tok = new ClipTokenizer(ByteVocab([]), []);
        string text = string.Join(" ", Enumerable.Repeat("a", 89));        // 89 tokens + start + end = 91

        var prompt = tok.Tokenize(text);

        Assert.Equal(91, prompt.TokenCount);
        Assert.Equal(14, prompt.DroppedTokenCount);
        Assert.True(prompt.WasTruncated);
        Assert.Equal("The prompt is 91 tokens long; the last 14 were dropped to fit CLIP's 77-token context.", prompt.Warning);
        Assert.Equal(77, prompt.Ids.Length);
        Assert.Equal(tok.EosId, prompt.Ids[76]);
        Assert.Equal(76, prompt.EndOfTextIndex);
    }

    [Fact]
    public void Tokenize_OneTokenOver_SaysWasInTheSingular()
    {
        var tok = new ClipTokenizer(ByteVocab([]), []);
        var prompt = tok.Tokenize(string.Join(" ", Enumerable.Repeat("a", 76)));
        Assert.Equal("The prompt is 78 tokens long; the last 1 was dropped to fit CLIP's 77-token context.", prompt.Warning);
    }

    [Fact]
    public void Tokenize_PromptThatFits_HasNoWarningAndIsPaddedWithThePadId()
    {
        var tok = new ClipTokenizer(ByteVocab([]), [], contextLength: 8, padId: 0);
        var prompt = tok.Tokenize("a b");

        int a = tok.Encode("a").Single(), b = tok.Encode("b").Single();
        Assert.Equal([tok.BosId, a, b, tok.EosId, 0, 0, 0, 0], prompt.Ids);
        Assert.Null(prompt.Warning);
        Assert.Equal(0, prompt.DroppedTokenCount);
        Assert.Equal(4, prompt.TokenCount);
        Assert.Equal(4, tok.CountTokens("a b"));
    }

    [Fact]
    public void Tokenize_ContextOverride_TruncatesLikeClip()
    {
        var tok = new ClipTokenizer(ByteVocab([]), []);
        var prompt = tok.Tokenize("a b c d e f g", contextLength: 5);

        int[] expected = [tok.BosId, .. tok.Encode("a b c"), tok.EosId];
        Assert.Equal(expected, prompt.Ids);
        Assert.Equal(9 - 5, prompt.DroppedTokenCount);
        Assert.Contains("5-token context", prompt.Warning);
    }

    // ---------------------------------------------------------------- text handling

    [Theory]
    [InlineData("  Multiple \t SPACES\n", "multiple spaces")]
    [InlineData("&amp;lt;b&amp;gt;", "<b>")]                                 // unescaped twice
    [InlineData("\u001c a\u00a0\u2003b \u001f", "a b")]                     // Python strips U+001C..1F; White_Space collapses
    [InlineData("a\u001cb", "a\u001cb")]                                    // ...but the regex module does not collapse them
    [InlineData("ΟΔΥΣΣΕΥΣ ΣΑ", "οδυσσευς σα")]                              // final sigma, as str.lower()
    [InlineData("İSTANBUL", "i\u0307stanbul")]                              // İ lower-cases to two code points in Python
    [InlineData("&amp;copy 2024, a &lt b", "© 2024, a < b")]                // html.unescape takes Latin-1 names without ';'
    [InlineData("this&nothing", "this¬hing")]                               // ...even as a prefix, as Python does
    [InlineData("&#150;&#x41&#0;&#1;", "–a\ufffd")]                         // Windows-1252, no ';', invalid code points
    [InlineData("&lang;x&rang; &unknown; &#", "⟨x⟩ &unknown; &#")]          // HTML 5's brackets; unknown names stay
    public void Normalize_FollowsPythonSemantics(string input, string expected)
    {
        Assert.Equal(expected, ClipTokenizer.Normalize(input));
    }

    [Fact]
    public void Encode_SkipsCombiningYpogegrammeniAsTheCaseInsensitivePatternDoes()
    {
        var tok = new ClipTokenizer(ByteVocab([]), []);
        Assert.Equal(tok.Encode("! !"), tok.Encode("!\u0345!"));
    }

    [Fact]
    public void Decode_RoundTripsNonAsciiText()
    {
        var tok = new ClipTokenizer(ByteVocab([]), []);
        Assert.Equal("café 😀 naïve ", tok.Decode(tok.Encode("Café 😀 naïve")));
    }

    [Fact]
    public void Decode_KeepsSpecialTokensWhenAsked()
    {
        var tok = new ClipTokenizer(ByteVocab([]), []);
        var ids = tok.Tokenize("a", contextLength: 4).Ids;
        Assert.Equal("a ", tok.Decode(ids));
        Assert.Equal("<|startoftext|>a <|endoftext|><|endoftext|>", tok.Decode(ids, skipSpecialTokens: false));
    }

    // ---------------------------------------------------------------- BPE

    [Fact]
    public void Merges_ApplyInRankOrder()
    {
        // "abc" → a b c</w>; whichever merge ranks first wins the shared 'b'.
        var bcFirst = new ClipTokenizer(ByteVocab([("b", "c</w>"), ("a", "b")]), [("b", "c</w>"), ("a", "b")]);
        var abFirst = new ClipTokenizer(ByteVocab([("b", "c</w>"), ("a", "b")]), [("a", "b"), ("b", "c</w>")]);
        Assert.Equal(["a", "bc</w>"], Symbols(bcFirst, bcFirst.Encode("abc")));
        Assert.Equal(["ab", "c</w>"], Symbols(abFirst, abFirst.Encode("abc")));
    }

    [Fact]
    public void BytePairEncoding_MatchesALiteralPortOfOpenAIsLoop()
    {
        // Merge lists in random order, including ones no trainer would produce (a merge using a symbol that a later
        // merge creates), over a tiny alphabet so that overlaps and repeats are frequent; words up to 40 bytes.
        var random = new Random(1234);
        for (int trial = 0; trial < 40; trial++)
        {
            var merges = RandomMerges(random);
            var tok = new ClipTokenizer(ByteVocab(merges), merges);
            var ranks = merges.Select((m, i) => (m, i)).ToDictionary(x => x.m, x => x.i);
            for (int w = 0; w < 50; w++)
            {
                string word = new(Enumerable.Range(0, random.Next(1, 41)).Select(_ => "abc"[random.Next(3)]).ToArray());
                Assert.Equal(OpenAIBpe(word, ranks), Symbols(tok, tok.Encode(word)));
            }
        }
    }

    [Fact]
    public void Encode_IsThreadSafeAndDeterministic()
    {
        var random = new Random(99);
        var merges = RandomMerges(random);
        var tok = new ClipTokenizer(ByteVocab(merges), merges);
        string[] prompts = Enumerable.Range(0, 400)
            .Select(_ => string.Join(" ", Enumerable.Range(0, 12).Select(_ => new string(Enumerable.Range(0, random.Next(1, 12)).Select(_ => "abc"[random.Next(3)]).ToArray()))))
            .ToArray();
        var fresh = new ClipTokenizer(ByteVocab(merges), merges);
        int[][] sequential = prompts.Select(fresh.Encode).ToArray();

        var parallel = new int[prompts.Length][];
        Parallel.For(0, prompts.Length * 4, i => parallel[i % prompts.Length] = tok.Encode(prompts[i % prompts.Length]));

        Assert.Equal(sequential, parallel);
    }

    [Fact]
    public void ByteSymbols_AreGpt2sAlphabetInVocabularyOrder()
    {
        Assert.Equal(ByteAlphabet().Select(c => c.ToString()), ClipTokenizer.ByteSymbols());
    }

    // ---------------------------------------------------------------- helpers

    /// <summary>OpenAI's vocabulary layout: the byte symbols, the same with &lt;/w&gt;, one token per merge, the specials.</summary>
    private static Dictionary<string, int> ByteVocab(IEnumerable<(string Left, string Right)> merges)
    {
        var tokens = ByteAlphabet().Select(c => c.ToString()).ToList();
        tokens.AddRange(tokens.Select(t => t + "</w>").ToList());
        foreach (var (left, right) in merges)
        {
            if (!tokens.Contains(left + right))
            {
                tokens.Add(left + right);
            }
        }
        tokens.Add(ClipTokenizer.StartOfTextToken);
        tokens.Add(ClipTokenizer.EndOfTextToken);
        return tokens.Select((t, i) => (t, i)).ToDictionary(x => x.t, x => x.i);
    }

    /// <summary>GPT-2's bytes_to_unicode values in their dictionary order (the vocabulary's), written out independently
    /// of the tokenizer's copy.</summary>
    private static char[] ByteAlphabet()
    {
        var bs = Enumerable.Range('!', '~' - '!' + 1).Concat(Enumerable.Range(0xA1, 0xAC - 0xA1 + 1)).Concat(Enumerable.Range(0xAE, 0xFF - 0xAE + 1)).ToList();
        var cs = bs.ToList();
        int n = 0;
        for (int b = 0; b < 256; b++)
        {
            if (!bs.Contains(b))
            {
                bs.Add(b);
                cs.Add(256 + n++);
            }
        }
        return cs.Select(c => (char)c).ToArray();
    }

    private static List<(string Left, string Right)> RandomMerges(Random random)
    {
        string[] symbols = ["a", "b", "c", "a</w>", "b</w>", "c</w>"];
        var pool = new List<string>(symbols);
        var merges = new List<(string, string)>();
        for (int i = 0; i < 14; i++)
        {
            string left = pool[random.Next(pool.Count)];
            string right = pool[random.Next(pool.Count)];
            if (left.EndsWith("</w>", StringComparison.Ordinal) || merges.Contains((left, right)))
            {
                continue;                         // nothing follows an end-of-word symbol
            }
            merges.Add((left, right));
            pool.Add(left + right);
        }
        // Shuffled, so that merges can precede the ones creating their symbols.
        return merges.OrderBy(_ => random.Next()).ToList();
    }

    /// <summary>OpenAI's <c>SimpleTokenizer.bpe</c>, transcribed literally: repeatedly the best-ranked pair, all its
    /// occurrences, left to right.</summary>
    private static List<string> OpenAIBpe(string word, Dictionary<(string, string), int> ranks)
    {
        var symbols = word[..^1].Select(c => c.ToString()).Append(word[^1] + "</w>").ToList();
        while (symbols.Count > 1)
        {
            var best = Enumerable.Range(0, symbols.Count - 1)
                .Select(i => (symbols[i], symbols[i + 1]))
                .Where(ranks.ContainsKey)
                .OrderBy(p => ranks[p])
                .FirstOrDefault();
            if (best == default)
            {
                break;
            }
            var merged = new List<string>();
            for (int i = 0; i < symbols.Count;)
            {
                if (i < symbols.Count - 1 && symbols[i] == best.Item1 && symbols[i + 1] == best.Item2)
                {
                    merged.Add(best.Item1 + best.Item2);
                    i += 2;
                }
                else
                {
                    merged.Add(symbols[i++]);
                }
            }
            symbols = merged;
        }
        return symbols;
    }

    private static List<string> Symbols(ClipTokenizer tok, int[] ids) =>
        ids.Select(id => tok.Decode([id], skipSpecialTokens: false).Replace(" ", "</w>", StringComparison.Ordinal)).ToList();

    private sealed class TempDir : IDisposable
    {
        public string Path { get; } = Directory.CreateTempSubdirectory("promptfaces-tokenizer-").FullName;

        public void Write(string name, string text) => File.WriteAllText(System.IO.Path.Combine(Path, name), text, new UTF8Encoding(false));

        public void Dispose()
        {
            try
            {
                Directory.Delete(Path, recursive: true);
            }
            catch (IOException)
            {
                // A leftover temp folder is harmless.
            }
        }
    }
}
