using PromptFaces.Generation.Checkpoints;
using PromptFaces.Generation.StyleGan2;
using Xunit;
using static TorchSharp.torch;

namespace PromptFaces.Generation.Tests.Checkpoints;

/// <summary>
/// Every way a generator checkpoint can be wrong gives a <see cref="CheckpointException"/> naming the file, the key and
/// the shapes involved, and never a partial load.
/// </summary>
public sealed class LoaderErrorTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("pf-loader-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static string TinyWeights => Fixtures.Path("stylegan2", "stylegan2_tiny_weights.safetensors");

    private (Dictionary<string, RawTensor> Tensors, StyleGan2Config Config) Tiny()
    {
        Assert.SkipWhen(Fixtures.Root is null, Fixtures.MissingReason);
        var config = StyleGan2Config.FromJsonFile(Fixtures.Path("stylegan2", "stylegan2_tiny_config.json"));
        return (SafeTensorsFile.Read(TinyWeights).Tensors, config);
    }

    private string Write(string name, IEnumerable<KeyValuePair<string, RawTensor>> tensors, StyleGan2Config config)
    {
        var path = Path.Combine(_dir, name);
        StyleGan2Checkpoint.Save(tensors, config, path);
        return path;
    }

    [Fact]
    public void Missing_key_names_the_file_the_key_and_its_shape()
    {
        var (tensors, config) = Tiny();
        tensors.Remove("synthesis.b8.conv0.weight");
        var path = Write("missing.safetensors", tensors, config);
        var e = Assert.Throws<CheckpointException>(() => StyleGan2Checkpoint.Load(path));
        Assert.Equal(path, e.FilePath);
        Assert.Equal("synthesis.b8.conv0.weight", e.Key);
        Assert.Contains("missing key 'synthesis.b8.conv0.weight' (expected shape [32, 32, 3, 3])", e.Message);
        Assert.StartsWith(path, e.Message);
    }

    [Fact]
    public void Unexpected_key_is_refused()
    {
        var (tensors, config) = Tiny();
        tensors["synthesis.b8.extra"] = new RawTensor(RawDType.F32, new long[] { 2 }, new byte[8]);
        var path = Write("extra.safetensors", tensors, config);
        var e = Assert.Throws<CheckpointException>(() => StyleGan2Checkpoint.Load(path));
        Assert.Contains("unexpected key 'synthesis.b8.extra' (shape [2])", e.Message);
    }

    [Fact]
    public void Shape_mismatch_gives_expected_and_actual_shapes()
    {
        var (tensors, config) = Tiny();
        tensors["mapping.fc1.weight"] = new RawTensor(RawDType.F32, new long[] { 32, 16 }, new byte[32 * 16 * 4]);
        var path = Write("shape.safetensors", tensors, config);
        var e = Assert.Throws<CheckpointException>(() => StyleGan2Checkpoint.Load(path));
        Assert.Equal("mapping.fc1.weight", e.Key);
        Assert.Contains("key 'mapping.fc1.weight': expected shape [32, 32], the file has [32, 16]", e.Message);
    }

    [Fact]
    public void Truncated_file_is_reported_as_truncated()
    {
        Tiny();
        var bytes = File.ReadAllBytes(TinyWeights);
        var path = Path.Combine(_dir, "truncated.safetensors");
        File.WriteAllBytes(path, bytes[..(bytes.Length - 1000)]);
        var e = Assert.Throws<CheckpointException>(() => StyleGan2Checkpoint.Load(path));
        Assert.Contains("truncated", e.Message);
        Assert.NotNull(e.Key);
    }

    [Fact]
    public void Corrupt_header_is_reported_as_corrupt()
    {
        Tiny();
        var bytes = File.ReadAllBytes(TinyWeights);
        for (int i = 8; i < 40; i++) bytes[i] = (byte)'#';
        bytes[8] = (byte)'{';
        var path = Path.Combine(_dir, "corrupt.safetensors");
        File.WriteAllBytes(path, bytes);
        var e = Assert.Throws<CheckpointException>(() => StyleGan2Checkpoint.Load(path));
        Assert.Contains("corrupt", e.Message);
    }

    [Theory]
    [InlineData("notes.txt", "just some text, certainly no weights")]
    [InlineData("empty.safetensors", "")]
    public void A_file_that_is_no_checkpoint_says_so(string name, string content)
    {
        var path = Path.Combine(_dir, name);
        File.WriteAllText(path, content);
        var e = Assert.Throws<CheckpointException>(() => StyleGan2Checkpoint.Load(path));
        Assert.Contains("is not a generator checkpoint", e.Message);
        Assert.Equal(path, e.FilePath);
    }

    [Fact]
    public void A_missing_file_and_a_folder_are_explained()
    {
        var missing = Path.Combine(_dir, "nope.pkl");
        Assert.Contains("does not exist", Assert.Throws<CheckpointException>(() => StyleGan2Checkpoint.Load(missing)).Message);
        Assert.Contains("is a folder", Assert.Throws<CheckpointException>(() => StyleGan2Checkpoint.Load(_dir)).Message);
    }

    [Fact]
    public void A_failed_load_leaves_the_model_untouched()
    {
        var (tensors, config) = Tiny();
        using var scope = NewDisposeScope();
        using var g = new StyleGan2Generator(config);
        var before = g.state_dict()["mapping.fc0.weight"].clone();
        tensors["synthesis.b32.torgb.bias"] = new RawTensor(RawDType.F32, new long[] { 4 }, new byte[16]);
        Assert.Throws<CheckpointException>(() => g.LoadStateDict(tensors, "bad.safetensors"));
        Assert.True(g.state_dict()["mapping.fc0.weight"].eq(before).all().item<bool>(), "a failed load changed the weights");
    }

    [Fact]
    public void Shapes_alone_recover_the_configuration_when_metadata_is_absent()
    {
        var (tensors, config) = Tiny();
        var inferred = StyleGan2Checkpoint.InferConfig(tensors, TinyWeights);
        Assert.Equal(config with { ChannelBase = inferred.ChannelBase, NumFp16Res = inferred.NumFp16Res }, inferred);
        using var g = new StyleGan2Generator(inferred, META);
        Assert.Empty(StrictStateDict.Check(g, tensors));
    }
}
