using System.Text.Json;
using PromptFaces.Generation.Checkpoints;
using PromptFaces.Generation.Clip;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace PromptFaces.Generation.Tests.Clip;

/// <summary>
/// The CLIP port against Hugging Face transformers: state-dict names and shapes of the released models, the tiny
/// model's outputs and input gradient, and strict loading.
/// </summary>
public sealed class ClipParityTests
{
    private const string SkipReason = "CLIP fixtures (../shared/fixtures/clip) are not on this machine.";

    private static readonly Device Meta = new(DeviceType.META);

    // ---------------------------------------------------------------- names and shapes of the released models

    [Theory]
    [InlineData("clip-vit-base-patch32")]
    [InlineData("clip-vit-large-patch14")]
    public void StateDictParity_PresetAndConfigMatchOfficialShapes(string name)
    {
        Assert.SkipWhen(Fixtures.Root is null, SkipReason);
        using var doc = JsonDocument.Parse(File.ReadAllText(Fixtures.Path("clip", "clip_official_shapes.json")));
        var entry = doc.RootElement.GetProperty("models").GetProperty(name);
        var expected = entry.GetProperty("state_dict_shapes").EnumerateObject()
            .Where(p => !p.Name.EndsWith("position_ids", StringComparison.Ordinal))
            .ToDictionary(p => p.Name, p => Shape(p.Value.EnumerateArray().Select(x => x.GetInt64())));

        var preset = name == "clip-vit-base-patch32" ? ClipConfig.VitB32 : ClipConfig.VitL14;
        var fromJson = ClipConfig.Parse(entry.GetProperty("config").GetRawText(), $"{name} config");
        Assert.Equal(preset, fromJson);

        foreach (var config in new[] { preset, fromJson })
        {
            // The meta device records shapes without allocating: ViT-L/14 would otherwise take 1.7 GB.
            using var model = new ClipModel(config, Meta);
            var actual = model.state_dict().ToDictionary(kv => kv.Key, kv => Shape(kv.Value.shape));
            Assert.Equal(expected.Keys.Order(StringComparer.Ordinal), actual.Keys.Order(StringComparer.Ordinal));
            foreach (var (key, shape) in expected)
                Assert.True(shape == actual[key], $"{name} {key}: expected {shape}, built {actual[key]}");
        }
    }

    [Fact]
    public void ConfigParity_EmptyJsonGivesHuggingFaceDefaults()
    {
        var config = ClipConfig.Parse("{}", "empty.json");
        Assert.Equal(ClipConfig.VitB32, config);
        Assert.Equal(49408, config.TextConfig.VocabSize);
        Assert.Equal(77, config.TextConfig.MaxPositionEmbeddings);
        Assert.Equal(7 * 7 + 1, config.VisionConfig.NumPositions);
    }

    [Fact]
    public void ConfigParity_PartialSectionKeepsOtherDefaults()
    {
        var config = ClipConfig.Parse("""{"text_config": {"eos_token_id": 2}, "vision_config": {"patch_size": 16}}""", "partial.json");
        Assert.Equal(2, config.TextConfig.EosTokenId);
        Assert.Equal(512, config.TextConfig.HiddenSize);
        Assert.Equal(16, config.VisionConfig.PatchSize);
        Assert.Equal(197, config.VisionConfig.NumPositions);
    }

    [Theory]
    [InlineData("""{"text_config": {"hidden_act": "swish"}}""", "text_config.hidden_act")]
    [InlineData("""{"vision_config": {"hidden_size": "768"}}""", "vision_config.hidden_size")]
    [InlineData("""{"vision_config": {"num_attention_heads": 5}}""", "vision_config.num_attention_heads")]
    [InlineData("""{"projection_dim": 0}""", "projection_dim")]
    [InlineData("""{"text_config": 3}""", "text_config")]
    public void ConfigParity_BadValueNamesFileAndKey(string json, string key)
    {
        var e = Assert.Throws<InvalidDataException>(() => ClipConfig.Parse(json, "/models/clip/config.json"));
        Assert.Contains("/models/clip/config.json", e.Message);
        Assert.Contains($"'{key}'", e.Message);
    }

    [Fact]
    public void ActivationParity_MatchesDefinitions()
    {
        using var scope = NewDisposeScope();
        var x = torch.linspace(-6, 6, 241, ScalarType.Float64);
        TensorAssert.Close(x * torch.sigmoid(1.702 * x), ClipActivation.Resolve("quick_gelu")(x), 1e-12, "quick_gelu");
        TensorAssert.Close(0.5 * x * (1 + torch.erf(x / Math.Sqrt(2))), ClipActivation.Resolve("gelu")(x), 1e-12, "gelu");
        var tanhGelu = 0.5 * x * (1 + torch.tanh(Math.Sqrt(2 / Math.PI) * (x + 0.044715 * x.pow(3))));
        TensorAssert.Close(tanhGelu, ClipActivation.Resolve("gelu_new")(x), 1e-12, "gelu_new");
        TensorAssert.Close(tanhGelu, ClipActivation.Resolve("gelu_pytorch_tanh")(x), 1e-12, "gelu_pytorch_tanh");
        var e = Assert.Throws<ArgumentException>(() => ClipActivation.Resolve("swish"));
        Assert.Contains("quick_gelu", e.Message);
    }

    // ---------------------------------------------------------------- outputs of the tiny model

    [Fact]
    public void OutputParity_TinyModelMatchesTransformers()
    {
        Assert.SkipWhen(Fixtures.Root is null, SkipReason);
        using var scope = NewDisposeScope();
        var io = ReadIo();
        using var model = ClipModel.FromFolder(Fixtures.Path("clip", "clip_tiny"));
        var ids = io["input_ids"];
        var pixels = io["pixel_values"];
        var report = new List<string>();
        void Check(string key, Tensor actual) => report.Add($"{key} {TensorAssert.Close(io[key], actual, 1e-4, key):G3}");

        using (no_grad())
        {
            var text = model.TextModel.call(ids);
            Check("text_last_hidden_state", text.LastHiddenState);
            Check("text_pooled", text.Pooled);
            var vision = model.VisionModel.call(pixels);
            Check("vision_last_hidden_state", vision.LastHiddenState);
            Check("vision_pooled", vision.Pooled);
            Check("text_features", model.EncodeText(ids));
            Check("image_features", model.EncodeImage(pixels));
            var (perImage, perText) = model.Logits(pixels, ids);
            Check("logits_per_image", perImage);
            Assert.True(perText.t().eq(perImage).all().item<bool>(), "logits_per_text must be the transpose of logits_per_image");
        }

        // The latent optimiser back-propagates a cosine loss through the image tower to the pixels.
        var x = pixels.detach().clone().requires_grad_(true);
        var cosLoss = nn.functional.cosine_similarity(model.EncodeImage(x), model.EncodeText(ids).narrow(0, 0, 2), dim: -1).sum();
        cosLoss.backward();
        Check("cos_loss", cosLoss.reshape(1));
        Check("grad_pixel_values", x.grad!);
        TestContext.Current.TestOutputHelper?.WriteLine("relative errors: " + string.Join(", ", report));
    }

    // ---------------------------------------------------------------- strict loading

    [Fact]
    public void LoadParity_AcceptsPositionIdsBuffers()
    {
        Assert.SkipWhen(Fixtures.Root is null, SkipReason);
        using var scope = NewDisposeScope();
        var tensors = TinyTensors();
        var ids = Enumerable.Range(0, 16).Select(i => (long)i).ToArray();
        tensors["text_model.embeddings.position_ids"] = Int64Raw([1, 16], ids);
        tensors["vision_model.embeddings.position_ids"] = Int64Raw([1, 17], Enumerable.Range(0, 17).Select(i => (long)i).ToArray());
        using var folder = TempModelFolder.With(tensors);

        using var model = ClipModel.FromFolder(folder.Path);
        var io = ReadIo();
        using (no_grad())
            TensorAssert.Close(io["text_features"], model.EncodeText(io["input_ids"]), 1e-4, "text_features");
    }

    [Fact]
    public void LoadParity_MissingKeyIsNamed()
    {
        Assert.SkipWhen(Fixtures.Root is null, SkipReason);
        var tensors = TinyTensors();
        tensors.Remove("text_projection.weight");
        using var folder = TempModelFolder.With(tensors);

        var e = Assert.Throws<CheckpointException>(() => ClipModel.FromFolder(folder.Path));
        Assert.Equal("text_projection.weight", e.Key);
        Assert.Contains("missing key 'text_projection.weight' (expected shape [48, 64])", e.Message);
        Assert.Contains(Path.Combine(folder.Path, "model.safetensors"), e.Message);
    }

    [Fact]
    public void LoadParity_WrongShapeIsNamedWithBothShapes()
    {
        Assert.SkipWhen(Fixtures.Root is null, SkipReason);
        var tensors = TinyTensors();
        tensors["vision_model.embeddings.position_embedding.weight"] = new RawTensor(RawDType.F32, [50, 64], new byte[50 * 64 * 4]);
        using var folder = TempModelFolder.With(tensors);

        var e = Assert.Throws<CheckpointException>(() => ClipModel.FromFolder(folder.Path));
        Assert.Equal("vision_model.embeddings.position_embedding.weight", e.Key);
        Assert.Contains("expected shape [17, 64], the file has [50, 64]", e.Message);
    }

    [Fact]
    public void LoadParity_UnknownKeyIsRejected()
    {
        Assert.SkipWhen(Fixtures.Root is null, SkipReason);
        var tensors = TinyTensors();
        tensors["text_model.embeddings.position_ids_extra"] = Int64Raw([1], [0]);
        using var folder = TempModelFolder.With(tensors);

        var e = Assert.Throws<CheckpointException>(() => ClipModel.FromFolder(folder.Path));
        Assert.Contains("unexpected key 'text_model.embeddings.position_ids_extra'", e.Message);
    }

    [Fact]
    public void LoadParity_PytorchBinOnlyAsksForConversion()
    {
        Assert.SkipWhen(Fixtures.Root is null, SkipReason);
        using var folder = TempModelFolder.With(null);
        File.WriteAllBytes(Path.Combine(folder.Path, "pytorch_model.bin"), [0x50, 0x4b]);

        var e = Assert.Throws<CheckpointException>(() => ClipModel.FromFolder(folder.Path));
        Assert.Contains("pytorch_model.bin", e.Message);
        Assert.Contains("promptfaces convert", e.Message);
    }

    // ---------------------------------------------------------------- helpers

    private static string Shape(IEnumerable<long> shape) => RawTensor.FormatShape(shape);

    private static Dictionary<string, Tensor> ReadIo() =>
        SafeTensorsFile.Read(Fixtures.Path("clip", "clip_tiny_io.safetensors")).Tensors
            .ToDictionary(kv => kv.Key, kv => TensorConversion.ToTensor(kv.Value));

    private static Dictionary<string, RawTensor> TinyTensors() =>
        SafeTensorsFile.Read(Fixtures.Path("clip", "clip_tiny", "model.safetensors")).Tensors;

    private static RawTensor Int64Raw(long[] shape, long[] values) =>
        new(RawDType.I64, shape, values.SelectMany(BitConverter.GetBytes).ToArray());

    /// <summary>A throw-away model folder outside the repository: the tiny config and the given tensors.</summary>
    private sealed class TempModelFolder : IDisposable
    {
        public string Path { get; } = Directory.CreateTempSubdirectory("promptfaces-clip-").FullName;

        public static TempModelFolder With(Dictionary<string, RawTensor>? tensors)
        {
            var folder = new TempModelFolder();
            File.Copy(Fixtures.Path("clip", "clip_tiny", "config.json"), System.IO.Path.Combine(folder.Path, "config.json"));
            if (tensors is not null)
                SafeTensorsFile.Write(System.IO.Path.Combine(folder.Path, "model.safetensors"), tensors);
            return folder;
        }

        public void Dispose() => Directory.Delete(Path, recursive: true);
    }
}
