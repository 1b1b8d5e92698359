using System.Text.Json.Nodes;
using PromptFaces.Generation.Checkpoints;
using PromptFaces.Generation.Imaging;
using Xunit;

namespace PromptFaces.Cli.Tests;

/// <summary>
/// Runs the real <c>promptfaces</c> executable as a user would, on the tiny fixture networks (a CLIP folder is
/// assembled from the fixture's config and weights plus a byte-level vocabulary that fits its 1000 tokens).
/// </summary>
public sealed class CliTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("pf-cli-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static string Fixture(params string[] parts) => PromptfacesProcess.Fixture(parts);

    private string TinyClipFolder() => PromptfacesProcess.TinyClipFolder(_dir);

    private static (int Code, string Out, string Err) Run(params string[] args) => PromptfacesProcess.Run(TimeSpan.FromMinutes(3), args);

    [Fact]
    public void Generate_writes_a_png_with_metadata_a_gif_and_a_json_summary()
    {
        var clip = TinyClipFolder();
        var generator = Fixture("stylegan2", "stylegan2_tiny_official_format.pkl");
        var png = Path.Combine(_dir, "face.png");
        var gif = Path.Combine(_dir, "face.gif");
        var before = Path.Combine(_dir, "start.png");
        var (code, stdout, stderr) = Run("generate", "--prompt", "a face with red hair", "--seed", "5", "--steps", "6",
            "--generator", generator, "--clip", clip, "--out", png, "--start-out", before, "--gif", gif, "--gif-every", "2", "--json");
        Assert.True(code == 0, stderr);

        var json = JsonNode.Parse(stdout.TrimEnd().Split('\n')[^1])!.AsObject();
        Assert.Equal("a face with red hair", json["prompt"]!.GetValue<string>());
        Assert.Equal(5, json["seed"]!.GetValue<long>());
        Assert.Equal(6, json["steps"]!.GetValue<int>());
        Assert.True(json["ms_per_step"]!.GetValue<double>() > 0);
        Assert.True(json["similarity_end"]!.GetValue<double>() >= json["similarity_start"]!.GetValue<double>());
        Assert.Equal(Path.GetFullPath(png), json["out"]!.GetValue<string>());

        var text = PngWriter.ReadPngText(png);
        Assert.Equal("a face with red hair", text["prompt"]);
        Assert.Equal("5", text["seed"]);
        Assert.Equal("6", text["steps"]);
        Assert.Equal("stylegan2_tiny_official_format.pkl", text["generator"]);
        Assert.Equal("PromptFaces", text["Software"]);

        using var animation = SixLabors.ImageSharp.Image.Load(gif);
        Assert.True(animation.Frames.Count >= 3, $"the GIF has {animation.Frames.Count} frames");

        // The starting face: step 0, scored at the start similarity, and a different picture from the optimised one.
        Assert.Equal(Path.GetFullPath(before), json["start_out"]!.GetValue<string>());
        var startText = PngWriter.ReadPngText(before);
        Assert.Equal("0", startText["steps"]);
        Assert.Equal("5", startText["seed"]);
        using var startImage = SixLabors.ImageSharp.Image.Load<SixLabors.ImageSharp.PixelFormats.Rgb24>(before);
        using var endImage = SixLabors.ImageSharp.Image.Load<SixLabors.ImageSharp.PixelFormats.Rgb24>(png);
        Assert.Equal(endImage.Width, startImage.Width);
        long difference = 0;
        for (int y = 0; y < endImage.Height; y++)
            for (int x = 0; x < endImage.Width; x++)
                difference += Math.Abs(endImage[x, y].R - startImage[x, y].R) + Math.Abs(endImage[x, y].G - startImage[x, y].G);
        Assert.True(difference > 0, "the starting face equals the optimised face");
    }

    [Fact]
    public void The_same_seed_writes_the_same_image()
    {
        var clip = TinyClipFolder();
        var generator = Fixture("stylegan2", "stylegan2_tiny_official_format.pkl");
        string Generate(string name, string seed)
        {
            var path = Path.Combine(_dir, name);
            var (code, _, stderr) = Run("generate", "--prompt", "glasses", "--seed", seed, "--steps", "3", "--generator", generator, "--clip", clip, "--out", path);
            Assert.True(code == 0, stderr);
            return path;
        }
        static byte[] Pixels(string path)
        {
            using var image = ImageDecoding.LoadRgb24(path);
            var bytes = new byte[image.Width * image.Height * 3];
            image.CopyPixelDataTo(bytes);
            return bytes;
        }
        Assert.Equal(Pixels(Generate("a.png", "9")), Pixels(Generate("b.png", "9")));
        Assert.NotEqual(Pixels(Generate("a.png", "9")), Pixels(Generate("c.png", "10")));
    }

    [Fact]
    public void Generate_guides_with_every_clip_given_and_names_a_missing_one()
    {
        var clip = TinyClipFolder();
        var second = Path.Combine(_dir, "clip-b");
        Directory.CreateDirectory(second);
        foreach (var f in Directory.GetFiles(clip)) File.Copy(f, Path.Combine(second, Path.GetFileName(f)));
        var generator = Fixture("stylegan2", "stylegan2_tiny_official_format.pkl");
        var png = Path.Combine(_dir, "pair.png");
        var (code, stdout, stderr) = Run("generate", "--prompt", "a face with red hair", "--seed", "5", "--steps", "2",
            "--generator", generator, "--clip", clip, "--clip", second, "--out", png, "--json");
        Assert.True(code == 0, stderr);
        var json = JsonNode.Parse(stdout.TrimEnd().Split('\n')[^1])!.AsObject();
        Assert.Equal("clip+clip-b", json["clip"]!.GetValue<string>());
        Assert.Equal("clip+clip-b", PngWriter.ReadPngText(png)["clip"]);

        var missing = Path.Combine(_dir, "no-such-clip");
        var (badCode, _, badErr) = Run("generate", "--prompt", "a face", "--seed", "5", "--steps", "2",
            "--generator", generator, "--clip", clip, "--clip", missing, "--out", png);
        Assert.NotEqual(0, badCode);
        Assert.Contains("no-such-clip", badErr);
        Assert.DoesNotContain("   at ", badErr);
    }

    [Fact]
    public void Convert_writes_safetensors_that_inspect_accepts_and_that_equal_the_pickle()
    {
        var pkl = Fixture("stylegan2", "stylegan2_tiny_official_format.pkl");
        var output = Path.Combine(_dir, "tiny.safetensors");
        var (code, _, stderr) = Run("convert", pkl, output);
        Assert.True(code == 0, stderr);

        var (inspectCode, report, _) = Run("inspect", output);
        Assert.Equal(0, inspectCode);
        Assert.Contains("32x32", report);
        Assert.Contains("problems:    none", report);

        var original = NvidiaPickleReader.Read(pkl).StateDict;
        var converted = SafeTensorsFile.Read(output).Tensors;
        Assert.Equal(original.Keys.Order(), converted.Keys.Order());
        foreach (var (key, t) in original) Assert.Equal(t.Data, converted[key].Data);
    }

    [Fact]
    public void Bad_input_gives_one_clear_line_and_exit_code_2()
    {
        var notes = Path.Combine(_dir, "notes.txt");
        File.WriteAllText(notes, "hello");
        var (code, _, stderr) = Run("inspect", notes);
        Assert.Equal(2, code);
        Assert.Contains(notes, stderr);
        Assert.Contains("is not a generator checkpoint", stderr);
        Assert.DoesNotContain("   at ", stderr);

        var (benchCode, _, benchErr) = Run("bench", "--generator-preset", "stylegan2-paper256", "--clip-preset", "vit-b-32");
        Assert.Equal(2, benchCode);
        Assert.Contains("--random-weights", benchErr);

        var (cudaCode, _, cudaErr) = Run("generate", "--prompt", "x", "--device", "cuda", "--libtorch", _dir);
        Assert.Equal(2, cudaCode);
        Assert.Contains(_dir, cudaErr);
    }

    [Fact]
    public void Bench_reports_a_median_per_batch_size_as_json()
    {
        var clip = TinyClipFolder();
        var generator = Fixture("stylegan2", "stylegan2_tiny_weights.safetensors");
        var (code, stdout, stderr) = Run("bench", "--generator", generator, "--clip", clip, "--batch", "1,2", "--steps", "2", "--json");
        Assert.True(code == 0, stderr);
        var json = JsonNode.Parse(stdout.TrimEnd().Split('\n')[^1])!;
        var results = json["results"]!.AsArray();
        Assert.Equal(new[] { 1, 2 }, results.Select(r => r!["batch"]!.GetValue<int>()));
        Assert.All(results, r => Assert.True(r!["ms_per_step"]!.GetValue<double>() > 0));
        Assert.All(results, r => Assert.True(r!["peak_rss_mib"]!.GetValue<double>() > 0));
    }
}
