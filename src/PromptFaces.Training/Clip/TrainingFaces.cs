using PromptFaces.Generation.Optimisation;
using PromptFaces.Training.Data;
using PromptFaces.Training.Faces;
using static TorchSharp.torch;

namespace PromptFaces.Training.Clip;

/// <summary>
/// Where training images come from: rendered on the fly (endless, never the same face twice) or read from a
/// <see cref="FaceDataset"/> file (faster per step, finite). Batches are a pure function of the step number and the
/// run's seed, so a resumed run sees exactly the batches the uninterrupted run would have seen.
/// </summary>
internal abstract class TrainingFaces : IDisposable
{
    public abstract string Description { get; }

    /// <summary>The side of the images <see cref="Draw"/> returns.</summary>
    public abstract int ImageSize { get; }

    /// <summary>
    /// The faces of one batch. Only C# work happens here (sampling, rendering into bytes); the tensor is made by
    /// <see cref="FaceBatch.Images"/>, so that callers can keep allocation-heavy work and tensor work apart.
    /// </summary>
    public abstract FaceBatch Draw(long step, int batchSize, SplitMix64 rng);

    public virtual void Dispose() { }

    /// <summary>Renders faces into one (N, 3, S, S) tensor in [-1, 1].</summary>
    public static Tensor Render(IReadOnlyList<FaceAttributes> faces, int size, Device device) =>
        ToTensor(RenderBytes(faces, size), faces.Count, size, device);

    /// <summary>Renders faces into (N, S, S, 3) bytes.</summary>
    public static byte[] RenderBytes(IReadOnlyList<FaceAttributes> faces, int size)
    {
        int pixels = size * size * 3;
        var bytes = new byte[faces.Count * pixels];
        // Each face owns its slice of the buffer, so the order of rendering cannot change the bytes. A GPU run of
        // large batches would otherwise wait on one core for its twins. As many workers as libtorch has threads, so
        // that --threads still bounds the cores a run takes.
        // Small batches (tests, held-out sets) stay on one worker.
        var options = new ParallelOptions { MaxDegreeOfParallelism = faces.Count < 16 ? 1 : Math.Max(1, get_num_threads()) };
        Parallel.For(0, faces.Count, options, i => FaceRenderer.RenderInto(faces[i], size, bytes.AsSpan(i * pixels, pixels)));
        return bytes;
    }

    /// <summary>(N, S, S, 3) bytes to an (N, 3, S, S) tensor in [-1, 1] on <paramref name="device"/>.</summary>
    public static Tensor ToTensor(byte[] bytes, int count, int size, Device device)
    {
        using var scope = NewDisposeScope();
        var hwc = tensor(bytes, [count, size, size, 3], ScalarType.Byte).to(device);   // move bytes, not floats
        var images = hwc.permute(0, 3, 1, 2).to(ScalarType.Float32).div_(127.5).sub_(1.0).contiguous();  // (N, 3, S, S)
        return images.MoveToOuterDisposeScope();
    }

    /// <summary>A fixed set of faces drawn from their own stream, for evaluation and probe grids.</summary>
    public static FaceAttributes[] HeldOut(int count, ulong seed)
    {
        var rng = new SplitMix64(seed);
        return Enumerable.Range(0, count).Select(_ => AttributeSampler.Sample(rng)).ToArray();
    }
}

/// <summary>The attributes of a batch's faces, and how to make its (B, 3, S, S) image tensor in [-1, 1].</summary>
internal sealed record FaceBatch(FaceAttributes[] Faces, Func<Device, Tensor> Images);

/// <summary>Fresh random faces rendered for every batch.</summary>
internal sealed class RenderedFaces(int size) : TrainingFaces
{
    public override int ImageSize => size;

    public override string Description => $"rendered on the fly at {size}x{size} (renderer version {FaceRenderer.Version})";

    public override FaceBatch Draw(long step, int batchSize, SplitMix64 rng)
    {
        var faces = new FaceAttributes[batchSize];
        for (int i = 0; i < batchSize; i++) faces[i] = AttributeSampler.Sample(rng);
        var bytes = RenderBytes(faces, size);
        return new FaceBatch(faces, device => ToTensor(bytes, batchSize, size, device));
    }
}

/// <summary>
/// Images of a dataset file, visited epoch by epoch in a fresh shuffled order (the shuffle of epoch e depends only on
/// the seed and e); the captions are drawn anew on every visit, so each epoch pairs an image with other words.
/// </summary>
internal sealed class DatasetFaces : TrainingFaces
{
    private readonly FaceDataset _dataset;
    private readonly ulong _seed;
    private readonly string _path;
    private long _epoch = -1;
    private int[] _order = [];

    public DatasetFaces(string path, ulong seed)
    {
        _dataset = FaceDataset.Load(path);
        _seed = seed;
        _path = path;
        if (_dataset.Count == 0) throw new InvalidDataException($"{path}: the dataset holds no images.");
    }

    public override int ImageSize => _dataset.Size;

    public override string Description =>
        $"{_dataset.Count} images of {_dataset.Size}x{_dataset.Size} (dataset seed {_dataset.Seed}, renderer version {_dataset.RendererVersion}) from {Path.GetFileName(_path)}";

    public override FaceBatch Draw(long step, int batchSize, SplitMix64 rng)
    {
        var indices = new int[batchSize];
        long first = step * batchSize;
        for (int i = 0; i < batchSize; i++)
        {
            long global = first + i;
            long epoch = global / _dataset.Count;
            if (epoch != _epoch) Shuffle(epoch);
            indices[i] = _order[global % _dataset.Count];
        }
        var faces = indices.Select(_dataset.Attributes).ToArray();
        return new FaceBatch(faces, device => _dataset.Images(indices, device));
    }

    private void Shuffle(long epoch)
    {
        var rng = new SplitMix64(_seed ^ (0xD1B54A32D192ED03UL * (ulong)(epoch + 1)));
        _order = Enumerable.Range(0, _dataset.Count).ToArray();
        for (int i = _order.Length - 1; i > 0; i--)
        {
            int j = (int)(rng.NextUInt64() % (ulong)(i + 1));
            (_order[i], _order[j]) = (_order[j], _order[i]);
        }
        _epoch = epoch;
    }

    public override void Dispose() => ((object)_dataset as IDisposable)?.Dispose();   // datasets that hold native tensors are disposable
}
