using PromptFaces.Generation.Clip;
using Xunit;

namespace PromptFaces.Cli.Tests;

/// <summary><c>promptfaces train clip</c> run as a user would: a few steps end to end, then a resume.</summary>
public sealed class TrainClipCommandTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("pf-trainclip-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static (int Code, string Out, string Err) Run(params string[] args) => PromptfacesProcess.Run(TimeSpan.FromMinutes(5), args);

    [Fact]
    public void Train_clip_runs_a_few_steps_exports_a_model_and_resumes()
    {
        var output = Path.Combine(_dir, "run");
        var exclude = Path.Combine(_dir, "eval.txt");
        File.WriteAllText(exclude, "a woman with red hair\n");
        var (code, stdout, stderr) = Run("train", "clip", "--out", output, "--steps", "2", "--batch", "4", "--vocab-size", "600",
            "--exclude", exclude, "--grid-every", "2", "--checkpoint-every", "1", "--threads", "1");
        Assert.True(code == 0, stderr);
        Assert.Contains("step 2/2", stdout);
        Assert.True(File.Exists(Path.Combine(output, "samples", "grid_000002.png")));

        using (var clip = ClipModel.FromFolder(Path.Combine(output, "model")))
        {
            var tokenizer = ClipTokenizer.FromFolder(Path.Combine(output, "model"), clip.Config.TextConfig.MaxPositionEmbeddings);
            Assert.Equal(clip.Config.TextConfig.VocabSize, tokenizer.VocabSize);
        }

        (code, stdout, stderr) = Run("train", "clip", "--out", output, "--resume", "--steps", "3", "--grid-every", "0", "--threads", "1");
        Assert.True(code == 0, stderr);
        Assert.Contains("step 3/3", stdout);
        Assert.Equal(4, File.ReadAllLines(Path.Combine(output, "log.tsv")).Length);   // header and three steps

        // A second start in the same folder without --resume is a user error, not a crash.
        (code, _, stderr) = Run("train", "clip", "--out", output, "--steps", "1");
        Assert.Equal(2, code);
        Assert.Contains("--resume", stderr);
    }

    [Fact]
    public void Train_clip_size_wide_trains_the_wide_architecture_and_bad_sizes_are_refused()
    {
        var output = Path.Combine(_dir, "wide");
        var (code, stdout, stderr) = Run("train", "clip", "--out", output, "--size", "wide", "--steps", "1", "--batch", "4",
            "--vocab-size", "600", "--grid-every", "0", "--threads", "1");
        Assert.True(code == 0, stderr);
        Assert.Contains("step 1/1", stdout);
        using (var clip = ClipModel.FromFolder(Path.Combine(output, "model")))
        {
            Assert.Equal(192, clip.Config.VisionConfig.HiddenSize);
            Assert.Equal(6, clip.Config.VisionConfig.NumHiddenLayers);
            Assert.Equal(4, clip.Config.TextConfig.NumHiddenLayers);
        }

        (code, _, stderr) = Run("train", "clip", "--out", Path.Combine(_dir, "huge"), "--size", "huge", "--steps", "1");
        Assert.Equal(2, code);
        Assert.Contains("--size huge", stderr);
        Assert.Contains("small, wide", stderr);
        Assert.False(Directory.Exists(Path.Combine(_dir, "huge")));

        // A resumed run keeps its checkpoint's architecture; asking for one is refused rather than ignored.
        (code, _, stderr) = Run("train", "clip", "--out", output, "--resume", "--size", "small", "--steps", "2");
        Assert.Equal(2, code);
        Assert.Contains("leave --size out with --resume", stderr);
    }
}
