using TorchSharp;
using static TorchSharp.torch;

namespace PromptFaces.Generation.Checkpoints;

/// <summary>
/// Loads a state dict into a module all-or-nothing: every key the module expects must be present with its exact shape,
/// and no unknown key may remain (except ones the caller names as ignorable, such as Hugging Face's position_ids
/// buffers). Every problem is collected and reported at once, before any value is copied, so a bad file never leaves
/// a half-loaded model behind.
/// </summary>
public static class StrictStateDict
{
    public static void Load(nn.Module module, IReadOnlyDictionary<string, RawTensor> source, string filePath,
        Func<string, bool>? isIgnorable = null)
    {
        var expected = module.state_dict();
        var problems = new List<string>();
        string? firstKey = null;
        foreach (var (key, target) in expected)
        {
            if (!source.TryGetValue(key, out var raw))
            {
                problems.Add($"missing key '{key}' (expected shape {RawTensor.FormatShape(target.shape)})");
                firstKey ??= key;
            }
            else if (!raw.Shape.SequenceEqual(target.shape))
            {
                problems.Add($"key '{key}': expected shape {RawTensor.FormatShape(target.shape)}, the file has {raw.ShapeText}");
                firstKey ??= key;
            }
            else if (IsFloating(target.dtype) != IsFloating(TensorConversion.ToScalarType(raw.DType)))
            {
                problems.Add($"key '{key}': expected a {target.dtype} tensor, the file has {raw.DType}");
                firstKey ??= key;
            }
        }
        foreach (var key in source.Keys)
        {
            if (!expected.ContainsKey(key) && !(isIgnorable?.Invoke(key) ?? false))
            {
                problems.Add($"unexpected key '{key}' (shape {source[key].ShapeText}) that the model does not have");
                firstKey ??= key;
            }
        }
        if (problems.Count > 0)
        {
            const int shown = 12;
            var list = string.Join("; ", problems.Take(shown)) + (problems.Count > shown ? $"; and {problems.Count - shown} more" : "");
            throw new CheckpointException(filePath,
                $"does not fit the {module.GetType().Name} configuration: {list}. Check that the configuration (preset or config.json) matches the checkpoint.",
                firstKey);
        }

        using var noGrad = no_grad();
        foreach (var (key, target) in expected)
        {
            using var value = TensorConversion.ToTensor(source[key]);
            target.copy_(value.to(target.dtype));
        }
    }

    /// <summary>The module's state dict as checkpoint tensors, in the module's order.</summary>
    public static List<KeyValuePair<string, RawTensor>> ToRaw(nn.Module module) =>
        module.state_dict().Select(kv => new KeyValuePair<string, RawTensor>(kv.Key, TensorConversion.ToRaw(kv.Value))).ToList();

    private static bool IsFloating(ScalarType t) =>
        t is ScalarType.Float16 or ScalarType.BFloat16 or ScalarType.Float32 or ScalarType.Float64;
}
