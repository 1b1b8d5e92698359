using PromptFaces.Generation.Checkpoints;
using PromptFaces.Training.Data;
using PromptFaces.Training.Faces;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;
using Xunit;
using static TorchSharp.torch;

namespace PromptFaces.Training.Tests;

public sealed class DatasetTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("promptfaces-dataset-tests-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static FaceDataset Generate(int count, int size, ulong seed, IProgress<int>? progress = null) =>
        FaceDataset.Generate(count, size, seed, progress, TestContext.Current.CancellationToken);

    [Fact]
    public void Generation_is_deterministic_and_matches_the_renderer()
    {
        var a = Generate(70, 40, seed: 11);
        var b = Generate(70, 40, seed: 11);
        Assert.Equal(a.Pixels, b.Pixels);
        Assert.Equal(a.Labels, b.Labels);
        Assert.NotEqual(a.Pixels, Generate(70, 40, seed: 12).Pixels);
        for (int i = 0; i < a.Count; i += 13)
        {
            // The stored labels and float32 geometry reproduce the face exactly.
            var pixels = new byte[40 * 40 * 3];
            FaceRenderer.RenderInto(a.Attributes(i), 40, pixels);
            Assert.Equal(pixels, a.Pixels.AsSpan(i * pixels.Length, pixels.Length).ToArray());
            Assert.Equal(FaceDataset.SampleAttributes(11, i), a.Attributes(i));
        }
    }

    [Fact]
    public void Progress_counts_up_to_the_total()
    {
        var reports = new List<int>();
        Generate(300, 32, seed: 1, new SyncProgress(reports.Add));
        Assert.Equal(300, reports[^1]);
        Assert.Equal(reports.OrderBy(r => r), reports);
    }

    [Fact]
    public void Save_and_load_round_trip()
    {
        var dataset = Generate(25, 32, seed: 5);
        var path = Path.Combine(_dir, "faces.safetensors");
        dataset.Save(path);
        var loaded = FaceDataset.Load(path);
        Assert.Equal(dataset.Count, loaded.Count);
        Assert.Equal(dataset.Size, loaded.Size);
        Assert.Equal(dataset.Pixels, loaded.Pixels);
        Assert.Equal(dataset.Labels, loaded.Labels);
        Assert.Equal(dataset.Geometry, loaded.Geometry);
        Assert.Equal(5UL, loaded.Seed);
        Assert.Equal(FaceRenderer.Version, loaded.RendererVersion);
        Assert.Equal(dataset.Attributes(24), loaded.Attributes(24));

        var (tensors, metadata) = SafeTensorsFile.Read(path);
        Assert.Equal([25L, 32, 32, 3], tensors["images"].Shape);
        Assert.Equal(RawDType.U8, tensors["images"].DType);
        Assert.Equal([25L, FaceAttributes.Schema.Count], tensors["labels"].Shape);
        Assert.Equal(RawDType.I32, tensors["labels"].DType);
        Assert.Equal([25L, 12], tensors["geometry"].Shape);
        Assert.Equal(RawDType.F32, tensors["geometry"].DType);
        Assert.Contains("hair_colour", metadata["schema"]);
        Assert.Equal("5", metadata["seed"]);
    }

    [Fact]
    public void Loading_something_else_fails_clearly()
    {
        var garbage = Path.Combine(_dir, "notes.safetensors");
        File.WriteAllText(garbage, "these are not faces");
        var e = Assert.Throws<InvalidDataException>(() => FaceDataset.Load(garbage));
        Assert.Contains(garbage, e.Message);
        Assert.Contains("not a face dataset", e.Message);
        Assert.Contains("promptfaces dataset", e.Message);

        // A valid safetensors file that is a model checkpoint, not a dataset.
        var model = Path.Combine(_dir, "model.safetensors");
        SafeTensorsFile.Write(model, [new("weight", new RawTensor(RawDType.F32, [2], new byte[8]))]);
        e = Assert.Throws<InvalidDataException>(() => FaceDataset.Load(model));
        Assert.Contains(model, e.Message);
        Assert.Contains("'format'", e.Message);
        Assert.Contains("'weight'", e.Message);

        // A dataset with a tensor missing.
        var partial = Path.Combine(_dir, "partial.safetensors");
        SafeTensorsFile.Write(partial, [new("images", new RawTensor(RawDType.U8, [1, 32, 32, 3], new byte[32 * 32 * 3]))],
            new Dictionary<string, string> { ["format"] = FaceDataset.FormatName, ["schema"] = FaceDataset.SchemaJson() });
        e = Assert.Throws<InvalidDataException>(() => FaceDataset.Load(partial));
        Assert.Contains("'labels'", e.Message);

        var missing = Path.Combine(_dir, "absent.safetensors");
        Assert.Contains(missing, Assert.Throws<FileNotFoundException>(() => FaceDataset.Load(missing)).Message);
    }

    [Fact]
    public void Batches_become_tensors_in_the_generator_layout()
    {
        var dataset = Generate(10, 32, seed: 2);
        using var images = dataset.Images([3, 7]);
        Assert.Equal([2L, 3, 32, 32], images.shape);
        Assert.Equal(ScalarType.Float32, images.dtype);
        Assert.True(images.min().item<float>() >= -1f && images.max().item<float>() <= 1f);
        // Pixel (x=5, y=9) of face 7, green channel.
        byte green = dataset.Pixels[((7 * 32 + 9) * 32 + 5) * 3 + 1];
        Assert.Equal(green / 127.5f - 1f, images[1, 1, 9, 5].item<float>(), 5);

        using var labels = dataset.LabelTensor([3, 7]);
        Assert.Equal([2L, FaceAttributes.Schema.Count], labels.shape);
        Assert.Equal(ScalarType.Int64, labels.dtype);
        Assert.Equal(dataset.Attributes(7).ToLabels().Select(l => (long)l), labels[1].data<long>().ToArray());
    }

    [Fact]
    public void Split_holds_out_the_tail()
    {
        var dataset = Generate(20, 32, seed: 3);
        var (train, heldOut) = dataset.Split(0.25);
        Assert.Equal(Enumerable.Range(0, 15), train);
        Assert.Equal(Enumerable.Range(15, 5), heldOut);
        Assert.Empty(dataset.Split(0).HeldOut);
        Assert.Throws<ArgumentOutOfRangeException>(() => dataset.Split(1));
    }

    [Fact]
    public void Sample_grid_tiles_images_with_gaps()
    {
        var dataset = Generate(10, 32, seed: 4);
        var tiles = Enumerable.Range(0, 10).Select(dataset.ToImage).ToList();
        using var grid = SampleGrid.Grid(tiles, 4);
        Assert.Equal(4 * (32 + SampleGrid.Gap) + SampleGrid.Gap, grid.Width);
        Assert.Equal(3 * (32 + SampleGrid.Gap) + SampleGrid.Gap, grid.Height);
        // Tile 5 sits in row 1, column 1; its top-left pixel is face 5's.
        Assert.Equal(tiles[5][0, 0], grid[SampleGrid.Gap + 34, SampleGrid.Gap + 34]);

        using var batch = dataset.Images([0, 1, 2]);
        using var fromTensor = SampleGrid.Grid(batch, 3);
        Assert.Equal(tiles[2][10, 20], fromTensor[2 * 34 + SampleGrid.Gap + 10, SampleGrid.Gap + 20]);

        var path = Path.Combine(_dir, "grid.png");
        SampleGrid.Save(path, grid);
        using var back = Image.Load<Rgb24>(path);
        Assert.Equal(grid.Width, back.Width);
        foreach (var t in tiles) t.Dispose();
    }

    private sealed class SyncProgress(Action<int> report) : IProgress<int>
    {
        public void Report(int value) => report(value);
    }
}
