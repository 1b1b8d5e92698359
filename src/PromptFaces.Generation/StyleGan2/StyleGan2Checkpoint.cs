using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using PromptFaces.Generation.Checkpoints;
using static TorchSharp.torch;

namespace PromptFaces.Generation.StyleGan2;

/// <summary>
/// Reads generator checkpoints in the formats people have: NVIDIA's network pickles (<c>.pkl</c>) and safetensors
/// (the project's own, or converted ones). The architecture comes from the pickle's constructor arguments, from the
/// safetensors metadata, or, failing both, is inferred from the tensor shapes.
/// </summary>
public static partial class StyleGan2Checkpoint
{
    /// <summary>The safetensors metadata key that holds NVIDIA's Generator kwargs as JSON.</summary>
    public const string ConfigMetadataKey = "stylegan2_kwargs";

    public sealed record Contents(StyleGan2Config Config, IReadOnlyDictionary<string, RawTensor> Tensors, string Format, IReadOnlyList<string> Notes);

    /// <summary>Reads and checks a checkpoint without building a network.</summary>
    public static Contents Read(string path)
    {
        if (Directory.Exists(path))
            throw new CheckpointException(path, "is a folder; a StyleGAN2 generator is one file (.pkl or .safetensors).");
        if (!File.Exists(path))
            throw new CheckpointException(path, "does not exist. Check the path (relative paths start from the current folder).");
        var kind = Sniff(path);
        switch (kind)
        {
            case "pickle":
            {
                var pkl = NvidiaPickleReader.Read(path);
                var config = ConfigFrom(() => StyleGan2Config.FromKwargs(pkl.InitKwargs, $"{path} (G_ema init_kwargs)"), path);
                return new Contents(config, pkl.StateDict, "NVIDIA network pickle (G_ema)", Array.Empty<string>());
            }
            case "safetensors":
            {
                var (tensors, metadata) = SafeTensorsFile.Read(path);
                var notes = new List<string>();
                StyleGan2Config config;
                if (metadata.TryGetValue(ConfigMetadataKey, out var json))
                {
                    config = ConfigFrom(() =>
                    {
                        var node = JsonNode.Parse(json) as JsonObject ?? throw new InvalidDataException("not a JSON object");
                        return StyleGan2Config.FromKwargs(node, $"{path} (metadata '{ConfigMetadataKey}')");
                    }, path);
                }
                else
                {
                    config = InferConfig(tensors, path);
                    notes.Add($"No '{ConfigMetadataKey}' metadata: the architecture was inferred from the tensor shapes (conv_clamp assumed {config.ConvClamp?.ToString() ?? "none"}).");
                }
                return new Contents(config, tensors, "safetensors", notes);
            }
            case "zip":
                throw new CheckpointException(path, "is a PyTorch zip checkpoint (torch.save). Only NVIDIA's network pickles (.pkl) and safetensors are read; export the generator's state_dict with safetensors, or use the official .pkl.");
            default:
                throw new CheckpointException(path, "is not a generator checkpoint: it is neither an NVIDIA network pickle (.pkl) nor a safetensors file.");
        }
    }

    /// <summary>Builds the generator on <paramref name="device"/> and loads the checkpoint into it strictly.</summary>
    public static StyleGan2Generator Load(string path, Device? device = null)
    {
        var contents = Read(path);
        var generator = new StyleGan2Generator(contents.Config, device);
        try
        {
            generator.LoadStateDict(contents.Tensors, path);
        }
        catch
        {
            generator.Dispose();
            throw;
        }
        return generator;
    }

    /// <summary>Writes the generator as safetensors, with its configuration in the metadata so it reloads exactly.</summary>
    public static void Save(StyleGan2Generator generator, string path, IReadOnlyDictionary<string, string>? extraMetadata = null) =>
        Save(StrictStateDict.ToRaw(generator), generator.Config, path, extraMetadata);

    public static void Save(IEnumerable<KeyValuePair<string, RawTensor>> tensors, StyleGan2Config config, string path, IReadOnlyDictionary<string, string>? extraMetadata = null)
    {
        var metadata = new Dictionary<string, string>(extraMetadata ?? new Dictionary<string, string>())
        {
            [ConfigMetadataKey] = config.ToKwargs().ToJsonString(),
            ["format"] = "pt",
        };
        SafeTensorsFile.Write(path, tensors, metadata);
    }

    private static StyleGan2Config ConfigFrom(Func<StyleGan2Config> read, string path)
    {
        try { return read(); }
        catch (Exception e) when (e is InvalidDataException or JsonException or FormatException or InvalidOperationException)
        {
            throw new CheckpointException(path, $"has a generator configuration that cannot be used: {e.Message}", inner: e);
        }
    }

    private static string Sniff(string path)
    {
        Span<byte> head = stackalloc byte[4];
        using (var f = File.OpenRead(path))
        {
            if (f.Read(head) < 4) return "unknown";
        }
        if (head[0] == 0x80 && head[1] >= 2 && head[1] <= 5) return "pickle";
        if (head[0] == (byte)'P' && head[1] == (byte)'K') return "zip";
        return SafeTensorsFile.LooksLikeSafeTensors(path) ? "safetensors" : "unknown";
    }

    [GeneratedRegex(@"^mapping\.fc(\d+)\.weight$")]
    private static partial Regex MappingLayerKey();

    [GeneratedRegex(@"^synthesis\.b(\d+)\.conv1\.weight$")]
    private static partial Regex ConvKey();

    /// <summary>
    /// Recovers the architecture from tensor shapes alone: z and w sizes from the mapping layers, the resolution from the
    /// largest block, channel_max from the 4x4 block and channel_base from the first block with fewer channels.
    /// </summary>
    public static StyleGan2Config InferConfig(IReadOnlyDictionary<string, RawTensor> tensors, string path)
    {
        RawTensor Need(string key) => tensors.TryGetValue(key, out var t) ? t
            : throw new CheckpointException(path, $"lacks '{key}', so it is not a StyleGAN2 generator state dict (expected NVIDIA's names such as mapping.fc0.weight and synthesis.b4.const).", key);
        var fc0 = Need("mapping.fc0.weight");
        var mappingLayers = tensors.Keys.Select(k => MappingLayerKey().Match(k)).Where(m => m.Success).Select(m => int.Parse(m.Groups[1].Value)).DefaultIfEmpty(-1).Max() + 1;
        var channelsByRes = tensors.Keys.Select(k => ConvKey().Match(k)).Where(m => m.Success)
            .Select(m => int.Parse(m.Groups[1].Value)).OrderBy(r => r)
            .ToDictionary(r => r, r => (int)tensors[$"synthesis.b{r}.conv1.weight"].Shape[0]);
        if (channelsByRes.Count == 0 || !channelsByRes.ContainsKey(4))
            throw new CheckpointException(path, "has no synthesis blocks (synthesis.b4.conv1.weight missing); it is not a StyleGAN2 generator.", "synthesis.b4.conv1.weight");
        var resolution = channelsByRes.Keys.Max();
        var channelMax = channelsByRes[4];
        var firstSmaller = channelsByRes.FirstOrDefault(kv => kv.Value < channelMax);
        var channelBase = firstSmaller.Key == 0 ? channelMax * resolution : firstSmaller.Value * firstSmaller.Key;
        var rgb = Need($"synthesis.b{resolution}.torgb.weight");
        var config = new StyleGan2Config
        {
            ZDim = (int)fc0.Shape[1],
            WDim = (int)Need("mapping.w_avg").Shape[0],
            MappingLayers = mappingLayers,
            Resolution = resolution,
            ImageChannels = (int)rgb.Shape[0],
            ChannelBase = channelBase,
            ChannelMax = channelMax,
        };
        try { config.Validate(path); }
        catch (InvalidDataException e) { throw new CheckpointException(path, $"has shapes that give no valid generator: {e.Message}", inner: e); }
        return config;
    }
}
