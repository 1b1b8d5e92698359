using PromptFaces.Generation.Optimisation;
using Xunit;
using static TorchSharp.torch;

namespace PromptFaces.Generation.Tests.Optimisation;

/// <summary>The latent optimiser on the fixture networks: it improves similarity, batches exactly, cancels, repeats.</summary>
public sealed class OptimiserTests : IDisposable
{
    private readonly FaceModels? _models = Fixtures.Root is null ? null : TinyModels.Load();
    private readonly ITestOutputHelper _output;

    public OptimiserTests(ITestOutputHelper output) => _output = output;

    public void Dispose() => _models?.Dispose();

    private static OptimisationSettings Settings(string prompt, long seed, int steps = 30) => new()
    {
        Prompts = new[] { new WeightedPrompt(prompt) },
        Seed = seed,
        Steps = steps,
        Cutouts = 4,
        LearningRate = 0.1,
        PreviewSize = 16,
    };

    private FaceModels Models()
    {
        Assert.SkipWhen(_models is null, Fixtures.MissingReason);
        return _models!;
    }

    [Fact]
    public void Similarity_to_the_prompt_rises_over_the_steps()
    {
        var models = Models();
        var similarities = new List<double>();
        using var engine = new CoBatchedOptimiser(models);
        engine.Enqueue(new OptimisationRequest("a", Settings("a red face", 7, steps: 40), p => similarities.Add(p.Similarity)));
        var outcome = Assert.Single(engine.RunToCompletion());
        _output.WriteLine($"start {outcome.SimilarityStart:F4} end {outcome.SimilarityEnd:F4}");
        Assert.Equal(JobOutcomeStatus.Completed, outcome.Status);
        Assert.Equal(40, similarities.Count);
        Assert.True(outcome.SimilarityEnd > outcome.SimilarityStart + 0.05, $"similarity went from {outcome.SimilarityStart:F4} to {outcome.SimilarityEnd:F4}");
        Assert.True(similarities.Skip(30).Average() > similarities.Take(5).Average());
        Assert.NotNull(outcome.Image);
        Assert.Equal(new long[] { 1, 3, 32, 32 }, outcome.Image!.shape);
    }

    [Fact]
    public void A_job_in_a_batch_gives_the_same_result_as_alone()
    {
        var models = Models();
        JobOutcome Solo()
        {
            using var engine = new CoBatchedOptimiser(models);
            engine.Enqueue(new OptimisationRequest("x", Settings("blue eyes", 11, steps: 12)));
            return engine.RunToCompletion().Single();
        }
        var alone = Solo();

        using var batch = new CoBatchedOptimiser(models);
        batch.Enqueue(new OptimisationRequest("other1", Settings("a smiling face", 3, steps: 5)));   // finishes first
        batch.Enqueue(new OptimisationRequest("x", Settings("blue eyes", 11, steps: 12)));
        batch.Step();
        batch.Step();
        batch.Enqueue(new OptimisationRequest("late", Settings("green hair", 5, steps: 20) with { Cutouts = 6 })); // joins mid-run
        var outcomes = batch.RunToCompletion();
        var inBatch = outcomes.Single(o => o.JobId == "x");

        Assert.Equal(12, inBatch.StepsRun);
        Assert.Equal(alone.SimilarityEnd, inBatch.SimilarityEnd, 4);
        var diff = (alone.Image! - inBatch.Image!).abs().max().item<float>();
        _output.WriteLine($"max pixel difference batch vs solo: {diff:G3}");
        Assert.True(diff < 1e-3, $"batched image differs from the solo run by {diff}");
    }

    [Fact]
    public void Cutout_noise_spares_the_first_view_is_reproducible_and_changes_the_run()
    {
        // The noise itself: view 0 untouched, the others noisy with the asked spread, the same for the same stream.
        using var views = zeros(4, 3, 32, 32);
        using var noisy = Cutouts.AddNoise(views, new SplitMix64(9), 0.2);
        using var again = Cutouts.AddNoise(views, new SplitMix64(9), 0.2);
        Assert.Equal(0, noisy[0].abs().max().item<float>());
        Assert.InRange(noisy.narrow(0, 1, 3).std().item<float>(), 0.19, 0.21);
        Assert.True(noisy.allclose(again, rtol: 0, atol: 0), "the same stream gave other noise");

        // In the optimiser: a job with noise repeats exactly, alone or batched with a noiseless one, and differs from the
        // same job without noise.
        var settings = Settings("blue eyes", 11, steps: 6) with { CutoutNoise = 0.1 };
        Assert.Null(settings.Validate());
        Assert.NotNull((settings with { CutoutNoise = -0.1 }).Validate());
        AssertReproducibleBatchIndependentAndEffective(settings, settings with { CutoutNoise = 0 }, "noise");
    }

    /// <summary>
    /// <paramref name="settings"/> give the same image alone and batched with another job, and another image than
    /// <paramref name="without"/> (the same job without the augmentation named <paramref name="what"/>).
    /// </summary>
    private void AssertReproducibleBatchIndependentAndEffective(OptimisationSettings settings, OptimisationSettings without, string what)
    {
        var models = Models();
        JobOutcome Run(OptimisationSettings s, bool withOther)
        {
            using var engine = new CoBatchedOptimiser(models);
            if (withOther) engine.Enqueue(new OptimisationRequest("other", Settings("a smiling face", 3, steps: 6)));
            engine.Enqueue(new OptimisationRequest("x", s));
            return engine.RunToCompletion().Single(o => o.JobId == "x");
        }
        var first = Run(settings, withOther: false);
        var batched = Run(settings, withOther: true);
        var plain = Run(without, withOther: false);
        Assert.True((first.Image! - batched.Image!).abs().max().item<float>() < 1e-3, $"the job with {what} depends on its batch");
        Assert.True((first.Image! - plain.Image!).abs().max().item<float>() > 1e-3, $"the {what} did not change the run");
    }

    [Fact]
    public void The_whole_view_weight_sets_the_whole_images_share_of_the_guidance()
    {
        Assert.Equal(new[] { 0.25f, 0.25f, 0.25f, 0.25f }, Cutouts.Weights(4, 1));
        var half = Cutouts.Weights(8, 7);
        Assert.Equal(0.5f, half[0], 6);
        Assert.All(half.Skip(1), w => Assert.Equal(0.5f / 7, w, 6));
        Assert.Equal(new[] { 1f }, Cutouts.Weights(1, 3));
        Assert.Equal(0f, Cutouts.Weights(4, 0)[0]);

        var settings = Settings("blue eyes", 11, steps: 1);
        Assert.Null((settings with { WholeViewWeight = 0 }).Validate());
        Assert.Contains("whole-view", (settings with { WholeViewWeight = -1 }).Validate());
        Assert.Contains("whole-view", (settings with { WholeViewWeight = 0, Cutouts = 1 }).Validate());

        // The first step's loss: with the whole image carrying nearly all the weight it is the loss of a job that reads
        // only the whole image; with the plain mean the crops move it away from that.
        var models = Models();
        double FirstLoss(OptimisationSettings s)
        {
            double loss = double.NaN;
            using var engine = new CoBatchedOptimiser(models);
            engine.Enqueue(new OptimisationRequest("x", s, p => loss = p.Loss));   // one step: one report
            engine.RunToCompletion();
            return loss;
        }
        double wholeOnly = FirstLoss(settings with { Cutouts = 1 });
        double heavy = FirstLoss(settings with { WholeViewWeight = 1000 });
        double plain = FirstLoss(settings);
        _output.WriteLine($"whole only {wholeOnly:F5}, whole view weight 1000 {heavy:F5}, plain mean {plain:F5}");
        Assert.True(Math.Abs(heavy - wholeOnly) < 0.002 * Math.Abs(wholeOnly), $"weight 1000 gave {heavy}, the whole image alone {wholeOnly}");
        Assert.True(Math.Abs(plain - wholeOnly) > 10 * Math.Abs(heavy - wholeOnly), $"the plain mean {plain} is as close to the whole image alone {wholeOnly} as weight 1000 {heavy}");
    }

    [Fact]
    public void Cutout_blur_spares_the_first_view_softens_the_others_and_is_reproducible_and_batch_independent()
    {
        // The blur itself: view 0 exactly as it was; the others smoother (random pixels lose spread) but with the same
        // mean colour; each view its own sigma, the same for the same stream.
        using var views = randn(new long[] { 6, 3, 32, 32 }, generator: new Generator(5));
        using var blurred = Cutouts.Blur(views, new SplitMix64(9), 2.0);
        using var again = Cutouts.Blur(views, new SplitMix64(9), 2.0);
        Assert.True(blurred[0].allclose(views[0], rtol: 0, atol: 1e-6), "the whole-image view was blurred");
        var spreads = Enumerable.Range(1, 5).Select(k => blurred[k].std().item<float>()).ToArray();
        Assert.All(spreads, s => Assert.True(s < 0.9f, $"a view kept a spread of {s}: not blurred"));
        Assert.True(spreads.Max() - spreads.Min() > 0.02, "every view got the same sigma");
        var meanShift = Math.Abs(views.narrow(0, 1, 5).mean().item<float>() - blurred.narrow(0, 1, 5).mean().item<float>());
        Assert.True(meanShift < 0.005, $"the blur moved the mean colour by {meanShift}");
        Assert.True(blurred.allclose(again, rtol: 0, atol: 0), "the same stream gave another blur");

        var settings = Settings("blue eyes", 11, steps: 6) with { CutoutBlur = 1.5 };
        Assert.Null(settings.Validate());
        Assert.Contains("blur", (settings with { CutoutBlur = -1 }).Validate());
        Assert.Contains("blur", (settings with { CutoutBlur = 9 }).Validate());
        AssertReproducibleBatchIndependentAndEffective(settings, settings with { CutoutBlur = 0 }, "blur");
    }

    [Fact]
    public void Cancellation_stops_the_job_at_the_next_step_boundary_and_others_continue()
    {
        var models = Models();
        using var cts = new CancellationTokenSource();
        var steps = new List<int>();
        using var engine = new CoBatchedOptimiser(models);
        engine.Enqueue(new OptimisationRequest("cancel-me", Settings("a face", 1, steps: 50), p =>
        {
            steps.Add(p.Step);
            if (p.Step == 3) cts.Cancel();
        }, Cancellation: cts.Token));
        engine.Enqueue(new OptimisationRequest("keep", Settings("a face", 2, steps: 6)));
        var outcomes = engine.RunToCompletion();
        var cancelled = outcomes.Single(o => o.JobId == "cancel-me");
        Assert.Equal(JobOutcomeStatus.Cancelled, cancelled.Status);
        Assert.Equal(3, cancelled.StepsRun);
        Assert.Equal(new[] { 1, 2, 3 }, steps);
        Assert.NotNull(cancelled.Image);
        Assert.Equal(JobOutcomeStatus.Completed, outcomes.Single(o => o.JobId == "keep").Status);
    }

    [Fact]
    public void The_same_seed_gives_the_same_face_and_another_seed_a_different_one()
    {
        var models = Models();
        Tensor Run(long seed)
        {
            using var engine = new CoBatchedOptimiser(models);
            engine.Enqueue(new OptimisationRequest("d", Settings("a face", seed, steps: 6)));
            return engine.RunToCompletion().Single().Image!;
        }
        var a = Run(42);
        var b = Run(42);
        var c = Run(43);
        Assert.True(a.eq(b).all().item<bool>(), "two runs with seed 42 differ");
        Assert.False(a.allclose(c), "seeds 42 and 43 gave the same face");
    }

    [Fact]
    public void A_job_resumed_from_a_checkpoint_ends_exactly_like_an_uninterrupted_run()
    {
        var models = Models();
        var settings = Settings("a face with glasses", 9, steps: 10);
        using var straight = new CoBatchedOptimiser(models);
        straight.Enqueue(new OptimisationRequest("r", settings));
        var expected = straight.RunToCompletion().Single();

        OptimisationJobState state;
        using (var first = new CoBatchedOptimiser(models))
        {
            first.Enqueue(new OptimisationRequest("r", settings));
            for (int i = 0; i < 4; i++) first.Step();
            state = first.Checkpoint("r")!;
        }
        Assert.Equal(4, state.Step);
        using var second = new CoBatchedOptimiser(models);
        second.Enqueue(new OptimisationRequest("r", settings, ResumeFrom: state));
        var resumed = second.RunToCompletion().Single();
        Assert.Equal(10, resumed.StepsRun);
        Assert.True(expected.Image!.eq(resumed.Image!).all().item<bool>(), "the resumed run's image differs");
    }

    [Fact]
    public void In_W_every_layer_takes_the_same_step_while_W_plus_moves_layers_apart()
    {
        var models = Models();
        (float[] Start, float[] Now, int Layers, int Dim) Run(LatentSpace space)
        {
            using var engine = new CoBatchedOptimiser(models);
            engine.Enqueue(new OptimisationRequest("s", Settings("a face with red hair", 3, steps: 20) with { Space = space }));
            for (int i = 0; i < 6; i++) engine.Step();
            var state = engine.Checkpoint("s")!;
            return (state.StartWs, state.Ws, models.Generator.NumWs, models.Generator.Config.WDim);
        }
        // The largest difference between two layers' steps (latent now minus start), over all layers and dimensions.
        static double Spread((float[] Start, float[] Now, int Layers, int Dim) r)
        {
            double worst = 0;
            for (int l = 1; l < r.Layers; l++)
                for (int d = 0; d < r.Dim; d++)
                {
                    double step0 = r.Now[d] - r.Start[d], stepL = r.Now[l * r.Dim + d] - r.Start[l * r.Dim + d];
                    worst = Math.Max(worst, Math.Abs(stepL - step0));
                }
            return worst;
        }
        static double Moved((float[] Start, float[] Now, int Layers, int Dim) r) => r.Now.Zip(r.Start, (a, b) => Math.Abs(a - b)).Max();

        var w = Run(LatentSpace.W);
        var wPlus = Run(LatentSpace.WPlus);
        Assert.True(Moved(w) > 1e-3, "the W latents did not move");
        Assert.True(Spread(w) < 1e-6 * Math.Max(1, Moved(w)), $"in W the layers' steps differ by {Spread(w)}");
        Assert.True(Spread(wPlus) > 1e-3, $"in W+ the layers moved together (spread {Spread(wPlus)})");
    }

    [Fact]
    public void In_Z_the_optimiser_moves_z_through_the_mapping_network_resumes_exactly_and_refuses_state_of_another_space()
    {
        var models = Models();
        var g = models.Generator;
        // Best of 1, so the start is the seed's own first z (best of N may choose another of the seed's draws).
        var settings = Settings("a face with red hair", 3, steps: 24) with { Space = LatentSpace.Z, LearningRate = 0.2, Starts = 1 };

        using var straight = new CoBatchedOptimiser(models);
        straight.Enqueue(new OptimisationRequest("z", settings));
        var expected = straight.RunToCompletion().Single();
        Assert.Equal(JobOutcomeStatus.Completed, expected.Status);
        Assert.True(expected.SimilarityEnd > expected.SimilarityStart + 0.01, $"similarity went from {expected.SimilarityStart:F4} to {expected.SimilarityEnd:F4}");

        OptimisationJobState state;
        using (var first = new CoBatchedOptimiser(models))
        {
            first.Enqueue(new OptimisationRequest("z", settings));
            for (int i = 0; i < 8; i++) first.Step();
            state = first.Checkpoint("z")!;
        }
        // The optimised latent is z itself; the start is the seed's z, as the mapping network's input.
        Assert.Equal(g.Config.ZDim, state.Ws.Length);
        Assert.Equal(g.Config.ZDim, state.StartWs.Length);
        Assert.Equal(g.Config.ZDim, state.AdamM.Length);
        Assert.Equal(g.NumWs * g.Config.WDim, state.BestWs.Length);
        Assert.True(state.Ws.Zip(state.StartWs, (a, b) => Math.Abs(a - b)).Max() > 1e-3, "z did not move");
        using (var rng = new Generator(3UL))
        {
            var seedZ = randn(new long[] { 1, g.Config.ZDim }, generator: rng).data<float>().ToArray();
            Assert.Equal(seedZ, state.StartWs);
        }
        // In W+ the same seed's start is the mapped, truncated w: the spaces really differ.
        using (var wPlus = new CoBatchedOptimiser(models))
        {
            wPlus.Enqueue(new OptimisationRequest("w", settings with { Space = LatentSpace.WPlus }));
            wPlus.Step();
            Assert.Equal(g.NumWs * g.Config.WDim, wPlus.Checkpoint("w")!.Ws.Length);
        }

        using var second = new CoBatchedOptimiser(models);
        second.Enqueue(new OptimisationRequest("z", settings, ResumeFrom: state));
        var resumed = second.RunToCompletion().Single();
        Assert.Equal(24, resumed.StepsRun);
        Assert.True(expected.Image!.eq(resumed.Image!).all().item<bool>(), "the resumed Z run's image differs");

        using var wrong = new CoBatchedOptimiser(models);
        wrong.Enqueue(new OptimisationRequest("w", settings with { Space = LatentSpace.WPlus }, ResumeFrom: state));
        var refused = wrong.RunToCompletion().Single();
        Assert.Equal(JobOutcomeStatus.Failed, refused.Status);
        Assert.Contains("another latent space", refused.Error);
    }

    [Fact]
    public void The_latent_range_holds_mapped_latents_and_charges_only_the_distance_outside_it()
    {
        var models = Models();
        var g = models.Generator;
        var range = models.LatentRange;
        Assert.Same(range, models.LatentRange);                                   // measured once
        Assert.Equal(new long[] { g.Config.WDim }, range.Low.shape);
        Assert.True(range.High.ge(range.Low).all().item<bool>(), "a dimension's high quantile is below its low one");
        Assert.True(range.High.sub(range.Low).gt(0).all().item<bool>(), "a dimension's range is empty");

        using var noGrad = no_grad();
        using var rng = new Generator(99UL);
        var ws = g.Mapping.Forward(randn(new long[] { 256, g.Config.ZDim }, generator: rng));          // other z than the measured ones
        var inside = range.Penalty(ws).item<float>();
        var truncated = range.Penalty(g.Mapping.Forward(randn(new long[] { 64, g.Config.ZDim }, generator: rng), 0.7)).item<float>();
        Assert.True(inside < 0.05, $"fresh mapped latents pay {inside} on average");
        Assert.True(truncated < 0.01, $"truncated latents pay {truncated} on average");  // psi 0.7 pulls the ws towards w_avg, into the box

        // Three standard deviations above the top of the range in one dimension costs exactly 3² = 9 per layer.
        var top = range.High.clone().reshape(1, 1, -1).repeat(1, g.NumWs, 1);
        Assert.Equal(0f, range.Penalty(top).item<float>());
        var scale0 = range.Scale[0].item<float>();
        top[0, TensorIndex.Colon, 0] += 3 * scale0;
        Assert.Equal(9.0, range.Penalty(top).item<float>(), 3);
        var bottom = range.Low.clone().reshape(1, 1, -1).repeat(1, g.NumWs, 1);
        bottom[0, TensorIndex.Colon, 1] -= 2 * range.Scale[1].item<float>();
        Assert.Equal(4.0, range.Penalty(bottom).item<float>(), 3);
    }

    [Fact]
    public void The_range_prior_keeps_a_hard_pushed_latent_near_the_mapping_networks_range()
    {
        var models = Models();
        // A high learning rate for many steps pushes W+ latents far out; the prior should keep them much closer.
        float Outside(double weight)
        {
            using var engine = new CoBatchedOptimiser(models);
            var settings = Settings("a face with green hair", 5, steps: 60) with { LearningRate = 1.0, RangePriorWeight = weight };
            engine.Enqueue(new OptimisationRequest("r", settings));
            for (int i = 0; i < 59; i++) engine.Step();
            var state = engine.Checkpoint("r")!;
            using var ws = tensor(state.Ws).reshape(1, models.Generator.NumWs, models.Generator.Config.WDim);
            return models.LatentRange.Penalty(ws).item<float>();
        }
        var free = Outside(0);
        var held = Outside(10);
        _output.WriteLine($"outside the range: free {free:F3}, with the prior {held:F3}");
        Assert.True(free > 1, $"the free run stayed inside the range ({free}); the test needs a run that leaves it");
        Assert.True(held < free / 4, $"the prior did not hold the latent: {held} against {free} without it");
        Assert.Contains("range prior", (Settings("x", 1) with { RangePriorWeight = -1 }).Validate());
    }

    [Fact]
    public void The_layer_tie_holds_W_plus_layers_together_and_leaves_W_alone()
    {
        var models = Models();
        float Spread(LatentSpace space, double tie)
        {
            using var engine = new CoBatchedOptimiser(models);
            engine.Enqueue(new OptimisationRequest("t", Settings("a face with blue eyes", 8, steps: 30) with { Space = space, LearningRate = 0.5, LayerTieWeight = tie }));
            for (int i = 0; i < 20; i++) engine.Step();
            using var ws = tensor(engine.Checkpoint("t")!.Ws).reshape(1, models.Generator.NumWs, models.Generator.Config.WDim);
            return models.LatentRange.LayerSpread(ws).item<float>();
        }
        var free = Spread(LatentSpace.WPlus, 0);
        var tied = Spread(LatentSpace.WPlus, 50);
        _output.WriteLine($"layer spread: free {free:F4}, tied {tied:F4}");
        Assert.True(free > 0.01, $"free W+ layers did not move apart ({free})");
        Assert.True(tied < free / 5, $"the tie did not hold the layers together: {tied} against {free}");
        Assert.Equal(0f, Spread(LatentSpace.W, 50), 5);                       // W has one shared w: nothing to tie
    }

    [Fact]
    public void Early_stopping_ends_a_job_that_stops_improving()
    {
        var models = Models();
        using var engine = new CoBatchedOptimiser(models);
        // A tiny learning rate barely moves the latents, so similarity cannot improve by the required margin.
        engine.Enqueue(new OptimisationRequest("s", Settings("a face", 4, steps: 200) with { LearningRate = 1e-6, Patience = 5, MinImprovement = 0.01 }));
        var outcome = engine.RunToCompletion().Single();
        Assert.Equal(JobOutcomeStatus.StoppedEarly, outcome.Status);
        Assert.True(outcome.StepsRun < 20, $"ran {outcome.StepsRun} steps");
    }

    [Fact]
    public void Invalid_settings_fail_the_job_with_a_clear_message_and_the_engine_goes_on()
    {
        var models = Models();
        using var engine = new CoBatchedOptimiser(models);
        engine.Enqueue(new OptimisationRequest("bad", Settings("a face", 1) with { Steps = 0 }));
        engine.Enqueue(new OptimisationRequest("good", Settings("a face", 1, steps: 2)));
        var outcomes = engine.RunToCompletion();
        var bad = outcomes.Single(o => o.JobId == "bad");
        Assert.Equal(JobOutcomeStatus.Failed, bad.Status);
        Assert.Contains("Steps must be between 1 and", bad.Error);
        Assert.Equal(JobOutcomeStatus.Completed, outcomes.Single(o => o.JobId == "good").Status);
    }

    [Fact]
    public void Negative_prompts_and_best_of_n_start_run()
    {
        var models = Models();
        using var engine = new CoBatchedOptimiser(models);
        var settings = Settings("a face", 5, steps: 3) with
        {
            Prompts = new[] { new WeightedPrompt("red hair", 1), new WeightedPrompt("glasses", -0.5) },
            Starts = 4,
        };
        engine.Enqueue(new OptimisationRequest("n", settings));
        var outcome = engine.RunToCompletion().Single();
        Assert.Equal(JobOutcomeStatus.Completed, outcome.Status);

        // Best-of-4 starts no worse than the plain first candidate of the same seed.
        using var single = new CoBatchedOptimiser(models);
        single.Enqueue(new OptimisationRequest("n1", settings with { Starts = 1 }));
        Assert.True(outcome.SimilarityStart >= single.RunToCompletion().Single().SimilarityStart - 1e-6);
    }
}
