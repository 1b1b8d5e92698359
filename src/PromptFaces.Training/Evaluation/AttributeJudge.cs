using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using PromptFaces.Generation.Checkpoints;
using PromptFaces.Training.Data;
using PromptFaces.Training.Faces;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace PromptFaces.Training.Evaluation;

/// <summary>The shape of an <see cref="AttributeJudge"/>; stored as JSON in its checkpoint's metadata.</summary>
public sealed record AttributeJudgeConfig
{
    [JsonPropertyName("input_size")] public int InputSize { get; init; } = 64;    // images are resized to this side first
    [JsonPropertyName("width")] public int Width { get; init; } = 32;             // channels of the first stage; then 2x, 3x, 4x (at least 16)
    [JsonPropertyName("feature_dim")] public int FeatureDim { get; init; } = 256; // the penultimate embedding: Features, Fréchet distance

    /// <summary>Four stride-2 stages take the input down to this side before the embedding layer.</summary>
    [JsonIgnore] public int FinalSide => InputSize / 16;

    /// <summary>Channels of the full-resolution stem: half the first stage's, but never under 16 (see <see cref="Validate"/>).</summary>
    [JsonIgnore] public int StemChannels => Math.Max(16, Width / 2);

    /// <summary>The first problem with the values, naming <paramref name="source"/>, or nothing.</summary>
    public void Validate(string source)
    {
        if (InputSize < 32 || InputSize > 512 || InputSize % 16 != 0)
            throw new InvalidDataException($"{source}: 'input_size' is {InputSize}; it must be a multiple of 16 from 32 to 512.");
        // Not narrower: libtorch 2.x's multi-threaded CPU convolutions return wrong values, even NaN, for layers of 8 or
        // fewer channels on some CPUs (seen on AMD EPYC with 2 threads); 16 and more are exact.
        if (Width < 16 || Width > 512) throw new InvalidDataException($"{source}: 'width' is {Width}; it must be from 16 to 512.");
        if (FeatureDim < 8 || FeatureDim > 4096) throw new InvalidDataException($"{source}: 'feature_dim' is {FeatureDim}; it must be from 8 to 4096.");
    }

    public string ToJson() => JsonSerializer.Serialize(this);

    public static AttributeJudgeConfig FromJson(string json, string source)
    {
        AttributeJudgeConfig? config;
        try { config = JsonSerializer.Deserialize<AttributeJudgeConfig>(json); }
        catch (JsonException e) { throw new InvalidDataException($"{source}: the judge configuration is not valid JSON ({e.Message}).", e); }
        if (config is null) throw new InvalidDataException($"{source}: the judge configuration is empty.");
        config.Validate(source);
        return config;
    }
}

/// <summary>3x3 convolution → batch norm → ReLU; the judge's only kind of layer.</summary>
public sealed class ConvBnRelu : nn.Module<Tensor, Tensor>
{
    private readonly Conv2d conv;
    private readonly BatchNorm2d norm;

    public ConvBnRelu(
        int inChannels,
        int outChannels,
        int stride,         // 2 halves the side
        Device? device = null)
        : base(nameof(ConvBnRelu))
    {
        conv = nn.Conv2d(inChannels, outChannels, 3, stride: stride, padding: 1, bias: false, device: device);
        norm = nn.BatchNorm2d(outChannels, device: device);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x) => F.relu(norm.call(conv.call(x)));
}

/// <summary>
/// The evaluation's referee: a small CNN, deliberately not CLIP, trained on renders with their true labels, with one
/// classification head per attribute of <see cref="FaceAttributes.Schema"/>. Judging with an independent network keeps
/// the evaluation honest: a face CLIP was optimised to like can fool CLIP, but not a model it never saw.
/// </summary>
/// <remarks>
/// Layout: a stem at full resolution (irises are a few pixels wide at 64x64, so nothing is thrown away before the first
/// layer), four stride-2 stages, a flatten (position matters: eyes versus background corners) and a 256-d embedding
/// shared by all heads. The embedding is also the feature space of the evaluation's Fréchet distance, like Inception's
/// pool features in FID, but trained on this domain.
/// </remarks>
public sealed class AttributeJudge : nn.Module<Tensor, Tensor>
{
    /// <summary>The value of the checkpoint's "format" metadata entry, which tells a judge from other safetensors files.</summary>
    public const string FormatName = "promptfaces-judge";

    private readonly ConvBnRelu stem;
    private readonly ModuleList<ConvBnRelu> stages;
    private readonly Linear embed;
    private readonly ModuleList<Linear> heads;    // in schema order

    public AttributeJudgeConfig Config { get; }
    public Device Device { get; }

    /// <summary>The <see cref="FaceRenderer.Version"/> whose renders the judge learned from (a loaded judge's metadata;
    /// the current version for a new one). A judge only reads faces in the style it was trained on.</summary>
    public int RendererVersion { get; private set; } = FaceRenderer.Version;

    /// <summary>Number of classes per head, in <see cref="FaceAttributes.Schema"/> order.</summary>
    public IReadOnlyList<int> Classes { get; } = FaceAttributes.Schema.Select(s => s.Classes).ToArray();

    /// <summary>A randomly initialised judge built directly on <paramref name="device"/> (CPU when null).</summary>
    public AttributeJudge(AttributeJudgeConfig config, Device? device = null) : base(nameof(AttributeJudge))
    {
        config.Validate("the judge configuration");
        Config = config;
        Device = device ?? CPU;
        int w = config.Width;
        stem = new ConvBnRelu(3, config.StemChannels, stride: 1, Device);
        var widths = new[] { w, 2 * w, 3 * w, 4 * w };
        var layers = new List<ConvBnRelu>();
        int c = config.StemChannels;
        foreach (var width in widths)
        {
            layers.Add(new ConvBnRelu(c, width, stride: 2, Device));   // halves the side
            layers.Add(new ConvBnRelu(width, width, stride: 1, Device));
            c = width;
        }
        stages = nn.ModuleList(layers.ToArray());
        embed = nn.Linear(c * config.FinalSide * config.FinalSide, config.FeatureDim, device: Device);
        heads = nn.ModuleList(Classes.Select(k => nn.Linear(config.FeatureDim, k, device: Device)).ToArray());
        RegisterComponents();
    }

    /// <summary>(B, 3, H, W) in [−1, 1], any square size → (B, 3, S, S) at the judge's input size.</summary>
    public Tensor Resize(Tensor images)
    {
        if (images.dim() != 4 || images.shape[1] != 3)
            throw new ArgumentException($"The judge takes (B, 3, H, W) images; got shape [{string.Join(", ", images.shape)}].", nameof(images));
        long side = Config.InputSize;
        if (images.shape[2] == side && images.shape[3] == side) return images.alias();
        // Area averaging for downscaling (no aliasing), bilinear for upscaling.
        var mode = images.shape[2] > side ? InterpolationMode.Area : InterpolationMode.Bilinear;
        return F.interpolate(images, new[] { side, side }, mode: mode, align_corners: mode == InterpolationMode.Area ? null : false);
    }

    /// <summary>The penultimate embedding: (B, 3, H, W) in [−1, 1] → (B, FeatureDim).</summary>
    public Tensor Features(Tensor images)
    {
        using var scope = NewDisposeScope();
        var x = stem.call(Resize(images.to(Device)));                          // (B, stem, S, S)
        foreach (var layer in stages) x = layer.call(x);                       // (B, 4w, S/16, S/16)
        return F.relu(embed.call(x.flatten(1))).MoveToOuterDisposeScope();     // (B, FeatureDim)
    }

    /// <summary>All heads' logits side by side: (B, 3, H, W) → (B, ΣClasses), in schema order.</summary>
    public override Tensor forward(Tensor images)
    {
        using var scope = NewDisposeScope();
        var features = Features(images);
        return cat(heads.Select(h => h.call(features)).ToArray(), 1).MoveToOuterDisposeScope();
    }

    /// <summary>Splits <see cref="forward"/>'s output into one (B, Classes[a]) view per attribute.</summary>
    public Tensor[] SplitLogits(Tensor logits) =>
        logits.split(Classes.Select(k => (long)k).ToArray(), 1);

    /// <summary>The judged class of every attribute: (B, 3, H, W) → int64 (B, A). Runs without gradients.</summary>
    public Tensor Predict(Tensor images)
    {
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        var logits = SplitLogits(forward(images));
        return stack(logits.Select(l => l.argmax(1)).ToArray(), 1).MoveToOuterDisposeScope();
    }

    /// <summary>Sets every weight's gradient flag off and switches to evaluation mode (batch norm running statistics).</summary>
    public AttributeJudge Freeze()
    {
        foreach (var p in parameters()) p.requires_grad = false;
        eval();
        return this;
    }

    public long ParameterCount => parameters().Sum(p => p.numel());

    /// <summary>
    /// Writes the weights (and batch-norm statistics) as safetensors, with the configuration, the attribute schema
    /// and any <paramref name="extraMetadata"/> (such as held-out accuracy) in the metadata.
    /// </summary>
    public void Save(string path, IReadOnlyDictionary<string, string>? extraMetadata = null)
    {
        var metadata = new Dictionary<string, string>
        {
            ["format"] = FormatName,
            ["config"] = Config.ToJson(),
            ["schema"] = FaceDataset.SchemaJson(),
            ["renderer_version"] = RendererVersion.ToString(CultureInfo.InvariantCulture),
        };
        if (extraMetadata is not null)
            foreach (var (k, v) in extraMetadata) metadata.TryAdd(k, v);
        SafeTensorsFile.Write(path, StrictStateDict.ToRaw(this), metadata);
    }

    /// <summary>
    /// Loads a judge written by <see cref="Save"/>, strictly, onto <paramref name="device"/>, frozen and in evaluation
    /// mode. A missing file, another kind of safetensors file, a judge of another attribute schema or a mismatched
    /// tensor fails with an error that names the file and what to do.
    /// </summary>
    public static AttributeJudge Load(string path, Device? device = null) => Load(path, device, out _);

    /// <inheritdoc cref="Load(string, Device?)"/>
    /// <param name="metadata">the checkpoint's metadata, for what the trainer recorded (held-out accuracy, steps).</param>
    public static AttributeJudge Load(string path, Device? device, out IReadOnlyDictionary<string, string> metadata)
    {
        ArgumentNullException.ThrowIfNull(path);
        const string remedy = "Train one with: promptfaces train judge --out judge.safetensors";
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: no such judge checkpoint. {remedy}", path);
        var (tensors, meta) = SafeTensorsFile.Read(path);
        if (!meta.TryGetValue("format", out var format) || format != FormatName)
            throw new InvalidDataException(
                $"{path} is a safetensors file but not an attribute judge (its metadata 'format' is {(format is null ? "missing" : $"'{format}'")}, expected '{FormatName}'; " +
                $"it holds {string.Join(", ", tensors.Keys.Take(3).Select(k => $"'{k}'"))}{(tensors.Count > 3 ? ", ..." : "")}). {remedy}");
        if (!meta.TryGetValue("schema", out var schema) || schema != FaceDataset.SchemaJson())
            throw new InvalidDataException($"{path}: the judge was trained for another attribute schema than this program's (metadata 'schema' differs). Retrain it. {remedy}");
        if (!meta.TryGetValue("config", out var configJson))
            throw new InvalidDataException($"{path}: the metadata has no 'config' entry; the file is not a complete judge checkpoint. {remedy}");
        var config = AttributeJudgeConfig.FromJson(configJson, path);
        var judge = new AttributeJudge(config, device);
        try
        {
            StrictStateDict.Load(judge, tensors, path);
        }
        catch
        {
            judge.Dispose();
            throw;
        }
        metadata = meta;
        judge.RendererVersion = meta.TryGetValue("renderer_version", out var v) && int.TryParse(v, NumberStyles.None, CultureInfo.InvariantCulture, out var version) ? version : 0;
        return judge.Freeze();
    }
}
