using System.Collections.Concurrent;
using PromptFaces.Scheduling;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.Formats.Gif;
using SixLabors.ImageSharp.Formats.Jpeg;
using SixLabors.ImageSharp.Formats.Png;
using SixLabors.ImageSharp.PixelFormats;

namespace PromptFaces.Web.FunctionalTests;

/// <summary>
/// A fast stand-in for the TorchSharp engine: each step advances every admitted job by one, with an 8x8 JPEG frame
/// and a similarity that grows with the step; a job ends with a 16x16 PNG and a one-frame GIF. While
/// <see cref="Hold"/> is set, jobs stay admitted without advancing (for queue and hub tests).
/// </summary>
public sealed class FakeGenerationEngine : IGenerationEngine
{
    private readonly ConcurrentDictionary<Guid, Active> _jobs = new();
    private static readonly byte[] Frame = Encode(new Rgb24(200, 120, 80), 8, new JpegEncoder());
    private static readonly byte[] Result = Encode(new Rgb24(10, 200, 30), 16, new PngEncoder());
    private static readonly byte[] Animation = Encode(new Rgb24(10, 200, 30), 16, new GifEncoder());

    /// <summary>While true, steps do not advance any job.</summary>
    public volatile bool Hold;

    /// <summary>A pause per step, so live tests see a job running for a while (the real engine takes time too).</summary>
    public TimeSpan StepDelay { get; set; } = TimeSpan.Zero;

    public int ActiveCount => _jobs.Count;

    public void Admit(GenerationJob job) => _jobs[job.Id] = new Active(job);

    public void Cancel(Guid jobId)
    {
        if (_jobs.TryGetValue(jobId, out var job)) job.Cancelled = true;
    }

    public byte[]? Checkpoint(Guid jobId) => null;

    public EngineStep Step()
    {
        Thread.Sleep(Hold ? TimeSpan.FromMilliseconds(20) : StepDelay);
        var steps = new List<StepEvent>();
        var finished = new List<FinishedJob>();
        foreach (var active in _jobs.Values)
        {
            var job = active.Job;
            if (active.Cancelled)
            {
                _jobs.TryRemove(job.Id, out _);
                finished.Add(new FinishedJob(job.Id, FinishStatus.Cancelled, active.Step, 0, null, null, null, []));
                continue;
            }
            if (Hold) continue;
            active.Step++;
            double similarity = 0.1 + 0.2 * active.Step / job.Steps;
            steps.Add(new StepEvent(job.Id, active.Step, job.Steps, similarity, Frame));
            if (active.Step >= job.Steps)
            {
                _jobs.TryRemove(job.Id, out _);
                finished.Add(new FinishedJob(job.Id, FinishStatus.Completed, active.Step, similarity, Result, Animation, null, []));
            }
        }
        return new EngineStep(steps, finished);
    }

    private static byte[] Encode(Rgb24 colour, int size, SixLabors.ImageSharp.Formats.IImageEncoder encoder)
    {
        using var image = new Image<Rgb24>(size, size, colour);
        using var output = new MemoryStream();
        image.Save(output, encoder);
        return output.ToArray();
    }

    private sealed class Active(GenerationJob job)
    {
        public GenerationJob Job { get; } = job;
        public int Step { get; set; }
        public volatile bool Cancelled;
    }
}

/// <summary>Counts words as tokens, in a 16-token context, like a tiny CLIP tokenizer would roughly.</summary>
public sealed class FakePromptTokenizer : IPromptTokenizer
{
    public PromptTokenCount? Count(string prompt)
    {
        int tokens = prompt.Split(' ', StringSplitOptions.RemoveEmptyEntries).Length + 2;
        return new PromptTokenCount(tokens, 16, tokens > 16 ? $"The prompt is {tokens} tokens long; the last {tokens - 16} were dropped." : null);
    }
}
