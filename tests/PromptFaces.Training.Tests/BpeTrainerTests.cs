using PromptFaces.Generation.Clip;
using PromptFaces.Generation.Optimisation;
using PromptFaces.Training.Clip;
using PromptFaces.Training.Faces;
using Xunit;

namespace PromptFaces.Training.Tests;

public sealed class BpeTrainerTests
{
    private static List<string> Captions(int count, ulong seed = 3)
    {
        var rng = new SplitMix64(seed);
        return Enumerable.Range(0, count).Select(_ => CaptionWriter.Write(AttributeSampler.Sample(rng), rng)).ToList();
    }

    [Fact]
    public void Frequent_words_become_single_tokens()
    {
        var corpus = Captions(5000);
        var vocabulary = BpeTrainer.Train(corpus, 1024);
        var tokenizer = vocabulary.CreateTokenizer(32);
        var bytes = ByteLevelTokenizer.Create();

        // Every word seen at least 20 times is one token; captions shrink to a fraction of their bytes.
        var words = corpus.SelectMany(c => c.ToLowerInvariant().Split(' ', StringSplitOptions.RemoveEmptyEntries))
            .Select(w => w.Trim(',', '.', ';', '!', '?'))
            .Where(w => w.Length > 0 && w.All(char.IsLetter))
            .GroupBy(w => w).Where(g => g.Count() >= 20).Select(g => g.Key).ToList();
        Assert.NotEmpty(words);
        foreach (var w in words) Assert.True(tokenizer.Encode(w).Length == 1, $"'{w}' is {tokenizer.Encode(w).Length} tokens");
        long tokenCount = corpus.Sum(c => (long)tokenizer.Encode(c).Length);
        long byteCount = corpus.Sum(c => (long)bytes.Encode(c).Length);
        Assert.True(tokenCount * 3 < byteCount, $"{tokenCount} tokens for {byteCount} bytes");
    }

    [Fact]
    public void Learns_whole_words_from_a_small_corpus()
    {
        var corpus = Enumerable.Repeat("A woman with red hair, smiling.", 10).Concat(Enumerable.Repeat("a man with a beard", 5));
        var tokenizer = BpeTrainer.Train(corpus, 2000).CreateTokenizer(32);
        foreach (var w in new[] { "woman", "with", "red", "hair", "smiling", "man", "beard", "a" })
            Assert.Single(tokenizer.Encode(w));
        Assert.Equal(8, tokenizer.Encode("a woman with red hair, smiling.").Length);   // 6 words, the comma, the full stop
    }

    [Fact]
    public void Text_round_trips_through_decode_including_unseen_words()
    {
        var tokenizer = BpeTrainer.Train(Captions(2000), 800).CreateTokenizer(32);
        foreach (var text in new[] { "A Woman with RED hair and blue eyes!", "a zebra-striped über face, 42 times", "someone's grey beard" })
        {
            var decoded = tokenizer.Decode(tokenizer.Encode(text));
            Assert.Equal(text.ToLowerInvariant().Replace(" ", ""), decoded.Replace(" ", ""));
        }
    }

    [Fact]
    public void Layout_is_clips_with_end_of_text_as_the_largest_id()
    {
        var vocabulary = BpeTrainer.Train(Captions(2000), 700);
        var vocab = vocabulary.Vocab;
        Assert.True(vocab.Count <= 700);
        Assert.Equal(vocab.Count - 1, vocab[ClipTokenizer.EndOfTextToken]);
        Assert.Equal(vocab.Count - 2, vocab[ClipTokenizer.StartOfTextToken]);
        var symbols = ClipTokenizer.ByteSymbols();
        for (int i = 0; i < 256; i++)
        {
            Assert.Equal(i, vocab[symbols[i]]);
            Assert.Equal(256 + i, vocab[symbols[i] + "</w>"]);
        }
        Assert.Equal(Enumerable.Range(0, vocab.Count), vocab.Values.Order());
        foreach (var (left, right) in vocabulary.Merges) Assert.True(vocab.ContainsKey(left + right));
    }

    [Fact]
    public void Training_is_deterministic_and_independent_of_corpus_order()
    {
        var corpus = Captions(3000);
        var a = BpeTrainer.Train(corpus, 900);
        var b = BpeTrainer.Train(corpus.AsEnumerable().Reverse().ToList(), 900);
        Assert.Equal(a.Merges, b.Merges);
        Assert.Equal(a.Vocab.OrderBy(kv => kv.Value), b.Vocab.OrderBy(kv => kv.Value));
    }

    [Fact]
    public void Written_files_load_as_the_same_tokenizer()
    {
        var dir = Directory.CreateTempSubdirectory("pf-bpe-").FullName;
        try
        {
            var corpus = Captions(2000);
            var vocabulary = BpeTrainer.Train(corpus, 800);
            vocabulary.Write(dir);
            var fromFiles = ClipTokenizer.FromFolder(dir, 32);
            var inMemory = vocabulary.CreateTokenizer(32);
            foreach (var text in corpus.Take(200)) Assert.Equal(inMemory.Tokenize(text).Ids, fromFiles.Tokenize(text).Ids);
            var read = BpeVocabulary.Read(dir);
            Assert.Equal(vocabulary.Merges, read.Merges);
            Assert.Equal(vocabulary.Vocab.OrderBy(kv => kv.Value), read.Vocab.OrderBy(kv => kv.Value));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
