using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using PromptFaces.Generation.Clip;
using PromptFaces.Generation.Imaging;
using PromptFaces.Generation.Tests;
using PromptFaces.Scheduling;
using Xunit;

namespace PromptFaces.Engine.Tests;

public sealed class TorchGenerationEngineTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("pf-engine-tests-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    /// <summary>The tiny fixture generator and a CLIP folder of the tiny CLIP with the byte-level vocabulary.</summary>
    private EngineOptions TinyModels()
    {
        Assert.SkipWhen(Fixtures.Root is null, Fixtures.MissingReason);
        var clip = Path.Combine(_dir, "clip");
        Directory.CreateDirectory(clip);
        foreach (var f in new[] { "config.json", "model.safetensors" })
            File.Copy(Fixtures.Path("clip", "clip_tiny", f), Path.Combine(clip, f));
        ByteLevelTokenizer.WriteFiles(clip);
        return new EngineOptions { Generator = Fixtures.Path("stylegan2", "stylegan2_tiny_weights.safetensors"), Clip = clip, PreviewSize = 16 };
    }

    private TorchGenerationEngine Engine(EngineOptions options) =>
        new(Paths(options), Options.Create(options), NullLogger<TorchGenerationEngine>.Instance);

    private ModelPaths Paths(EngineOptions options) => new(Options.Create(options), new TestHostEnvironment(_dir));

    private static GenerationJob Job(int steps = 4, byte[]? resume = null, Guid? id = null) =>
        new(id ?? Guid.NewGuid(), "a smiling face", "a frown", Seed: 7, Steps: steps, TruncationPsi: 0.7, LearningRate: 0.05, Cutouts: 2, Starts: 1, resume);

    private static (List<StepEvent> Steps, FinishedJob Result) RunToEnd(IGenerationEngine engine, Guid id)
    {
        var steps = new List<StepEvent>();
        for (int guard = 0; guard < 1000; guard++)
        {
            var step = engine.Step();
            steps.AddRange(step.Steps.Where(s => s.JobId == id));
            if (step.Finished.FirstOrDefault(f => f.JobId == id) is { } done) return (steps, done);
        }
        throw new InvalidOperationException("The job never finished.");
    }

    [Fact]
    public void A_job_reports_every_step_with_a_jpeg_preview_and_ends_with_a_png_carrying_its_metadata_and_a_gif()
    {
        using var engine = Engine(TinyModels());
        var job = Job(steps: 4);
        engine.Admit(job);
        Assert.Equal(1, engine.ActiveCount);

        var (steps, result) = RunToEnd(engine, job.Id);

        Assert.Equal([1, 2, 3, 4], steps.Select(s => s.Step));
        Assert.All(steps, s =>
        {
            Assert.Equal(4, s.TotalSteps);
            Assert.Equal(new byte[] { 0xFF, 0xD8 }, s.PreviewJpeg![..2]);
        });
        Assert.Equal(FinishStatus.Completed, result.Status);
        Assert.Equal(0, engine.ActiveCount);
        var metadata = GenerationMetadata.FromTextChunks(PngWriter.ReadPngText(new MemoryStream(result.Png!)));
        Assert.Equal("a smiling face", metadata.Prompt);
        Assert.Equal("a frown", metadata.NegativePrompt);
        Assert.Equal(7, metadata.Seed);
        Assert.Equal(4, metadata.Steps);
        Assert.Equal(result.Similarity, metadata.FinalSimilarity);
        Assert.Equal("GIF8"u8.ToArray(), result.AnimationGif![..4]);
    }

    [Fact]
    public void A_cancelled_job_ends_as_cancelled_without_an_image()
    {
        using var engine = Engine(TinyModels());
        var job = Job(steps: 1000);
        engine.Admit(job);
        engine.Step();
        engine.Cancel(job.Id);

        var (_, result) = RunToEnd(engine, job.Id);

        Assert.Equal(FinishStatus.Cancelled, result.Status);
        Assert.Null(result.Png);
    }

    [Fact]
    public void A_checkpoint_resumes_where_the_job_stopped_and_ends_where_an_uninterrupted_run_ends()
    {
        var options = TinyModels();
        byte[] state;
        var id = Guid.NewGuid();
        using (var first = Engine(options))
        {
            first.Admit(Job(steps: 6, id: id));
            first.Step();
            first.Step();
            state = first.Checkpoint(id) ?? throw new InvalidOperationException("no checkpoint");
        }
        FinishedJob uninterrupted;
        using (var reference = Engine(options))
        {
            var job = Job(steps: 6);
            reference.Admit(job);
            uninterrupted = RunToEnd(reference, job.Id).Result;
        }

        using var second = Engine(options);
        second.Admit(Job(steps: 6, resume: state, id: id));
        var (steps, resumed) = RunToEnd(second, id);

        Assert.Equal([3, 4, 5, 6], steps.Select(s => s.Step));
        Assert.Equal(uninterrupted.Similarity, resumed.Similarity, 5);
    }

    [Fact]
    public async Task Warming_up_loads_the_models_without_changing_what_a_job_makes()
    {
        var options = TinyModels();
        FinishedJob cold;
        using (var engine = Engine(options))
        {
            var job = Job(steps: 3);
            engine.Admit(job);
            cold = RunToEnd(engine, job.Id).Result;
        }

        using var warmed = Engine(options);
        await warmed.WarmUpAsync();
        await warmed.WarmUpAsync(); // a second call finds it warm
        Assert.Equal(0, warmed.ActiveCount);
        var again = Job(steps: 3);
        warmed.Admit(again);
        var (steps, warm) = RunToEnd(warmed, again.Id);

        Assert.Equal([1, 2, 3], steps.Select(s => s.Step));
        Assert.Equal(FinishStatus.Completed, warm.Status);
        Assert.Equal(cold.Similarity, warm.Similarity, 5);
        Assert.Equal(cold.Png, warm.Png);
    }

    [Fact]
    public async Task Warming_up_without_models_is_quiet_and_the_job_still_says_what_to_configure()
    {
        var previous = System.Environment.GetEnvironmentVariable("PROMPTFACES_MODELS");
        System.Environment.SetEnvironmentVariable("PROMPTFACES_MODELS", Path.Combine(_dir, "no-such-folder"));
        try
        {
            using var engine = Engine(new EngineOptions());
            await engine.WarmUpAsync();
            var job = Job();
            engine.Admit(job);
            var result = Assert.Single(engine.Step().Finished);
            Assert.Equal(FinishStatus.Failed, result.Status);
            Assert.Contains("PromptFaces:Engine:ModelsFolder", result.Error);
        }
        finally
        {
            System.Environment.SetEnvironmentVariable("PROMPTFACES_MODELS", previous);
        }
    }

    [Fact]
    public void Saved_state_survives_the_byte_round_trip_and_garbage_reads_as_none()
    {
        var state = new PromptFaces.Generation.Optimisation.OptimisationJobState
        {
            Step = 3, Ws = [1f, 2f], StartWs = [3f], AdamM = [4f], AdamV = [5f], BestWs = [6f, 7f], RngState = 99,
            SimilarityStart = 0.1, BestSimilarity = 0.3, BestStep = 2, PatienceReference = 0.25, StepsSinceImprovement = 1,
        };
        var back = JobStateSerializer.TryDeserialize(JobStateSerializer.Serialize(state))!;
        Assert.Equal(state.Step, back.Step);
        Assert.Equal(state.Ws, back.Ws);
        Assert.Equal(state.BestWs, back.BestWs);
        Assert.Equal(state.RngState, back.RngState);
        Assert.Equal(state.PatienceReference, back.PatienceReference);
        Assert.Null(JobStateSerializer.TryDeserialize([1, 2, 3]));
        Assert.Null(JobStateSerializer.TryDeserialize(JobStateSerializer.Serialize(state)[..^3]));
    }

    [Fact]
    public void Without_models_a_job_fails_with_what_to_configure()
    {
        var previous = System.Environment.GetEnvironmentVariable("PROMPTFACES_MODELS");
        System.Environment.SetEnvironmentVariable("PROMPTFACES_MODELS", Path.Combine(_dir, "no-such-folder"));
        try
        {
            using var engine = Engine(new EngineOptions());
            var job = Job();
            engine.Admit(job);
            var result = Assert.Single(engine.Step().Finished);
            Assert.Equal(FinishStatus.Failed, result.Status);
            Assert.Contains("PromptFaces:Engine:ModelsFolder", result.Error);
            Assert.Equal(0, engine.ActiveCount);
        }
        finally
        {
            System.Environment.SetEnvironmentVariable("PROMPTFACES_MODELS", previous);
        }
    }

    [Fact]
    public void The_token_counter_uses_the_models_tokenizer_and_context()
    {
        var tokenizer = new ClipPromptTokenizer(Paths(TinyModels()), NullLogger<ClipPromptTokenizer>.Instance);
        var count = tokenizer.Count("abc")!;
        Assert.Equal(5, count.Tokens);          // byte-level vocabulary: a token per character, plus start and end
        Assert.Equal(16, count.ContextLength);  // the tiny CLIP's max_position_embeddings
        Assert.Null(count.Warning);
        var tooLong = tokenizer.Count(new string('a', 20))!;
        Assert.True(tooLong.Truncated);
        Assert.Contains("dropped", tooLong.Warning);
    }
}
