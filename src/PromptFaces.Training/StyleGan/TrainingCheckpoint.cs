using PromptFaces.Generation.Checkpoints;
using static TorchSharp.torch;

namespace PromptFaces.Training.StyleGan;

/// <summary>
/// A training checkpoint: several modules' state dicts and optimiser moments in one safetensors file, each under its
/// own key prefix ("G.", "G_ema.", "D.", "opt_G.", "opt_D."), with the run's bookkeeping in the metadata. Loading
/// is strict per prefix, like every other checkpoint in the project.
/// </summary>
internal sealed class TrainingCheckpoint
{
    private readonly string _path;
    private readonly IReadOnlyDictionary<string, RawTensor> _tensors;
    private readonly IReadOnlyDictionary<string, string> _metadata;

    private TrainingCheckpoint(string path, IReadOnlyDictionary<string, RawTensor> tensors, IReadOnlyDictionary<string, string> metadata)
    {
        _path = path;
        _tensors = tensors;
        _metadata = metadata;
    }

    /// <summary>Writes to a temporary file and renames it, so an interrupted save never replaces a good checkpoint with half a file.</summary>
    public static void Write(string path, IEnumerable<KeyValuePair<string, Tensor>> tensors, IReadOnlyDictionary<string, string> metadata)
    {
        var tmp = path + ".tmp";
        var raw = tensors.Select(kv => new KeyValuePair<string, RawTensor>(kv.Key, TensorConversion.ToRaw(kv.Value))).ToList();
        SafeTensorsFile.Write(tmp, raw, new Dictionary<string, string>(metadata) { ["format"] = "pt" });
        File.Move(tmp, path, overwrite: true);
    }

    public static TrainingCheckpoint Read(string path)
    {
        if (Directory.Exists(path)) path = System.IO.Path.Combine(path, StyleGanTrainer.CheckpointFile);
        if (!File.Exists(path))
            throw new CheckpointException(path, "does not exist. Pass the checkpoint.safetensors of an earlier run (or its output folder).");
        var (tensors, metadata) = SafeTensorsFile.Read(path);
        return new TrainingCheckpoint(path, tensors, metadata);
    }

    public string Path => _path;

    public bool HasMetadata(string key) => _metadata.ContainsKey(key);

    public string Metadata(string key) =>
        _metadata.TryGetValue(key, out var value) ? value
            : throw new CheckpointException(_path, $"has no '{key}' metadata; it is not a PromptFaces StyleGAN2 training checkpoint.");

    /// <summary>Loads the tensors under <paramref name="prefix"/> into <paramref name="module"/>, strictly.</summary>
    public void LoadModule(string prefix, nn.Module module)
    {
        var subset = _tensors.Where(kv => kv.Key.StartsWith(prefix, StringComparison.Ordinal))
            .ToDictionary(kv => kv.Key[prefix.Length..], kv => kv.Value);
        StrictStateDict.Load(module, subset, $"{_path} ({prefix.TrimEnd('.')})");
    }

    public void LoadOptimiser(string prefix, NamedAdam optimiser, long stepCount)
    {
        optimiser.LoadState(prefix, key =>
        {
            if (!_tensors.TryGetValue(key, out var raw))
                throw new CheckpointException(_path, $"is missing the optimiser state '{key}'.", key);
            return TensorConversion.ToTensor(raw);
        });
        optimiser.StepCount = stepCount;
    }
}
