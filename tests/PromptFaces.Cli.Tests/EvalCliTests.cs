using System.Text.Json.Nodes;
using Xunit;

namespace PromptFaces.Cli.Tests;

/// <summary>
/// <c>promptfaces train judge</c> and <c>promptfaces eval</c> through the real executable, on the tiny fixture networks
/// and a judge trained for two steps: the commands' plumbing and output, not the figures (those come from real runs).
/// </summary>
public sealed class EvalCliTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("pf-eval-cli-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static string Fixture(params string[] parts) => PromptfacesProcess.Fixture(parts);

    private string TinyClipFolder() => PromptfacesProcess.TinyClipFolder(_dir);

    private static (int Code, string Out, string Err) Run(params string[] args) => PromptfacesProcess.Run(TimeSpan.FromMinutes(5), args);

    private string TrainTinyJudge()
    {
        var judge = Path.Combine(_dir, "judge.safetensors");
        var (code, stdout, stderr) = Run("train", "judge", "--out", judge, "--steps", "2", "--batch", "8", "--width", "16",
            "--train-faces", "32", "--held-out-faces", "16", "--json");
        Assert.True(code == 0, stderr);
        var json = JsonNode.Parse(stdout.TrimEnd().Split('\n')[^1])!.AsObject();
        Assert.Equal(Path.GetFullPath(judge), json["out"]!.GetValue<string>());
        Assert.Equal(9, json["held_out_accuracy"]!.AsObject().Count);
        Assert.True(File.Exists(judge));
        return judge;
    }

    [Fact]
    public void Eval_prints_one_json_object_with_every_figure()
    {
        var clip = TinyClipFolder();
        var generator = Fixture("stylegan2", "stylegan2_tiny_official_format.pkl");
        var judge = TrainTinyJudge();
        var grid = Path.Combine(_dir, "grid.png");
        var (code, stdout, stderr) = Run("eval", "--generator", generator, "--clip", clip, "--judge", judge,
            "--limit", "2", "--seeds", "2", "--first-seed", "3", "--steps", "2", "--samples", "16", "--judge-faces", "16", "--batch", "4", "--grid", grid, "--json");
        Assert.True(code == 0, stderr);

        var json = JsonNode.Parse(stdout.TrimEnd().Split('\n')[^1])!.AsObject();
        var prompts = json["prompts"]!.AsObject();
        Assert.Equal(2, prompts["prompt_count"]!.GetValue<int>());
        Assert.Equal(4, prompts["jobs"]!.GetValue<int>());
        // Seeds set aside for tuning: the first prompt's seeds 3 and 4, not the evaluation's 0 and 1.
        Assert.Equal(3, prompts["first_seed"]!.GetValue<int>());
        Assert.Equal([3L, 4L], prompts["per_prompt"]![0]!["seeds"]!.AsArray().Select(n => n!.GetValue<long>()));
        Assert.InRange(prompts["optimised_accuracy"]!.GetValue<double>(), 0, 1);
        Assert.InRange(prompts["baseline_accuracy"]!.GetValue<double>(), 0, 1);
        Assert.Equal(9, json["judge"]!["accuracy"]!.AsObject().Count);
        Assert.True(json["realism"]!["generator_psi1"]!.GetValue<double>() >= 0);
        Assert.True(json["realism"]!["blurred_renders"]!.GetValue<double>() >= 0);
        Assert.True(json["diversity"]!["pixel_difference_renders"]!.GetValue<double>() > 0);
        Assert.Equal("stylegan2_tiny_official_format.pkl", json["models"]!["generator"]!.GetValue<string>());
        Assert.True(File.Exists(grid));
    }

    [Fact]
    public void Eval_writes_the_exclusion_list_and_explains_a_missing_judge()
    {
        var sentences = Path.Combine(_dir, "exclude.txt");
        var (code, stdout, stderr) = Run("eval", "--write-exclusions", sentences);
        Assert.True(code == 0, stderr);
        Assert.Contains("sentences", stdout);
        Assert.InRange(File.ReadAllLines(sentences).Length, 60, 100);

        var missing = Path.Combine(_dir, "no-judge.safetensors");
        var (badCode, _, badErr) = Run("eval", "--generator", "g.pkl", "--clip", _dir, "--judge", missing);
        Assert.Equal(2, badCode);
        Assert.Contains(missing, badErr);
        Assert.DoesNotContain("   at ", badErr);
    }
}
