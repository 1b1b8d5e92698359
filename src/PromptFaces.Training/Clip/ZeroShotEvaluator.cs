using PromptFaces.Generation.Clip;
using PromptFaces.Generation.Optimisation;
using PromptFaces.Training.Faces;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace PromptFaces.Training.Clip;

/// <summary>
/// Zero-shot accuracy per attribute, and balanced accuracy (the mean of per-class recalls): attributes with a dominant
/// class (80% of faces have no facial hair) score high on plain accuracy by always answering that class, so the
/// balanced figure is the one that shows whether the words are known.
/// </summary>
public sealed record ZeroShotReport(IReadOnlyDictionary<string, double> PerAttribute, IReadOnlyDictionary<string, double> BalancedPerAttribute)
{
    public double Mean => PerAttribute.Count == 0 ? double.NaN : PerAttribute.Values.Average();

    public double BalancedMean => BalancedPerAttribute.Count == 0 ? double.NaN : BalancedPerAttribute.Values.Average();

    public override string ToString() =>
        $"mean {Mean:P1}, balanced {BalancedMean:P1} (" + string.Join(", ", BalancedPerAttribute.Select(kv => $"{kv.Key} {kv.Value:P0}")) + " balanced)";
}

/// <summary>
/// Does the CLIP know the vocabulary? For each attribute, every held-out image is scored against one prompt per class
/// ("a face with blue eyes", "a face with green eyes", ...) and the best-scoring prompt is its prediction, as CLIP's
/// zero-shot classification. These prompts are templates of their own, not training captions, so a high score means
/// the words carry over to new sentences, which the optimiser's prompts will be.
/// </summary>
public static class ZeroShotEvaluator
{
    /// <summary>
    /// One prompt per class of each judged attribute, in <see cref="FaceAttributes.Schema"/> order, each stating that one
    /// attribute with the caption writer's plainest word for it, in a sentence frame of its own.
    /// </summary>
    public static IReadOnlyList<(string Attribute, string[] Prompts)> Prompts { get; } =
    [
        ("gender", ["a woman", "a man"]),
        ("hair_colour", new[] { "blonde", "brown", "black", "red", "grey", "white", "blue", "pink", "purple", "green" }.Select(c => $"a person with {c} hair").ToArray()),
        ("hair_style", ["a person with long hair", "a person with short hair", "a bald person", "a person with curly hair", "a person with a ponytail"]),
        ("eye_colour", new[] { "blue", "green", "brown", "grey", "purple", "red", "amber" }.Select(c => $"a person with {c} eyes").ToArray()),
        ("skin_tone", new[] { "pale", "light", "medium", "tan", "dark", "deep" }.Select(c => $"a person with {c} skin").ToArray()),
        ("expression", ["a smiling person", "a person with a neutral expression", "a sad person", "a surprised person"]),
        ("glasses", ["a person without glasses", "a person with glasses", "a person with sunglasses"]),
        ("facial_hair", ["a clean-shaven person", "a person with a beard", "a person with a moustache"]),
        ("background", new[] { "white", "grey", "blue", "green", "yellow", "pink", "orange", "purple" }.Select(c => $"a person on a {c} background").ToArray()),
    ];

    /// <param name="images">(N, 3, S, S) in [-1, 1], at the CLIP's input size</param>
    public static ZeroShotReport Evaluate(ClipModel model, ClipTokenizer tokenizer, Tensor images, IReadOnlyList<FaceAttributes> faces, int batchSize = 128)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var imageFeatures = EncodeImages(model, images, batchSize);                                       // (N, D)
        var readings = Classify(model, tokenizer, imageFeatures);
        var labels = faces.Select(f => f.ToLabels()).ToArray();
        var accuracy = new Dictionary<string, double>();
        var balanced = new Dictionary<string, double>();
        for (int k = 0; k < Prompts.Count; k++)
        {
            var (name, prompts) = Prompts[k];
            var predicted = readings[k];                                                                  // (N)
            var hits = new int[prompts.Length];
            var totals = new int[prompts.Length];
            for (int i = 0; i < predicted.Length; i++)
            {
                totals[labels[i][k]]++;
                if (predicted[i] == labels[i][k]) hits[labels[i][k]]++;
            }
            accuracy[name] = (double)hits.Sum() / predicted.Length;
            balanced[name] = Enumerable.Range(0, prompts.Length).Where(c => totals[c] > 0).Average(c => (double)hits[c] / totals[c]);
        }
        return new ZeroShotReport(accuracy, balanced);
    }

    /// <summary>
    /// CLIP's zero-shot reading: per attribute of <see cref="Prompts"/> (in that order), each image's class, the caption
    /// closest to its unit-length features (N, D).
    /// </summary>
    public static long[][] Classify(ClipModel model, ClipTokenizer tokenizer, Tensor imageFeatures)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        return Prompts.Select(p => imageFeatures.matmul(EncodeTexts(model, tokenizer, p.Prompts).t()).argmax(1).cpu().data<long>().ToArray()).ToArray();
    }

    /// <summary>Unit-length image features (N, D) of [-1, 1] images, encoded in chunks without gradients.</summary>
    public static Tensor EncodeImages(ClipModel model, Tensor images, int batchSize = 128)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var parts = new List<Tensor>();
        for (long start = 0; start < images.shape[0]; start += batchSize)
        {
            var chunk = images.narrow(0, start, Math.Min(batchSize, images.shape[0] - start));
            parts.Add(F.normalize(model.EncodeImage(ClipGuidance.Normalise(chunk)), dim: -1));
        }
        return cat(parts, 0).MoveToOuterDisposeScope();
    }

    /// <summary>Unit-length text features (P, D).</summary>
    public static Tensor EncodeTexts(ClipModel model, ClipTokenizer tokenizer, IReadOnlyList<string> texts)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var ids = TokenBatch.Ids(tokenizer, texts, model.parameters().First().device);
        return F.normalize(model.EncodeText(ids), dim: -1).MoveToOuterDisposeScope();
    }
}

/// <summary>Token ids for a batch of texts, trimmed to the longest row.</summary>
internal static class TokenBatch
{
    /// <summary>
    /// (N, T) int64 where T is the longest caption's token count rather than the whole context: the causal mask and
    /// end-of-text pooling make the padding after each row's end irrelevant, and short captions then cost less.
    /// </summary>
    public static Tensor Ids(ClipTokenizer tokenizer, IReadOnlyList<string> texts, Device device)
    {
        var (ids, length) = IdArray(tokenizer, texts);
        return tensor(ids, [texts.Count, length], device: device);
    }

    /// <summary>The same ids as a row-major array, and the row length, without touching TorchSharp.</summary>
    public static (long[] Ids, int Length) IdArray(ClipTokenizer tokenizer, IReadOnlyList<string> texts)
    {
        var rows = texts.Select(t => tokenizer.Tokenize(t)).ToArray();
        int length = rows.Max(r => r.KeptTokenCount);
        var ids = new long[rows.Length * length];
        for (int i = 0; i < rows.Length; i++)
            for (int j = 0; j < length; j++) ids[i * length + j] = rows[i].Ids[j];
        return (ids, length);
    }
}
