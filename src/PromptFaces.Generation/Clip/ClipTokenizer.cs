using System.Buffers;
using System.Collections.Concurrent;
using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json;

namespace PromptFaces.Generation.Clip;

/// <summary>
/// CLIP's byte-level BPE tokenizer, reproducing OpenAI's <c>simple_tokenizer.py</c> id for id, because the text tower
/// was trained on exactly those ids: a tokenizer that differs even slightly (another split rule, another case mapping)
/// hands the network sequences it never saw and quietly degrades every prompt embedding.
/// </summary>
/// <remarks>
/// <para>
/// The pipeline is OpenAI's: HTML-unescape twice, trim, collapse whitespace runs to one space, trim, lower-case, split
/// with CLIP's pattern, map each UTF-8 byte to GPT-2's printable stand-in character, then merge by rank with
/// <c>&lt;/w&gt;</c> on each word's last symbol. The steps follow Python's semantics rather than .NET's where the two
/// differ (see <see cref="Normalize"/>).
/// </para>
/// <para>
/// OpenAI first runs ftfy's <c>fix_text</c>, which is not reproduced (the reference cases treat it as the identity).
/// Besides repairing mojibake it straightens curly quotes, splits ligatures, narrows full-width forms and applies NFC,
/// so a prompt typed with "it’s" gets other ids here than in OpenAI's own pipeline.
/// </para>
/// <para>
/// Instances are immutable apart from a word cache and are safe to share between threads; load one per model folder
/// and keep it.
/// </para>
/// </remarks>
public sealed class ClipTokenizer
{
    /// <summary>The context every released CLIP text tower was trained with.</summary>
    public const int DefaultContextLength = 77;

    public const string StartOfTextToken = "<|startoftext|>";
    public const string EndOfTextToken = "<|endoftext|>";

    private const string EndOfWord = "</w>";

    // Longer "words" are rare (pasted URLs, runs of symbols); not caching them keeps one hostile prompt from pinning
    // megabytes, and the cap on entries bounds what a long-running server accumulates from its users' prompts.
    private const int MaxCachedWordLength = 64;
    private const int MaxCachedWords = 65_536;

    private static readonly char[] ByteToChar = BuildByteToChar();
    private static readonly int[] CharToByte = BuildCharToByte(ByteToChar);
    private static readonly IReadOnlyList<string> VocabularyByteSymbols = Array.AsReadOnly(
        ByteToChar.Where(c => c < 256).Concat(ByteToChar.Where(c => c >= 256)).Select(c => c.ToString()).ToArray());

    private readonly int[] _byteIds = new int[256];
    private readonly int[] _byteEndOfWordIds = new int[256];
    private readonly Dictionary<long, MergeResult> _merges;
    private readonly string[] _tokens;
    private readonly ConcurrentDictionary<string, int[]> _cache = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, int[]>.AlternateLookup<ReadOnlySpan<char>> _cacheBySpan;
    private int _cachedWordCount;

    /// <summary>Id of <c>&lt;|startoftext|&gt;</c>, read from the vocabulary (49406 in OpenAI's).</summary>
    public int BosId { get; }

    /// <summary>Id of <c>&lt;|endoftext|&gt;</c>, read from the vocabulary (49407 in OpenAI's).</summary>
    public int EosId { get; }

    /// <summary>
    /// What <see cref="Tokenize"/> fills the context with after the end-of-text token. Defaults to <see cref="EosId"/>,
    /// as Hugging Face's CLIP tokenizer does; OpenAI's <c>clip.tokenize</c> pads with 0. The text tower never looks
    /// past the end-of-text token (causal mask, pooling at the first largest id), so either gives the same embedding.
    /// </summary>
    public int PadId { get; }

    /// <summary>Number of tokens, and so the rows the text tower's token embedding must have.</summary>
    public int VocabSize { get; }

    /// <summary>Default length of <see cref="Tokenize"/>'s output; must match the text tower's position embeddings.</summary>
    public int ContextLength { get; }

    /// <summary>
    /// Builds a tokenizer from an in-memory vocabulary and merge list, such as a project-trained one. The vocabulary
    /// must number its tokens 0..n-1 and hold the 256 byte symbols, the same with <c>&lt;/w&gt;</c>, every merge's
    /// parts and result, and both special tokens; merges rank by their order in <paramref name="merges"/>.
    /// </summary>
    /// <exception cref="ClipTokenizerException">The vocabulary and merges do not form a usable CLIP tokenizer.</exception>
    public ClipTokenizer(
        IReadOnlyDictionary<string, int> vocab,
        IEnumerable<(string Left, string Right)> merges,
        int contextLength = DefaultContextLength,
        int? padId = null)
        : this(
            vocab ?? throw new ArgumentNullException(nameof(vocab)),
            (merges ?? throw new ArgumentNullException(nameof(merges))).Select((m, i) => new MergeRule(m.Left, m.Right, i + 1)).ToList(),
            "vocabulary (in memory)", "merge list (in memory)", mergesFromFile: false, contextLength, padId)
    {
    }

    private ClipTokenizer(
        IReadOnlyDictionary<string, int> vocab,
        IReadOnlyList<MergeRule> merges,
        string vocabSource,
        string mergesSource,
        bool mergesFromFile,
        int contextLength,
        int? padId)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(contextLength, 2);

        VocabSize = vocab.Count;
        _tokens = new string[VocabSize];
        foreach (var (token, id) in vocab)
        {
            if (id < 0 || id >= VocabSize)
            {
                throw new ClipTokenizerException(vocabSource,
                    $"token \"{token}\" has id {id}, outside 0..{VocabSize - 1}: a CLIP vocabulary numbers its {VocabSize} tokens from 0 without gaps. " +
                    "The file is damaged or not a CLIP vocab.json; use the one that came with the model.", key: token);
            }
            if (_tokens[id] is { } other)
            {
                throw new ClipTokenizerException(vocabSource,
                    $"tokens \"{other}\" and \"{token}\" share id {id}; every token needs its own id. " +
                    "The file is damaged; use the vocab.json that came with the model.", key: token);
            }
            _tokens[id] = token;
        }

        BosId = RequireToken(vocab, StartOfTextToken, vocabSource);
        EosId = RequireToken(vocab, EndOfTextToken, vocabSource);
        for (int b = 0; b < 256; b++)
        {
            string symbol = ByteToChar[b].ToString();
            _byteIds[b] = RequireToken(vocab, symbol, vocabSource, b);
            _byteEndOfWordIds[b] = RequireToken(vocab, symbol + EndOfWord, vocabSource, b);
        }

        _merges = new Dictionary<long, MergeResult>(merges.Count);
        for (int rank = 0; rank < merges.Count; rank++)
        {
            var rule = merges[rank];
            string where = mergesFromFile ? $"the merge \"{rule.Left} {rule.Right}\"" : $"merge {rule.Line} (\"{rule.Left} {rule.Right}\")";
            int? line = mergesFromFile ? rule.Line : null;
            int left = RequireMergeSymbol(vocab, rule.Left, vocabSource, mergesSource, where, line);
            int right = RequireMergeSymbol(vocab, rule.Right, vocabSource, mergesSource, where, line);
            if (!vocab.TryGetValue(rule.Left + rule.Right, out int merged))
            {
                throw new ClipTokenizerException(mergesSource,
                    $"{where} produces \"{rule.Left + rule.Right}\", which {vocabSource} lacks. A CLIP vocabulary holds every merge's result, " +
                    "so the two files come from different models (or one is truncated); use the vocab.json and merges.txt of one model.",
                    line: line, key: rule.Left + rule.Right);
            }
            // A pair listed twice keeps its later rank, as Python's dict(zip(merges, range(...))) does.
            _merges[PairKey(left, right)] = new MergeResult(rank, merged);
        }

        if (padId is { } pad && (pad < 0 || pad >= VocabSize))
        {
            throw new ArgumentOutOfRangeException(nameof(padId), pad, $"The pad id must be a token of this vocabulary (0..{VocabSize - 1}).");
        }
        PadId = padId ?? EosId;
        ContextLength = contextLength;
        _cacheBySpan = _cache.GetAlternateLookup<ReadOnlySpan<char>>();
    }

    /// <summary>
    /// Loads the tokenizer of a CLIP model folder in Hugging Face's layout: <c>vocab.json</c> (token → id) and
    /// <c>merges.txt</c> (one merge per line, best first, after a <c>#version</c> header).
    /// </summary>
    /// <exception cref="ClipTokenizerException">A file is missing, unreadable or malformed; the message names the file,
    /// the line or key, and what to do.</exception>
    public static ClipTokenizer FromFolder(string folder, int contextLength = DefaultContextLength, int? padId = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(folder);
        string full = Path.GetFullPath(folder);
        if (!Directory.Exists(full))
        {
            throw new ClipTokenizerException(full,
                "the folder does not exist. Point the tokenizer at a CLIP model folder holding vocab.json and merges.txt.");
        }

        string vocabPath = Path.Combine(full, "vocab.json");
        string mergesPath = Path.Combine(full, "merges.txt");
        var vocab = ParseVocab(ReadFile(vocabPath, File.ReadAllBytes), vocabPath);
        var merges = ParseMerges(ReadFile(mergesPath, File.ReadAllText), mergesPath);
        return new ClipTokenizer(vocab, merges, vocabPath, mergesPath, mergesFromFile: true, contextLength, padId);
    }

    /// <summary>
    /// The 256 byte symbols in the order OpenAI's vocabulary lists them (printable Latin-1 first, then the stand-ins for
    /// the rest), which are ids 0..255 of every CLIP vocabulary and, with <c>&lt;/w&gt;</c>, ids 256..511. For building a
    /// vocabulary in code, such as a merge-less one for tests or a project-trained one.
    /// </summary>
    public static IReadOnlyList<string> ByteSymbols() => VocabularyByteSymbols;

    /// <summary>The BPE ids of <paramref name="text"/>, without the start and end tokens and without truncation.</summary>
    public int[] Encode(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        string normalized = Normalize(text);
        var ids = new List<int>(normalized.Length / 3 + 4);
        EncodeNormalized(normalized, ids);
        return ids.ToArray();
    }

    /// <summary>
    /// The tokens a prompt occupies in the context, the start and end tokens included, before truncation; a live
    /// counter shows this against <see cref="ContextLength"/>.
    /// </summary>
    public int CountTokens(string text) => Encode(text).Length + 2;

    /// <summary>
    /// The text tower's input for <paramref name="text"/>: <c>[bos] + bpe + [eos]</c>, padded with <see cref="PadId"/>
    /// to the context length. A prompt too long for the context keeps its first ids and ends with the end-of-text id
    /// in place of the last kept one, as <c>clip.tokenize(truncate=True)</c> does, and says so in
    /// <see cref="TokenizedPrompt.Warning"/> so that the user learns which words had no effect.
    /// </summary>
    public TokenizedPrompt Tokenize(string text, int? contextLength = null)
    {
        int context = contextLength ?? ContextLength;
        ArgumentOutOfRangeException.ThrowIfLessThan(context, 2, nameof(contextLength));

        int[] bpe = Encode(text);
        int tokenCount = bpe.Length + 2;
        int kept = Math.Min(tokenCount, context);

        var ids = new int[context];
        ids[0] = BosId;
        bpe.AsSpan(0, kept - 2).CopyTo(ids.AsSpan(1));
        ids[kept - 1] = EosId;
        ids.AsSpan(kept).Fill(PadId);

        int dropped = tokenCount - kept;
        string? warning = dropped == 0
            ? null
            : $"The prompt is {tokenCount} tokens long; the last {dropped} {(dropped == 1 ? "was" : "were")} dropped to fit CLIP's {context}-token context.";
        return new TokenizedPrompt(ids, tokenCount, dropped, warning);
    }

    /// <summary>
    /// Text back from ids, with each word followed by a space as OpenAI's decoder gives it: lower-cased, unescaped and
    /// re-spaced, so it shows what the model actually read (after truncation, for instance). Start and end tokens are
    /// left out unless <paramref name="skipSpecialTokens"/> is false; padding other than the end token is not.
    /// </summary>
    public string Decode(IEnumerable<int> ids, bool skipSpecialTokens = true)
    {
        ArgumentNullException.ThrowIfNull(ids);
        var bytes = new ArrayBufferWriter<byte>();
        Span<byte> utf8 = stackalloc byte[4];
        foreach (int id in ids)
        {
            if ((uint)id >= (uint)VocabSize)
            {
                throw new ArgumentOutOfRangeException(nameof(ids), id, $"Token id {id} is not in this vocabulary (0..{VocabSize - 1}).");
            }
            if (skipSpecialTokens && (id == BosId || id == EosId))
            {
                continue;
            }
            foreach (char c in _tokens[id])
            {
                if (c < CharToByte.Length && CharToByte[c] >= 0)
                {
                    bytes.GetSpan(1)[0] = (byte)CharToByte[c];
                    bytes.Advance(1);
                }
                else
                {
                    // Only a hand-made vocabulary can hold characters outside the byte alphabet; keep them as written.
                    int n = Encoding.UTF8.GetBytes([c], utf8);
                    bytes.Write(utf8[..n]);
                }
            }
        }
        // The end-of-word marker survives byte decoding as literal text, so it is replaced afterwards, as OpenAI does.
        return Encoding.UTF8.GetString(bytes.WrittenSpan).Replace(EndOfWord, " ", StringComparison.Ordinal);
    }

    /// <summary>
    /// OpenAI's text clean-up with Python's semantics, which differ from .NET's defaults in ways that change ids:
    /// <list type="bullet">
    /// <item>The collapsing <c>\s</c> is the <c>regex</c> module's (Unicode White_Space, as <see cref="char.IsWhiteSpace(char)"/>),
    /// but <c>str.strip()</c> also removes U+001C..U+001F.</item>
    /// <item><c>str.lower()</c> maps U+0130 to "i̇" and capital sigma to final ς at a word's end; .NET's invariant
    /// lower-casing does neither.</item>
    /// </list>
    /// HTML unescaping is <see cref="HtmlUnescape"/>, a port of <c>html.unescape</c>.
    /// </summary>
    internal static string Normalize(string text)
    {
        string unescaped = HtmlUnescape(HtmlUnescape(text));
        ReadOnlySpan<char> trimmed = TrimPythonWhitespace(unescaped);

        char[] buffer = ArrayPool<char>.Shared.Rent(Math.Max(trimmed.Length, 1));
        try
        {
            int n = 0;
            bool inSpace = false;
            foreach (char c in trimmed)
            {
                if (char.IsWhiteSpace(c))
                {
                    if (!inSpace)
                    {
                        buffer[n++] = ' ';
                    }
                    inSpace = true;
                }
                else
                {
                    buffer[n++] = c;
                    inSpace = false;
                }
            }
            return ToLowerLikePython(TrimPythonWhitespace(buffer.AsSpan(0, n)));
        }
        finally
        {
            ArrayPool<char>.Shared.Return(buffer);
        }
    }

    /// <summary>
    /// Splits as CLIP's <c>&lt;\|startoftext\|&gt;|&lt;\|endoftext\|&gt;|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+</c>
    /// (case-insensitive) does under Python's <c>regex</c> module. Hand-written rather than a .NET Regex because .NET
    /// classifies UTF-16 code units: a letter outside the BMP (𝐀, 𠀀) is two surrogates to it, neither a letter.
    /// </summary>
    private void EncodeNormalized(string text, List<int> ids)
    {
        ReadOnlySpan<char> s = text;
        int i = 0;
        while (i < s.Length)
        {
            ReadOnlySpan<char> rest = s[i..];
            if (rest[0] == '<')
            {
                // Typed special tokens count as the real ones, as in OpenAI's tokenizer (its BPE cache is seeded with them).
                if (rest.StartsWith(StartOfTextToken, StringComparison.Ordinal))
                {
                    ids.Add(BosId);
                    i += StartOfTextToken.Length;
                    continue;
                }
                if (rest.StartsWith(EndOfTextToken, StringComparison.Ordinal))
                {
                    ids.Add(EosId);
                    i += EndOfTextToken.Length;
                    continue;
                }
            }
            else if (rest[0] == '\'' && ContractionLength(rest) is > 0 and var contraction)
            {
                AppendWord(rest[..contraction], ids);
                i += contraction;
                continue;
            }

            var kind = Classify(rest, out int width);
            if (kind == CharKind.Space)
            {
                i += width;
                continue;
            }
            int end = i + width;
            if (kind != CharKind.Number)
            {
                // Letters run while letters follow; other symbols run while neither letters, digits nor spaces follow.
                while (end < s.Length && Classify(s[end..], out int w) == kind)
                {
                    end += w;
                }
            }
            AppendWord(s[i..end], ids);
            i = end;
        }
    }

    private static int ContractionLength(ReadOnlySpan<char> s)
    {
        if (s.Length < 2)
        {
            return 0;
        }
        switch (s[1])
        {
            // 'ſ' (U+017F) is here because the pattern is case-insensitive and the regex module folds it to 's'.
            case 's' or 'ſ' or 't' or 'm' or 'd':
                return 2;
            case 'r' or 'v' when s.Length >= 3 && s[2] == 'e':
            case 'l' when s.Length >= 3 && s[2] == 'l':
                return 3;
            default:
                return 0;
        }
    }

    private enum CharKind { Letter, Number, Space, Other }

    private static CharKind Classify(ReadOnlySpan<char> s, out int width)
    {
        char c = s[0];
        if (c < 0x80)
        {
            width = 1;
            return char.IsAsciiLetter(c) ? CharKind.Letter
                : char.IsAsciiDigit(c) ? CharKind.Number
                : char.IsWhiteSpace(c) ? CharKind.Space
                : CharKind.Other;
        }
        // A lone surrogate decodes to U+FFFD (a symbol), as its UTF-8 encoding below will.
        Rune.DecodeFromUtf16(s, out Rune r, out width);
        // U+0345 (combining ypogegrammeni) case-folds to ι, so under the pattern's IGNORECASE it is neither in
        // [\p{L}] nor in [^\s\p{L}\p{N}]: the regex module skips it like a space, and so OpenAI's ids omit it.
        return r.Value == 0x0345 ? CharKind.Space
            : Rune.IsLetter(r) ? CharKind.Letter
            : Rune.IsNumber(r) ? CharKind.Number
            : Rune.IsWhiteSpace(r) ? CharKind.Space
            : CharKind.Other;
    }

    private void AppendWord(ReadOnlySpan<char> word, List<int> ids)
    {
        bool cacheable = word.Length <= MaxCachedWordLength;
        if (cacheable && _cacheBySpan.TryGetValue(word, out int[]? cached))
        {
            ids.AddRange(cached);
            return;
        }

        int[] encoded = BytePairEncode(word);
        if (cacheable)
        {
            if (Interlocked.Increment(ref _cachedWordCount) > MaxCachedWords)
            {
                _cache.Clear();
                Interlocked.Exchange(ref _cachedWordCount, 0);
            }
            _cacheBySpan.TryAdd(word, encoded);
        }
        ids.AddRange(encoded);
    }

    private int[] BytePairEncode(ReadOnlySpan<char> word)
    {
        int maxBytes = Encoding.UTF8.GetMaxByteCount(word.Length);
        byte[]? rented = maxBytes > 256 ? ArrayPool<byte>.Shared.Rent(maxBytes) : null;
        try
        {
            Span<byte> bytes = rented ?? stackalloc byte[256];
            int n = Encoding.UTF8.GetBytes(word, bytes);
            return Merge(bytes[..n]);
        }
        finally
        {
            if (rented is not null)
            {
                ArrayPool<byte>.Shared.Return(rented);
            }
        }
    }

    /// <summary>
    /// Applies the merges to one word's bytes. OpenAI repeatedly takes the best-ranked adjacent pair and merges all its
    /// occurrences left to right, which is quadratic in the word's length; this does the same with a heap and a linked
    /// list, so that a pasted run of thousands of characters without spaces cannot stall the process. Each rank is
    /// finished (all occurrences, left to right) before pairs it created are considered, which keeps the result
    /// identical to OpenAI's for any merge list, not only for ones learned in order.
    /// </summary>
    private int[] Merge(ReadOnlySpan<byte> bytes)
    {
        int n = bytes.Length;
        if (n == 1)
        {
            return [_byteEndOfWordIds[bytes[0]]];
        }

        var symbols = new int[n];
        var prev = new int[n];
        var next = new int[n];
        for (int i = 0; i < n; i++)
        {
            symbols[i] = i == n - 1 ? _byteEndOfWordIds[bytes[i]] : _byteIds[bytes[i]];
            prev[i] = i - 1;
            next[i] = i + 1 < n ? i + 1 : -1;
        }

        var queue = new PriorityQueue<int, long>();
        for (int i = 0; i + 1 < n; i++)
        {
            if (_merges.TryGetValue(PairKey(symbols[i], symbols[i + 1]), out var m))
            {
                queue.Enqueue(i, QueueKey(m.Rank, i));
            }
        }

        int count = n;
        var merged = new List<int>();
        while (queue.TryPeek(out _, out long first))
        {
            int rank = (int)(first >> 32);
            while (queue.TryPeek(out int left, out long key) && (int)(key >> 32) == rank)
            {
                queue.Dequeue();
                int right = next[left];
                // Entries go stale when a neighbour merged since they were queued; a rank names one pair, so a match
                // on rank proves the pair is still there.
                if (symbols[left] < 0 || right < 0
                    || !_merges.TryGetValue(PairKey(symbols[left], symbols[right]), out var m) || m.Rank != rank)
                {
                    continue;
                }
                symbols[left] = m.Id;
                symbols[right] = -1;
                next[left] = next[right];
                if (next[right] >= 0)
                {
                    prev[next[right]] = left;
                }
                count--;
                merged.Add(left);
            }

            foreach (int node in merged)
            {
                if (symbols[node] < 0)
                {
                    continue;
                }
                int p = prev[node];
                if (p >= 0 && _merges.TryGetValue(PairKey(symbols[p], symbols[node]), out var before))
                {
                    queue.Enqueue(p, QueueKey(before.Rank, p));
                }
                int q = next[node];
                if (q >= 0 && _merges.TryGetValue(PairKey(symbols[node], symbols[q]), out var after))
                {
                    queue.Enqueue(node, QueueKey(after.Rank, node));
                }
            }
            merged.Clear();
        }

        var result = new int[count];
        for (int node = 0, k = 0; node >= 0; node = next[node])
        {
            result[k++] = symbols[node];
        }
        return result;
    }

    private static long PairKey(int left, int right) => ((long)left << 32) | (uint)right;

    private static long QueueKey(int rank, int position) => ((long)rank << 32) | (uint)position;

    /// <summary>
    /// Python's <c>html.unescape</c>: <see cref="WebUtility.HtmlDecode(string)"/> alone differs on inputs a prompt can
    /// hold. Python also decodes the Latin-1 entities without their semicolon ("&amp;copy 2024", "a &amp;lt b", even
    /// "this&amp;nothing" → "this¬hing"), reads numeric references without a semicolon, maps &amp;#128;..&amp;#159; through
    /// Windows-1252 (&amp;#150; is "–", not a control character) and drops or replaces invalid code points.
    /// </summary>
    /// <remarks>
    /// Names are resolved through <see cref="WebUtility"/>, which knows HTML 4's 253 entities (all the Latin-1, Greek,
    /// arrow and math names a person types); the 2,000-odd names HTML 5 added (&amp;check;, &amp;lbrace;...) stay
    /// undecoded here, where Python would decode them.
    /// </remarks>
    internal static string HtmlUnescape(string s)
    {
        int amp = s.IndexOf('&');
        if (amp < 0)
        {
            return s;
        }

        var sb = new StringBuilder(s.Length);
        int copied = 0;
        while (amp >= 0)
        {
            sb.Append(s, copied, amp - copied);
            int length = ReplaceCharacterReference(s, amp, sb);
            if (length == 0)
            {
                sb.Append('&');
                length = 1;
            }
            copied = amp + length;
            amp = s.IndexOf('&', copied);
        }
        sb.Append(s, copied, s.Length - copied);
        return sb.ToString();
    }

    /// <summary>Matches <c>&amp;(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\t\n\f &lt;&amp;#;]{1,32};?)</c> at
    /// <paramref name="amp"/> and appends its replacement; returns the match's length, 0 where nothing matches.</summary>
    private static int ReplaceCharacterReference(string s, int amp, StringBuilder sb)
    {
        int i = amp + 1;
        if (i < s.Length && s[i] == '#')
        {
            bool hex = i + 1 < s.Length && s[i + 1] is 'x' or 'X';
            int start = hex ? i + 2 : i + 1;
            int end = start;
            while (end < s.Length && (hex ? char.IsAsciiHexDigit(s[end]) : char.IsAsciiDigit(s[end])))
            {
                end++;
            }
            if (end == start)
            {
                return 0;                   // '#' cannot start a name either
            }
            var digits = s.AsSpan(start, end - start).TrimStart('0');
            int code = digits.Length > (hex ? 6 : 7) ? int.MaxValue
                : digits.IsEmpty ? 0
                : int.Parse(digits, hex ? NumberStyles.AllowHexSpecifier : NumberStyles.None, CultureInfo.InvariantCulture);
            if (end < s.Length && s[end] == ';')
            {
                end++;
            }
            sb.Append(NumericCharacter(code));
            return end - amp;
        }

        // A name: 1 to 32 code points other than tab, newline, form feed, space, '<', '&', '#' and ';'.
        int nameEnd = i;
        for (int count = 0; count < 32 && nameEnd < s.Length && s[nameEnd] is not ('\t' or '\n' or '\f' or ' ' or '<' or '&' or '#' or ';'); count++)
        {
            nameEnd += char.IsHighSurrogate(s[nameEnd]) && nameEnd + 1 < s.Length && char.IsLowSurrogate(s[nameEnd + 1]) ? 2 : 1;
        }
        if (nameEnd == i)
        {
            return 0;
        }
        bool semicolon = nameEnd < s.Length && s[nameEnd] == ';';
        int matchEnd = nameEnd + (semicolon ? 1 : 0);
        string name = s[i..nameEnd];

        if (LegacyEntities.TryGetValue(name, out string? value)
            || (semicolon && TryDecodeEntity(name, out value)))
        {
            sb.Append(value);
            return matchEnd - amp;
        }
        // Python then takes the longest known prefix (of at least two characters) and keeps the rest as text; only the
        // semicolon-less Latin-1 names can be such a prefix.
        for (int x = Math.Min(matchEnd - i - 1, LongestLegacyEntity); x >= 2; x--)
        {
            if (LegacyEntities.TryGetValue(name[..x], out value))
            {
                sb.Append(value).Append(s, i + x, matchEnd - (i + x));
                return matchEnd - amp;
            }
        }
        return 0;
    }

    private static string NumericCharacter(int code)
    {
        if (code is >= 0x80 and <= 0x9F || code is 0x00 or 0x0D)
        {
            return code == 0x0D ? "\r" : code == 0x00 ? "\uFFFD" : Windows1252[code - 0x80].ToString();
        }
        if (code is >= 0xD800 and <= 0xDFFF || code > 0x10FFFF)
        {
            return "\uFFFD";
        }
        // Python drops the code points HTML forbids: C0 and C1 controls (bar tab, newlines, form feed) and non-characters.
        if (code is >= 0x01 and <= 0x08 or 0x0B or >= 0x0E and <= 0x1F or >= 0x7F and <= 0x9F or >= 0xFDD0 and <= 0xFDEF
            || (code & 0xFFFE) == 0xFFFE)
        {
            return "";
        }
        return char.ConvertFromUtf32(code);
    }

    private static bool TryDecodeEntity(string name, out string? value)
    {
        // HTML 5 moved these two to the mathematical angle brackets; WebUtility keeps HTML 4's code points.
        if (name is "lang" or "rang")
        {
            value = name == "lang" ? "\u27E8" : "\u27E9";
            return true;
        }
        string reference = "&" + name + ";";
        value = WebUtility.HtmlDecode(reference);
        return value != reference;
    }

    // What &#128;..&#159; decode to (Windows-1252, its five holes kept as the C1 controls), as Python's table has it.
    private const string Windows1252 =
        "\u20AC\u0081\u201A\u0192\u201E\u2026\u2020\u2021\u02C6\u2030\u0160\u2039\u0152\u008D\u017D\u008F" +
        "\u0090\u2018\u2019\u201C\u201D\u2022\u2013\u2014\u02DC\u2122\u0161\u203A\u0153\u009D\u017E\u0178";

    /// <summary>HTML's entities that also decode without a semicolon: the Latin-1 ones and a few capitalised aliases.</summary>
    private static readonly Dictionary<string, string> LegacyEntities = BuildLegacyEntities();
    private const int LongestLegacyEntity = 6;

    private static Dictionary<string, string> BuildLegacyEntities()
    {
        const string Names =
            "AElig AMP Aacute Acirc Agrave Aring Atilde Auml COPY Ccedil ETH Eacute Ecirc Egrave Euml GT Iacute Icirc Igrave Iuml " +
            "LT Ntilde Oacute Ocirc Ograve Oslash Otilde Ouml QUOT REG THORN Uacute Ucirc Ugrave Uuml Yacute aacute acirc acute " +
            "aelig agrave amp aring atilde auml brvbar ccedil cedil cent copy curren deg divide eacute ecirc egrave eth euml " +
            "frac12 frac14 frac34 gt iacute icirc iexcl igrave iquest iuml laquo lt macr micro middot nbsp not ntilde oacute " +
            "ocirc ograve ordf ordm oslash otilde ouml para plusmn pound quot raquo reg sect shy sup1 sup2 sup3 szlig thorn " +
            "times uacute ucirc ugrave uml uuml yacute yen yuml";
        var map = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (string name in Names.Split(' '))
        {
            // The capitalised aliases (AMP, COPY...) are HTML 5's; WebUtility knows them in lower case.
            if (!TryDecodeEntity(name, out string? value) && !TryDecodeEntity(name.ToLowerInvariant(), out value))
            {
                throw new InvalidOperationException($"WebUtility does not decode &{name};.");
            }
            map[name] = value!;
        }
        return map;
    }

    private static ReadOnlySpan<char> TrimPythonWhitespace(ReadOnlySpan<char> s)
    {
        int start = 0, end = s.Length;
        while (start < end && IsPythonSpace(s[start]))
        {
            start++;
        }
        while (end > start && IsPythonSpace(s[end - 1]))
        {
            end--;
        }
        return s[start..end];
    }

    // str.isspace(): Unicode White_Space plus the information separators U+001C..U+001F (bidi class B/S).
    private static bool IsPythonSpace(char c) => char.IsWhiteSpace(c) || (uint)(c - 0x1C) <= 3;

    private static string ToLowerLikePython(ReadOnlySpan<char> s)
    {
        if (System.Text.Ascii.IsValid(s))
        {
            return string.Create(s.Length, s, static (dest, src) => System.Text.Ascii.ToLower(src, dest, out _));
        }

        var sb = new StringBuilder(s.Length + 8);
        Span<char> buffer = stackalloc char[2];
        for (int i = 0; i < s.Length;)
        {
            if (Rune.DecodeFromUtf16(s[i..], out Rune r, out int width) != OperationStatus.Done)
            {
                sb.Append(s[i]);            // a lone surrogate stays as it is
                i += width;
                continue;
            }
            switch (r.Value)
            {
                case 0x0130:                // İ: SpecialCasing's only unconditional multi-character lower-case mapping
                    sb.Append("i\u0307");
                    break;
                case 0x03A3:                // Σ
                    sb.Append(IsFinalSigma(s, i) ? 'ς' : 'σ');
                    break;
                default:
                    int written = Rune.ToLowerInvariant(r).EncodeToUtf16(buffer);
                    sb.Append(buffer[..written]);
                    break;
            }
            i += width;
        }
        return sb.ToString();
    }

    /// <summary>Unicode's Final_Sigma condition as CPython tests it: a cased letter before (skipping case-ignorable
    /// characters) and none after.</summary>
    private static bool IsFinalSigma(ReadOnlySpan<char> s, int index)
    {
        int j = index;
        Rune r = default;
        bool found = false;
        while (j > 0)
        {
            Rune.DecodeLastFromUtf16(s[..j], out r, out int w);
            j -= w;
            if (!IsCaseIgnorable(r))
            {
                found = true;
                break;
            }
        }
        if (!found || !IsCased(r))
        {
            return false;
        }
        for (j = index + 1; j < s.Length;)
        {
            Rune.DecodeFromUtf16(s[j..], out r, out int w);
            j += w;
            if (!IsCaseIgnorable(r))
            {
                return !IsCased(r);
            }
        }
        return true;
    }

    // Approximations of Unicode's Cased and Case_Ignorable properties, which .NET does not expose: general categories
    // plus the few Word_Break=MidLetter/MidNumLet/Single_Quote punctuation marks and Other_Lowercase/Uppercase letters
    // that prompts can plausibly contain. They only decide σ versus ς.
    private static bool IsCased(Rune r)
    {
        var category = Rune.GetUnicodeCategory(r);
        return category is UnicodeCategory.UppercaseLetter or UnicodeCategory.LowercaseLetter or UnicodeCategory.TitlecaseLetter
            || r.Value is 0xAA or 0xBA or (>= 0x2160 and <= 0x217F) or (>= 0x24B6 and <= 0x24E9)
                or (>= 0x1F130 and <= 0x1F149) or (>= 0x1F150 and <= 0x1F169) or (>= 0x1F170 and <= 0x1F189);
    }

    private static bool IsCaseIgnorable(Rune r)
    {
        var category = Rune.GetUnicodeCategory(r);
        return category is UnicodeCategory.NonSpacingMark or UnicodeCategory.EnclosingMark or UnicodeCategory.Format
                or UnicodeCategory.ModifierLetter or UnicodeCategory.ModifierSymbol
            || r.Value is '\'' or '.' or ':' or 0xB7 or 0x387 or 0x55F or 0x5F4 or 0x2018 or 0x2019 or 0x2024 or 0x2027
                or 0xFE13 or 0xFE52 or 0xFE55 or 0xFF07 or 0xFF0E or 0xFF1A;
    }

    private static int RequireToken(IReadOnlyDictionary<string, int> vocab, string token, string vocabSource, int? forByte = null)
    {
        if (vocab.TryGetValue(token, out int id))
        {
            return id;
        }
        string what = forByte is { } b
            ? $"lacks \"{token}\", the symbol for byte 0x{b:X2}; a CLIP vocabulary holds all 256 byte symbols, alone and with </w>, so that any text can be encoded."
            : $"lacks the special token \"{token}\", which a CLIP vocabulary ends with.";
        throw new ClipTokenizerException(vocabSource, $"{what} This is not a CLIP vocabulary; use the vocab.json that came with the model.", key: token);
    }

    private static int RequireMergeSymbol(IReadOnlyDictionary<string, int> vocab, string symbol, string vocabSource, string mergesSource, string where, int? line)
    {
        if (vocab.TryGetValue(symbol, out int id))
        {
            return id;
        }
        throw new ClipTokenizerException(mergesSource,
            $"{where} merges \"{symbol}\", which {vocabSource} lacks, so the two files come from different models; " +
            "use the vocab.json and merges.txt of one model.", line: line, key: symbol);
    }

    private static T ReadFile<T>(string path, Func<string, T> read)
    {
        try
        {
            return read(path);
        }
        catch (Exception ex) when (ex is FileNotFoundException or DirectoryNotFoundException)
        {
            throw new ClipTokenizerException(path,
                "not found. A CLIP model folder holds vocab.json and merges.txt side by side (Hugging Face's layout); " +
                "copy both from the model's tokenizer files.", inner: ex);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new ClipTokenizerException(path, $"could not be read ({ex.Message}). Check that the file is readable.", inner: ex);
        }
    }

    internal static Dictionary<string, int> ParseVocab(ReadOnlySpan<byte> json, string source)
    {
        if (json.StartsWith("\uFEFF"u8))
        {
            json = json[3..];
        }

        var vocab = new Dictionary<string, int>(StringComparer.Ordinal);
        var reader = new Utf8JsonReader(json);
        const string Expected = "a CLIP vocab.json is one JSON object mapping each token to its id, such as {\"a</w>\": 320}";
        try
        {
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
            {
                throw new ClipTokenizerException(source, $"does not start with a JSON object: {Expected}. Use the vocab.json that came with the model.", line: 1);
            }
            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                string token = reader.GetString()!;
                reader.Read();
                if (reader.TokenType != JsonTokenType.Number || !reader.TryGetInt32(out int id))
                {
                    string value = reader.TokenType is JsonTokenType.StartObject or JsonTokenType.StartArray
                        ? reader.TokenType.ToString()
                        : Encoding.UTF8.GetString(reader.ValueSpan);
                    throw new ClipTokenizerException(source,
                        $"the id of \"{token}\" is {value}, not a whole number: {Expected}. The file is damaged; use the one that came with the model.",
                        line: LineOf(json, reader.TokenStartIndex), key: token);
                }
                if (!vocab.TryAdd(token, id))
                {
                    throw new ClipTokenizerException(source,
                        $"\"{token}\" is listed twice; every token appears once. The file is damaged; use the one that came with the model.",
                        line: LineOf(json, reader.TokenStartIndex), key: token);
                }
            }
            // Reaching here, the object is closed; anything after it is an error the reader reports.
            if (reader.TokenType != JsonTokenType.EndObject || reader.Read())
            {
                throw new ClipTokenizerException(source, $"holds more than one JSON object: {Expected}.", line: LineOf(json, reader.TokenStartIndex));
            }
        }
        catch (JsonException ex)
        {
            string detail = ex.Message;
            int cut = detail.IndexOf(" LineNumber:", StringComparison.Ordinal);
            detail = (cut >= 0 ? detail[..cut] : detail).TrimEnd('.', ' ');
            throw new ClipTokenizerException(source,
                $"is not valid JSON ({detail}): {Expected}. The file is damaged or truncated; use the one that came with the model.",
                line: ex.LineNumber is { } line ? (int)line + 1 : null, inner: ex);
        }
        if (vocab.Count == 0)
        {
            throw new ClipTokenizerException(source, $"is empty: {Expected}.");
        }
        return vocab;
    }

    internal static List<MergeRule> ParseMerges(string text, string source)
    {
        var merges = new List<MergeRule>(50_000);
        int lineNumber = 0;
        foreach (var range in text.AsSpan().Split('\n'))
        {
            lineNumber++;
            string line = text[range].Trim();
            // The header names the format (OpenAI's and Hugging Face's files both carry it); blank lines carry no merge.
            if (line.Length == 0 || (lineNumber == 1 && line.StartsWith("#version", StringComparison.Ordinal)))
            {
                continue;
            }
            string[] parts = line.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries);
            if (parts.Length != 2)
            {
                throw new ClipTokenizerException(source,
                    $"\"{line}\" is not a merge: each line after the #version header holds two symbols separated by a space, such as \"i n\". " +
                    "The file is damaged or not a CLIP merges.txt; use the one that came with the model.", line: lineNumber);
            }
            merges.Add(new MergeRule(parts[0], parts[1], lineNumber));
        }
        return merges;
    }

    private static int LineOf(ReadOnlySpan<byte> json, long offset) => json[..(int)Math.Min(offset, json.Length)].Count((byte)'\n') + 1;

    /// <summary>GPT-2's reversible byte alphabet: printable Latin-1 bytes stand for themselves, the rest (controls,
    /// space, soft hyphen...) borrow U+0100 onwards, so that no symbol is whitespace and merges.txt can split on spaces.</summary>
    private static char[] BuildByteToChar()
    {
        var map = new char[256];
        int extra = 0;
        for (int b = 0; b < 256; b++)
        {
            bool printable = b is >= '!' and <= '~' or >= 0xA1 and <= 0xAC or >= 0xAE and <= 0xFF;
            map[b] = printable ? (char)b : (char)(256 + extra++);
        }
        return map;
    }

    private static int[] BuildCharToByte(char[] byteToChar)
    {
        var map = new int[byteToChar.Max() + 1];
        Array.Fill(map, -1);
        for (int b = 0; b < 256; b++)
        {
            map[byteToChar[b]] = b;
        }
        return map;
    }

    internal readonly record struct MergeRule(string Left, string Right, int Line);

    private readonly record struct MergeResult(int Rank, int Id);
}

/// <summary>
/// A prompt as the CLIP text tower takes it, with what truncation cost, so the interface can tell the user rather than
/// silently ignore the end of a long prompt.
/// </summary>
public sealed class TokenizedPrompt
{
    internal TokenizedPrompt(int[] ids, int tokenCount, int droppedTokenCount, string? warning)
    {
        Ids = ids;
        TokenCount = tokenCount;
        DroppedTokenCount = droppedTokenCount;
        Warning = warning;
    }

    /// <summary><c>[bos] + bpe + [eos]</c> then padding, exactly <see cref="ContextLength"/> long. A fresh array per
    /// call: the caller may keep or change it.</summary>
    public int[] Ids { get; }

    public int ContextLength => Ids.Length;

    /// <summary>Tokens the whole prompt needs, start and end tokens included, before truncation and padding.</summary>
    public int TokenCount { get; }

    /// <summary>Prompt tokens that did not fit the context and so had no effect on the embedding.</summary>
    public int DroppedTokenCount { get; }

    /// <summary>Ids before the padding, the end-of-text token last.</summary>
    public int KeptTokenCount => TokenCount - DroppedTokenCount;

    /// <summary>Where the end-of-text token sits: the position whose state CLIP pools into the text embedding.</summary>
    public int EndOfTextIndex => KeptTokenCount - 1;

    public bool WasTruncated => DroppedTokenCount > 0;

    /// <summary>A sentence for the user when tokens were dropped; null when the whole prompt fit.</summary>
    public string? Warning { get; }
}

/// <summary>
/// A tokenizer file (or in-memory vocabulary) could not be used. The message names the source and, where one is
/// involved, the line and token, and says what to do.
/// </summary>
public sealed class ClipTokenizerException : Exception
{
    /// <summary>The file path, or a description of the in-memory source.</summary>
    public string Origin { get; }

    public int? Line { get; }

    public string? Key { get; }

    public ClipTokenizerException(string source, string message, int? line = null, string? key = null, Exception? inner = null)
        : base(line is { } l ? $"{source}, line {l}: {message}" : $"{source}: {message}", inner)
    {
        Origin = source;
        Line = line;
        Key = key;
    }
}
