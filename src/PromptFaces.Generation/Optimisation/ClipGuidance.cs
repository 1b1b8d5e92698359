using PromptFaces.Generation.Clip;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace PromptFaces.Generation.Optimisation;

/// <summary>CLIP's side of the loss: prompt embeddings, image preprocessing and the distance between them.</summary>
public static class ClipGuidance
{
    /// <summary>OpenAI CLIP's pixel statistics, used by every released CLIP (and by the project's own small CLIP).</summary>
    public static readonly float[] Mean = { 0.48145466f, 0.4578275f, 0.40821073f };
    public static readonly float[] Std = { 0.26862954f, 0.26130258f, 0.27577711f };

    /// <summary>Unit-length text embeddings (P, D) for the prompts from each guiding CLIP, and any truncation warnings.</summary>
    public static (Tensor[] Embeddings, IReadOnlyList<string> Warnings) EncodePrompts(FaceModels models, IReadOnlyList<WeightedPrompt> prompts)
    {
        var warnings = new List<string>();
        var embeddings = new List<Tensor>(models.Guides.Count);
        try
        {
            foreach (var guide in models.Guides)
                embeddings.Add(EncodePrompts(guide, prompts, models.Device, warnings));
        }
        catch
        {
            foreach (var e in embeddings) e.Dispose();
            throw;
        }
        return (embeddings.ToArray(), warnings.Distinct().ToArray());
    }

    private static Tensor EncodePrompts(ClipGuide guide, IReadOnlyList<WeightedPrompt> prompts, Device device, List<string> warnings)
    {
        var ids = new List<long>();
        foreach (var p in prompts)
        {
            TokenizedPrompt t = guide.Tokenizer.Tokenize(p.Text);
            if (t.Warning is not null) warnings.Add($"\"{Shorten(p.Text)}\": {t.Warning}");
            ids.AddRange(t.Ids.Select(i => (long)i));
        }
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var input = tensor(ids.ToArray(), device: device).reshape(prompts.Count, -1);   // (P, T)
        var features = F.normalize(guide.Model.EncodeText(input), dim: -1);             // (P, D)
        return features.MoveToOuterDisposeScope();
    }

    /// <summary>Maps generator output in [−1, 1] to CLIP's normalised input.</summary>
    public static Tensor Normalise(Tensor images)                                            // (N, 3, S, S)
    {
        var mean = tensor(Mean, device: images.device).reshape(1, 3, 1, 1);
        var std = tensor(Std, device: images.device).reshape(1, 3, 1, 1);
        return ((images + 1) * 0.5 - mean) / std;
    }

    /// <param name="imageFeatures">(K, D), unit length</param>
    /// <param name="textFeatures">(P, D), unit length</param>
    /// <returns>(K, P) distances</returns>
    public static Tensor Distance(Tensor imageFeatures, Tensor textFeatures, GuidanceLoss loss)
    {
        if (loss == GuidanceLoss.Cosine)
            return 1 - imageFeatures.matmul(textFeatures.t());
        var diff = imageFeatures.unsqueeze(1) - textFeatures.unsqueeze(0);                     // (K, P, D)
        return diff.norm(-1).div(2).clamp(max: 1).arcsin().square().mul(2);
    }

    private static string Shorten(string s) => s.Length <= 40 ? s : s[..37] + "...";
}
