using System.Text.Json.Nodes;
using PromptFaces.Generation.Checkpoints;
using PromptFaces.Generation.StyleGan2;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace PromptFaces.Generation.Tests.StyleGan2;

/// <summary>Checks the generator against NVIDIA's reference: official names and shapes, outputs and gradients.</summary>
public sealed class StyleGan2ParityTests
{
    private readonly ITestOutputHelper _output;

    public StyleGan2ParityTests(ITestOutputHelper output) => _output = output;

    [Theory]
    [InlineData("stylegan2-config-f-1024")]
    [InlineData("stylegan2-512")]
    [InlineData("stylegan2-paper256")]
    public void Parity_preset_has_official_names_and_shapes(string preset)
    {
        Assert.SkipWhen(Fixtures.Root is null, Fixtures.MissingReason);
        var official = JsonNode.Parse(File.ReadAllText(Fixtures.Path("stylegan2", "stylegan2_official_shapes.json")))![preset]!;
        var expected = official["state_dict_shapes"]!.AsObject()
            .ToDictionary(kv => kv.Key, kv => kv.Value!.AsArray().Select(v => v!.GetValue<long>()).ToArray());

        // The config read from the reference kwargs must equal the preset.
        var fromKwargs = StyleGan2Config.FromKwargs(official["kwargs"]!.AsObject(), preset);
        Assert.Equal(StyleGan2Config.FromPreset(preset), fromKwargs);
        Assert.Equal(official["num_ws"]!.GetValue<int>(), fromKwargs.NumWs);

        using var scope = NewDisposeScope();
        using var g = new StyleGan2Generator(StyleGan2Config.FromPreset(preset), META);
        var actual = g.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.shape);
        Assert.Equal(expected.Keys.OrderBy(k => k, StringComparer.Ordinal), actual.Keys.OrderBy(k => k, StringComparer.Ordinal));
        foreach (var (key, shape) in expected)
            Assert.True(shape.SequenceEqual(actual[key]), $"{key}: expected {RawTensor.FormatShape(shape)}, built {RawTensor.FormatShape(actual[key])}");
    }

    [Fact]
    public void Parity_tiny_mapping_synthesis_and_gradient_match_reference()
    {
        Assert.SkipWhen(Fixtures.Root is null, Fixtures.MissingReason);
        using var scope = NewDisposeScope();
        var g = LoadTiny();
        var io = SafeTensorsFile.Read(Fixtures.Path("stylegan2", "stylegan2_tiny_io.safetensors")).Tensors
            .ToDictionary(kv => kv.Key, kv => TensorConversion.ToTensor(kv.Value));

        var z = io["z"];
        Report("ws_psi1", TensorAssert.Close(io["ws_psi1"], g.Mapping.Forward(z, psi: 1), what: "ws_psi1"));
        Report("ws_psi07", TensorAssert.Close(io["ws_psi07"], g.Mapping.Forward(z, psi: 0.7), what: "ws_psi07"));

        var ws = io["ws_psi07"].clone().requires_grad_(true);
        var imgConst = g.Synthesis.Forward(ws, NoiseMode.Const);
        Report("img_noise_const", TensorAssert.Close(io["img_noise_const"], imgConst, what: "img_noise_const"));
        using (no_grad())
            Report("img_noise_none", TensorAssert.Close(io["img_noise_none"], g.Synthesis.Forward(io["ws_psi07"], NoiseMode.None), what: "img_noise_none"));

        var loss = (imgConst * io["proj_R"]).sum();
        Report("loss", TensorAssert.Close(io["loss"].reshape(Array.Empty<long>()), loss, what: "loss"));
        loss.backward();
        Report("grad_ws", TensorAssert.Close(io["grad_ws"], ws.grad!, what: "grad_ws"));
    }

    [Fact]
    public void Parity_truncation_cutoff_only_moves_the_first_ws()
    {
        Assert.SkipWhen(Fixtures.Root is null, Fixtures.MissingReason);
        using var scope = NewDisposeScope();
        var g = LoadTiny();
        var z = randn(2, g.Config.ZDim, generator: new Generator(3));
        var full = g.Mapping.Forward(z, psi: 1);
        var cut = g.Mapping.Forward(z, psi: 0.5, cutoff: 3);
        Assert.True(cut.narrow(1, 3, g.NumWs - 3).eq(full.narrow(1, 3, g.NumWs - 3)).all().item<bool>());
        var expectedHead = g.Mapping.WAvg.lerp(full.narrow(1, 0, 3), 0.5);
        TensorAssert.Close(expectedHead, cut.narrow(1, 0, 3), 1e-6);
    }

    [Fact]
    public void Random_noise_mode_changes_the_image_and_none_is_deterministic()
    {
        Assert.SkipWhen(Fixtures.Root is null, Fixtures.MissingReason);
        using var scope = NewDisposeScope();
        var g = LoadTiny();
        using var noGrad = no_grad();
        var ws = g.Mapping.Forward(randn(1, g.Config.ZDim, generator: new Generator(1)), 0.7);
        var a = g.Synthesis.Forward(ws, NoiseMode.Random, new Generator(1));
        var b = g.Synthesis.Forward(ws, NoiseMode.Random, new Generator(2));
        Assert.False(a.allclose(b));
        Assert.True(g.Synthesis.Forward(ws, NoiseMode.None).eq(g.Synthesis.Forward(ws, NoiseMode.None)).all().item<bool>());
    }

    internal static StyleGan2Generator LoadTiny()
    {
        var config = StyleGan2Config.FromJsonFile(Fixtures.Path("stylegan2", "stylegan2_tiny_config.json"));
        var g = new StyleGan2Generator(config);
        var path = Fixtures.Path("stylegan2", "stylegan2_tiny_weights.safetensors");
        g.LoadStateDict(SafeTensorsFile.Read(path).Tensors, path);
        return g.Freeze();
    }

    private void Report(string name, double relative) => _output.WriteLine($"{name}: max relative error {relative:G3}");
}
