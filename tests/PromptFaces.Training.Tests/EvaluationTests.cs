using System.Text.Json;
using PromptFaces.Generation.Checkpoints;
using PromptFaces.Generation.Clip;
using PromptFaces.Generation.Imaging;
using PromptFaces.Generation.Optimisation;
using PromptFaces.Generation.StyleGan2;
using PromptFaces.Training.Data;
using PromptFaces.Training.Evaluation;
using PromptFaces.Training.Faces;
using PromptFaces.Training.StyleGan;
using Xunit;
using static TorchSharp.torch;

namespace PromptFaces.Training.Tests;

public sealed class EvaluationTests : IDisposable
{
    private static readonly AttributeJudgeConfig TinyJudge = new() { Width = 16, FeatureDim = 32 };

    private readonly string _dir = Directory.CreateTempSubdirectory("promptfaces-eval-tests-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    /// <summary>The committed models/ folder of the repository the tests were built from.</summary>
    private static string ModelsFile(string name)
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "PromptFaces.sln"))) return Path.Combine(dir.FullName, "models", name);
        throw new InvalidOperationException("The repository root (PromptFaces.sln) was not found above the test binaries.");
    }

    private static EvalPromptSet CommittedPrompts() => EvalPromptSet.Load(ModelsFile(EvalPromptSet.DefaultFileName));

    /// <summary>
    /// A judge trained for a few steps. On one thread: libtorch 2.x's multi-threaded CPU convolution backward gives
    /// wrong, run-dependent input gradients for narrow 3x3 layers (8 channels at 32x32) on some CPUs, and this judge is
    /// narrow; `train judge` defaults to one thread for the same reason.
    /// </summary>
    private static JudgeTrainingResult TrainTinyJudge(int steps = 3)
    {
        TorchSharp.torch.set_num_threads(1);
        return JudgeTrainer.Train(new JudgeTrainingOptions
        {
            Model = TinyJudge,
            TrainFaces = 48,
            HeldOutFaces = 24,
            ImageSize = 32,
            Steps = steps,
            BatchSize = 8,
            EvaluateEvery = 0,
        }, cancellationToken: TestContext.Current.CancellationToken);
    }

    /// <summary>
    /// A random tiny generator (32x32) and CLIP with a byte-level tokenizer: the evaluation's plumbing does not need
    /// trained networks, only the shapes and the data flow of real ones.
    /// </summary>
    private static FaceModels TinyRandomModels(int zDim = 16)
    {
        manual_seed(1);
        var generator = new StyleGan2Generator(new StyleGan2Config
        {
            ZDim = zDim, WDim = 16, Resolution = 32, MappingLayers = 2, ChannelBase = 256, ChannelMax = 16, NumFp16Res = 0,
        });
        var clip = new ClipModel(new ClipConfig
        {
            ProjectionDim = 16,
            TextConfig = new ClipTextConfig { VocabSize = 514, HiddenSize = 32, IntermediateSize = 64, NumHiddenLayers = 1, NumAttentionHeads = 2, MaxPositionEmbeddings = 64, EosTokenId = 513 },
            VisionConfig = new ClipVisionConfig { HiddenSize = 32, IntermediateSize = 64, NumHiddenLayers = 1, NumAttentionHeads = 2, ImageSize = 32, PatchSize = 8 },
        });
        return new FaceModels(generator, clip, ByteLevelTokenizer.Create(contextLength: 64), "tiny-random-generator", "tiny-random-clip");
    }

    // ---- The judge ----

    [Fact]
    public void Judge_trains_saves_and_loads_exactly()
    {
        var result = TrainTinyJudge();
        using var judge = result.Judge;
        Assert.Equal(FaceAttributes.Schema.Count, result.HeldOutAccuracy.Count);
        Assert.All(result.HeldOutAccuracy.Concat(result.HeldOutAccuracyBlurred), a => Assert.InRange(a, 0, 1));

        var path = Path.Combine(_dir, "judge.safetensors");
        judge.Save(path, result.Metadata(new JudgeTrainingOptions()));
        using var loaded = AttributeJudge.Load(path, null, out var metadata);
        Assert.Equal(TinyJudge, loaded.Config);
        Assert.Equal(FaceRenderer.Version, loaded.RendererVersion);
        Assert.Contains("hair_colour", metadata["held_out_accuracy"]);

        using var images = FaceDataset.Generate(6, 32, seed: 3, cancellationToken: TestContext.Current.CancellationToken).Images([0, 1, 2, 3, 4, 5]);
        Assert.Equal(judge.Predict(images).data<long>().ToArray(), loaded.Predict(images).data<long>().ToArray());
        using var noGrad = no_grad();
        using var a = judge.Features(images);
        using var b = loaded.Features(images);
        Assert.Equal(new long[] { 6, TinyJudge.FeatureDim }, b.shape);
        Assert.True(a.allclose(b, rtol: 1e-4, atol: 1e-5), $"features differ by up to {(a - b).abs().max().item<float>()}");
    }

    [Fact]
    public void Judge_takes_any_image_size_and_reports_every_attribute()
    {
        using var judge = new AttributeJudge(TinyJudge).Freeze();
        foreach (var side in new[] { 32, 64, 128 })
        {
            using var images = rand(3, 3, side, side) * 2 - 1;
            using var predicted = judge.Predict(images);
            Assert.Equal([3L, FaceAttributes.Schema.Count], predicted.shape);
            var values = predicted.data<long>().ToArray();
            for (int i = 0; i < values.Length; i++)
                Assert.InRange(values[i], 0, FaceAttributes.Schema[i % FaceAttributes.Schema.Count].Classes - 1);
        }
        Assert.Throws<ArgumentException>(() => judge.Predict(zeros(2, 1, 64, 64)));
    }

    [Fact]
    public void Loading_something_else_as_a_judge_fails_clearly()
    {
        var dataset = Path.Combine(_dir, "faces.safetensors");
        FaceDataset.Generate(2, 32, seed: 1, cancellationToken: TestContext.Current.CancellationToken).Save(dataset);
        var e = Assert.Throws<InvalidDataException>(() => AttributeJudge.Load(dataset));
        Assert.Contains(dataset, e.Message);
        Assert.Contains("promptfaces-faces", e.Message);

        var missing = Path.Combine(_dir, "nothing.safetensors");
        Assert.Contains("promptfaces train judge", Assert.Throws<FileNotFoundException>(() => AttributeJudge.Load(missing)).Message);

        // A judge file whose tensors do not fit its recorded configuration: strict loading names the key.
        using var judge = new AttributeJudge(TinyJudge);
        var path = Path.Combine(_dir, "mismatch.safetensors");
        judge.Save(path);
        var (tensors, metadata) = SafeTensorsFile.Read(path);
        metadata["config"] = (TinyJudge with { FeatureDim = 48 }).ToJson();
        SafeTensorsFile.Write(path, tensors, metadata);
        var mismatch = Assert.Throws<CheckpointException>(() => AttributeJudge.Load(path));
        Assert.Contains("embed.weight", mismatch.Message);
    }

    [Fact]
    public void Blur_with_sigma_zero_changes_nothing_and_keeps_flat_colours()
    {
        using var images = rand(2, 3, 32, 32) * 2 - 1;
        using var same = ImageFilters.GaussianBlur(images, zeros(2), maxSigma: 2);
        Assert.True(same.allclose(images, rtol: 0, atol: 1e-6));
        using var flat = full(new long[] { 1, 3, 32, 32 }, 0.25f);
        using var blurred = ImageFilters.GaussianBlur(flat, 3.0);
        Assert.True(blurred.allclose(flat, rtol: 0, atol: 1e-5));
        using var rng = new Generator(1);
        using var augmented = new JudgeAugmentation().Apply(images, rng);
        Assert.Equal(images.shape, augmented.shape);
        Assert.True(augmented.abs().max().item<float>() <= 1f);
    }

    // ---- The Fréchet distance ----

    [Fact]
    public void Frechet_distance_is_zero_for_identical_sets_and_grows_with_a_shift()
    {
        manual_seed(5);
        using var a = randn(400, 16);
        Assert.True(Evaluator.FrechetDistance(a, a) < 1e-6);

        // Same covariance, mean moved by c in every dimension: the distance is D·c².
        double previous = 0;
        foreach (var c in new[] { 0.25, 0.5, 1.0, 2.0 })
        {
            using var shifted = a + c;
            double d = Evaluator.FrechetDistance(a, shifted);
            Assert.Equal(16 * c * c, d, 1e-6 * 16 * c * c + 1e-6);
            Assert.True(d > previous);
            previous = d;
        }
        // A different spread alone also counts: doubling every value adds tr((2Σ½ − Σ½)²) = tr(Σ), plus the moved mean.
        using var wide = a * 2;
        double expected = a.to(ScalarType.Float64).var(new long[] { 0 }).sum().item<double>() + a.to(ScalarType.Float64).mean(new long[] { 0 }).square().sum().item<double>();
        Assert.Equal(expected, Evaluator.FrechetDistance(a, wide), 1e-6 * expected);
        // Fewer samples than dimensions (singular covariances) still give a finite, non-negative distance.
        using var few = randn(8, 16);
        Assert.InRange(Evaluator.FrechetDistance(few, a), 0, 1000);
    }

    // ---- The prompt set ----

    [Fact]
    public void Committed_prompt_set_parses_and_states_what_its_text_says()
    {
        var set = CommittedPrompts();
        Assert.InRange(set.Count, 60, 100);
        foreach (var prompt in set.Prompts)
        {
            Assert.InRange(prompt.Stated.Count, 1, EvalPromptSet.MaxStatedAttributes);
            var parsed = CaptionWriter.Mentioned(prompt.Text).OrderBy(p => p.AttributeIndex).ThenBy(p => p.ClassIndex).ToArray();
            var stated = prompt.Stated.OrderBy(p => p.AttributeIndex).ThenBy(p => p.ClassIndex).ToArray();
            Assert.True(parsed.SequenceEqual(stated),
                $"'{prompt.Text}' states {Describe(stated)} but CaptionWriter.Mentioned reads {Describe(parsed)}");
        }
        // Every attribute is asked for, and the set mixes one, two and three stated attributes.
        for (int a = 0; a < FaceAttributes.Schema.Count; a++)
            Assert.Contains(set.Prompts, p => p.Stated.Any(s => s.AttributeIndex == a));
        for (int n = 1; n <= 3; n++) Assert.True(set.Prompts.Count(p => p.Stated.Count == n) >= 10, $"few prompts state {n} attributes");

        // The plain-text copy for the CLIP trainer's --exclude matches, line for line.
        Assert.Equal(set.Prompts.Select(p => p.Text), File.ReadAllLines(ModelsFile(EvalPromptSet.SentencesFileName)));
    }

    private static string Describe(IEnumerable<(int AttributeIndex, int ClassIndex)> pairs) =>
        "{" + string.Join(", ", pairs.Select(p => $"{FaceAttributes.Schema[p.AttributeIndex].Name}={Enum.GetName(FaceAttributes.Schema[p.AttributeIndex].Enum, p.ClassIndex)}")) + "}";

    [Fact]
    public void No_eval_prompt_is_a_training_caption()
    {
        // PROMPTFACES_CAPTION_SAMPLES=2000000 runs the full-size check.
        int samples = int.TryParse(Environment.GetEnvironmentVariable("PROMPTFACES_CAPTION_SAMPLES"), out var n) ? n : 200_000;
        var set = CommittedPrompts();
        var rng = new SplitMix64(20_260_127);
        var captionWords = new HashSet<string>();
        for (int i = 0; i < samples; i++)
        {
            var caption = CaptionWriter.Write(AttributeSampler.Sample((ulong)i * 7919 + 17), rng);
            Assert.False(set.Contains(caption), $"CaptionWriter wrote the eval prompt '{caption}'");
            if (i < 50_000) captionWords.UnionWith(CaptionWriter.Tokenise(caption));
        }
        // Stronger than sampling: every prompt has a word that no caption uses, so no caption can equal it.
        var onlyCaptionWords = set.Prompts.Where(p => CaptionWriter.Tokenise(p.Text).All(captionWords.Contains)).Select(p => p.Text).ToArray();
        Assert.True(onlyCaptionWords.Length == 0,
            $"these prompts use only caption words, so CaptionWriter might write them exactly: {string.Join(" | ", onlyCaptionWords)}");
    }

    [Fact]
    public void The_seed_articles_prompt_is_a_possible_caption_so_it_is_not_in_the_set()
    {
        const string seedPrompt = "An image with the face of a woman with blonde hair and purple eyes";
        Assert.DoesNotContain(EvalPromptSet.Normalise(seedPrompt), CommittedPrompts().NormalisedSentences);
        var face = new FaceAttributes { Gender = Gender.Woman, HairColour = HairColour.Blonde, EyeColour = EyeColour.Purple, HairStyle = HairStyle.Long };
        var rng = new SplitMix64(1);
        bool written = false;
        for (int i = 0; i < 2_000_000 && !written; i++)
            written = EvalPromptSet.Normalise(CaptionWriter.Write(face, rng)) == EvalPromptSet.Normalise(seedPrompt);
        Assert.True(written, "CaptionWriter never wrote the seed article's prompt; it could then join the evaluation set");
    }

    [Fact]
    public void Prompt_files_with_mistakes_fail_with_the_prompt_and_key()
    {
        var e = Assert.Throws<InvalidDataException>(() => EvalPromptSet.Parse(
            """{"prompts": [{"text": "Show me a lady with teal eyes.", "attributes": {"eye_colour": "Teal"}}]}""", "p.json"));
        Assert.Contains("p.json: prompt 1", e.Message);
        Assert.Contains("Amber", e.Message);
        e = Assert.Throws<InvalidDataException>(() => EvalPromptSet.Parse(
            """{"prompts": [{"text": "A face.", "attributes": {"nose": "Big"}}]}""", "p.json"));
        Assert.Contains("unknown attribute 'nose'", e.Message);
        e = Assert.Throws<InvalidDataException>(() => EvalPromptSet.Parse(
            """{"prompts": [{"text": "Draw a man.", "attributes": {"gender": "Man"}}, {"text": "draw a man", "attributes": {"gender": "Man"}}]}""", "p.json"));
        Assert.Contains("occurs twice", e.Message);
    }

    [Fact]
    public void Subsets_spread_over_the_set_and_keep_each_prompts_index()
    {
        var set = CommittedPrompts();
        var subset = set.Subset(4);
        Assert.Equal(4, subset.Count);
        Assert.Equal(0, subset[0].Index);
        Assert.All(subset, s => Assert.Same(set.Prompts[s.Index], s.Prompt));
        Assert.True(subset[^1].Index >= set.Count / 2);
        Assert.Equal(set.Count, set.Subset(null).Count);
    }

    // ---- The evaluation ----

    [Fact]
    public void Baseline_faces_are_exactly_the_faces_a_best_of_one_optimisation_starts_from()
    {
        using var models = TinyRandomModels();
        using var judge = new AttributeJudge(TinyJudge);
        var evaluator = new Evaluator(models, judge);
        using var engine = new CoBatchedOptimiser(models);
        // One step: the best latent seen is the start, scored before the first update.
        foreach (var seed in new long[] { 0, 1001 })
            engine.Enqueue(new OptimisationRequest($"s{seed}", new OptimisationSettings { Prompts = [new WeightedPrompt("a man")], Seed = seed, Steps = 1, Starts = 1, PreviewSize = 0 }));
        var outcomes = engine.RunToCompletion().OrderBy(o => o.JobId).ToArray();
        using var starts = evaluator.StartImages([0, 1001]);
        Assert.True(starts.narrow(0, 0, 1).allclose(outcomes[0].Image!.clamp(-1, 1), rtol: 0, atol: 1e-5));
        Assert.True(starts.narrow(0, 1, 1).allclose(outcomes[1].Image!.clamp(-1, 1), rtol: 0, atol: 1e-5));
        foreach (var o in outcomes) o.Image?.Dispose();
    }

    [Fact]
    public void CLIPs_reading_is_its_zero_shot_class_for_every_attribute()
    {
        using var models = TinyRandomModels();
        using var judge = new AttributeJudge(TinyJudge);
        var evaluator = new Evaluator(models, judge);
        using var faces = evaluator.StartImages([3, 4, 5]);
        var readings = evaluator.ClipReadAll([faces.narrow(0, 0, 1), faces.narrow(0, 1, 2)]);
        Assert.Equal(3, readings.Count);
        using var scope = NewDisposeScope();
        var pixels = faces.shape[2] == models.ClipImageSize ? faces
            : nn.functional.interpolate(faces, [models.ClipImageSize, models.ClipImageSize], mode: InterpolationMode.Bilinear, align_corners: false);
        var features = PromptFaces.Training.Clip.ZeroShotEvaluator.EncodeImages(models.Clip, pixels);
        for (int a = 0; a < FaceAttributes.Schema.Count; a++)
        {
            var captions = PromptFaces.Training.Clip.ZeroShotEvaluator.EncodeTexts(models.Clip, models.Tokenizer, PromptFaces.Training.Clip.ZeroShotEvaluator.Prompts[a].Prompts);
            var expected = features.matmul(captions.t()).argmax(1).data<long>().ToArray();
            Assert.Equal(expected.Select(e => (int)e), readings.Select(r => r[a]));
        }
    }

    [Fact]
    public void Realism_measures_the_jobs_starting_and_optimised_faces_against_the_renders()
    {
        using var models = TinyRandomModels();
        var trained = TrainTinyJudge(steps: 30);
        using var judge = trained.Judge;
        var evaluator = new Evaluator(models, judge, new EvaluationOptions { RealismSamples = 16, Optimisation = new OptimisationSettings { PreviewSize = 0 } });
        var ct = TestContext.Current.CancellationToken;
        using var starts = evaluator.StartImages([0, 1, 2, 3, 4, 5]);
        using var grey = zeros_like(starts);

        var none = evaluator.Realism(cancellationToken: ct);
        Assert.Equal(0, none.JobFaces);
        Assert.Null(none.StartingFaces);
        Assert.Null(none.OptimisedFaces);

        // The same faces on both sides measure the same; flat grey faces measure differently, and the starting side stays.
        var same = evaluator.Realism(null, ct, [starts], [starts]);
        var flat = evaluator.Realism(null, ct, [starts.narrow(0, 0, 3), starts.narrow(0, 3, 3)], [grey]);
        Assert.Equal(6, flat.JobFaces);
        Assert.Equal(same.StartingFaces, same.OptimisedFaces);
        Assert.Equal(same.StartingFaces, flat.StartingFaces);
        Assert.NotEqual(flat.StartingFaces, flat.OptimisedFaces);
        Assert.Equal(none.GeneratorPsi1, flat.GeneratorPsi1);

        var mismatch = Assert.Throws<ArgumentException>(() => evaluator.Realism(null, ct, [starts], [grey.narrow(0, 0, 4)]));
        Assert.Contains("6 starting faces but 4 optimised", mismatch.Message);
    }

    [Fact]
    public void For_a_latent_tied_generator_realism_reports_how_often_its_samples_show_what_their_z_is_tied_to()
    {
        // A random generator wide enough in z for the tie; the figure's plumbing needs no trained generator.
        int zDim = LatentFaceMap.RequiredZDim + 4;
        using var models = TinyRandomModels(zDim);
        var generator = models.Generator;
        var trained = TrainTinyJudge(steps: 30);
        using var judge = trained.Judge;
        var tie = new LatentFaceMap(zDim);
        var options = new EvaluationOptions { RealismSamples = 24, Optimisation = new OptimisationSettings { PreviewSize = 0 } };
        var ct = TestContext.Current.CancellationToken;

        var untied = new Evaluator(models, judge, options).Realism(cancellationToken: ct);
        var tied = new Evaluator(models, judge, options with { LatentTie = tie }).Realism(cancellationToken: ct);
        Assert.Null(untied.TiedAttributes);
        Assert.Equal(untied.GeneratorPsi1, tied.GeneratorPsi1);              // the same samples either way

        // The same 24 samples, judged here, against the attributes their z is tied to.
        using var rng = new TorchSharp.torch.Generator((ulong)options.SampleSeed);
        using var z = randn(new long[] { 24, zDim }, generator: rng);
        using var noGrad = no_grad();
        using var images = generator.Synthesis.Forward(generator.Mapping.Forward(z, 1.0), NoiseMode.Const).clamp(-1, 1);
        using var predicted = judge.Predict(images).to(ScalarType.Int32);
        var judged = predicted.data<int>().ToArray();
        var labels = tie.Attributes(z.data<float>().ToArray()).Select(f => f.ToLabels()).ToArray();
        var figures = tied.TiedAttributes!;
        Assert.Equal(24, figures.Samples);
        var schema = FaceAttributes.Schema;
        Assert.Equal(schema.Select(a => a.Name), figures.Agreement.Keys);
        for (int a = 0; a < schema.Count; a++)
        {
            double expected = Enumerable.Range(0, 24).Count(i => judged[i * schema.Count + a] == labels[i][a]) / 24.0;
            Assert.Equal(expected, figures.Agreement[schema[a].Name], 4);
        }
        Assert.Equal(figures.Agreement.Values.Average(), figures.Mean, 4);
        for (int a = 0; a < schema.Count; a++)
        {
            double common = labels.GroupBy(l => l[a]).Max(g => g.Count()) / 24.0;
            Assert.Equal(common, figures.MostCommon[schema[a].Name], 4);
        }
    }

    [Fact]
    public void A_generators_latent_tie_is_read_from_its_training_metadata()
    {
        int zDim = LatentFaceMap.RequiredZDim;
        Assert.Null(LatentFaceMap.FromTrainingMetadata(new Dictionary<string, string>(), zDim, "g.safetensors"));
        Assert.Null(LatentFaceMap.FromTrainingMetadata(new Dictionary<string, string> { ["training_settings"] = """{"reconstruction_weight":0}""" }, zDim, "g.safetensors"));
        Assert.Null(LatentFaceMap.FromTrainingMetadata(new Dictionary<string, string> { ["training_settings"] = """{"reconstruction_weight":10}""" }, zDim - 1, "g.safetensors"));
        var map = LatentFaceMap.FromTrainingMetadata(new Dictionary<string, string> { ["training_settings"] = """{"reconstruction_weight":10,"latent_layout":"intervals"}""" }, zDim, "g.safetensors");
        Assert.Equal(LatentLayout.Intervals, map!.Layout);
        var broken = Assert.Throws<InvalidDataException>(() => LatentFaceMap.FromTrainingMetadata(new Dictionary<string, string> { ["training_settings"] = "{not json" }, zDim, "g.safetensors"));
        Assert.Contains("g.safetensors", broken.Message);
        Assert.Contains("training_settings", broken.Message);
        var unknown = Assert.Throws<InvalidDataException>(() => LatentFaceMap.FromTrainingMetadata(new Dictionary<string, string> { ["training_settings"] = """{"reconstruction_weight":10,"latent_layout":"spiral"}""" }, zDim, "g.safetensors"));
        Assert.Contains("'spiral'", unknown.Message);

        // The shipped generator was trained with the argmax tie.
        var shipped = SafeTensorsFile.ReadMetadata(ModelsFile("generator.safetensors"));
        Assert.Equal(SafeTensorsFile.Read(ModelsFile("generator.safetensors")).Metadata, shipped);   // the header alone gives the same metadata
        Assert.Equal(LatentLayout.Argmax, LatentFaceMap.FromTrainingMetadata(shipped, 128, "generator.safetensors")!.Layout);
        Assert.Equal(LatentLayout.Argmax, LatentFaceMap.FromGeneratorFile(ModelsFile("generator.safetensors"), 128)!.Layout);
        // A file that is not safetensors (an NVIDIA pickle, say) has no training metadata, so no tie.
        var pickle = Path.Combine(_dir, "network.pkl");
        File.WriteAllBytes(pickle, [0x80, 0x02, 0x7D, 0x71, 0x00, 0x2E, 0x00, 0x00, 0x00, 0x00]);
        Assert.Null(LatentFaceMap.FromGeneratorFile(pickle, zDim));
    }

    [Fact]
    public void Evaluation_runs_end_to_end_on_a_small_subset()
    {
        using var models = TinyRandomModels();
        var trained = TrainTinyJudge(steps: 30);   // a judge of 2 steps can have all-zero features, and every distance 0
        using var judge = trained.Judge;
        var options = new EvaluationOptions
        {
            SeedsPerPrompt = 3,
            PromptLimit = 2,
            BatchSize = 4,                    // 6 jobs: a full batch, then two joining as the others run
            RealismSamples = 16,
            JudgeFaces = 16,
            DiversityReferencePairs = 8,
            Optimisation = new OptimisationSettings { Steps = 3, Cutouts = 2, PreviewSize = 0, Space = LatentSpace.WPlus, LearningRate = 0.07, WholeViewWeight = 2.5 },
        };
        var phases = new List<string>();
        int grids = 0;
        var evaluator = new Evaluator(models, judge, options);
        var report = evaluator.Run(CommittedPrompts(), "tiny-judge", p => phases.Add(p.Phase),
            (starts, finals) =>
            {
                grids++;
                Assert.Equal(2, starts.Count);
                Assert.Equal([3L, 3, 32, 32], finals[0].shape);
            }, TestContext.Current.CancellationToken);

        Assert.Equal(1, grids);
        Assert.Contains(phases, p => p.StartsWith("prompts", StringComparison.Ordinal));
        var p = report.Prompts;
        Assert.Equal(2, p.PromptCount);
        Assert.Equal(6, p.Jobs);
        Assert.Equal(p.PerPrompt.Sum(r => r.Stated.Count * 3), p.AttributeChecks);
        Assert.All(new[] { p.BaselineAccuracy, p.OptimisedAccuracy, p.BaselineAllStated, p.OptimisedAllStated }, v => Assert.InRange(v, 0, 1));
        Assert.Equal([0L, 1L, 2L], p.PerPrompt[0].Seeds);
        Assert.Equal(EvaluationOptions.SeedFor(CommittedPrompts().Subset(2)[1].Index, 0), p.PerPrompt[1].Seeds[0]);
        Assert.Equal(FaceAttributes.Schema.Count, report.Judge.Accuracy.Count);
        Assert.NotNull(report.Realism);
        Assert.True(report.Realism.GeneratorPsi1 > 0 && double.IsFinite(report.Realism.GeneratorPsi1));
        Assert.True(report.Realism.BlurredRenders > 0 && double.IsFinite(report.Realism.BlurredRenders));
        Assert.Equal(6, report.Realism.JobFaces);
        Assert.True(report.Realism.StartingFaces is double started && double.IsFinite(started) && started > 0);
        Assert.True(report.Realism.OptimisedFaces is double optimised && double.IsFinite(optimised) && optimised > 0);
        Assert.NotNull(report.Diversity);
        Assert.Equal(6, report.Diversity.Pairs);
        Assert.True(report.Diversity.PixelDifferenceRenders > 0);

        // CLIP's reading of the starting faces, recomputed here by zero-shot classification, gives the reported baseline.
        var clip = p.ClipReading!;
        var chosen = CommittedPrompts().Subset(2);
        int clipHits = 0;
        for (int i = 0; i < chosen.Count; i++)
        {
            using var scope = NewDisposeScope();
            var starts = evaluator.StartImages(p.PerPrompt[i].Seeds.ToArray());
            if (starts.shape[2] != models.ClipImageSize)
                starts = nn.functional.interpolate(starts, [models.ClipImageSize, models.ClipImageSize], mode: InterpolationMode.Bilinear, align_corners: false);
            var features = PromptFaces.Training.Clip.ZeroShotEvaluator.EncodeImages(models.Clip, starts);
            foreach (var (a, c) in chosen[i].Prompt.Stated)
            {
                var captions = PromptFaces.Training.Clip.ZeroShotEvaluator.EncodeTexts(models.Clip, models.Tokenizer, PromptFaces.Training.Clip.ZeroShotEvaluator.Prompts[a].Prompts);
                clipHits += features.matmul(captions.t()).argmax(1).data<long>().ToArray().Count(k => k == c);
            }
        }
        Assert.Equal(Math.Round((double)clipHits / p.AttributeChecks, 5), clip.BaselineAccuracy);
        Assert.InRange(clip.OptimisedClipOnly, 0, clip.OptimisedAccuracy);
        Assert.InRange(clip.OptimisedAgreementWithJudge, 0, 1);
        Assert.Equal(p.AttributeChecks, clip.PerAttribute.Values.Sum(a => a.Checks));

        using var json = JsonDocument.Parse(report.ToJson());
        var root = json.RootElement;
        Assert.Equal(2, root.GetProperty("prompts").GetProperty("prompt_count").GetInt32());
        Assert.Equal(clip.OptimisedAccuracy, root.GetProperty("prompts").GetProperty("clip_reading").GetProperty("optimised_accuracy").GetDouble());
        Assert.True(root.GetProperty("prompts").GetProperty("optimised_accuracy").GetDouble() >= 0);
        Assert.True(root.GetProperty("realism").GetProperty("blurred_renders").GetDouble() >= 0);
        Assert.Equal("tiny-random-generator", root.GetProperty("models").GetProperty("generator").GetString());
        Assert.True(report.Models.JudgeMatchesRenderer);
        // The report names the optimisation its accuracies come from (here not the defaults).
        var used = root.GetProperty("prompts").GetProperty("optimisation");
        Assert.Equal("w+", used.GetProperty("space").GetString());
        Assert.Equal(0.07, used.GetProperty("learning_rate").GetDouble());
        Assert.Equal(2, used.GetProperty("cutouts").GetInt32());
        Assert.Equal(2.5, used.GetProperty("whole_view_weight").GetDouble());
        Assert.Equal(10, used.GetProperty("range_prior").GetDouble());
    }
}
