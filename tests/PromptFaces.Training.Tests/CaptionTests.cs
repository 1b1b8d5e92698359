using System.Text.RegularExpressions;
using PromptFaces.Generation.Optimisation;
using PromptFaces.Training.Faces;
using Xunit;

namespace PromptFaces.Training.Tests;

public sealed class CaptionTests
{
    private static string Name((int Attribute, int Class) p) =>
        $"{FaceAttributes.Schema[p.Attribute].Name}={Enum.GetName(FaceAttributes.Schema[p.Attribute].Enum, p.Class)}";

    private static List<(FaceAttributes Face, string Caption, CaptionTemplate Template)> Sample(int count, ulong seed)
    {
        var rng = new SplitMix64(seed);
        var result = new List<(FaceAttributes, string, CaptionTemplate)>(count);
        for (int i = 0; i < count; i++)
        {
            var face = AttributeSampler.Sample(seed * 1_000_003 + (ulong)i);
            result.Add((face, CaptionWriter.Write(face, rng, out var template), template));
        }
        return result;
    }

    [Fact]
    public void Captions_mention_only_true_attributes()
    {
        foreach (var (face, caption, _) in Sample(20_000, 1))
        {
            var labels = face.ToLabels();
            var mentioned = CaptionWriter.Mentioned(caption);
            Assert.True(mentioned.Count > 0, $"'{caption}' states nothing");
            foreach (var p in mentioned)
                Assert.True(labels[p.AttributeIndex] == p.ClassIndex,
                    $"'{caption}' states {Name(p)}, but the face has {Name((p.AttributeIndex, labels[p.AttributeIndex]))}");
        }
    }

    [Fact]
    public void Captions_vary_in_how_many_attributes_they_state()
    {
        var counts = Sample(5_000, 2).Select(s => CaptionWriter.Mentioned(s.Caption).Count).ToArray();
        for (int k = 1; k <= 5; k++) Assert.True(counts.Count(c => c == k) > 100, $"few captions state {k} attributes");
        Assert.Contains(counts, c => c >= 8);
        Assert.True(counts.Average() is > 2 and < 5);
    }

    [Fact]
    public void Every_template_and_every_vocabulary_phrase_occurs()
    {
        var samples = Sample(30_000, 3);
        foreach (var t in Enum.GetValues<CaptionTemplate>()) Assert.Contains(samples, s => s.Template == t);
        var text = string.Join("\n", samples.Select(s => s.Caption.ToLowerInvariant()));
        foreach (var (key, phrases) in CaptionWriter.Vocabulary)
        foreach (var phrase in phrases)
            Assert.True(Regex.IsMatch(text, $@"(?<![a-z-]){Regex.Escape(phrase)}(?![a-z-])"), $"'{phrase}' ({Name(key)}) never occurs in a caption");
        // The seed article's own phrasing.
        Assert.Contains(samples, s => s.Caption.StartsWith("An image with the face of a woman with ", StringComparison.Ordinal));
    }

    [Fact]
    public void Every_vocabulary_phrase_reads_back_as_its_class_alone()
    {
        for (int attribute = 0; attribute < FaceAttributes.Schema.Count; attribute++)
        for (int cls = 0; cls < FaceAttributes.Schema[attribute].Classes; cls++)
        {
            Assert.True(CaptionWriter.Vocabulary.TryGetValue((attribute, cls), out var phrases) && phrases.Count > 0, $"no words for {Name((attribute, cls))}");
            foreach (var phrase in phrases) Assert.Equal([(attribute, cls)], CaptionWriter.Mentioned(phrase));
        }
    }

    [Theory]
    [InlineData("An image with the face of a woman with blonde hair and purple eyes.", "gender=Woman", "hair_colour=Blonde", "eye_colour=Purple")]
    [InlineData("a man with blue eyes on a green background", "gender=Man", "eye_colour=Blue", "background=Green")]
    [InlineData("A blue-haired guy in front of a grey wall", "hair_colour=Blue", "gender=Man", "background=Grey")]
    [InlineData("portrait of a lady wearing dark glasses", "gender=Woman", "glasses=Sunglasses")]
    [InlineData("a bald man with a ginger beard and no glasses", "hair_style=Bald", "gender=Man", "hair_colour=Red", "facial_hair=Beard", "glasses=None")]
    [InlineData("someone with very dark skin and long jet-black hair", "skin_tone=Deep", "hair_colour=Black", "hair_style=Long")]
    [InlineData("She is not wearing glasses. The background is violet.", "gender=Woman", "glasses=None", "background=Purple")]
    [InlineData("a clean-shaven gentleman with golden eyes, smiling", "facial_hair=None", "gender=Man", "eye_colour=Amber", "expression=Smiling")]
    [InlineData("a photo of a cat on a sofa")]
    public void Prompts_read_back_as_the_attributes_they_state(string prompt, params string[] expected)
    {
        Assert.Equal(expected.OrderBy(s => s), CaptionWriter.Mentioned(prompt).Select(p => Name(p)).OrderBy(s => s));
    }

    [Fact]
    public void Excluded_sentences_are_never_written()
    {
        var face = AttributeSampler.Sample(4);
        // The 20 sentences this face gets most often (short ones such as "An image with the face of a man.").
        var groups = Enumerable.Range(0, 2000).Select(i => CaptionWriter.Write(face, new SplitMix64((ulong)i)))
            .GroupBy(CaptionWriter.Normalise).OrderByDescending(g => g.Count()).Take(20).ToList();
        Assert.True(groups[0].Count() > 5);
        var common = groups.Select(g => g.Key).ToHashSet();
        var rng = new SplitMix64(1);
        for (int i = 0; i < 2000; i++) Assert.DoesNotContain(CaptionWriter.Normalise(CaptionWriter.Write(face, rng, common)), common);
        Assert.Equal("a woman with blue eyes", CaptionWriter.Normalise("A  woman with Blue eyes. "));
    }

    [Fact]
    public void The_same_random_state_gives_the_same_caption()
    {
        var face = AttributeSampler.Sample(9);
        Assert.Equal(CaptionWriter.Write(face, new SplitMix64(5)), CaptionWriter.Write(face, new SplitMix64(5)));
        var captions = Enumerable.Range(0, 50).Select(i => CaptionWriter.Write(face, new SplitMix64((ulong)i))).Distinct().Count();
        Assert.True(captions > 40, $"only {captions} distinct captions of one face in 50");
    }
}
