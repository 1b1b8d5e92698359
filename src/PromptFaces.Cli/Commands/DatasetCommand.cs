using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using PromptFaces.Generation.Optimisation;
using PromptFaces.Training.Data;
using PromptFaces.Training.Faces;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;
using Spectre.Console;

namespace PromptFaces.Cli.Commands;

/// <summary>
/// <c>promptfaces dataset</c>: renders procedural faces into a safetensors dataset, with a sample grid of the first
/// faces and their captions so a person can check what the networks will learn from.
/// </summary>
internal static class DatasetCommand
{
    private const int GridFaces = 64;

    public static Command Create()
    {
        var count = new Option<int>("--count", "-n") { Description = "Number of faces.", DefaultValueFactory = _ => 10_000 };
        var size = new Option<int>("--size") { Description = $"Image side in pixels (at least {FaceRenderer.MinSize}).", DefaultValueFactory = _ => 64 };
        var seed = new Option<ulong>("--seed") { Description = "Seed of the faces: the same seed, count and size give the same file.", DefaultValueFactory = _ => 1 };
        var output = new Option<string>("--out", "-o") { Description = "Output .safetensors file.", Required = true };
        var grid = new Option<string?>("--grid") { Description = $"Sample grid PNG of the first {GridFaces} faces (default: next to --out, as NAME.grid.png); its captions go to a .txt beside it." };
        var gridScale = new Option<int>("--grid-scale") { Description = "Enlarge the grid's tiles by this integer factor (nearest neighbour; default 2 below 128 pixels, else 1)." };
        var noGrid = new Option<bool>("--no-grid") { Description = "Write no sample grid." };

        var command = new Command("dataset", "Render procedural cartoon faces with attribute labels into a safetensors dataset.")
        {
            count, size, seed, output, grid, gridScale, noGrid,
        };
        command.SetAction(r =>
        {
            int n = r.GetValue(count), side = r.GetValue(size);
            ulong s = r.GetValue(seed);
            var outPath = r.GetValue(output)!;
            if (n < 1) throw new CliException($"--count must be at least 1 (got {n}).");
            if (side < FaceRenderer.MinSize) throw new CliException($"--size must be at least {FaceRenderer.MinSize} (got {side}).");
            long bytes = (long)n * side * side * 3;
            if (bytes > FaceDataset.MaxPixelBytes)
                throw new CliException($"{n} faces of {side}x{side} need {bytes / 1e9:F1} GB, more than one dataset holds ({FaceDataset.MaxPixelBytes / 1e9:F0} GB): use --count {FaceDataset.MaxPixelBytes / ((long)side * side * 3)} or less, and several seeds.");

            var clock = Stopwatch.StartNew();
            double renderSeconds = 0;
            FaceDataset? dataset = null;
            CliRunner.Err.Progress()
                .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn())
                .Start(ctx =>
                {
                    var render = ctx.AddTask($"rendering {n} faces", maxValue: n);
                    dataset = FaceDataset.Generate(n, side, s, new Reporter(done => render.Value = done));
                    render.Value = n;
                    renderSeconds = clock.Elapsed.TotalSeconds;
                    var write = ctx.AddTask("writing", maxValue: 1);
                    dataset.Save(outPath);
                    write.Value = 1;
                });
            var seconds = clock.Elapsed.TotalSeconds;

            string? gridPath = r.GetValue(noGrid) ? null : r.GetValue(grid) ?? DefaultGridPath(outPath);
            string? captionsPath = null;
            if (gridPath is not null)
            {
                int scale = r.GetValue(gridScale) is > 0 and var g ? g : side < 128 ? 2 : 1;
                captionsPath = Path.ChangeExtension(gridPath, ".txt");
                WriteGrid(dataset!, gridPath, captionsPath, scale);
            }

            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{outPath}: {n} faces, {side}x{side}, seed {s}, renderer v{FaceRenderer.Version}, {new FileInfo(outPath).Length / 1e6:F1} MB; rendered in {renderSeconds:F1} s ({renderSeconds * 1000 / n:F3} ms/face on {Environment.ProcessorCount} cores), {seconds:F1} s with writing"));
            if (gridPath is not null) Console.WriteLine($"sample grid: {gridPath} (first {Math.Min(GridFaces, n)} faces), captions: {captionsPath}");
            foreach (var line in ClassBalance(dataset!)) Console.WriteLine(line);
            return 0;
        });
        return command;
    }

    private static string DefaultGridPath(string outPath)
    {
        var dir = Path.GetDirectoryName(outPath) ?? "";
        return Path.Combine(dir, Path.GetFileNameWithoutExtension(outPath) + ".grid.png");
    }

    /// <summary>The first faces in an 8-wide grid, and one caption per face (numbered row-major) in a text file.</summary>
    private static void WriteGrid(FaceDataset dataset, string gridPath, string captionsPath, int scale)
    {
        int shown = Math.Min(GridFaces, dataset.Count);
        var tiles = new List<Image<Rgb24>>();
        var captions = new StringBuilder();
        // Captions are drawn from their own seed, so they are reproducible but independent of any trainer's.
        var rng = new SplitMix64(dataset.Seed ^ 0xCA9710_0000UL);
        try
        {
            for (int i = 0; i < shown; i++)
            {
                using var face = dataset.ToImage(i);
                tiles.Add(scale > 1 ? SampleGrid.Upscale(face, scale) : face.Clone());
                captions.Append(CultureInfo.InvariantCulture, $"{i} (row {i / 8 + 1}, column {i % 8 + 1}): {CaptionWriter.Write(dataset.Attributes(i), rng)}").Append('\n');
            }
            using var image = SampleGrid.Grid(tiles, 8);
            SampleGrid.Save(gridPath, image, new Dictionary<string, string>
            {
                ["Description"] = $"First {shown} faces of a PromptFaces dataset (seed {dataset.Seed}, {dataset.Size}x{dataset.Size}); captions in {Path.GetFileName(captionsPath)}",
            });
            File.WriteAllText(captionsPath, captions.ToString());
        }
        finally
        {
            foreach (var t in tiles) t.Dispose();
        }
    }

    /// <summary>One line per attribute with each class's share, to show at a glance that no class is starved.</summary>
    private static IEnumerable<string> ClassBalance(FaceDataset dataset)
    {
        int attributes = FaceAttributes.Schema.Count;
        for (int a = 0; a < attributes; a++)
        {
            var (name, type, classes) = FaceAttributes.Schema[a];
            var counts = new int[classes];
            for (int i = 0; i < dataset.Count; i++) counts[dataset.Labels[i * attributes + a]]++;
            var names = Enum.GetNames(type);
            yield return $"  {name,-12} " + string.Join(", ", Enumerable.Range(0, classes).Select(c =>
                string.Create(CultureInfo.InvariantCulture, $"{names[c].ToLowerInvariant()} {100.0 * counts[c] / dataset.Count:F1}%")));
        }
    }

    /// <summary>Reports on the calling (worker) thread; <see cref="Progress{T}"/> would post to the thread pool and could
    /// deliver counts out of order.</summary>
    private sealed class Reporter(Action<int> report) : IProgress<int>
    {
        public void Report(int value) => report(value);
    }
}
