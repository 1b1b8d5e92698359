using PromptFaces.Generation.Checkpoints;
using PromptFaces.Generation.Clip;
using PromptFaces.Generation.Imaging;
using PromptFaces.Generation.Optimisation;
using PromptFaces.Generation.Tests;
using PromptFaces.Training.Clip;
using PromptFaces.Training.Faces;
using Xunit;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace PromptFaces.Training.Tests;

public sealed class ClipTrainingTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("pf-clip-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    /// <summary>A run small enough for a test: tiny towers, small vocabulary, a few pairs per step.</summary>
    private ClipTrainingOptions Tiny(string name, int steps) => new()
    {
        OutputFolder = Path.Combine(_dir, name),
        Steps = steps,
        BatchSize = 8,
        VocabSize = 600,
        BpeCorpusSize = 1500,
        Seed = 7,
        WarmupSteps = 2,
        Architecture = SmallClip.TinyConfig,
        CheckpointEvery = 2,
        GridEvery = 2,
        EvalImages = 16,
    };

    [Fact]
    public void A_tiny_run_trains_checkpoints_and_exports_a_loadable_model()
    {
        var options = Tiny("run", steps: 3);
        var reports = new List<ClipStepReport>();
        ClipEvaluation? evaluation;
        float[] expected;
        using (var trainer = new ClipTrainer(options))
        {
            evaluation = trainer.Run(reports.Add, cancel: TestContext.Current.CancellationToken);
            using var ids = tensor(trainer.Tokenizer.Tokenize("a woman with red hair").Ids.Select(i => (long)i).ToArray()).reshape(1, -1);
            using var noGrad = no_grad();
            using var features = trainer.Model.EncodeText(ids);
            expected = features.data<float>().ToArray();
        }

        Assert.Equal([1, 2, 3], reports.Select(r => r.Step));
        Assert.All(reports, r => Assert.True(double.IsFinite(r.Loss) && r.Loss > 0));
        Assert.NotNull(evaluation);
        Assert.Equal(3, evaluation.Step);
        Assert.Equal(FaceAttributes.Schema.Count, evaluation.ZeroShot.PerAttribute.Count);
        Assert.InRange(evaluation.ZeroShot.Mean, 0, 1);
        Assert.InRange(evaluation.ZeroShot.BalancedMean, 0, 1);

        var folder = options.OutputFolder;
        Assert.True(File.Exists(Path.Combine(folder, "checkpoint", "state.json")));
        Assert.Equal(4, File.ReadAllLines(Path.Combine(folder, "log.tsv")).Length);   // header and three steps
        Assert.True(File.Exists(Path.Combine(folder, "eval.tsv")));
        var grid = Path.Combine(folder, "samples", "grid_000003.png");
        Assert.Equal(RetrievalGrid.DefaultProbes[0], PngWriter.ReadPngText(grid)["row 1"]);
        Assert.True(File.Exists(Path.Combine(folder, "samples", "grid_000002.png")));

        // The export is a Hugging Face CLIP folder that the engine's loaders read, and it computes what the trainer's model did.
        var model = Path.Combine(folder, "model");
        using var clip = ClipModel.FromFolder(model);
        var tokenizer = ClipTokenizer.FromFolder(model, clip.Config.TextConfig.MaxPositionEmbeddings);
        Assert.Equal(clip.Config.TextConfig.VocabSize, tokenizer.VocabSize);
        Assert.Equal(tokenizer.VocabSize - 1, tokenizer.EosId);
        using (var ids = tensor(tokenizer.Tokenize("a woman with red hair").Ids.Select(i => (long)i).ToArray()).reshape(1, -1))
        using (no_grad())
        using (var features = clip.EncodeText(ids))
            Assert.Equal(expected, features.data<float>().ToArray());
        Assert.True(File.Exists(Path.Combine(model, "training.json")));
    }

    [Fact]
    public void The_exported_model_guides_the_optimiser()
    {
        Assert.SkipWhen(Fixtures.Root is null, Fixtures.MissingReason);
        var options = Tiny("engine", steps: 1) with { GridEvery = 0 };
        using (var trainer = new ClipTrainer(options)) trainer.Run(cancel: TestContext.Current.CancellationToken);

        // The engine's own loader takes the export next to a generator (the tiny fixture, 32 pixels: cutouts resample to 64).
        using var models = FaceModels.Load(Fixtures.Path("stylegan2", "stylegan2_tiny_official_format.pkl"), Path.Combine(options.OutputFolder, "model"));
        Assert.Equal(SmallClip.ImageSize, models.ClipImageSize);
        using var engine = new CoBatchedOptimiser(models);
        engine.Enqueue(new OptimisationRequest("job", new OptimisationSettings
        {
            Prompts = [new WeightedPrompt("a woman with red hair")], Seed = 3, Steps = 2, Cutouts = 4, PreviewSize = 0,
        }));
        var outcome = engine.RunToCompletion().Single();
        Assert.Equal(JobOutcomeStatus.Completed, outcome.Status);
        Assert.True(double.IsFinite(outcome.SimilarityEnd));
    }

    [Fact]
    public void Resuming_continues_exactly_where_the_checkpoint_stopped()
    {
        var straight = Tiny("straight", steps: 4);
        using (var trainer = new ClipTrainer(straight)) trainer.Run(cancel: TestContext.Current.CancellationToken);

        var split = Tiny("split", steps: 4);
        using (var trainer = new ClipTrainer(split))
        {
            trainer.TrainStep();
            trainer.TrainStep();
            trainer.SaveCheckpoint();
        }
        var losses = new List<ClipStepReport>();
        using (var resumed = new ClipTrainer(split with { Resume = true, Seed = 999, BatchSize = 3 }))   // saved settings win
        {
            Assert.Equal(2, resumed.Step);
            Assert.Equal(7UL, resumed.Options.Seed);
            resumed.Run(losses.Add, cancel: TestContext.Current.CancellationToken);
        }
        Assert.Equal([3, 4], losses.Select(r => r.Step));

        var a = SafeTensorsFile.Read(Path.Combine(straight.OutputFolder, "model", "model.safetensors")).Tensors;
        var b = SafeTensorsFile.Read(Path.Combine(split.OutputFolder, "model", "model.safetensors")).Tensors;
        Assert.Equal(a.Keys.Order(), b.Keys.Order());
        foreach (var key in a.Keys) Assert.True(a[key].Data.AsSpan().SequenceEqual(b[key].Data), $"{key} differs after resuming");
        Assert.Equal(File.ReadAllLines(Path.Combine(straight.OutputFolder, "log.tsv")).Select(LossColumn),
            File.ReadAllLines(Path.Combine(split.OutputFolder, "log.tsv")).Select(LossColumn));
    }

    private static string LossColumn(string line) => line.Split('\t')[1];

    [Fact]
    public void A_new_run_refuses_a_folder_with_a_checkpoint_and_resume_needs_one()
    {
        var options = Tiny("guard", steps: 1);
        Assert.Throws<ArgumentException>(() => new ClipTrainer(options with { Resume = true }));
        using (var trainer = new ClipTrainer(options)) trainer.Run(cancel: TestContext.Current.CancellationToken);
        Assert.Throws<ArgumentException>(() => new ClipTrainer(options));
    }

    [Fact]
    public void Excluded_sentences_are_never_drawn_and_survive_a_resume()
    {
        // Exclude the 40 most frequent captions: the sampler must redraw them every time.
        var rng = new SplitMix64(11);
        var faces = Enumerable.Range(0, 3000).Select(_ => AttributeSampler.Sample(rng)).ToArray();
        var frequent = faces.Select(f => CaptionWriter.Write(f, rng)).GroupBy(c => c).OrderByDescending(g => g.Count()).Take(40).Select(g => g.Key).ToList();
        var exclusions = new ExclusionList(frequent.Select(c => "  " + c.ToUpperInvariant() + ". "));   // normalised on both sides
        var sampler = new CaptionSampler(exclusions);
        var drawn = faces.Select(f => sampler.Draw(f, rng).Text).ToList();
        Assert.Empty(drawn.Intersect(frequent));
        Assert.True(sampler.Redrawn > 0);

        var options = Tiny("excluded", steps: 1) with { Exclusions = exclusions };
        using (var trainer = new ClipTrainer(options)) trainer.Run(cancel: TestContext.Current.CancellationToken);
        var saved = ClipTrainer.SavedOptions(options.OutputFolder)!;
        Assert.Equal(exclusions.Sentences, saved.Exclusions.Sentences);
    }

    [Fact]
    public void Exclusion_files_accept_lines_and_json()
    {
        var lines = Path.Combine(_dir, "eval.txt");
        File.WriteAllText(lines, "# evaluation prompts\nA woman with  red hair.\n\na bald man\n");
        var list = ExclusionList.Load(lines);
        Assert.Equal(2, list.Count);
        Assert.True(list.Contains("a woman with red hair"));
        Assert.True(list.Contains("A BALD MAN!"));
        Assert.False(list.Contains("a bald woman"));

        Assert.True(list.Contains("A woman with red-hair"));   // hyphens and punctuation are separators

        var json = Path.Combine(_dir, "eval.json");
        File.WriteAllText(json, """{"description": "x", "prompts": [{"text": "A man with a beard.", "attributes": {"facial_hair": "beard"}}, {"prompt": "a smiling face"}]}""");
        Assert.Equal(["a man with a beard", "a smiling face"], ExclusionList.Load(json).Sentences);
        File.WriteAllText(json, """["Clean-shaven man!"]""");
        Assert.True(ExclusionList.Load(json).Contains("clean shaven man"));
    }

    [Fact]
    public void A_caption_is_true_of_faces_that_agree_on_what_it_mentions()
    {
        var rng = new SplitMix64(5);
        var sampler = new CaptionSampler(ExclusionList.Empty);
        int mentions = 0;
        for (int n = 0; n < 300; n++)
        {
            var face = AttributeSampler.Sample(rng);
            ulong state = rng.State;
            var draw = sampler.Draw(face, rng);
            var labels = face.ToLabels();
            Assert.True(draw.IsTrueOf(labels));

            // One attribute changed: true exactly when the writer, replayed, would have said the same of that face.
            for (int k = 0; k < labels.Length; k++)
            {
                for (int v = 0; v < FaceAttributes.Schema[k].Classes; v++)
                {
                    var other = (int[])labels.Clone();
                    other[k] = v;
                    var said = CaptionWriter.Write(FaceAttributes.FromLabels(other, face.Geometry), new SplitMix64(state));
                    Assert.Equal(said == draw.Text, draw.IsTrueOf(other));
                }
            }

            // Everything the caption does not mention may change at once.
            var mentioned = draw.MentionedAttributes().ToHashSet();
            mentions += mentioned.Count;
            var free = (int[])labels.Clone();
            for (int k = 0; k < free.Length; k++)
                if (!mentioned.Contains(k)) free[k] = (labels[k] + 1) % FaceAttributes.Schema[k].Classes;
            Assert.True(draw.IsTrueOf(free));
        }
        Assert.InRange(mentions / 300.0, 1, 5);   // captions name a few attributes, not none and not all
        Assert.Equal(0, sampler.Redrawn);
    }

    [Fact]
    public void A_twin_differs_from_its_face_in_the_one_attribute_it_names()
    {
        var rng = new SplitMix64(17);
        var changedCounts = new int[FaceAttributes.Schema.Count];
        int facialHair = FaceAttributes.Schema.Select(s => s.Name).ToList().IndexOf("facial_hair");
        for (int n = 0; n < 2000; n++)
        {
            var face = AttributeSampler.Sample(rng);
            var (twin, attribute) = CounterfactualTwins.Make(face, rng);
            Assert.Equal(face.Geometry, twin.Geometry);
            var a = face.ToLabels();
            var b = twin.ToLabels();
            var differing = Enumerable.Range(0, a.Length).Where(k => a[k] != b[k]).ToArray();
            Assert.Contains(attribute, differing);
            if (attribute == 0 && face.Gender == Gender.Man && face.FacialHair != FacialHair.None)
                Assert.Equal([0, facialHair], differing);          // a bearded man made a woman loses the beard too
            else
                Assert.Equal([attribute], differing);
            if (twin.Gender == Gender.Woman) Assert.Equal(FacialHair.None, twin.FacialHair);   // never a bearded woman
            changedCounts[attribute]++;
        }
        // Every attribute gets changed, none dominates: about 1,000/9 + 1,000/8 of 2,000 each, facial hair (men only) 1,000/9.
        Assert.All(changedCounts.Where((_, k) => k != facialHair), c => Assert.InRange(c, 170, 310));
        Assert.InRange(changedCounts[facialHair], 70, 160);
    }

    [Fact]
    public void Twin_focus_sets_the_odds_of_the_attribute_a_twin_changes()
    {
        var schema = FaceAttributes.Schema.Select(s => s.Name).ToList();
        int expression = schema.IndexOf("expression"), facialHair = schema.IndexOf("facial_hair");
        var rng = new SplitMix64(23);

        // Only expression may change: every twin differs in its expression alone.
        var only = CounterfactualTwins.FocusOdds(schema.ToDictionary(n => n, n => n == "expression" ? 1.0 : 0.0));
        for (int n = 0; n < 300; n++)
        {
            var face = AttributeSampler.Sample(rng);
            var (twin, attribute) = CounterfactualTwins.Make(face, rng, only);
            Assert.Equal(expression, attribute);
            Assert.NotEqual(face.Expression, twin.Expression);
        }

        // Expression at odds 8 against 1 for each other attribute: about 8/16 of a man's twins and 8/15 of a woman's.
        var focus = CounterfactualTwins.FocusOdds(ClipTrainingOptions.ParseTwinFocus("expression=8"));
        Assert.Equal(8.0, focus![expression]);
        Assert.Equal(1.0, focus[facialHair]);
        int changedExpression = 0, womenFacialHair = 0;
        for (int n = 0; n < 3000; n++)
        {
            var face = AttributeSampler.Sample(rng);
            var (_, attribute) = CounterfactualTwins.Make(face, rng, focus);
            if (attribute == expression) changedExpression++;
            if (attribute == facialHair && face.Gender == Gender.Woman) womenFacialHair++;
        }
        Assert.InRange(changedExpression / 3000.0, 0.46, 0.57);
        Assert.Equal(0, womenFacialHair);

        // Bad specifications say what is wrong.
        Assert.Throws<FormatException>(() => ClipTrainingOptions.ParseTwinFocus("expression:4"));
        Assert.Null(ClipTrainingOptions.ParseTwinFocus(" "));
        var tiny = Tiny("focus", steps: 1);
        Assert.Contains("'mood'", (tiny with { TwinFocus = ClipTrainingOptions.ParseTwinFocus("mood=2") }).Validate());
        Assert.Contains("facial_hair", (tiny with { TwinFocus = schema.ToDictionary(n => n, n => n == "facial_hair" ? 1.0 : 0.0) }).Validate());
        Assert.Null((tiny with { TwinFocus = ClipTrainingOptions.ParseTwinFocus("expression=4,gender=2") }).Validate());
    }

    [Fact]
    public void A_run_started_from_an_exported_model_begins_with_its_weights_and_vocabulary_and_keeps_its_settings_on_resume()
    {
        var first = Tiny("first", steps: 2);
        using (var trainer = new ClipTrainer(first)) trainer.Run(cancel: TestContext.Current.CancellationToken);
        var exported = Path.Combine(first.OutputFolder, "model");

        var tuned = Tiny("tuned", steps: 2) with
        {
            StartFrom = exported,
            VocabSize = 520,                                          // ignored: the model's own vocabulary comes with it
            Seed = 99,
            TwinShare = 0.5,
            TwinFocus = ClipTrainingOptions.ParseTwinFocus("expression=4"),
        };
        Assert.Null(tuned.Validate());
        using (var trainer = new ClipTrainer(tuned))
        using (var source = ClipModel.FromFolder(exported))
        {
            Assert.Equal(File.ReadAllText(Path.Combine(exported, "vocab.json")), JsonOf(trainer.Vocabulary));
            var theirs = source.state_dict();
            foreach (var (name, tensor) in trainer.Model.state_dict())
                Assert.True(tensor.equal(theirs[name]).all().item<bool>(), $"{name} differs from the exported model's");
            trainer.Run(cancel: TestContext.Current.CancellationToken);
            using var again = ClipModel.FromFolder(exported);
            Assert.Contains(trainer.Model.state_dict(), kv => kv.Value.dtype == ScalarType.Float32 && !kv.Value.equal(again.state_dict()[kv.Key]).all().item<bool>());
        }
        var saved = ClipTrainer.SavedOptions(tuned.OutputFolder)!;
        Assert.Equal(Path.GetFullPath(exported), saved.StartFrom);
        Assert.Equal(4.0, saved.TwinFocus!["expression"]);
        var card = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Path.Combine(tuned.OutputFolder, "model", "training.json")))!;
        Assert.Equal("model", card["start_from"]!.GetValue<string>());   // the shipped card names the folder, never where it lay
        using (var resumed = new ClipTrainer(tuned with { StartFrom = null, TwinFocus = null, Resume = true, Steps = 3 }))
            Assert.Equal(4.0, resumed.Options.TwinFocus!["expression"]);

        Assert.Contains("model.safetensors", (Tiny("x", 1) with { StartFrom = _dir }).Validate());
    }

    private static string JsonOf(BpeVocabulary vocabulary)
    {
        var folder = Directory.CreateTempSubdirectory("pf-vocab-").FullName;
        try
        {
            vocabulary.Write(folder);
            return File.ReadAllText(Path.Combine(folder, "vocab.json"));
        }
        finally { Directory.Delete(folder, true); }
    }

    [Fact]
    public void Twin_batches_pair_each_face_with_its_twin_and_captions_tell_the_twins_apart()
    {
        var rng = new SplitMix64(4);
        var faces = Enumerable.Range(0, 10).Select(_ => AttributeSampler.Sample(rng)).ToArray();
        var original = new FaceBatch(faces, device => TrainingFaces.Render(faces, 32, device));
        var (batch, partner) = CounterfactualTwins.Apply(original, pairs: 3, size: 32, rng);

        Assert.Equal([1, 0, 3, 2, 5, 4, -1, -1, -1, -1], partner);
        using var images = batch.Images(CPU);
        using var expected = TrainingFaces.Render(batch.Faces, 32, CPU);
        Assert.True(images.allclose(expected, rtol: 0, atol: 1e-6), "the batch's pixels are not its faces' renders");
        for (int p = 0; p < 3; p++)
        {
            Assert.Same(faces[2 * p], batch.Faces[2 * p]);
            Assert.NotEqual(faces[2 * p + 1], batch.Faces[2 * p + 1]);
            Assert.True((images[2 * p] - images[2 * p + 1]).abs().max().item<float>() > 0.1f, $"pair {p} renders the same");
        }
        Assert.Equal(faces.Skip(6), batch.Faces.Skip(6));

        // A twin's caption is false of its partner (a hard negative), so it names the changed attribute.
        var sampler = new CaptionSampler(ExclusionList.Empty);
        int apart = 0, plainApart = 0;
        for (int n = 0; n < 200; n++)
        {
            var face = AttributeSampler.Sample(rng);
            var (twin, attribute) = CounterfactualTwins.Make(face, rng);
            var caption = sampler.Draw(face, rng, twin);
            Assert.True(caption.IsTrueOf(face.ToLabels()));
            if (caption.IsTrueOf(twin.ToLabels())) continue;
            apart++;
            var differing = Enumerable.Range(0, FaceAttributes.Schema.Count).Where(k => face.ToLabels()[k] != twin.ToLabels()[k]);
            Assert.Contains(attribute, differing);
            Assert.NotEmpty(caption.MentionedAttributes().Intersect(differing));   // it names what changed (a lost beard counts)
            if (!sampler.Draw(face, rng, unlike: null).IsTrueOf(twin.ToLabels())) plainApart++;
        }
        Assert.True(apart >= 190, $"only {apart} of 200 captions told the face from its twin");
        Assert.True(plainApart < 150, $"{plainApart} of 200 plain captions told the twins apart: the search is not what makes them");
    }

    [Fact]
    public void Twins_switched_on_by_a_resume_are_saved_and_change_the_training()
    {
        var plain = Tiny("plain", steps: 3);
        using (var trainer = new ClipTrainer(plain))
        {
            trainer.TrainStep();
            trainer.SaveCheckpoint();
        }
        CopyDirectory(plain.OutputFolder, Path.Combine(_dir, "twins"));
        var twins = plain with { OutputFolder = Path.Combine(_dir, "twins") };

        using (var trainer = new ClipTrainer(plain with { Resume = true })) trainer.Run(cancel: TestContext.Current.CancellationToken);
        using (var trainer = new ClipTrainer(twins with { Resume = true, TwinShare = 0.5 }))
        {
            Assert.Equal(0.5, trainer.Options.TwinShare);
            trainer.Run(cancel: TestContext.Current.CancellationToken);
        }
        Assert.Equal(0.5, ClipTrainer.SavedOptions(twins.OutputFolder)!.TwinShare);
        Assert.Equal(0, ClipTrainer.SavedOptions(plain.OutputFolder)!.TwinShare);
        using (var again = new ClipTrainer(twins with { Resume = true, Steps = 4 }))   // not given again: the saved share stays
            Assert.Equal(0.5, again.Options.TwinShare);

        // Step 1 was shared; steps 2 and 3 saw other batches, so the losses part.
        var a = File.ReadAllLines(Path.Combine(plain.OutputFolder, "log.tsv")).Select(LossColumn).ToArray();
        var b = File.ReadAllLines(Path.Combine(twins.OutputFolder, "log.tsv")).Select(LossColumn).ToArray();
        Assert.Equal(a[1], b[1]);
        Assert.NotEqual(a[2..], b[2..]);
        Assert.NotNull((plain with { TwinShare = 1.5 }).Validate());
    }

    private static void CopyDirectory(string from, string to)
    {
        foreach (var dir in Directory.GetDirectories(from, "*", SearchOption.AllDirectories))
            Directory.CreateDirectory(dir.Replace(from, to));
        Directory.CreateDirectory(to);
        foreach (var file in Directory.GetFiles(from, "*", SearchOption.AllDirectories))
            File.Copy(file, file.Replace(from, to));
    }

    [Fact]
    public void With_only_diagonal_positives_the_loss_is_clips()
    {
        using var scope = NewDisposeScope();
        manual_seed(3);
        var image = randn(6, 5);
        var text = randn(6, 5);
        var scale = tensor(MathF.Log(20f));
        var positives = eye(6, dtype: ScalarType.Bool);
        var r = ContrastiveLoss.Compute(image, text, scale, positives);

        var logits = F.normalize(text, dim: -1).matmul(F.normalize(image, dim: -1).t()) * 20;
        var labels = arange(6);
        var expected = (F.cross_entropy(logits, labels) + F.cross_entropy(logits.t(), labels)) / 2;
        Assert.Equal(expected.item<float>(), r.Loss.item<float>(), 5);

        // Caption 0 also true of image 1: its target mass splits over both images, and image 1's over both captions.
        var mask = new bool[36];
        for (int i = 0; i < 6; i++) mask[i * 6 + i] = true;
        mask[0 * 6 + 1] = true;
        var soft = ContrastiveLoss.Compute(image, text, scale, tensor(mask, [6, 6])).Loss.item<float>();
        var perText = F.log_softmax(logits, 1);
        var perImage = F.log_softmax(logits.t(), 1);
        double textSide = -(0.5 * (perText[0, 0] + perText[0, 1]) + perText[1, 1] + perText[2, 2] + perText[3, 3] + perText[4, 4] + perText[5, 5]).item<float>() / 6;
        double imageSide = -(perImage[0, 0] + 0.5 * (perImage[1, 0] + perImage[1, 1]) + perImage[2, 2] + perImage[3, 3] + perImage[4, 4] + perImage[5, 5]).item<float>() / 6;
        Assert.Equal((textSide + imageSide) / 2, soft, 4);
    }

    [Fact]
    public void Augmentation_keeps_shape_and_range_and_none_is_the_identity()
    {
        using var scope = NewDisposeScope();
        var rng = new SplitMix64(1);
        var faces = Enumerable.Range(0, 4).Select(_ => AttributeSampler.Sample(rng)).ToArray();
        var images = Render(faces, 64);
        var views = new ClipAugmentation().Apply(images, new SplitMix64(2), 64);
        Assert.Equal(images.shape, views.shape);
        Assert.True(views.min().item<float>() >= -1 && views.max().item<float>() <= 1);
        Assert.False(views.allclose(images));
        var same = ClipAugmentation.None.Apply(images, new SplitMix64(2), 64);
        Assert.True(same.allclose(images, atol: 1e-5));
        Assert.True(new ClipAugmentation().Apply(images, new SplitMix64(2), 64).allclose(views, rtol: 0, atol: 0));   // reproducible
    }

    [Fact]
    public void Config_json_round_trips_through_the_engines_parser()
    {
        foreach (var config in new[] { ClipConfig.VitB32, ClipConfig.VitL14, SmallClip.Config(1024), SmallClip.TinyConfig(600) })
            Assert.Equal(config, ClipConfig.Parse(config.ToJson(), "test"));
        Assert.InRange(SmallClip.ParameterCount(SmallClip.Config(1024)) * 4, 4_000_000, 15_000_000);
    }

    [Fact]
    public void Learning_rate_warms_up_then_decays_to_its_floor()
    {
        var o = Tiny("lr", steps: 100) with { WarmupSteps = 10, LearningRate = 1e-3, MinLearningRateFraction = 0.1 };
        Assert.Equal(1e-4, ClipTrainer.LearningRateAt(0, o), 12);
        Assert.Equal(1e-3, ClipTrainer.LearningRateAt(9, o), 12);
        Assert.True(ClipTrainer.LearningRateAt(50, o) < 1e-3 && ClipTrainer.LearningRateAt(50, o) > 1e-4);
        Assert.Equal(1e-4, ClipTrainer.LearningRateAt(100, o), 12);
    }

    private static Tensor Render(IReadOnlyList<FaceAttributes> faces, int size)
    {
        int pixels = size * size * 3;
        var bytes = new byte[faces.Count * pixels];
        for (int i = 0; i < faces.Count; i++) FaceRenderer.RenderInto(faces[i], size, bytes.AsSpan(i * pixels, pixels));
        return tensor(bytes, [faces.Count, size, size, 3], ScalarType.Byte).permute(0, 3, 1, 2).to(ScalarType.Float32).div(127.5).sub(1);
    }
}
