using System.IO.Compression;
using System.Text;
using System.Text.Json.Nodes;
using PromptFaces.Generation.Checkpoints;
using Xunit;

namespace PromptFaces.Generation.Tests.Checkpoints;

/// <summary>
/// The pickle reader against NVIDIA's own format: the fixture .pkl (written by stylegan2-ada-pytorch's persistence
/// machinery) must give exactly the state dict stored beside it in safetensors form, and every kind of bad file must
/// end in a <see cref="CheckpointException"/> that names the file, never in another exception or a crash.
/// </summary>
public sealed class NvidiaPickleParityTests
{
    private const string NoFixtures = "The reference fixtures folder ../shared/fixtures does not exist on this machine.";

    private static string PicklePath => Fixtures.Path("stylegan2", "stylegan2_tiny_official_format.pkl");

    [Fact]
    public void Parity_StateDictEqualsSafetensorsExactly()
    {
        Assert.SkipWhen(Fixtures.Root is null, NoFixtures);
        var result = NvidiaPickleReader.Read(PicklePath);
        var (expected, _) = SafeTensorsFile.Read(Fixtures.Path("stylegan2", "stylegan2_tiny_weights.safetensors"));

        // The safetensors header was written from state_dict() in order, so this also checks PyTorch's key order.
        Assert.Equal(expected.Keys.ToList(), result.StateDict.Keys.ToList());
        foreach (var (key, want) in expected)
        {
            var got = result.StateDict[key];
            Assert.True(want.DType == got.DType, $"{key}: dtype {got.DType}, expected {want.DType}");
            Assert.True(want.Shape.SequenceEqual(got.Shape), $"{key}: shape {got.ShapeText}, expected {want.ShapeText}");
            Assert.True(want.Data.AsSpan().SequenceEqual(got.Data), $"{key}: bytes differ");
        }
        Assert.Equal(["G_ema"], result.AvailableModules);
        Assert.Equal("synthesis.b4.const", result.StateDict.Keys.First());
        Assert.Contains("mapping.w_avg", result.StateDict.Keys);
        Assert.Contains("synthesis.b8.conv0.noise_const", result.StateDict.Keys);
    }

    [Fact]
    public void Parity_InitKwargsMatchConfig()
    {
        Assert.SkipWhen(Fixtures.Root is null, NoFixtures);
        var result = NvidiaPickleReader.Read(PicklePath);
        var config = JsonNode.Parse(File.ReadAllText(Fixtures.Path("stylegan2", "stylegan2_tiny_config.json")))!;
        var expected = config["kwargs"]!;
        Assert.True(JsonNode.DeepEquals(expected, result.InitKwargs),
            $"expected {expected.ToJsonString()}, got {result.InitKwargs.ToJsonString()}");
        Assert.Equal(32, (int)result.InitKwargs["z_dim"]!);
        Assert.Equal(3, (int)result.InitKwargs["mapping_kwargs"]!["num_layers"]!);
    }

    [Fact]
    public void Parity_NonPickleFile_ThrowsCheckpointException()
    {
        using var file = new TempFile(Encoding.ASCII.GetBytes("<!DOCTYPE html><html><body>Not found</body></html>"));
        var e = Assert.Throws<CheckpointException>(() => NvidiaPickleReader.Read(file.Path));
        Assert.Contains(file.Path, e.Message);
        Assert.Contains("not a Python pickle", e.Message);
        Assert.Contains("download", e.Message);
    }

    [Fact]
    public void Parity_EmptyAndMissingFiles_ThrowCheckpointException()
    {
        using var empty = new TempFile([]);
        var e = Assert.Throws<CheckpointException>(() => NvidiaPickleReader.Read(empty.Path));
        Assert.Contains(empty.Path, e.Message);
        Assert.Contains("empty", e.Message);

        var missing = Path.Combine(Path.GetTempPath(), "promptfaces-no-such-file-" + Guid.NewGuid() + ".pkl");
        e = Assert.Throws<CheckpointException>(() => NvidiaPickleReader.Read(missing));
        Assert.Contains(missing, e.Message);
        Assert.Contains("cannot read", e.Message);
    }

    [Fact]
    public void Parity_TruncatedPickle_ThrowsCheckpointExceptionSayingTruncated()
    {
        Assert.SkipWhen(Fixtures.Root is null, NoFixtures);
        var bytes = File.ReadAllBytes(PicklePath);
        using var file = new TempFile(bytes[..(bytes.Length / 2)]);
        var e = Assert.Throws<CheckpointException>(() => NvidiaPickleReader.Read(file.Path));
        Assert.Contains(file.Path, e.Message);
        Assert.Contains("truncated", e.Message);
        Assert.Contains("again", e.Message);
    }

    [Fact]
    public void Parity_TruncatedAnywhere_AlwaysCheckpointException()
    {
        Assert.SkipWhen(Fixtures.Root is null, NoFixtures);
        var bytes = File.ReadAllBytes(PicklePath);
        var lengths = Enumerable.Range(1, 150).Select(i => (int)((long)bytes.Length * i / 151))
            .Concat([1, 2, 3, 11, 12, bytes.Length - 2, bytes.Length - 1]);
        foreach (var length in lengths)
        {
            using var file = new TempFile(bytes[..length]);
            var e = Assert.Throws<CheckpointException>(() => NvidiaPickleReader.Read(file.Path));
            Assert.Contains(file.Path, e.Message);
        }
    }

    [Fact]
    public void Parity_CorruptedBytes_NeverAnythingButCheckpointException()
    {
        Assert.SkipWhen(Fixtures.Root is null, NoFixtures);
        var original = File.ReadAllBytes(PicklePath);
        var random = new Random(20240611);
        using var file = new TempFile([]);
        for (int trial = 0; trial < 400; trial++)
        {
            var bytes = (byte[])original.Clone();
            int flips = 1 + random.Next(4);
            for (int f = 0; f < flips; f++)
            {
                // Half the mutations land in the pickle structure rather than in tensor data, where they matter most.
                int at = random.Next(2) == 0 ? random.Next(bytes.Length) : random.Next(Math.Min(bytes.Length, 40_000));
                bytes[at] = (byte)random.Next(256);
            }
            File.WriteAllBytes(file.Path, bytes);
            try
            {
                NvidiaPickleReader.Read(file.Path);
            }
            catch (CheckpointException e)
            {
                Assert.Contains(file.Path, e.Message);
            }
        }
    }

    [Fact]
    public void Parity_PickleWithoutGEma_ThrowsCheckpointExceptionListingEntries()
    {
        var pickle = new PickleBuilder().Proto()
            .EmptyDict().Mark()
            .Str("G").Module("Generator", p => p, p => p.Str("z_dim").Int(8))
            .Str("training_set_kwargs").None()
            .SetItems().Stop().ToArray();
        using var file = new TempFile(pickle);
        var e = Assert.Throws<CheckpointException>(() => NvidiaPickleReader.Read(file.Path));
        Assert.Contains(file.Path, e.Message);
        Assert.Contains("no 'G_ema'", e.Message);
        Assert.Contains("training_set_kwargs", e.Message);
        Assert.Contains("(G)", e.Message);
        Assert.Equal("G_ema", e.Key);

        var g = NvidiaPickleReader.Read(file.Path, "G");
        Assert.Empty(g.StateDict);
        Assert.Equal(["G"], g.AvailableModules);
        Assert.Equal(8, (int)g.InitKwargs["z_dim"]!);
    }

    [Fact]
    public void Parity_FixtureWithoutRequestedModule_ThrowsCheckpointException()
    {
        Assert.SkipWhen(Fixtures.Root is null, NoFixtures);
        var e = Assert.Throws<CheckpointException>(() => NvidiaPickleReader.Read(PicklePath, "D"));
        Assert.Contains(PicklePath, e.Message);
        Assert.Contains("no 'D'", e.Message);
        Assert.Contains("G_ema", e.Message);

        e = Assert.Throws<CheckpointException>(() => NvidiaPickleReader.Read(PicklePath, "training_set_kwargs"));
        Assert.Contains("not a network module", e.Message);
    }

    [Fact]
    public void Parity_TopLevelThatIsNotADict_ThrowsCheckpointException()
    {
        using var file = new TempFile(new PickleBuilder().Proto().EmptyList().Stop().ToArray());
        var e = Assert.Throws<CheckpointException>(() => NvidiaPickleReader.Read(file.Path));
        Assert.Contains("list", e.Message);
    }

    [Fact]
    public void Parity_ForeignGlobalsAreNeverCalled()
    {
        // os.system('...') would run a command if this were Python's pickle; here it must be an inert placeholder,
        // stored as an attribute that the reader ignores.
        var pickle = new PickleBuilder().Proto()
            .EmptyDict().Mark()
            .Str("G_ema").Module("Generator", p => p, p => p.Str("evil").Global("os", "system").Mark().Str("touch pwned-marker").Tuple().Reduce())
            .SetItems().Stop().ToArray();
        using var file = new TempFile(pickle);
        var result = NvidiaPickleReader.Read(file.Path);
        Assert.Equal("os.system", (string)result.InitKwargs["evil"]!["__python__"]!);
    }

    [Fact]
    public void Parity_ZipStorageAndNonContiguousStrides_AreMaterialisedContiguously()
    {
        // Storage [0 1 2 3 4 5] viewed as a 3x2 transpose (strides 1, 3): rows [0 3] [1 4] [2 5].
        var storageZip = TorchZip(new PickleBuilder().Proto().FloatStoragePid("0", 6).Stop().ToArray(),
            ("0", Floats(0, 1, 2, 3, 4, 5)));
        var pickle = new PickleBuilder().Proto()
            .EmptyDict().Mark()
            .Str("G_ema").Module("Tiny", p => p
                .Str("w").Tensor(s => s.Global("torch.storage", "_load_from_bytes").Bytes(storageZip).Tuple1().Reduce(), 0, [3, 2], [1, 3])
                .Str("b").Tensor(s => s.Get(0), 4, [2], [1]), // the same storage again, through the memo, at offset 4
                p => p.Str("w_dim").Int(2))
            .SetItems().Stop().ToArray();
        using var file = new TempFile(pickle);
        var result = NvidiaPickleReader.Read(file.Path);
        Assert.Equal(["w", "b"], result.StateDict.Keys.ToList());
        Assert.Equal([3L, 2L], result.StateDict["w"].Shape);
        Assert.Equal([0f, 3f, 1f, 4f, 2f, 5f], result.StateDict["w"].ToFloatArray());
        Assert.Equal([4f, 5f], result.StateDict["b"].ToFloatArray());
    }

    [Fact]
    public void Parity_TopLevelTorchZip_IsReadToo()
    {
        var dataPkl = new PickleBuilder().Proto()
            .EmptyDict().Mark()
            .Str("G_ema").Module("Tiny", p => p.Str("w").Tensor(s => s.FloatStoragePid("k", 4), 1, [3], [1]), p => p)
            .SetItems().Stop().ToArray();
        using var file = new TempFile(TorchZip(dataPkl, ("k", Floats(9, 8, 7, 6))));
        var result = NvidiaPickleReader.Read(file.Path);
        Assert.Equal([8f, 7f, 6f], result.StateDict["w"].ToFloatArray());
    }

    [Fact]
    public void Parity_BroadcastStrideBomb_IsRefused()
    {
        // One float viewed 2^40 times through stride 0 must not be expanded.
        var storageZip = TorchZip(new PickleBuilder().Proto().FloatStoragePid("0", 1).Stop().ToArray(), ("0", Floats(1)));
        var pickle = new PickleBuilder().Proto()
            .EmptyDict().Mark()
            .Str("G_ema").Module("Tiny", p => p
                .Str("w").Tensor(s => s.Global("torch.storage", "_load_from_bytes").Bytes(storageZip).Tuple1().Reduce(), 0, [1L << 20, 1L << 20], [0, 0]),
                p => p)
            .SetItems().Stop().ToArray();
        using var file = new TempFile(pickle);
        var e = Assert.Throws<CheckpointException>(() => NvidiaPickleReader.Read(file.Path));
        Assert.Contains("'w'", e.Message);
    }

    [Fact]
    public void Parity_PositionalInitArgs_AreNamedFromEmbeddedSource()
    {
        const string source = "import torch\nclass Tiny(torch.nn.Module):\n    def __init__(self,\n        a,   # first, (with a comma)\n        b = [1, 2],\n        *, c = 'x,y'):\n        super().__init__()\n";
        var pickle = new PickleBuilder().Proto()
            .EmptyDict().Mark()
            .Str("G_ema").Module("Tiny", p => p, p => p.Str("c").Str("z"), source, args: p => p.Mark().Int(5).Int(6).Tuple())
            .SetItems().Stop().ToArray();
        using var file = new TempFile(pickle);
        var kwargs = NvidiaPickleReader.Read(file.Path).InitKwargs;
        Assert.Equal(5, (int)kwargs["a"]!);
        Assert.Equal(6, (int)kwargs["b"]!);
        Assert.Equal("z", (string)kwargs["c"]!);
    }

    [Fact]
    public void Parity_UnframedPickleTruncatedAnywhere_AlwaysCheckpointException()
    {
        // Protocol 4 frames let the reader spot truncation early; this protocol-2-style stream has none, so every
        // opcode's own bounds checks are exercised.
        var storageZip = TorchZip(new PickleBuilder().Proto().FloatStoragePid("0", 2).Stop().ToArray(), ("0", Floats(1, 2)));
        var pickle = new PickleBuilder().Proto()
            .EmptyDict().Mark()
            .Str("G_ema").Module("Tiny", p => p
                .Str("w").Tensor(s => s.Global("torch.storage", "_load_from_bytes").Bytes(storageZip).Tuple1().Reduce(), 0, [2], [1]),
                p => p.Str("z_dim").Int(4))
            .SetItems().Stop().ToArray();
        using var file = new TempFile([]);
        for (int length = 1; length < pickle.Length; length++)
        {
            File.WriteAllBytes(file.Path, pickle[..length]);
            var e = Assert.Throws<CheckpointException>(() => NvidiaPickleReader.Read(file.Path));
            Assert.Contains(file.Path, e.Message);
        }
        File.WriteAllBytes(file.Path, pickle);
        Assert.Equal([1f, 2f], NvidiaPickleReader.Read(file.Path).StateDict["w"].ToFloatArray());
    }

    [Fact]
    public void Parity_DeeplyNestedStructures_DoNotOverflowTheStack()
    {
        const int depth = 200_000;
        var builder = new PickleBuilder().Proto().EmptyDict().Mark();
        for (int key = 0; key < 2; key++)
        {
            // Two distinct tuple keys nested 200k deep with the same shape: hashing and comparing them must not recurse.
            builder.None();
            for (int i = 0; i < depth; i++) builder.Tuple1();
            builder.Int(key);
        }
        builder.Str("G_ema").Module("Tiny", p => p, p =>
        {
            p.Str("chain").Global("x", "y");
            for (int i = 0; i < depth; i++) p.EmptyTuple().Reduce(); // a placeholder called 200k times
            p.Str("nested").None();
            for (int i = 0; i < depth; i++) p.Tuple1();
            return p;
        });
        using var file = new TempFile(builder.SetItems().Stop().ToArray());
        var result = NvidiaPickleReader.Read(file.Path);
        Assert.NotNull(result.InitKwargs["chain"]!["__python__"]);
        Assert.Contains("too deeply nested", result.InitKwargs["nested"]!.ToJsonString());
    }

    // ---- helpers

    private static byte[] Floats(params float[] values) => values.SelectMany(BitConverter.GetBytes).ToArray();

    /// <summary>A torch.save zip stream: archive/data.pkl, archive/byteorder and one archive/data/KEY per storage.</summary>
    private static byte[] TorchZip(byte[] dataPkl, params (string Key, byte[] Data)[] storages)
    {
        using var stream = new MemoryStream();
        using (var zip = new ZipArchive(stream, ZipArchiveMode.Create, leaveOpen: true))
        {
            void Add(string name, byte[] content)
            {
                using var s = zip.CreateEntry(name, CompressionLevel.NoCompression).Open();
                s.Write(content);
            }
            Add("archive/data.pkl", dataPkl);
            Add("archive/byteorder", Encoding.ASCII.GetBytes("little"));
            foreach (var (key, data) in storages) Add("archive/data/" + key, data);
        }
        return stream.ToArray();
    }

    private sealed class TempFile : IDisposable
    {
        public TempFile(byte[] content)
        {
            Path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "promptfaces-pickle-test-" + Guid.NewGuid().ToString("N") + ".pkl");
            File.WriteAllBytes(Path, content);
        }

        public string Path { get; }

        public void Dispose() => File.Delete(Path);
    }

    /// <summary>Writes pickle opcodes by hand, so that tests can state exactly which bytes the reader meets.</summary>
    private sealed class PickleBuilder
    {
        private readonly List<byte> bytes = [];

        public PickleBuilder Proto() => Op(0x80).Op(4);
        public PickleBuilder Stop() => Op((byte)'.');
        public PickleBuilder Mark() => Op((byte)'(');
        public PickleBuilder Tuple() => Op((byte)'t');
        public PickleBuilder Tuple1() => Op(0x85);
        public PickleBuilder EmptyTuple() => Op((byte)')');
        public PickleBuilder EmptyDict() => Op((byte)'}');
        public PickleBuilder EmptyList() => Op((byte)']');
        public PickleBuilder SetItems() => Op((byte)'u');
        public PickleBuilder Reduce() => Op((byte)'R');
        public PickleBuilder None() => Op((byte)'N');
        public PickleBuilder False() => Op(0x89);
        public PickleBuilder Memoize() => Op(0x94);
        public PickleBuilder Get(int index) => Op((byte)'h').Op((byte)index);

        public PickleBuilder Int(long value)
        {
            Op((byte)'J');
            bytes.AddRange(BitConverter.GetBytes(checked((int)value)));
            return this;
        }

        public PickleBuilder Str(string value)
        {
            var raw = Encoding.UTF8.GetBytes(value);
            Op((byte)'X');
            bytes.AddRange(BitConverter.GetBytes(raw.Length));
            bytes.AddRange(raw);
            return this;
        }

        public PickleBuilder Bytes(byte[] value)
        {
            Op((byte)'B');
            bytes.AddRange(BitConverter.GetBytes(value.Length));
            bytes.AddRange(value);
            return this;
        }

        public PickleBuilder Global(string module, string name)
        {
            Op((byte)'c');
            bytes.AddRange(Encoding.ASCII.GetBytes(module + "\n" + name + "\n"));
            return this;
        }

        public PickleBuilder OrderedDict() => Global("collections", "OrderedDict").EmptyTuple().Reduce();

        /// <summary>('storage', torch.FloatStorage, key, 'cpu', numel) as a persistent id.</summary>
        public PickleBuilder FloatStoragePid(string key, long numel) =>
            Mark().Str("storage").Global("torch", "FloatStorage").Str(key).Str("cpu").Int(numel).Tuple().Op((byte)'Q');

        /// <summary>_rebuild_tensor_v2(storage, offset, size, stride, False, OrderedDict()); the storage is memoised
        /// as the first memo entry when it is the first one written.</summary>
        public PickleBuilder Tensor(Func<PickleBuilder, PickleBuilder> storage, long offset, long[] size, long[] stride)
        {
            Global("torch._utils", "_rebuild_tensor_v2").Mark();
            storage(this).Memoize().Int(offset);
            Mark();
            foreach (var s in size) Int(s);
            Tuple().Mark();
            foreach (var s in stride) Int(s);
            return Tuple().False().OrderedDict().Tuple().Reduce();
        }

        /// <summary>A torch_utils.persistence object with the given parameters and init kwargs (key/value pairs).</summary>
        public PickleBuilder Module(string className, Func<PickleBuilder, PickleBuilder> parameters, Func<PickleBuilder, PickleBuilder> kwargs,
            string source = "", Func<PickleBuilder, PickleBuilder>? args = null)
        {
            Global("torch_utils.persistence", "_reconstruct_persistent_obj").EmptyDict().Mark()
                .Str("type").Str("class").Str("version").Int(6).Str("module_src").Str(source).Str("class_name").Str(className)
                .Str("state").EmptyDict().Mark()
                .Str("training").False()
                .Str("_parameters").OrderedDict().Mark();
            parameters(this).SetItems()
                .Str("_buffers").OrderedDict()
                .Str("_non_persistent_buffers_set").Op(0x8f)
                .Str("_modules").OrderedDict()
                .Str("_init_args");
            if (args is null) EmptyTuple();
            else args(this);
            Str("_init_kwargs").EmptyDict().Mark();
            return kwargs(this).SetItems().SetItems().SetItems().Tuple1().Reduce();
        }

        public PickleBuilder Op(byte op)
        {
            bytes.Add(op);
            return this;
        }

        public byte[] ToArray() => bytes.ToArray();
    }
}
