using System.Text.Json;
using System.Text.Json.Nodes;

namespace PromptFaces.Generation.StyleGan2;

/// <summary>
/// The constructor arguments of NVIDIA's stylegan2-ada-pytorch <c>Generator</c> that decide its shapes. Names follow
/// NVIDIA's keyword arguments so that a pickle's <c>init_kwargs</c> or a JSON config maps onto it one to one.
/// </summary>
public sealed record StyleGan2Config
{
    public int ZDim { get; init; } = 512;                 // latent z size
    public int WDim { get; init; } = 512;                 // intermediate latent w size
    public int Resolution { get; init; } = 1024;          // output image size, a power of two from 4 to 1024
    public int ImageChannels { get; init; } = 3;          // RGB
    public int MappingLayers { get; init; } = 8;          // fully-connected layers in the mapping network
    public double MappingLrMultiplier { get; init; } = 0.01; // the mapping network's learning-rate multiplier (a weight gain at run time)
    public int ChannelBase { get; init; } = 32768;        // channels at resolution r are min(channel_base / r, channel_max)
    public int ChannelMax { get; init; } = 512;
    public int NumFp16Res { get; init; } = 4;             // recorded for compatibility; this implementation computes in float32
    public double? ConvClamp { get; init; } = 256;        // activations are clamped to +-conv_clamp; null disables
    public int CDim { get; init; }                         // conditioning labels; only 0 is supported

    public int ResolutionLog2 => (int)Math.Log2(Resolution);

    public IReadOnlyList<int> BlockResolutions => Enumerable.Range(2, ResolutionLog2 - 1).Select(i => 1 << i).ToArray();

    public int Channels(int resolution) => Math.Min(ChannelBase / resolution, ChannelMax);

    /// <summary>One w per convolution plus the final ToRGB: 2·log2(res) − 2.</summary>
    public int NumWs => 2 * ResolutionLog2 - 2;

    public static readonly StyleGan2Config ConfigF1024 = new() { Resolution = 1024, ChannelBase = 32768 };
    public static readonly StyleGan2Config Res512 = new() { Resolution = 512, ChannelBase = 32768 };
    public static readonly StyleGan2Config Paper256 = new() { Resolution = 256, ChannelBase = 16384 };

    public static IReadOnlyDictionary<string, StyleGan2Config> Presets { get; } = new Dictionary<string, StyleGan2Config>
    {
        ["stylegan2-config-f-1024"] = ConfigF1024,
        ["stylegan2-512"] = Res512,
        ["stylegan2-paper256"] = Paper256,
    };

    public static StyleGan2Config FromPreset(string name) =>
        Presets.TryGetValue(name, out var c) ? c
            : throw new ArgumentException($"Unknown StyleGAN2 preset '{name}'. Known presets: {string.Join(", ", Presets.Keys)}.");

    /// <summary>Checks the values and explains the first problem found; <paramref name="source"/> names where they came from.</summary>
    public void Validate(string source)
    {
        void Fail(string key, string why) => throw new InvalidDataException($"{source}: '{key}' {why}");
        if (Resolution < 4 || Resolution > 1024 || (Resolution & (Resolution - 1)) != 0)
            Fail("img_resolution", $"is {Resolution}; it must be a power of two from 4 to 1024.");
        if (ZDim <= 0) Fail("z_dim", $"is {ZDim}; it must be positive.");
        if (WDim <= 0) Fail("w_dim", $"is {WDim}; it must be positive.");
        if (MappingLayers <= 0) Fail("mapping_kwargs.num_layers", $"is {MappingLayers}; it must be positive.");
        if (ImageChannels <= 0) Fail("img_channels", $"is {ImageChannels}; it must be positive.");
        if (ChannelBase <= 0 || ChannelMax <= 0) Fail("synthesis_kwargs.channel_base", "and channel_max must be positive.");
        if (Channels(Resolution) < 1) Fail("synthesis_kwargs.channel_base", $"is {ChannelBase}, which leaves no channels at {Resolution}x{Resolution}.");
        if (CDim != 0) Fail("c_dim", $"is {CDim}; conditional generators are not supported (text guidance replaces class labels).");
    }

    /// <summary>Reads NVIDIA's Generator keyword arguments (as in a pickle's init_kwargs or the project's JSON).</summary>
    public static StyleGan2Config FromKwargs(JsonObject kwargs, string source)
    {
        int Int(JsonObject o, string key, int fallback) => o[key] is JsonNode n ? ReadInt(n, key) : fallback;
        int ReadInt(JsonNode n, string key)
        {
            try { return n.GetValue<int>(); }
            catch (Exception e) when (e is FormatException or InvalidOperationException)
            { throw new InvalidDataException($"{source}: '{key}' must be an integer, found {n.ToJsonString()}.", e); }
        }
        var d = new StyleGan2Config();
        var mapping = kwargs["mapping_kwargs"] as JsonObject ?? new JsonObject();
        var synthesis = kwargs["synthesis_kwargs"] as JsonObject ?? new JsonObject();
        double? clamp = d.ConvClamp;
        if (synthesis.ContainsKey("conv_clamp"))
            clamp = synthesis["conv_clamp"] is JsonNode cn ? cn.GetValue<double>() : null;
        var config = new StyleGan2Config
        {
            ZDim = Int(kwargs, "z_dim", d.ZDim),
            WDim = Int(kwargs, "w_dim", d.WDim),
            CDim = Int(kwargs, "c_dim", 0),
            Resolution = Int(kwargs, "img_resolution", d.Resolution),
            ImageChannels = Int(kwargs, "img_channels", d.ImageChannels),
            MappingLayers = Int(mapping, "num_layers", d.MappingLayers),
            MappingLrMultiplier = mapping["lr_multiplier"]?.GetValue<double>() ?? d.MappingLrMultiplier,
            ChannelBase = Int(synthesis, "channel_base", d.ChannelBase),
            ChannelMax = Int(synthesis, "channel_max", d.ChannelMax),
            NumFp16Res = Int(synthesis, "num_fp16_res", d.NumFp16Res),
            ConvClamp = clamp,
        };
        config.Validate(source);
        return config;
    }

    /// <summary>Reads a JSON file holding NVIDIA's kwargs, either at the top level or under "kwargs".</summary>
    public static StyleGan2Config FromJsonFile(string path)
    {
        JsonNode? root;
        try { root = JsonNode.Parse(File.ReadAllText(path)); }
        catch (JsonException e) { throw new InvalidDataException($"{path}: not valid JSON ({e.Message}).", e); }
        if (root is not JsonObject obj) throw new InvalidDataException($"{path}: expected a JSON object with the generator's kwargs.");
        return FromKwargs(obj["kwargs"] as JsonObject ?? obj, path);
    }

    public JsonObject ToKwargs() => new()
    {
        ["z_dim"] = ZDim,
        ["c_dim"] = CDim,
        ["w_dim"] = WDim,
        ["img_resolution"] = Resolution,
        ["img_channels"] = ImageChannels,
        ["mapping_kwargs"] = new JsonObject { ["num_layers"] = MappingLayers, ["lr_multiplier"] = MappingLrMultiplier },
        ["synthesis_kwargs"] = new JsonObject
        {
            ["channel_base"] = ChannelBase,
            ["channel_max"] = ChannelMax,
            ["num_fp16_res"] = NumFp16Res,
            ["conv_clamp"] = ConvClamp is double c ? JsonValue.Create(c) : null,
        },
    };

    public string ToJson() => ToKwargs().ToJsonString(new JsonSerializerOptions { WriteIndented = true });
}
