using PromptFaces.Generation.StyleGan2;
using Xunit;

namespace PromptFaces.Cli.Tests;

/// <summary><c>promptfaces train stylegan</c> run as a user would: a few steps of the tiny preset, then a resume.</summary>
public sealed class TrainStyleGanCommandTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("pf-trainsg-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static (int Code, string Out, string Err) Run(params string[] args) => PromptfacesProcess.Run(TimeSpan.FromMinutes(5), args);

    [Fact]
    public void Train_stylegan_can_start_a_new_run_from_an_exported_generator()
    {
        var source = Path.Combine(_dir, "source");
        var (code, _, stderr) = Run("train", "stylegan", "--preset", "tiny32", "--out", source, "--steps", "1", "--batch", "4", "--grid-every", "0", "--threads", "1");
        Assert.True(code == 0, stderr);
        var exported = Path.Combine(source, "generator.safetensors");

        var started = Path.Combine(_dir, "started");
        (code, var stdout, stderr) = Run("train", "stylegan", "--init-generator", exported, "--out", started, "--steps", "1", "--batch", "4", "--grid-every", "0", "--threads", "1");
        Assert.True(code == 0, stderr);
        Assert.Contains("step 1 of 1", stdout);
        var settings = Generation.Checkpoints.SafeTensorsFile.ReadMetadata(Path.Combine(started, "checkpoint.safetensors"))["promptfaces_stylegan_training"];
        Assert.Contains("\"initial_generator\":\"generator.safetensors sha256:", settings);
        Assert.Contains("\"img_resolution\":32", settings); // the architecture came from the file, not the default preset

        (code, _, stderr) = Run("train", "stylegan", "--init-generator", exported, "--out", started, "--resume", "--steps", "2");
        Assert.Equal(2, code);
        Assert.Contains("--resume", stderr);
        (code, _, stderr) = Run("train", "stylegan", "--init-generator", exported, "--preset", "faces64", "--out", Path.Combine(_dir, "preset"), "--steps", "1");
        Assert.Equal(2, code);
        Assert.Contains("--preset", stderr);
        var missing = Path.Combine(_dir, "none.safetensors");
        (code, _, stderr) = Run("train", "stylegan", "--init-generator", missing, "--out", Path.Combine(_dir, "missing"), "--steps", "1");
        Assert.Equal(2, code);
        Assert.Contains("none.safetensors", stderr);
    }

    [Fact]
    public void Train_stylegan_runs_a_few_steps_exports_a_generator_and_resumes()
    {
        var output = Path.Combine(_dir, "run");
        var (code, stdout, stderr) = Run("train", "stylegan", "--preset", "tiny32", "--out", output, "--steps", "2", "--batch", "4",
            "--grid-every", "2", "--checkpoint-every", "1", "--log-every", "1", "--threads", "1");
        Assert.True(code == 0, stderr);
        Assert.Contains("step 2 of 2", stdout);
        Assert.Contains("step 2/2", stderr);
        Assert.True(File.Exists(Path.Combine(output, "grid-000002.png")));
        using (var g = StyleGan2Checkpoint.Load(Path.Combine(output, "generator.safetensors")))
            Assert.Equal(32, g.Config.Resolution);

        (code, stdout, stderr) = Run("train", "stylegan", "--out", output, "--resume", "--steps", "3", "--threads", "1");
        Assert.True(code == 0, stderr);
        Assert.Contains("step 3 of 3", stdout);
        Assert.Equal(3, File.ReadAllLines(Path.Combine(output, "log.jsonl")).Length);

        // The encoder path: a match weight alone is refused until the run has an encoder, then a resume switches the
        // encoder on, and a later resume may change the match weight alone.
        (code, _, stderr) = Run("train", "stylegan", "--out", output, "--resume", "--steps", "4", "--latent-match-weight", "1", "--threads", "1");
        Assert.Equal(2, code);
        Assert.Contains("--encoder-weight", stderr);
        (code, stdout, stderr) = Run("train", "stylegan", "--out", output, "--resume", "--steps", "4", "--encoder-weight", "10", "--threads", "1");
        Assert.True(code == 0, stderr);
        Assert.Contains("enc ", stderr);
        (code, stdout, stderr) = Run("train", "stylegan", "--out", output, "--resume", "--steps", "5", "--latent-match-weight", "2", "--threads", "1");
        Assert.True(code == 0, stderr);
        Assert.Contains("step 5 of 5", stdout);
        var settings = Generation.Checkpoints.SafeTensorsFile.Read(Path.Combine(output, "checkpoint.safetensors")).Metadata["promptfaces_stylegan_training"];
        Assert.Contains("\"encoder_weight\":10", settings);
        Assert.Contains("\"latent_match_weight\":2", settings);

        // The latent layout is the run's: a resume may not change it, and an unknown layout is named.
        Assert.Contains("\"latent_layout\":\"argmax\"", settings);
        (code, _, stderr) = Run("train", "stylegan", "--out", output, "--resume", "--steps", "6", "--latent-layout", "intervals", "--threads", "1");
        Assert.Equal(2, code);
        Assert.Contains("argmax layout", stderr);
        (code, _, stderr) = Run("train", "stylegan", "--preset", "tiny32", "--out", Path.Combine(_dir, "other"), "--steps", "1", "--latent-layout", "onehot");
        Assert.Equal(2, code);
        Assert.Contains("--latent-layout onehot", stderr);

        // Designed codes: an unknown kind of code is named, the tiny preset's w is too narrow for them, and a mapping
        // fit without them is refused.
        (code, _, stderr) = Run("train", "stylegan", "--out", output, "--resume", "--steps", "6", "--codes", "learned", "--threads", "1");
        Assert.Equal(2, code);
        Assert.Contains("--codes learned", stderr);
        (code, _, stderr) = Run("train", "stylegan", "--out", output, "--resume", "--steps", "6", "--codes", "designed", "--threads", "1");
        Assert.Equal(2, code);
        Assert.Contains("w_dim", stderr);
        (code, _, stderr) = Run("train", "stylegan", "--out", output, "--resume", "--steps", "6", "--fit-mapping", "5", "--threads", "1");
        Assert.Equal(2, code);
        Assert.Contains("--codes designed", stderr);

        // The attribute loss: its weight needs a classifier, a classifier needs the weight, and a missing file is named.
        var other = Path.Combine(_dir, "attr");
        (code, _, stderr) = Run("train", "stylegan", "--preset", "tiny32", "--out", other, "--steps", "1", "--attribute-weight", "1");
        Assert.Equal(2, code);
        Assert.Contains("--attribute-classifier", stderr);
        var absent = Path.Combine(_dir, "no-such-classifier.safetensors");
        (code, _, stderr) = Run("train", "stylegan", "--preset", "tiny32", "--out", other, "--steps", "1", "--attribute-weight", "1", "--attribute-classifier", absent);
        Assert.Equal(2, code);
        Assert.Contains("no-such-classifier.safetensors", stderr);
        (code, _, stderr) = Run("train", "stylegan", "--out", output, "--resume", "--steps", "6", "--attribute-classifier", absent);
        Assert.Equal(2, code);
        Assert.Contains("--attribute-weight", stderr);

        // A second start in the same folder without --resume is a user error, not a crash.
        (code, _, stderr) = Run("train", "stylegan", "--preset", "tiny32", "--out", output, "--steps", "1");
        Assert.Equal(2, code);
        Assert.Contains("--resume", stderr);
    }
}
