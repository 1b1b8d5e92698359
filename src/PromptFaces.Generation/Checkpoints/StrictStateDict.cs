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
        var problems = Check(module, source, isIgnorable);
        if (problems.Count > 0)
        {
            const int shown = 12;
            var list = string.Join("; ", problems.Take(shown).Select(p => p.Message)) + (problems.Count > shown ? $"; and {problems.Count - shown} more" : "");
            throw new CheckpointException(filePath,
                $"does not fit the {module.GetType().Name} configuration: {list}. Check that the configuration (preset or config.json) matches the checkpoint.",
                problems[0].Key);
        }

        var expected = module.state_dict();
        using var noGrad = no_grad();
        foreach (var (key, target) in expected)
        {
            using var value = TensorConversion.ToTensor(source[key]);
            target.copy_(value.to(target.dtype));
        }
    }

    /// <summary>One mismatch between a checkpoint and a module.</summary>
    public sealed record Problem(string Key, string Message);

    /// <summary>Every missing, unexpected or mis-shaped key, without changing the module.</summary>
    public static List<Problem> Check(nn.Module module, IReadOnlyDictionary<string, RawTensor> source, Func<string, bool>? isIgnorable = null)
    {
        var expected = module.state_dict();
        var problems = new List<Problem>();
        foreach (var (key, target) in expected)
        {
            if (!source.TryGetValue(key, out var raw))
                problems.Add(new(key, $"missing key '{key}' (expected shape {RawTensor.FormatShape(target.shape)})"));
            else if (!raw.Shape.SequenceEqual(target.shape))
                problems.Add(new(key, $"key '{key}': expected shape {RawTensor.FormatShape(target.shape)}, the file has {raw.ShapeText}"));
            else if (IsFloating(target.dtype) != IsFloating(TensorConversion.ToScalarType(raw.DType)))
                problems.Add(new(key, $"key '{key}': expected a {target.dtype} tensor, the file has {raw.DType}"));
        }
        foreach (var key in source.Keys)
        {
            if (!expected.ContainsKey(key) && !(isIgnorable?.Invoke(key) ?? false))
                problems.Add(new(key, $"unexpected key '{key}' (shape {source[key].ShapeText}) that the model does not have"));
        }
        return problems;
    }

    /// <summary>The module's state dict as checkpoint tensors, in the module's order.</summary>
    public static List<KeyValuePair<string, RawTensor>> ToRaw(nn.Module module) =>
        module.state_dict().Select(kv => new KeyValuePair<string, RawTensor>(kv.Key, TensorConversion.ToRaw(kv.Value))).ToList();

    private static bool IsFloating(ScalarType t) =>
        t is ScalarType.Float16 or ScalarType.BFloat16 or ScalarType.Float32 or ScalarType.Float64;
}
