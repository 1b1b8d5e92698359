using PromptFaces.Generation.Optimisation;
using PromptFaces.Generation.StyleGan2;
using PromptFaces.Training.Faces;
using PromptFaces.Training.StyleGan;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace PromptFaces.Training.Tests;

/// <summary>The StyleGAN2 trainer: discriminator layout, the latent-tying map, and short real training runs.</summary>
public sealed class StyleGanTrainingTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("pf-stylegan-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static StyleGanTrainingSettings TinySettings(int steps) => new()
    {
        Generator = StyleGanPresets.Tiny32,
        BatchSize = 4,
        Seed = 7,
        TotalSteps = steps,
        R1Interval = 2,            // R1 on steps 0 and 2, so a resume at 2 must restore its effect exactly
        GridEvery = 2,
        CheckpointEvery = 2,
        LogEvery = 1,
    };

    /// <summary>A tiny run whose synthesis network also draws from designed codes (they need a wider w).</summary>
    private static StyleGanTrainingSettings TinyDesigned(int steps) => TinySettings(steps) with
    {
        Generator = StyleGanPresets.Tiny32 with { WDim = 80, MappingLrMultiplier = 1 },
        EncoderWeight = 10,
        LatentMatchWeight = 1,
        DesignedCodes = true,
    };

    /// <summary>A small untrained attribute classifier saved in the test folder, for runs with the attribute loss.</summary>
    private string UntrainedClassifier()
    {
        var path = Path.Combine(_dir, "classifier.safetensors");
        using var untrained = new PromptFaces.Training.Evaluation.AttributeJudge(new PromptFaces.Training.Evaluation.AttributeJudgeConfig { Width = 16 });
        untrained.Save(path);
        return path;
    }

    /// <summary>The first step of a fresh run: its losses, and the synthesis network's first parameter after it.</summary>
    private (StyleGanStepStats Stats, float[] Weights) FirstStep(StyleGanTrainingSettings run, string name)
    {
        var steps = new List<StyleGanProgress>();
        using var trainer = StyleGanTrainer.Create(run with { TotalSteps = 1 }, Path.Combine(_dir, name));
        trainer.Run(new Collect(steps), TestContext.Current.CancellationToken);
        return (steps[0].Last, trainer.Generator.Synthesis.parameters().First().data<float>().ToArray());
    }

    [Fact]
    public void Discriminator_has_NVIDIA_state_dict_names_and_gives_logits_with_gradients()
    {
        using var d = new StyleGan2Discriminator(StyleGan2DiscriminatorConfig.ForGenerator(StyleGanPresets.Tiny32));
        var shapes = d.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.shape);
        Assert.Equal(new long[] { 16, 3, 1, 1 }, shapes["b32.fromrgb.weight"]);
        Assert.Equal(new long[] { 16, 16, 3, 3 }, shapes["b32.conv0.weight"]);
        Assert.Equal(new long[] { 16, 16, 3, 3 }, shapes["b32.conv1.weight"]);
        Assert.Equal(new long[] { 16, 16, 1, 1 }, shapes["b32.skip.weight"]);
        Assert.Equal(new long[] { 4, 4 }, shapes["b32.conv1.resample_filter"]);
        Assert.Equal(new long[] { 4, 4 }, shapes["b32.resample_filter"]);
        Assert.Equal(new long[] { 16, 17, 3, 3 }, shapes["b4.conv.weight"]);          // + one minibatch-stddev channel
        Assert.Equal(new long[] { 16, 256 }, shapes["b4.fc.weight"]);
        Assert.Equal(new long[] { 1, 16 }, shapes["b4.out.weight"]);
        Assert.Contains("b8.conv1.bias", shapes.Keys);
        Assert.DoesNotContain("b32.skip.bias", shapes.Keys);                          // NVIDIA's skip has no bias
        Assert.DoesNotContain("b16.fromrgb.weight", shapes.Keys);                     // resnet: fromrgb only at the top
        Assert.Equal(new[] { 32, 16, 8 }, d.Config.BlockResolutions);

        using var scope = NewDisposeScope();
        var img = randn(8, 3, 32, 32).requires_grad_(true);
        var logits = d.Forward(img);
        Assert.Equal(new long[] { 8, 1 }, logits.shape);
        logits.sum().backward();
        Assert.True(img.grad!.isfinite().all().item<bool>());
        Assert.True(img.grad!.abs().sum().item<float>() > 0);
        foreach (var (name, p) in d.named_parameters())
        {
            Assert.True(p.grad is not null, $"{name} got no gradient");
            Assert.True(p.grad!.isfinite().all().item<bool>(), $"{name} has a non-finite gradient");
        }
    }

    [Fact]
    public void Epilogue_conv_on_constant_channels_equals_the_convolution_of_the_appended_maps()
    {
        // In float64 libtorch convolves without oneDNN, so the plain convolution of the appended maps is a trustworthy
        // reference for the closed form the epilogue uses.
        using var layer = new Conv2dLayer("conv", 16 + 1, 16, 3, CPU, convClamp: 256);
        layer.to(ScalarType.Float64);
        using var scope = NewDisposeScope();
        var x = randn(new long[] { 8, 16, 4, 4 }, dtype: ScalarType.Float64);
        var stddev = DiscriminatorEpilogue.MinibatchStdFeatures(x, 4, 1);            // (8, 1)
        var expected = layer.Forward(DiscriminatorEpilogue.MinibatchStd(x, 4, 1));
        var actual = layer.ForwardWithConstantChannels(x, stddev);
        Assert.True((expected - actual).abs().max().item<double>() < 1e-10);
    }

    [Fact]
    public void Minibatch_stddev_matches_NVIDIAs_formula()
    {
        using var scope = NewDisposeScope();
        var x = randn(8, 6, 4, 4, dtype: ScalarType.Float64);
        var y = DiscriminatorEpilogue.MinibatchStd(x, 4, 1);
        Assert.Equal(new long[] { 8, 7, 4, 4 }, y.shape);
        // Sample i is in group i mod 2 (NVIDIA's reshape(G, -1, ...)): samples 0, 2, 4, 6 form group 0.
        var group0 = x.index_select(0, tensor(new long[] { 0, 2, 4, 6 }));
        var expected = (group0.var(0, unbiased: false) + 1e-8).sqrt().mean().item<double>();
        Assert.Equal(expected, y[2, 6, 1, 3].item<double>(), 10);
    }

    [Theory]
    [InlineData(LatentLayout.Argmax)]
    [InlineData(LatentLayout.Intervals)]
    public void Latent_map_draws_attributes_with_the_samplers_odds(LatentLayout layout)
    {
        const int n = 20_000;
        var map = new LatentFaceMap(128, layout);
        var rng = new SplitMix64(3);
        var z = new float[n * 128];
        for (int i = 0; i < z.Length; i += 2)
        {
            // Box-Muller: two standard normals from two uniforms.
            double u1 = 1 - rng.NextDouble(), u2 = rng.NextDouble(), r = Math.Sqrt(-2 * Math.Log(u1));
            z[i] = (float)(r * Math.Cos(2 * Math.PI * u2));
            z[i + 1] = (float)(r * Math.Sin(2 * Math.PI * u2));
        }
        var mapped = map.Attributes(z);
        var sampled = Enumerable.Range(0, n).Select(i => AttributeSampler.Sample((ulong)i)).ToArray();
        for (int a = 0; a < FaceAttributes.Schema.Count; a++)
        {
            for (int c = 0; c < FaceAttributes.Schema[a].Classes; c++)
            {
                double pm = mapped.Count(f => f.ToLabels()[a] == c) / (double)n;
                double ps = sampled.Count(f => f.ToLabels()[a] == c) / (double)n;
                Assert.True(Math.Abs(pm - ps) < 0.02, $"{FaceAttributes.Schema[a].Name} class {c}: map {pm:F3}, sampler {ps:F3}");
            }
        }
        // Conditional structure: facial hair only for men, bald mostly for men.
        Assert.All(mapped.Where(f => f.Gender == Gender.Woman), f => Assert.Equal(FacialHair.None, f.FacialHair));
        Assert.InRange(mapped.Average(f => f.Geometry.HeadX), 0.48, 0.52);
    }

    [Fact]
    public void Interval_layout_reads_each_attribute_from_one_dimension_and_argmax_from_all_of_its_group()
    {
        var intervals = new LatentFaceMap(128, LatentLayout.Intervals);
        var argmax = new LatentFaceMap(128);
        var rng = new SplitMix64(5);
        int argmaxChanged = 0;
        for (int trial = 0; trial < 200; trial++)
        {
            var z = Enumerable.Range(0, 128).Select(_ => (float)(rng.NextDouble() * 4 - 2)).ToArray();
            // Hair colour's group starts after gender's two dimensions. Rotate the values of all of it but the first
            // dimension by one place: z's root mean square (which the map normalises by) stays the same.
            var moved = (float[])z.Clone();
            int first = 3, last = 1 + FaceAttributes.Schema[1].Classes;
            for (int d = first; d <= last; d++) moved[d] = z[d == last ? first : d + 1];
            Assert.Equal(intervals.Attributes(z)[0].HairColour, intervals.Attributes(moved)[0].HairColour);
            if (argmax.Attributes(z)[0].HairColour != argmax.Attributes(moved)[0].HairColour) argmaxChanged++;
        }
        Assert.True(argmaxChanged > 50, $"argmax changed hair colour in only {argmaxChanged} of 200 trials");

        // The interval layout walks through the classes in order as its one dimension rises.
        var walk = new float[128];
        var seen = new List<HairColour>();
        for (double v = -3; v <= 3; v += 0.01)
        {
            walk[2] = (float)v;
            walk[0] = 1;   // keeps the root mean square away from zero
            var c = intervals.Attributes(walk)[0].HairColour;
            if (seen.Count == 0 || seen[^1] != c) seen.Add(c);
        }
        Assert.Equal(Enum.GetValues<HairColour>(), seen);
        Assert.Equal(LatentLayout.Intervals, LatentFaceMap.Parse(" Intervals "));
        Assert.Null(LatentFaceMap.Parse("onehot"));
    }

    [Theory]
    [InlineData(LatentLayout.Argmax)]
    [InlineData(LatentLayout.Intervals)]
    public void Latent_map_is_a_function_of_what_the_mapping_network_sees(LatentLayout layout)
    {
        // The mapping network normalises z by its root mean square; scaling z must not change the face.
        var map = new LatentFaceMap(128, layout);
        var rng = new SplitMix64(11);
        var z = Enumerable.Range(0, 128).Select(_ => (float)(rng.NextDouble() * 4 - 2)).ToArray();
        var scaled = z.Select(v => v * 1.7f).ToArray();
        var a = map.Attributes(z)[0];
        var b = map.Attributes(scaled)[0];
        Assert.Equal(a.ToLabels(), b.ToLabels());
        Assert.Equal(a.Geometry.FaceWidth, b.Geometry.FaceWidth, 5);
        Assert.Throws<ArgumentException>(() => new LatentFaceMap(LatentFaceMap.RequiredZDim - 1));
    }

    [Fact]
    public void Renderer_style_choices_are_predicted_exactly()
    {
        // A face that shows lipstick, shirt, ponytail side and frame shape. If RendererStyles' copy of the renderer's
        // choice scheme were wrong, the nudged geometry would show different styles (about 83 to 1 against matching).
        var face = AttributeSampler.Sample(5) with
        {
            Gender = Gender.Woman, HairStyle = HairStyle.Ponytail, Glasses = Glasses.Ordinary, FacialHair = FacialHair.None,
        };
        var choices = RendererStyles.Of(face.Geometry);
        var moved = face.Geometry with { HairShade = BitConverter.Int64BitsToDouble(BitConverter.DoubleToInt64Bits(face.Geometry.HairShade) + 1) };
        var same = RendererStyles.WithStyles(moved, choices);
        Assert.NotEqual(FaceRenderer.GeometryHash(face.Geometry), FaceRenderer.GeometryHash(same));
        Assert.Equal(choices, RendererStyles.Of(same));
        var before = new byte[64 * 64 * 3];
        var after = new byte[64 * 64 * 3];
        FaceRenderer.RenderInto(face, 64, before);
        FaceRenderer.RenderInto(face with { Geometry = same }, 64, after);
        Assert.Equal(before, after);

        var otherShirt = (int[])choices.Clone();
        otherShirt[1] = (otherShirt[1] + 1) % RendererStyles.Counts[1];
        FaceRenderer.RenderInto(face with { Geometry = RendererStyles.WithStyles(face.Geometry, otherShirt) }, 64, after);
        Assert.NotEqual(before, after);
    }

    [Fact]
    public void Argmax_offsets_give_the_requested_odds()
    {
        var odds = new[] { 0.6, 0.2, 0.2 };
        var win = ArgmaxOffsets.WinProbabilities(ArgmaxOffsets.For(odds));
        for (int k = 0; k < odds.Length; k++) Assert.Equal(odds[k], win[k], 6);
    }

    [Fact]
    public void A_short_run_writes_grids_checkpoint_and_generator_and_a_resume_continues_exactly()
    {
        var straight = Path.Combine(_dir, "straight");
        using (var trainer = StyleGanTrainer.Create(TinySettings(4), straight))
        {
            var steps = new List<StyleGanProgress>();
            trainer.Run(new Collect(steps), TestContext.Current.CancellationToken);
            Assert.Equal(new[] { 1, 2, 3, 4 }, steps.Select(p => p.Step));
            Assert.All(steps, p => Assert.True(double.IsFinite(p.Last.GAdversarial) && double.IsFinite(p.Last.DLoss) && double.IsFinite(p.Last.GReconstruction)));
            Assert.NotNull(steps[0].Last.R1Penalty);
            Assert.Null(steps[1].Last.R1Penalty);
        }
        foreach (var f in new[] { "checkpoint.safetensors", "generator.safetensors", "grid-000000.png", "grid-000002.png", "grid-000004.png", "grid-targets.png", "log.jsonl" })
            Assert.True(File.Exists(Path.Combine(straight, f)), $"{f} is missing");
        Assert.Equal(4, File.ReadAllLines(Path.Combine(straight, "log.jsonl")).Length);

        using (var exported = StyleGan2Checkpoint.Load(Path.Combine(straight, StyleGanTrainer.GeneratorFile)))
        {
            Assert.Equal(StyleGanPresets.Tiny32, exported.Config);
            using var scope = NewDisposeScope();
            var img = exported.Forward(randn(2, exported.Config.ZDim), psi: 0.7);
            Assert.Equal(new long[] { 2, 3, 32, 32 }, img.shape);
            Assert.True(img.isfinite().all().item<bool>());
        }

        // The same run in two halves: 2 steps, a new process's worth of state from the checkpoint, 2 more.
        var halves = Path.Combine(_dir, "halves");
        using (var first = StyleGanTrainer.Create(TinySettings(2), halves)) first.Run(cancel: TestContext.Current.CancellationToken);
        using (var second = StyleGanTrainer.Resume(Path.Combine(halves, StyleGanTrainer.CheckpointFile), halves, runControl: TinySettings(4)))
        {
            Assert.Equal(2, second.Step);
            second.Run(cancel: TestContext.Current.CancellationToken);
            Assert.Equal(4, second.Step);
        }
        var a = Generation.Checkpoints.SafeTensorsFile.Read(Path.Combine(straight, StyleGanTrainer.CheckpointFile)).Tensors;
        var b = Generation.Checkpoints.SafeTensorsFile.Read(Path.Combine(halves, StyleGanTrainer.CheckpointFile)).Tensors;
        Assert.Equal(a.Keys.OrderBy(k => k), b.Keys.OrderBy(k => k));
        foreach (var key in a.Keys) Assert.True(a[key].Data.AsSpan().SequenceEqual(b[key].Data), $"{key} differs between the straight and the resumed run");
        Assert.Contains(a.Keys, k => k.StartsWith("opt_D.", StringComparison.Ordinal));
    }

    [Fact]
    public void The_latent_layout_is_stored_read_strictly_and_decides_the_targets()
    {
        var intervals = TinySettings(1) with { AdversarialStartKimg = 1, LatentLayout = LatentLayout.Intervals };
        Assert.Equal(intervals, StyleGanTrainingSettings.FromJson(intervals.ToJson(), "test"));
        // Checkpoints from before the setting have no key and were all argmax.
        var legacy = System.Text.Json.Nodes.JsonNode.Parse(intervals.ToJson())!.AsObject();
        legacy.Remove("latent_layout");
        Assert.Equal(LatentLayout.Argmax, StyleGanTrainingSettings.FromJson(legacy.ToJsonString(), "old.safetensors").LatentLayout);
        legacy["latent_layout"] = "onehot";
        var bad = Assert.Throws<InvalidDataException>(() => StyleGanTrainingSettings.FromJson(legacy.ToJsonString(), "old.safetensors"));
        Assert.Contains("old.safetensors", bad.Message);
        Assert.Contains("latent_layout", bad.Message);

        // Same seed, same z, same initial weights: only the targets differ, so the trained weights must too.
        byte[] TrainedWeight(StyleGanTrainingSettings settings, string name)
        {
            var dir = Path.Combine(_dir, name);
            using (var trainer = StyleGanTrainer.Create(settings, dir)) trainer.Run(cancel: TestContext.Current.CancellationToken);
            var tensors = Generation.Checkpoints.SafeTensorsFile.Read(Path.Combine(dir, StyleGanTrainer.CheckpointFile)).Tensors;
            return tensors["G.synthesis.b4.conv1.weight"].Data;
        }
        var withIntervals = TrainedWeight(intervals, "layout-intervals");
        Assert.True(withIntervals.AsSpan().SequenceEqual(TrainedWeight(intervals, "layout-intervals-again")), "the run is not deterministic, so the comparison below means nothing");
        Assert.False(withIntervals.AsSpan().SequenceEqual(TrainedWeight(intervals with { LatentLayout = LatentLayout.Argmax }, "layout-argmax")), "the layout did not change the targets");
    }

    [Fact]
    public void The_attribute_loss_reads_G_through_a_frozen_classifier_is_recorded_without_a_path_and_needs_the_classifier_on_resume()
    {
        var classifierPath = UntrainedClassifier();
        var settings = TinySettings(2) with { AdversarialStartKimg = 1, AttributeWeight = 1 };
        Assert.Equal(settings, StyleGanTrainingSettings.FromJson(settings.ToJson(), "test"));
        var missing = Assert.Throws<ArgumentException>(() => StyleGanTrainer.Create(settings, Path.Combine(_dir, "no-classifier")));
        Assert.Contains("--attribute-classifier", missing.Message);

        var dir = Path.Combine(_dir, "attributes");
        var steps = new List<StyleGanProgress>();
        using (var trainer = StyleGanTrainer.Create(settings, dir, attributeClassifier: classifierPath))
            trainer.Run(new Collect(steps), TestContext.Current.CancellationToken);
        Assert.Equal(2, steps.Count);
        Assert.All(steps, p => Assert.True(p.Last.GAttributes > 0 && double.IsFinite(p.Last.GAttributes), $"attribute loss {p.Last.GAttributes}"));

        // Recorded by name and hash, never by a path of the machine that trained it.
        var checkpoint = Path.Combine(dir, StyleGanTrainer.CheckpointFile);
        foreach (var file in new[] { checkpoint, Path.Combine(dir, StyleGanTrainer.GeneratorFile) })
        {
            var id = Generation.Checkpoints.SafeTensorsFile.Read(file).Metadata["attribute_classifier"];
            Assert.StartsWith("classifier.safetensors sha256:", id);
            Assert.DoesNotContain(_dir, id);
        }

        // The loss changes what G learns: the same run without it ends with other weights.
        byte[] Weight(string run) => Generation.Checkpoints.SafeTensorsFile.Read(Path.Combine(_dir, run, StyleGanTrainer.CheckpointFile)).Tensors["G.synthesis.b4.conv1.weight"].Data;
        using (var plain = StyleGanTrainer.Create(settings with { AttributeWeight = 0 }, Path.Combine(_dir, "attributes-off")))
            plain.Run(cancel: TestContext.Current.CancellationToken);
        Assert.False(Weight("attributes").AsSpan().SequenceEqual(Weight("attributes-off")), "the attribute loss did not change the update");

        // A resume needs the classifier again; with it, the run continues; a plain run can switch the loss on.
        Assert.Throws<ArgumentException>(() => StyleGanTrainer.Resume(checkpoint, dir, runControl: TinySettings(3)));
        using (var resumed = StyleGanTrainer.Resume(checkpoint, dir, runControl: TinySettings(3), attributeClassifier: classifierPath))
        {
            Assert.Equal(1, resumed.Settings.AttributeWeight);
            resumed.Run(cancel: TestContext.Current.CancellationToken);
            Assert.Equal(3, resumed.Step);
        }
        using (var switched = StyleGanTrainer.Resume(Path.Combine(_dir, "attributes-off", StyleGanTrainer.CheckpointFile), Path.Combine(_dir, "attributes-off"),
                   runControl: TinySettings(3), attributeWeight: 2, attributeClassifier: classifierPath))
            Assert.Equal(2, switched.Settings.AttributeWeight);
    }

    [Fact]
    public void A_run_can_start_from_an_exported_generator_of_its_shape_and_layout_and_records_it_by_name()
    {
        // The generator to start from: an earlier tiny run's export.
        var sourceDir = Path.Combine(_dir, "source");
        using (var source = StyleGanTrainer.Create(TinySettings(2) with { AdversarialStartKimg = 1 }, sourceDir))
            source.Run(cancel: TestContext.Current.CancellationToken);
        var exported = Path.Combine(sourceDir, StyleGanTrainer.GeneratorFile);

        static Dictionary<string, float[]> State(nn.Module m) => m.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.data<float>().ToArray());
        Dictionary<string, float[]> expected;
        using (var file = StyleGan2Checkpoint.Load(exported)) expected = State(file);

        // Another seed: its own initial weights would differ from the file's everywhere.
        var settings = TinySettings(1) with { Seed = 99, AdversarialStartKimg = 1 };
        Dictionary<string, float[]> seeded;
        using (var fresh = StyleGanTrainer.Create(settings, Path.Combine(_dir, "fresh"))) seeded = State(fresh.Generator);
        Assert.NotEqual(expected["synthesis.b4.conv1.weight"], seeded["synthesis.b4.conv1.weight"]);

        var dir = Path.Combine(_dir, "started");
        using (var started = StyleGanTrainer.Create(settings, dir, initialGenerator: exported))
        {
            foreach (var module in new nn.Module[] { started.Generator, started.GeneratorEma })
                foreach (var (name, values) in State(module))
                    Assert.True(values.AsSpan().SequenceEqual(expected[name]), $"{name} is not the exported generator's");
            Assert.StartsWith("generator.safetensors sha256:", started.Settings.InitialGenerator);
            Assert.DoesNotContain(_dir, started.Settings.InitialGenerator);
            started.Run(cancel: TestContext.Current.CancellationToken);
        }
        // The checkpoint and the export record where the run began, and a resume keeps it.
        foreach (var file in new[] { StyleGanTrainer.CheckpointFile, StyleGanTrainer.GeneratorFile })
        {
            var metadata = Generation.Checkpoints.SafeTensorsFile.ReadMetadata(Path.Combine(dir, file));
            var json = metadata.TryGetValue("promptfaces_stylegan_training", out var s) ? s : metadata["training_settings"];
            Assert.Contains("\"initial_generator\":\"generator.safetensors sha256:", json);
        }
        using (var resumed = StyleGanTrainer.Resume(Path.Combine(dir, StyleGanTrainer.CheckpointFile), dir, runControl: TinySettings(2)))
            Assert.StartsWith("generator.safetensors sha256:", resumed.Settings.InitialGenerator);

        // Another architecture, or another latent layout than the one the generator learned, is refused by name.
        var shape = Assert.Throws<ArgumentException>(() => StyleGanTrainer.Create(TinyDesigned(1), Path.Combine(_dir, "wider"), initialGenerator: exported));
        Assert.Contains("architecture", shape.Message);
        var layout = Assert.Throws<ArgumentException>(() => StyleGanTrainer.Create(settings with { LatentLayout = LatentLayout.Intervals }, Path.Combine(_dir, "intervals"), initialGenerator: exported));
        Assert.Contains("--latent-layout argmax", layout.Message);
    }

    [Fact]
    public void The_attribute_loss_also_reads_the_faces_drawn_from_codes_through_seeded_distortions()
    {
        var classifierPath = UntrainedClassifier();
        var settings = TinyDesigned(2) with { AdversarialStartKimg = 1, AttributeWeight = 1 };
        (double Loss, byte[] Weight) Run(string name)
        {
            var steps = new List<StyleGanProgress>();
            using (var trainer = StyleGanTrainer.Create(settings, Path.Combine(_dir, name), attributeClassifier: classifierPath))
                trainer.Run(new Collect(steps), TestContext.Current.CancellationToken);
            var weight = Generation.Checkpoints.SafeTensorsFile.Read(Path.Combine(_dir, name, StyleGanTrainer.CheckpointFile)).Tensors["G.synthesis.b4.conv1.weight"].Data;
            return (steps[^1].Last.GAttributes, weight);
        }
        var first = Run("codes-a");
        Assert.True(first.Loss > 0 && double.IsFinite(first.Loss), $"attribute loss {first.Loss}");
        // The distortions are drawn from the step's seed: the same run gives the same weights.
        var again = Run("codes-b");
        Assert.Equal(first.Loss, again.Loss);
        Assert.True(first.Weight.AsSpan().SequenceEqual(again.Weight), "the attribute loss's distortions are not reproducible");
    }

    [Fact]
    public void Momentum_of_the_supervised_phase_is_stored_and_changes_the_updates()
    {
        var supervised = TinySettings(3) with { AdversarialStartKimg = 1, ReconstructionBeta1 = 0.9 };
        Assert.Equal(supervised, StyleGanTrainingSettings.FromJson(supervised.ToJson(), "test"));
        Assert.NotNull(new StyleGanTrainingSettings { Beta1 = 0.5, ReconstructionBeta1 = 1.5 }.Validate());

        byte[] Generator(StyleGanTrainingSettings settings, string name)
        {
            var dir = Path.Combine(_dir, name);
            using (var trainer = StyleGanTrainer.Create(settings, dir)) trainer.Run(cancel: TestContext.Current.CancellationToken);
            return File.ReadAllBytes(Path.Combine(dir, StyleGanTrainer.GeneratorFile));
        }
        var withMomentum = Generator(supervised, "momentum");
        var without = Generator(supervised with { ReconstructionBeta1 = null }, "plain");
        var again = Generator(supervised, "momentum-again");
        Assert.Equal(withMomentum, again);
        Assert.NotEqual(withMomentum, without);
    }

    [Fact]
    public void A_resume_may_move_the_adversarial_schedule_and_keeps_it_otherwise()
    {
        var dir = Path.Combine(_dir, "schedule");
        using (var first = StyleGanTrainer.Create(TinySettings(1) with { AdversarialStartKimg = 2, AdversarialRampKimg = 1 }, dir))
            first.Run(cancel: TestContext.Current.CancellationToken);
        var checkpoint = Path.Combine(dir, StyleGanTrainer.CheckpointFile);
        using (var kept = StyleGanTrainer.Resume(checkpoint, dir, runControl: TinySettings(2)))
        {
            Assert.Equal(2, kept.Settings.AdversarialStartKimg);
            Assert.Equal(1, kept.Settings.AdversarialRampKimg);
        }
        using (var moved = StyleGanTrainer.Resume(checkpoint, dir, runControl: TinySettings(2), adversarialStartKimg: 7))
        {
            Assert.Equal(7, moved.Settings.AdversarialStartKimg);
            Assert.Equal(1, moved.Settings.AdversarialRampKimg);
            Assert.False(moved.Settings.AdversarialActiveAt(4_000));
        }
        Assert.Throws<ArgumentException>(() => StyleGanTrainer.Resume(checkpoint, dir, runControl: TinySettings(2), adversarialRampKimg: -1));

        // The weight too: a supervised run can end with a gentle adversarial phase.
        using (var gentle = StyleGanTrainer.Resume(checkpoint, dir, runControl: TinySettings(2), adversarialWeight: 0.25))
        {
            Assert.Equal(0.25, gentle.Settings.AdversarialWeight);
            Assert.Equal(0.25 * 0.5, gentle.Settings.AdversarialWeightAt(2_499), 6);
        }
        Assert.Throws<ArgumentException>(() => StyleGanTrainer.Resume(checkpoint, dir, runControl: TinySettings(2), adversarialWeight: -1));
    }

    [Fact]
    public void The_adversarial_loss_also_judges_the_faces_drawn_from_designed_codes()
    {
        // Step 1 of two runs that differ only in the code noise: G(z) is the same in both, the faces drawn from the
        // codes are not. If the discriminator saw only G(z), its fake logits and G's adversarial loss would agree.
        var quiet = FirstStep(TinyDesigned(1), "adv-quiet").Stats;
        var noisy = FirstStep(TinyDesigned(1) with { CodeNoise = 2 }, "adv-noisy").Stats;
        Assert.True(double.IsFinite(quiet.DLoss) && quiet.GAdversarial > 0, "no discriminator ran");
        Assert.Equal(quiet.GReconstruction, noisy.GReconstruction);
        Assert.NotEqual(quiet.FakeLogit, noisy.FakeLogit);
        Assert.NotEqual(quiet.GAdversarial, noisy.GAdversarial);
    }

    [Fact]
    public void Feature_matching_compares_D_features_of_each_face_with_its_render_is_validated_and_may_change_on_resume()
    {
        var settings = TinyDesigned(1) with { FeatureMatchWeight = 5 };
        Assert.Null(settings.Validate());
        Assert.Equal(settings, StyleGanTrainingSettings.FromJson(settings.ToJson(), "test"));
        Assert.Contains("--feature-match-weight", (settings with { AdversarialWeight = 0 }).Validate());
        Assert.Contains("--feature-match-weight", (settings with { ReconstructionWeight = 0 }).Validate());
        Assert.Contains("negative", (settings with { FeatureMatchWeight = -1 }).Validate());

        var matched = FirstStep(settings, "fm-on");
        var plain = FirstStep(settings with { FeatureMatchWeight = 0 }, "fm-off");
        Assert.True(matched.Stats.GFeatureMatch > 0 && double.IsFinite(matched.Stats.GFeatureMatch), $"feature-matching loss {matched.Stats.GFeatureMatch}");
        Assert.Equal(0, plain.Stats.GFeatureMatch);
        // The same faces before the step, another update of G after it.
        Assert.Equal(plain.Stats.GReconstruction, matched.Stats.GReconstruction);
        Assert.Equal(plain.Stats.GAdversarial, matched.Stats.GAdversarial);
        Assert.False(plain.Weights.AsSpan().SequenceEqual(matched.Weights), "the feature-matching loss did not reach G");

        // It waits for the discriminator, and a resume may switch it on.
        var late = FirstStep(settings with { AdversarialStartKimg = 1 }, "fm-late");
        Assert.Equal(0, late.Stats.GFeatureMatch);
        var checkpoint = Path.Combine(_dir, "fm-off", StyleGanTrainer.CheckpointFile);
        using var resumed = StyleGanTrainer.Resume(checkpoint, Path.Combine(_dir, "fm-off"), runControl: TinySettings(2), featureMatchWeight: 3);
        Assert.Equal(3, resumed.Settings.FeatureMatchWeight);
    }

    [Fact]
    public void A_resume_keeps_the_runs_length_unless_a_new_one_is_given_and_may_lower_the_learning_rate()
    {
        var dir = Path.Combine(_dir, "length");
        using (var first = StyleGanTrainer.Create(TinySettings(1), dir))
            first.Run(cancel: TestContext.Current.CancellationToken);
        var checkpoint = Path.Combine(dir, StyleGanTrainer.CheckpointFile);
        var other = TinySettings(1) with { TotalSteps = 9, LogEvery = 3 };
        using (var kept = StyleGanTrainer.Resume(checkpoint, dir, runControl: other, keepTotalSteps: true))
        {
            Assert.Equal(1, kept.Settings.TotalSteps);
            Assert.Equal(3, kept.Settings.LogEvery);
        }
        using var longer = StyleGanTrainer.Resume(checkpoint, dir, runControl: other, learningRate: 0.0005);
        Assert.Equal(9, longer.Settings.TotalSteps);
        Assert.Equal(0.0005, longer.Settings.GLearningRate);
        Assert.Equal(0.0005, longer.Settings.DLearningRate);
    }

    [Fact]
    public void The_encoder_path_trains_draws_renders_back_is_checkpointed_and_can_be_switched_on_by_a_resume()
    {
        var withEncoder = TinySettings(4) with { EncoderWeight = 10, LatentMatchWeight = 1, AdversarialStartKimg = 1 };
        Assert.Equal(withEncoder, StyleGanTrainingSettings.FromJson(withEncoder.ToJson(), "test"));
        Assert.Contains("--encoder-weight", (TinySettings(1) with { LatentMatchWeight = 1 }).Validate());

        // A straight run: both new losses are reported, the encoder moves, and the checkpoint holds it with its moments.
        var straight = Path.Combine(_dir, "encoder");
        var steps = new List<StyleGanProgress>();
        float[] before;
        using (var trainer = StyleGanTrainer.Create(withEncoder, straight))
        {
            Assert.NotNull(trainer.Encoder);
            before = trainer.Encoder!.parameters().First().data<float>().ToArray();
            trainer.Run(new Collect(steps), TestContext.Current.CancellationToken);
            Assert.False(before.AsSpan().SequenceEqual(trainer.Encoder.parameters().First().data<float>().ToArray()), "the encoder did not train");
        }
        Assert.All(steps, p => Assert.True(p.Last.GEncoder > 0 && double.IsFinite(p.Last.GEncoder) && p.Last.LatentMatch > 0));
        Assert.True(File.Exists(Path.Combine(straight, "grid-encoded-000004.png")), "no grid of the encoder's drawings");
        var saved = Generation.Checkpoints.SafeTensorsFile.Read(Path.Combine(straight, StyleGanTrainer.CheckpointFile));
        Assert.Contains(saved.Tensors.Keys, k => k.StartsWith("E.", StringComparison.Ordinal));
        Assert.Contains(saved.Tensors.Keys, k => k.StartsWith("opt_E.", StringComparison.Ordinal));
        Assert.Equal("4", saved.Metadata["opt_E_steps"]);
        // The exported generator is G_ema alone: the encoder is for training only.
        var exported = Generation.Checkpoints.SafeTensorsFile.Read(Path.Combine(straight, StyleGanTrainer.GeneratorFile));
        Assert.DoesNotContain(exported.Tensors.Keys, k => k.Contains("encoder", StringComparison.Ordinal) || k.StartsWith("E.", StringComparison.Ordinal));

        // In two halves the run is the same to the bit, encoder included.
        var halves = Path.Combine(_dir, "encoder-halves");
        using (var first = StyleGanTrainer.Create(withEncoder with { TotalSteps = 2 }, halves)) first.Run(cancel: TestContext.Current.CancellationToken);
        using (var second = StyleGanTrainer.Resume(Path.Combine(halves, StyleGanTrainer.CheckpointFile), halves, runControl: withEncoder))
            second.Run(cancel: TestContext.Current.CancellationToken);
        var resumed = Generation.Checkpoints.SafeTensorsFile.Read(Path.Combine(halves, StyleGanTrainer.CheckpointFile)).Tensors;
        foreach (var key in saved.Tensors.Keys)
            Assert.True(saved.Tensors[key].Data.AsSpan().SequenceEqual(resumed[key].Data), $"{key} differs between the straight and the resumed run");

        // A run saved without an encoder gets a fresh one when a resume switches it on.
        var plain = Path.Combine(_dir, "plain-then-encoder");
        using (var first = StyleGanTrainer.Create(TinySettings(1) with { AdversarialStartKimg = 1 }, plain)) first.Run(cancel: TestContext.Current.CancellationToken);
        using (var switched = StyleGanTrainer.Resume(Path.Combine(plain, StyleGanTrainer.CheckpointFile), plain, runControl: TinySettings(2), encoderWeight: 5))
        {
            Assert.Equal(5, switched.Settings.EncoderWeight);
            Assert.NotNull(switched.Encoder);
            switched.Run(cancel: TestContext.Current.CancellationToken);
        }
        Assert.Equal("1", Generation.Checkpoints.SafeTensorsFile.Read(Path.Combine(plain, StyleGanTrainer.CheckpointFile)).Metadata["opt_E_steps"]);
    }

    [Theory]
    [InlineData(LatentLayout.Argmax)]
    [InlineData(LatentLayout.Intervals)]
    public void A_designed_code_spells_out_the_tied_classes_geometry_and_style_choices(LatentLayout layout)
    {
        const int zDim = 96, wDim = 100;
        var map = new LatentFaceMap(zDim, layout);
        var rng = new SplitMix64(23);
        var z = Enumerable.Range(0, 6 * zDim).Select(_ => (float)(rng.NextDouble() * 4 - 2)).ToArray();
        var codes = map.Codes(z, wDim);
        var faces = map.Attributes(z);
        Assert.Equal(6 * wDim, codes.Length);
        int categorical = FaceAttributes.Schema.Sum(a => a.Classes), geometry = LatentFaceMap.GeometryFields.Count;
        for (int i = 0; i < faces.Length; i++)
        {
            var code = codes.AsSpan(i * wDim, wDim);
            var labels = faces[i].ToLabels();
            for (int a = 0, offset = 0; a < labels.Length; offset += FaceAttributes.Schema[a].Classes, a++)
                for (int c = 0; c < FaceAttributes.Schema[a].Classes; c++)
                    Assert.Equal(c == labels[a] ? LatentFaceMap.CodeAmplitude : 0f, code[offset + c]);
            // Geometry: the z value the mapping network sees (z over its root mean square), whose normal CDF is the value.
            var row = z.AsSpan(i * zDim, zDim).ToArray();
            var rms = MathF.Sqrt(row.Sum(v => v * v) / zDim + 1e-8f);
            Assert.Equal(row[categorical] / rms, code[categorical], 5);
            Assert.Equal(faces[i].Geometry.FaceWidth, LatentFaceMap.NormalCdf(code[categorical]), 5);
            // Style choices as the renderer will make them: lipstick, then shirt as class entries, then five signs.
            var choices = RendererStyles.Of(faces[i].Geometry);
            int d = categorical + geometry;
            Assert.Equal(LatentFaceMap.CodeAmplitude, code[d + choices[0]]);
            Assert.Equal(LatentFaceMap.CodeAmplitude, code[d + 3 + choices[1]]);
            for (int s = 2; s < choices.Length; s++)
                Assert.Equal(choices[s] == 1 ? LatentFaceMap.CodeAmplitude : -LatentFaceMap.CodeAmplitude, code[d + 10 + s - 2]);
            Assert.All(code[LatentFaceMap.RequiredZDim..].ToArray(), v => Assert.Equal(0f, v));
        }
        // A woman's code says "no facial hair", whatever her facial-hair dimensions hold.
        var woman = Enumerable.Range(0, faces.Length).FirstOrDefault(i => faces[i].Gender == Gender.Woman, -1);
        Assert.True(woman >= 0, "no woman among six faces");
        Assert.Equal(LatentFaceMap.CodeAmplitude, codes[woman * wDim + categorical - 3 - 8 + (int)FacialHair.None]);
        var e = Assert.Throws<ArgumentException>(() => map.Codes(z, LatentFaceMap.RequiredZDim - 1));
        Assert.Contains("w_dim", e.Message);
    }

    [Fact]
    public void Designed_codes_replace_the_encoder_are_validated_and_the_mapping_network_can_be_fitted_to_them()
    {
        var designed = TinyDesigned(2) with { CodeNoise = 0.1, AdversarialStartKimg = 1 };
        Assert.Equal(designed, StyleGanTrainingSettings.FromJson(designed.ToJson(), "test"));
        Assert.Null(designed.Validate());
        Assert.Contains("--encoder-weight", (designed with { EncoderWeight = 0, LatentMatchWeight = 0 }).Validate());
        Assert.Contains("--codes designed", (designed with { DesignedCodes = false }).Validate());
        Assert.Contains("negative", (designed with { CodeNoise = -1 }).Validate());
        Assert.Contains("w_dim", (designed with { Generator = StyleGanPresets.Tiny32 }).Validate());

        var dir = Path.Combine(_dir, "designed");
        var steps = new List<StyleGanProgress>();
        using (var trainer = StyleGanTrainer.Create(designed, dir))
        {
            Assert.Null(trainer.Encoder);
            trainer.Run(new Collect(steps), TestContext.Current.CancellationToken);

            // The fit lowers the mapping network's distance to the codes, copies it into G_ema, and leaves the
            // synthesis network alone.
            var synthesis = trainer.Generator.Synthesis.parameters().First().data<float>().ToArray();
            var start = trainer.FitMapping(1, batch: 64, learningRate: 0.01);
            var fit = trainer.FitMapping(150, batch: 64, learningRate: 0.01);
            Assert.True(fit.HeldOutMse < 0.7 * start.HeldOutMse, $"held-out mse {start.HeldOutMse} → {fit.HeldOutMse}");
            Assert.Equal(FaceAttributes.Schema.Select(a => a.Name), fit.ClassAccuracy.Keys);
            Assert.True(fit.ClassAccuracy["background"] > start.ClassAccuracy["background"], "the fit did not learn to read the background from z");
            Assert.True(synthesis.AsSpan().SequenceEqual(trainer.Generator.Synthesis.parameters().First().data<float>().ToArray()));
            var g = trainer.Generator.Mapping.state_dict();
            foreach (var (name, t) in trainer.GeneratorEma.Mapping.state_dict())
                Assert.True(t.data<float>().ToArray().AsSpan().SequenceEqual(g[name].data<float>().ToArray()), $"G_ema's {name} is not G's");
        }
        Assert.All(steps, p => Assert.True(p.Last.GEncoder > 0 && double.IsFinite(p.Last.GEncoder) && p.Last.LatentMatch > 0));
        Assert.True(File.Exists(Path.Combine(dir, "grid-encoded-000002.png")), "no grid of the synthesis network drawing the designed codes");
        var saved = Generation.Checkpoints.SafeTensorsFile.Read(Path.Combine(dir, StyleGanTrainer.CheckpointFile));
        Assert.DoesNotContain(saved.Tensors.Keys, k => k.StartsWith("E.", StringComparison.Ordinal));
        Assert.Contains("designed-code", Generation.Checkpoints.SafeTensorsFile.Read(Path.Combine(dir, StyleGanTrainer.GeneratorFile)).Metadata["training_objective"]);

        // Code noise is part of the loss: the same step without it gives another code-path loss.
        var quiet = Path.Combine(_dir, "designed-quiet");
        var quietSteps = new List<StyleGanProgress>();
        using (var trainer = StyleGanTrainer.Create(designed with { CodeNoise = 0 }, quiet)) trainer.Run(new Collect(quietSteps), TestContext.Current.CancellationToken);
        Assert.Equal(steps[0].Last.GReconstruction, quietSteps[0].Last.GReconstruction);
        Assert.NotEqual(steps[0].Last.GEncoder, quietSteps[0].Last.GEncoder);

        // An encoder run can be switched to designed codes by a resume; its encoder is then left behind.
        var encoderRun = Path.Combine(_dir, "encoder-then-designed");
        using (var first = StyleGanTrainer.Create(designed with { DesignedCodes = false, CodeNoise = 0, TotalSteps = 1 }, encoderRun)) first.Run(cancel: TestContext.Current.CancellationToken);
        using (var switched = StyleGanTrainer.Resume(Path.Combine(encoderRun, StyleGanTrainer.CheckpointFile), encoderRun, runControl: TinySettings(2), designedCodes: true))
        {
            Assert.True(switched.Settings.DesignedCodes);
            Assert.Null(switched.Encoder);
            switched.Run(cancel: TestContext.Current.CancellationToken);
        }
        Assert.DoesNotContain(Generation.Checkpoints.SafeTensorsFile.Read(Path.Combine(encoderRun, StyleGanTrainer.CheckpointFile)).Tensors.Keys, k => k.StartsWith("E.", StringComparison.Ordinal));

        // The latent layout: a run drawing from designed codes may change it (only its mapping network must follow);
        // a run whose synthesis network learned z itself may not.
        var designedCheckpoint = Path.Combine(encoderRun, StyleGanTrainer.CheckpointFile);
        using (var relaid = StyleGanTrainer.Resume(designedCheckpoint, encoderRun, runControl: TinySettings(2), latentLayout: LatentLayout.Intervals))
            Assert.Equal(LatentLayout.Intervals, relaid.Settings.LatentLayout);
        var refused = Assert.Throws<ArgumentException>(() => StyleGanTrainer.Resume(designedCheckpoint, encoderRun, runControl: TinySettings(2),
            designedCodes: false, latentLayout: LatentLayout.Intervals));
        Assert.Contains("argmax layout", refused.Message);
    }

    [Fact]
    public void Starting_a_resume_from_a_missing_checkpoint_is_a_clear_error()
    {
        var e = Assert.Throws<Generation.Checkpoints.CheckpointException>(() => StyleGanTrainer.Resume(Path.Combine(_dir, "nothing.safetensors"), _dir));
        Assert.Contains("does not exist", e.Message);
    }

    private sealed class Collect(List<StyleGanProgress> into) : IProgress<StyleGanProgress>
    {
        public void Report(StyleGanProgress value) => into.Add(value);
    }
}
