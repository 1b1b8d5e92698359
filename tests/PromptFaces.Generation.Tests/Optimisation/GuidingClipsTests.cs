using PromptFaces.Generation.Clip;
using PromptFaces.Generation.Optimisation;
using Xunit;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace PromptFaces.Generation.Tests.Optimisation;

/// <summary>Several CLIPs guiding one optimisation: the optimiser follows their mean.</summary>
public sealed class GuidingClipsTests
{
    private static OptimisationSettings Settings(int steps = 8) => new()
    {
        Prompts = new[] { new WeightedPrompt("a red face") },
        Seed = 5,
        Steps = steps,
        Cutouts = 3,
        LearningRate = 0.1,
        PreviewSize = 0,
    };

    private static JobOutcome Run(FaceModels models, OptimisationSettings settings)
    {
        using var engine = new CoBatchedOptimiser(models);
        engine.Enqueue(new OptimisationRequest("job", settings));
        return Assert.Single(engine.RunToCompletion());
    }

    /// <summary>A second CLIP of the fixture's configuration with its own random weights.</summary>
    private static ClipModel OtherClip()
    {
        using var fixture = TinyModels.LoadClip();
        manual_seed(1234);
        return new ClipModel(fixture.Config);
    }

    private static FaceModels Guided(params ClipModel[] clips) =>
        new(TinyModels.LoadGenerator(), clips.Select((c, i) => new ClipGuide(c, TinyModels.Tokenizer(), $"clip-{i}")).ToArray(), "tiny-stylegan2-fixture");

    [Fact]
    public void Two_copies_of_one_clip_guide_exactly_as_that_clip_alone()
    {
        Assert.SkipWhen(Fixtures.Root is null, Fixtures.MissingReason);
        using var single = TinyModels.Load();
        using var twice = Guided(TinyModels.LoadClip(), TinyModels.LoadClip());
        Assert.Equal("clip-0+clip-1", twice.ClipName);

        var alone = Run(single, Settings());
        var pair = Run(twice, Settings());
        Assert.Equal(alone.SimilarityStart, pair.SimilarityStart, 5);
        Assert.Equal(alone.SimilarityEnd, pair.SimilarityEnd, 5);
        Assert.Equal(alone.BestStep, pair.BestStep);
        TensorAssert.Close(alone.Image!, pair.Image!, 1e-5);
    }

    [Fact]
    public void With_two_different_clips_the_face_follows_both_and_its_similarity_is_their_mean()
    {
        Assert.SkipWhen(Fixtures.Root is null, Fixtures.MissingReason);
        using var first = Guided(TinyModels.LoadClip());
        using var second = Guided(OtherClip());
        using var both = Guided(TinyModels.LoadClip(), OtherClip());

        var byFirst = Run(first, Settings());
        var bySecond = Run(second, Settings());
        var byBoth = Run(both, Settings());

        // The face the pair settles on is neither CLIP's own.
        Assert.True((byBoth.Image! - byFirst.Image!).abs().max().item<float>() > 1e-3, "the pair drew the first CLIP's face");
        Assert.True((byBoth.Image! - bySecond.Image!).abs().max().item<float>() > 1e-3, "the pair drew the second CLIP's face");

        // Its reported similarity is the mean of what each CLIP reads in the final face.
        var (text, _) = ClipGuidance.EncodePrompts(both, Settings().Prompts);
        using var noGrad = no_grad();
        var readings = both.Guides.Select((g, i) =>
            F.normalize(g.Model.EncodeImage(ClipGuidance.Normalise(byBoth.Image!)), dim: -1).matmul(text[i].t()).item<float>()).ToArray();
        Assert.NotEqual(readings[0], readings[1], 3);
        Assert.Equal((readings[0] + readings[1]) / 2, byBoth.SimilarityEnd, 4);
    }

    [Fact]
    public void Clips_that_read_different_image_sizes_are_refused_by_name()
    {
        Assert.SkipWhen(Fixtures.Root is null, Fixtures.MissingReason);
        using var fixture = TinyModels.LoadClip();
        var json = File.ReadAllText(Fixtures.Path("clip", "clip_tiny", "config.json")).Replace("\"image_size\": 32", "\"image_size\": 48");
        using var wider = new ClipModel(ClipConfig.Parse(json, "test config"));
        using var generator = TinyModels.LoadGenerator();
        var e = Assert.Throws<ArgumentException>(() => new FaceModels(generator,
            new[] { new ClipGuide(fixture, TinyModels.Tokenizer(), "first"), new ClipGuide(wider, TinyModels.Tokenizer(), "second") }, "g"));
        Assert.Contains("CLIP second reads 48x48", e.Message);
        Assert.Contains("first reads 32x32", e.Message);
    }
}
