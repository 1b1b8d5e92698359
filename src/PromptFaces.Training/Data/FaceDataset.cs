using System.Globalization;
using System.Runtime.InteropServices;
using System.Text.Json;
using PromptFaces.Generation.Checkpoints;
using PromptFaces.Generation.Optimisation;
using PromptFaces.Training.Faces;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;
using TorchSharp;
using static TorchSharp.torch;

namespace PromptFaces.Training.Data;

/// <summary>
/// Rendered faces held in memory with their labels and geometry: the training and evaluation data of the generator,
/// CLIP and the judge. Saved as safetensors so the file is self-describing and readable from Python too.
/// </summary>
/// <remarks>
/// <para>Face <c>i</c> of a dataset with seed <c>s</c> is <see cref="SampleAttributes"/>(s, i) rendered by
/// <see cref="FaceRenderer"/>: it depends on nothing else, so generation is parallel and deterministic, and a trainer
/// can re-render any face at another size.</para>
/// <para>Everything lives in three flat arrays (HWC bytes, labels, geometry) rather than objects per face: 100 000
/// faces at 64x64 are 1.2 GB of pixels, and batches are gathered straight from the arrays into tensors. One array
/// holds at most <see cref="MaxPixelBytes"/> bytes (about 160 000 faces at 64x64); make several datasets with
/// different seeds for more.</para>
/// </remarks>
public sealed class FaceDataset
{
    /// <summary>The value of the "format" metadata entry, which tells a face dataset from a model checkpoint.</summary>
    public const string FormatName = "promptfaces-faces";

    /// <summary>The largest pixel array a dataset may hold: .NET arrays and <see cref="File.ReadAllBytes"/> stop near 2 GiB.</summary>
    public const long MaxPixelBytes = 2_000_000_000;

    /// <summary>The <see cref="FaceGeometry"/> properties in the column order of <see cref="Geometry"/>.</summary>
    public static IReadOnlyList<string> GeometryNames { get; } =
    [
        nameof(FaceGeometry.FaceWidth), nameof(FaceGeometry.FaceLength), nameof(FaceGeometry.JawRoundness), nameof(FaceGeometry.EyeSize),
        nameof(FaceGeometry.EyeSpacing), nameof(FaceGeometry.HeadX), nameof(FaceGeometry.HeadY), nameof(FaceGeometry.Tilt),
        nameof(FaceGeometry.HairShade), nameof(FaceGeometry.SkinShade), nameof(FaceGeometry.BackgroundShade), nameof(FaceGeometry.MouthWidth),
    ];

    private static readonly int AttributeCount = FaceAttributes.Schema.Count;
    private static readonly int GeometryCount = GeometryNames.Count;

    /// <summary>Wraps existing arrays (not copied) after checking that their lengths agree.</summary>
    public FaceDataset(int size, byte[] pixels, int[] labels, float[] geometry, ulong seed = 0, int rendererVersion = FaceRenderer.Version)
    {
        ArgumentNullException.ThrowIfNull(pixels);
        ArgumentNullException.ThrowIfNull(labels);
        ArgumentNullException.ThrowIfNull(geometry);
        if (size < 1) throw new ArgumentOutOfRangeException(nameof(size), size, "The image side must be positive.");
        long perImage = (long)size * size * 3;
        if (pixels.Length % perImage != 0)
            throw new ArgumentException($"{pixels.Length} pixel bytes are not a whole number of {size}x{size} RGB images.", nameof(pixels));
        int count = (int)(pixels.Length / perImage);
        if (labels.Length != count * AttributeCount)
            throw new ArgumentException($"Expected {count} x {AttributeCount} labels for {count} images, got {labels.Length} values.", nameof(labels));
        if (geometry.Length != count * GeometryCount)
            throw new ArgumentException($"Expected {count} x {GeometryCount} geometry values for {count} images, got {geometry.Length}.", nameof(geometry));
        (Size, Count, Pixels, Labels, Geometry, Seed, RendererVersion) = (size, count, pixels, labels, geometry, seed, rendererVersion);
    }

    public int Count { get; }

    /// <summary>Side of the square images in pixels.</summary>
    public int Size { get; }

    /// <summary>All images, Count x Size x Size x 3 bytes (HWC, RGB).</summary>
    public byte[] Pixels { get; }

    /// <summary>Count x A class indices, A = <see cref="FaceAttributes.Schema"/>.Count, in schema order.</summary>
    public int[] Labels { get; }

    /// <summary>Count x 12 geometry values in [0, 1], columns as <see cref="GeometryNames"/>.</summary>
    public float[] Geometry { get; }

    /// <summary>The seed the faces were drawn from (0 for datasets assembled by hand).</summary>
    public ulong Seed { get; }

    /// <summary>The <see cref="FaceRenderer.Version"/> that drew the pixels.</summary>
    public int RendererVersion { get; }

    /// <summary>The attributes of face <paramref name="i"/>; rendering them again reproduces its pixels.</summary>
    public FaceAttributes Attributes(int i)
    {
        CheckIndex(i);
        return FaceAttributes.FromLabels(Labels.AsSpan(i * AttributeCount, AttributeCount).ToArray(),
            GeometryFromVector(Geometry.AsSpan(i * GeometryCount, GeometryCount)));
    }

    /// <summary>Face <paramref name="i"/> as an image (a copy; the caller disposes it).</summary>
    public Image<Rgb24> ToImage(int i)
    {
        CheckIndex(i);
        int perImage = Size * Size * 3;
        return Image.LoadPixelData<Rgb24>(Pixels.AsSpan(i * perImage, perImage), Size, Size);
    }

    /// <summary>The attributes of face <paramref name="index"/> in any dataset generated with <paramref name="seed"/>.</summary>
    public static FaceAttributes SampleAttributes(ulong seed, int index)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(index);
        // Mix the seed first so that (seed, index) pairs of different datasets do not line up.
        ulong mixed = new SplitMix64(seed).NextUInt64();
        return AttributeSampler.Sample(mixed + (ulong)index * 0x9E3779B97F4A7C15UL);
    }

    /// <summary>
    /// Renders <paramref name="count"/> faces of <paramref name="size"/> pixels on all cores. The result depends only on
    /// the arguments, never on the number of threads. <paramref name="progress"/> receives the number of faces done
    /// (from worker threads, in increasing order).
    /// </summary>
    public static FaceDataset Generate(int count, int size, ulong seed, IProgress<int>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        if (size < FaceRenderer.MinSize)
            throw new ArgumentOutOfRangeException(nameof(size), size, $"Faces need at least {FaceRenderer.MinSize}x{FaceRenderer.MinSize} pixels.");
        long perImage = (long)size * size * 3;
        if (count * perImage > MaxPixelBytes)
            throw new ArgumentOutOfRangeException(nameof(count), count,
                $"{count} faces of {size}x{size} need {count * perImage / 1e9:F1} GB, over the {MaxPixelBytes / 1e9:F0} GB a dataset can hold; use at most {MaxPixelBytes / perImage} faces, or several datasets with different seeds.");

        var pixels = new byte[count * perImage];
        var labels = new int[count * AttributeCount];
        var geometry = new float[count * GeometryCount];
        const int chunk = 64;
        int done = 0;
        var progressLock = new object();
        Parallel.For(0, (count + chunk - 1) / chunk, new ParallelOptions { CancellationToken = cancellationToken }, c =>
        {
            int end = Math.Min(count, (c + 1) * chunk);
            for (int i = c * chunk; i < end; i++)
            {
                var a = SampleAttributes(seed, i);
                FaceRenderer.RenderInto(a, size, pixels.AsSpan((int)(i * perImage), (int)perImage));
                a.ToLabels().CopyTo(labels, i * AttributeCount);
                GeometryVector(a.Geometry).CopyTo(geometry, i * GeometryCount);
            }
            if (progress is null) return;
            lock (progressLock)
            {
                done += end - c * chunk;
                progress.Report(done);
            }
        });
        return new FaceDataset(size, pixels, labels, geometry, seed, FaceRenderer.Version);
    }

    /// <summary>The geometry as 12 floats in <see cref="GeometryNames"/> order.</summary>
    public static float[] GeometryVector(FaceGeometry g)
    {
        ArgumentNullException.ThrowIfNull(g);
        return
        [
            (float)g.FaceWidth, (float)g.FaceLength, (float)g.JawRoundness, (float)g.EyeSize, (float)g.EyeSpacing, (float)g.HeadX,
            (float)g.HeadY, (float)g.Tilt, (float)g.HairShade, (float)g.SkinShade, (float)g.BackgroundShade, (float)g.MouthWidth,
        ];
    }

    public static FaceGeometry GeometryFromVector(ReadOnlySpan<float> v)
    {
        if (v.Length != GeometryCount) throw new ArgumentException($"Expected {GeometryCount} geometry values, got {v.Length}.", nameof(v));
        return new FaceGeometry
        {
            FaceWidth = v[0], FaceLength = v[1], JawRoundness = v[2], EyeSize = v[3], EyeSpacing = v[4], HeadX = v[5],
            HeadY = v[6], Tilt = v[7], HairShade = v[8], SkinShade = v[9], BackgroundShade = v[10], MouthWidth = v[11],
        };
    }

    /// <summary>
    /// Images <paramref name="indices"/> as float32 (B, 3, H, W) in [-1, 1] on <paramref name="device"/> (default CPU),
    /// mapped as <see cref="PromptFaces.Generation.Imaging.ImageTensors.FromImage"/> does. Bytes are gathered in C# and
    /// moved to the device before conversion, so only a quarter of the float traffic crosses to a GPU.
    /// </summary>
    public Tensor Images(ReadOnlySpan<int> indices, Device? device = null)
    {
        int perImage = Size * Size * 3;
        var batch = new byte[indices.Length * perImage];
        for (int k = 0; k < indices.Length; k++)
        {
            CheckIndex(indices[k]);
            Pixels.AsSpan(indices[k] * perImage, perImage).CopyTo(batch.AsSpan(k * perImage));
        }
        using var scope = NewDisposeScope();
        // Explicit scalars, kept alive by 'using' until the ops have returned: an implicit double-to-Scalar conversion
        // leaves the Scalar to a finalizer, which may free it while the native op still reads it.
        using var half = 127.5.ToScalar();
        using var one = 1.0.ToScalar();
        var result = tensor(batch, [indices.Length, Size, Size, 3], ScalarType.Byte)
            .to(device ?? CPU)
            .to(ScalarType.Float32)
            .permute(0, 3, 1, 2)                 // (B, 3, H, W)
            .div(half)
            .sub(one)
            .contiguous();
        return result.MoveToOuterDisposeScope();
    }

    /// <summary>Labels of <paramref name="indices"/> as int64 (B, A), the layout cross-entropy losses take.</summary>
    public Tensor LabelTensor(ReadOnlySpan<int> indices, Device? device = null)
    {
        var batch = new long[indices.Length * AttributeCount];
        for (int k = 0; k < indices.Length; k++)
        {
            CheckIndex(indices[k]);
            for (int a = 0; a < AttributeCount; a++) batch[k * AttributeCount + a] = Labels[indices[k] * AttributeCount + a];
        }
        using var scope = NewDisposeScope();
        return tensor(batch, [indices.Length, AttributeCount], ScalarType.Int64).to(device ?? CPU).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Index ranges for training and held-out evaluation: the last <paramref name="heldOutFraction"/> of the faces
    /// (at least one when the fraction is positive) are held out. Faces are independent draws, so a tail range is as
    /// fair as a random subset and stays the same when the dataset is regenerated. For a test set that shares not even
    /// a seed with training, generate a second dataset with another seed.
    /// </summary>
    public (int[] Train, int[] HeldOut) Split(double heldOutFraction)
    {
        if (!(heldOutFraction >= 0 && heldOutFraction < 1))
            throw new ArgumentOutOfRangeException(nameof(heldOutFraction), heldOutFraction, "The held-out fraction must be in [0, 1).");
        int heldOut = heldOutFraction == 0 ? 0 : Math.Max(1, (int)Math.Round(Count * heldOutFraction));
        int train = Count - heldOut;
        return (Enumerable.Range(0, train).ToArray(), Enumerable.Range(train, heldOut).ToArray());
    }

    /// <summary>Writes the dataset as safetensors: "images" U8 [N, H, W, 3], "labels" I32 [N, A], "geometry" F32
    /// [N, 12], with the schema, seed and renderer version in the metadata.</summary>
    public void Save(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        if (!BitConverter.IsLittleEndian) throw new PlatformNotSupportedException("Saving datasets needs a little-endian machine.");
        var tensors = new List<KeyValuePair<string, RawTensor>>
        {
            new("images", new RawTensor(RawDType.U8, [Count, Size, Size, 3], Pixels)),
            new("labels", new RawTensor(RawDType.I32, [Count, AttributeCount], MemoryMarshal.AsBytes(Labels.AsSpan()).ToArray())),
            new("geometry", new RawTensor(RawDType.F32, [Count, GeometryCount], MemoryMarshal.AsBytes(Geometry.AsSpan()).ToArray())),
        };
        var metadata = new Dictionary<string, string>
        {
            ["format"] = FormatName,
            ["schema"] = SchemaJson(),
            ["geometry"] = JsonSerializer.Serialize(GeometryNames),
            ["seed"] = Seed.ToString(CultureInfo.InvariantCulture),
            ["renderer_version"] = RendererVersion.ToString(CultureInfo.InvariantCulture),
            ["size"] = Size.ToString(CultureInfo.InvariantCulture),
            ["count"] = Count.ToString(CultureInfo.InvariantCulture),
        };
        SafeTensorsFile.Write(path, tensors, metadata);
    }

    /// <summary>
    /// Reads a dataset written by <see cref="Save"/>. Anything else (a missing file, a model checkpoint, a dataset of
    /// another attribute schema, a corrupt file) fails with <see cref="InvalidDataException"/> or
    /// <see cref="FileNotFoundException"/> naming the file, the key and what to do.
    /// </summary>
    public static FaceDataset Load(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        const string remedy = "Write a face dataset with: promptfaces dataset --count N --out FILE.safetensors";
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: no such face dataset. {remedy}", path);

        Dictionary<string, RawTensor> tensors;
        Dictionary<string, string> metadata;
        try { (tensors, metadata) = SafeTensorsFile.Read(path); }
        catch (CheckpointException e)
        {
            throw new InvalidDataException($"{path} is not a face dataset: {e.Message.Replace(path + ": ", "")} {remedy}", e);
        }

        if (!metadata.TryGetValue("format", out var format) || format != FormatName)
            throw new InvalidDataException(
                $"{path} is a safetensors file but not a face dataset (its metadata 'format' is {(format is null ? "missing" : $"'{format}'")}, expected '{FormatName}'; " +
                $"it may be a model checkpoint, holding {string.Join(", ", tensors.Keys.Take(3).Select(k => $"'{k}'"))}{(tensors.Count > 3 ? ", ..." : "")}). {remedy}");
        if (!metadata.TryGetValue("schema", out var schema) || schema != SchemaJson())
            throw new InvalidDataException(
                $"{path}: written for another attribute schema than this program's (metadata 'schema' differs: {Shorten(schema)}). Regenerate it with this version. {remedy}");

        var images = Require(path, tensors, "images", RawDType.U8, 4);
        var labels = Require(path, tensors, "labels", RawDType.I32, 2);
        var geometry = Require(path, tensors, "geometry", RawDType.F32, 2);
        long n = images.Shape[0];
        if (images.Shape[1] != images.Shape[2] || images.Shape[3] != 3)
            throw new InvalidDataException($"{path}: key 'images' has shape {images.ShapeText}, expected [N, H, W, 3] with H = W. The file is corrupt; regenerate it. {remedy}");
        if (labels.Shape[0] != n || labels.Shape[1] != AttributeCount)
            throw new InvalidDataException($"{path}: key 'labels' has shape {labels.ShapeText}, expected [{n}, {AttributeCount}]. The file is corrupt; regenerate it. {remedy}");
        if (geometry.Shape[0] != n || geometry.Shape[1] != GeometryCount)
            throw new InvalidDataException($"{path}: key 'geometry' has shape {geometry.ShapeText}, expected [{n}, {GeometryCount}]. The file is corrupt; regenerate it. {remedy}");

        var labelValues = MemoryMarshal.Cast<byte, int>(labels.Data).ToArray();
        for (int i = 0; i < labelValues.Length; i++)
        {
            int attribute = i % AttributeCount;
            if ((uint)labelValues[i] >= (uint)FaceAttributes.Schema[attribute].Classes)
                throw new InvalidDataException(
                    $"{path}: key 'labels', face {i / AttributeCount}: {FaceAttributes.Schema[attribute].Name} is {labelValues[i]}, outside 0..{FaceAttributes.Schema[attribute].Classes - 1}. The file is corrupt; regenerate it. {remedy}");
        }
        ulong seed = metadata.TryGetValue("seed", out var s) && ulong.TryParse(s, NumberStyles.None, CultureInfo.InvariantCulture, out var sv) ? sv : 0;
        int version = metadata.TryGetValue("renderer_version", out var r) && int.TryParse(r, NumberStyles.None, CultureInfo.InvariantCulture, out var rv) ? rv : 0;
        return new FaceDataset((int)images.Shape[1], images.Data, labelValues, MemoryMarshal.Cast<byte, float>(geometry.Data).ToArray(), seed, version);
    }

    private static RawTensor Require(string path, Dictionary<string, RawTensor> tensors, string key, RawDType dtype, int rank)
    {
        if (!tensors.TryGetValue(key, out var t))
            throw new InvalidDataException($"{path}: key '{key}' is missing; a face dataset holds 'images', 'labels' and 'geometry'. Regenerate it. promptfaces dataset --count N --out FILE.safetensors");
        if (t.DType != dtype || t.Shape.Length != rank)
            throw new InvalidDataException($"{path}: key '{key}' is {t.DType} {t.ShapeText}, expected {dtype} with {rank} dimensions. The file is corrupt or from another program; regenerate it with: promptfaces dataset --count N --out FILE.safetensors");
        return t;
    }

    /// <summary>The schema as JSON: attribute names and class names in order, so a file records what its labels mean.</summary>
    internal static string SchemaJson() => JsonSerializer.Serialize(
        FaceAttributes.Schema.Select(s => new Dictionary<string, object> { ["name"] = s.Name, ["classes"] = Enum.GetNames(s.Enum) }).ToArray());

    private static string Shorten(string? s) => s is null ? "missing" : s.Length <= 80 ? s : s[..80] + "...";

    private void CheckIndex(int i)
    {
        if ((uint)i >= (uint)Count) throw new ArgumentOutOfRangeException(nameof(i), i, $"The dataset has {Count} faces.");
    }
}
