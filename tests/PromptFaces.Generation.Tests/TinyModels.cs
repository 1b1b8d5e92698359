using PromptFaces.Generation.Checkpoints;
using PromptFaces.Generation.Clip;
using PromptFaces.Generation.Optimisation;
using PromptFaces.Generation.StyleGan2;

namespace PromptFaces.Generation.Tests;

/// <summary>
/// The reference fixture networks (tiny StyleGAN2 32x32 and tiny CLIP) as a <see cref="FaceModels"/>, with a small
/// byte-level tokenizer whose ids fit the tiny CLIP's 1000-token vocabulary (bos 998, eos 999, context 16).
/// </summary>
public static class TinyModels
{
    public static FaceModels Load()
    {
        var config = StyleGan2Config.FromJsonFile(Fixtures.Path("stylegan2", "stylegan2_tiny_config.json"));
        var generator = new StyleGan2Generator(config);
        var weights = Fixtures.Path("stylegan2", "stylegan2_tiny_weights.safetensors");
        generator.LoadStateDict(SafeTensorsFile.Read(weights).Tensors, weights);
        var clip = ClipModel.FromFolder(Fixtures.Path("clip", "clip_tiny"));
        return new FaceModels(generator, clip, Tokenizer(), "tiny-stylegan2-fixture", "tiny-clip-fixture");
    }

    /// <summary>256 byte symbols, the same with &lt;/w&gt;, 486 letter-pair merges, then the two special tokens.</summary>
    public static ClipTokenizer Tokenizer()
    {
        var symbols = ByteSymbols();
        var vocab = new Dictionary<string, int>();
        foreach (var s in symbols) vocab[s] = vocab.Count;
        foreach (var s in symbols) vocab[s + "</w>"] = vocab.Count;
        var merges = new List<(string, string)>();
        for (char a = 'a'; a <= 'z' && vocab.Count < 998; a++)
            for (char b = 'a'; b <= 'z' && vocab.Count < 998; b++)
            {
                merges.Add((a.ToString(), b + "</w>"));
                vocab[$"{a}{b}</w>"] = vocab.Count;
            }
        vocab[ClipTokenizer.StartOfTextToken] = vocab.Count;
        vocab[ClipTokenizer.EndOfTextToken] = vocab.Count;
        return new ClipTokenizer(vocab, merges, contextLength: 16);
    }

    /// <summary>GPT-2's reversible byte → printable character table, in byte order.</summary>
    private static List<string> ByteSymbols()
    {
        var printable = Enumerable.Range('!', '~' - '!' + 1).Concat(Enumerable.Range('¡', '¬' - '¡' + 1)).Concat(Enumerable.Range('®', 'ÿ' - '®' + 1)).ToHashSet();
        var result = new List<string>();
        int extra = 0;
        for (int b = 0; b < 256; b++)
            result.Add(((char)(printable.Contains(b) ? b : 256 + extra++)).ToString());
        return result;
    }
}
