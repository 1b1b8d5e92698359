using PromptFaces.Generation.Optimisation;
using PromptFaces.Training.Faces;

namespace PromptFaces.Training.Clip;

/// <summary>
/// A training caption and which faces it is true of. Captions mention one to three attributes, so in a batch many
/// other images satisfy a caption too ("a man with glasses" fits every bespectacled man); a contrastive loss that
/// calls them negatives teaches the model to ignore the very attributes the caption names. Knowing, per attribute,
/// which values leave the caption unchanged lets the loss count those pairs as positives.
/// </summary>
public sealed class CaptionDraw
{
    private readonly ulong[] _accepted;   // per attribute (schema order): bit v set when value v fits the caption

    internal CaptionDraw(string text, ulong[] accepted)
    {
        Text = text;
        _accepted = accepted;
    }

    public string Text { get; }

    /// <summary>True when the caption describes a face with these labels (schema order) as well as the one it was written for.</summary>
    public bool IsTrueOf(IReadOnlyList<int> labels)
    {
        for (int k = 0; k < _accepted.Length; k++)
            if ((_accepted[k] & (1UL << labels[k])) == 0) return false;
        return true;
    }

    /// <summary>Attributes (schema indices) whose value the caption constrains.</summary>
    public IEnumerable<int> MentionedAttributes()
    {
        for (int k = 0; k < _accepted.Length; k++)
            if (_accepted[k] != (1UL << FaceAttributes.Schema[k].Classes) - 1) yield return k;
    }
}

/// <summary>
/// Draws training captions with <see cref="CaptionWriter"/>, redrawing any that is an excluded sentence, and works out
/// what each caption is true of by counterfactual rewriting: the caption writer is replayed from the same random state
/// with one attribute changed; where the text comes out identical, that attribute's value does not matter to the
/// caption. Unchanged text under a changed value means the caption does not distinguish the two values, so the test
/// also treats synonyms the writer shares between values correctly. Where the writer's choices depend on a value it
/// does not mention, the test errs towards "mentioned": a pair may be kept as a negative, never wrongly made positive.
/// </summary>
public sealed class CaptionSampler(ExclusionList exclusions)
{
    /// <summary>Redraws allowed before giving up; only a writer that can say nothing but excluded sentences gets there.</summary>
    private const int MaxRedraws = 1000;

    public ExclusionList Exclusions { get; } = exclusions;

    /// <summary>Captions redrawn because they were excluded sentences, since this sampler was made.</summary>
    public long Redrawn { get; private set; }

    /// <summary>A caption of <paramref name="face"/>, advancing <paramref name="rng"/> past every draw it made.</summary>
    public CaptionDraw Draw(FaceAttributes face, SplitMix64 rng)
    {
        for (int attempt = 0; attempt < MaxRedraws; attempt++)
        {
            ulong start = rng.State;
            string text = CaptionWriter.Write(face, rng);
            if (Exclusions.Contains(text))
            {
                Redrawn++;
                continue;
            }
            return new CaptionDraw(text, AcceptedValues(face, text, start));
        }
        throw new InvalidOperationException(
            $"Every caption drawn for {face} was on the exclusion list ({MaxRedraws} tries); the list excludes everything the caption writer can say about this face.");
    }

    /// <summary>Captions drawn to find one that tells the face from another before settling for the first.</summary>
    private const int DistinguishTries = 64;

    /// <summary>
    /// A caption of <paramref name="face"/> that is false of <paramref name="unlike"/> (any caption when null): captions
    /// are drawn until one is, and after <see cref="DistinguishTries"/> draws the first is kept.
    /// </summary>
    public CaptionDraw Draw(FaceAttributes face, SplitMix64 rng, FaceAttributes? unlike)
    {
        var first = Draw(face, rng);
        if (unlike is null) return first;
        var other = unlike.ToLabels();
        if (!first.IsTrueOf(other)) return first;
        for (int attempt = 1; attempt < DistinguishTries; attempt++)
        {
            var next = Draw(face, rng);
            if (!next.IsTrueOf(other)) return next;
        }
        return first;
    }

    private static ulong[] AcceptedValues(FaceAttributes face, string text, ulong rngState)
    {
        var schema = FaceAttributes.Schema;
        var labels = face.ToLabels();
        var accepted = new ulong[schema.Count];
        var changed = (int[])labels.Clone();
        for (int k = 0; k < schema.Count; k++)
        {
            accepted[k] = 1UL << labels[k];
            for (int v = 0; v < schema[k].Classes; v++)
            {
                if (v == labels[k]) continue;
                changed[k] = v;
                var other = FaceAttributes.FromLabels(changed, face.Geometry);
                if (CaptionWriter.Write(other, new SplitMix64(rngState)) == text) accepted[k] |= 1UL << v;
            }
            changed[k] = labels[k];
        }
        return accepted;
    }
}
