using PromptFaces.Generation.Optimisation;
using PromptFaces.Training.Faces;

namespace PromptFaces.Training.Clip;

/// <summary>
/// Counterfactual twins for contrastive training: a face and a copy of it with exactly one attribute changed (same
/// geometry, same everything else), each captioned with a sentence that is false of the other, so it names that
/// attribute. In a batch of random
/// faces CLIP can tell most captions apart by whatever attribute is easiest to see, so it never has to learn the hard
/// ones (an expression is a few pixels of the mouth at 64x64); a twin pair differs in nothing else, so the loss can only
/// fall by reading the changed attribute. It also breaks accidental correlations the optimiser could exploit, since
/// each twin keeps every other cue of its partner.
/// </summary>
internal static class CounterfactualTwins
{
    private static readonly int GenderIndex = IndexOf("gender");
    private static readonly int FacialHairIndex = IndexOf("facial_hair");

    /// <summary>
    /// The twin of <paramref name="face"/>: one attribute, drawn among those the face may change (uniformly, or with the
    /// odds of <paramref name="focus"/>, per schema index), set to another class, drawn uniformly. Facial hair changes
    /// only on men; a man turned into a woman loses his facial hair (the renderer's women have none), so that pair also
    /// differs in it.
    /// </summary>
    /// <returns>The twin and the schema index of the attribute that changed.</returns>
    public static (FaceAttributes Twin, int Attribute) Make(FaceAttributes face, SplitMix64 rng, IReadOnlyList<double>? focus = null)
    {
        var schema = FaceAttributes.Schema;
        var labels = face.ToLabels();
        bool man = face.Gender == Gender.Man;
        int attribute;
        if (focus is null)
        {
            int choices = man ? schema.Count : schema.Count - 1;               // women skip facial hair
            attribute = (int)(rng.NextDouble() * choices);
            if (!man && attribute >= FacialHairIndex) attribute++;
        }
        else
        {
            double total = 0;
            for (int i = 0; i < schema.Count; i++) if (man || i != FacialHairIndex) total += focus[i];
            double u = rng.NextDouble() * total;
            attribute = -1;
            for (int i = 0; i < schema.Count && attribute < 0; i++)
            {
                if ((!man && i == FacialHairIndex) || focus[i] <= 0) continue;
                if (u < focus[i]) attribute = i;
                else u -= focus[i];
            }
            if (attribute < 0)                                                 // rounding at the very top: the last allowed one
                attribute = Enumerable.Range(0, schema.Count).Last(i => focus[i] > 0 && (man || i != FacialHairIndex));
        }
        int classes = schema[attribute].Classes;
        labels[attribute] = (labels[attribute] + 1 + (int)(rng.NextDouble() * (classes - 1))) % classes;
        if (attribute == GenderIndex && labels[GenderIndex] == (int)Gender.Woman) labels[FacialHairIndex] = (int)FacialHair.None;
        return (FaceAttributes.FromLabels(labels, face.Geometry), attribute);
    }

    /// <summary>
    /// Replaces the odd faces of the first <paramref name="pairs"/> pairs of <paramref name="batch"/> with twins of the
    /// even ones (rendered here, at <paramref name="size"/>), and returns per face its partner's index in the batch
    /// (−1 for faces outside a pair), whose caption must be false of it.
    /// </summary>
    public static (FaceBatch Batch, int[] Partner) Apply(FaceBatch batch, int pairs, int size, SplitMix64 rng, IReadOnlyList<double>? focus = null)
    {
        var faces = (FaceAttributes[])batch.Faces.Clone();
        var partner = Enumerable.Repeat(-1, faces.Length).ToArray();
        pairs = Math.Min(pairs, faces.Length / 2);
        var twins = new FaceAttributes[pairs];
        for (int p = 0; p < pairs; p++)
        {
            faces[2 * p + 1] = twins[p] = Make(faces[2 * p], rng, focus).Twin;
            partner[2 * p] = 2 * p + 1;
            partner[2 * p + 1] = 2 * p;
        }
        if (pairs == 0) return (batch, partner);
        var bytes = TrainingFaces.RenderBytes(twins, size);
        var slots = Enumerable.Range(0, pairs).Select(p => (long)(2 * p + 1)).ToArray();
        var images = batch.Images;
        return (new FaceBatch(faces, device =>
        {
            var all = images(device);
            using var rendered = TrainingFaces.ToTensor(bytes, pairs, size, device);
            using var index = TorchSharp.torch.tensor(slots, device: device);
            return all.index_copy_(0, index, rendered);
        }), partner);
    }

    /// <summary>The odds per schema index that <see cref="Make"/> takes, from attribute names (others 1); null stays null.</summary>
    public static double[]? FocusOdds(IReadOnlyDictionary<string, double>? focus) =>
        focus is null ? null : FaceAttributes.Schema.Select(a => focus.TryGetValue(a.Name, out var w) ? w : 1.0).ToArray();

    private static int IndexOf(string name)
    {
        for (int i = 0; i < FaceAttributes.Schema.Count; i++)
            if (FaceAttributes.Schema[i].Name == name) return i;
        throw new InvalidOperationException($"The attribute schema has no '{name}'.");
    }
}
