using System.Buffers.Binary;
using System.Text;
using System.Text.Json;

namespace PromptFaces.Generation.Checkpoints;

/// <summary>
/// Reads and writes the safetensors format: an 8-byte little-endian header length, a JSON header mapping each name to
/// dtype, shape and byte offsets, then the raw data. Every structural fault is reported with the file and key.
/// </summary>
public static class SafeTensorsFile
{
    private const long MaxHeaderBytes = 100L * 1024 * 1024;

    public static bool LooksLikeSafeTensors(string path)
    {
        using var stream = File.OpenRead(path);
        Span<byte> head = stackalloc byte[9];
        if (stream.Read(head) < 9) return false;
        var n = BinaryPrimitives.ReadInt64LittleEndian(head);
        return n > 1 && n < MaxHeaderBytes && n + 8 <= stream.Length && head[8] == (byte)'{';
    }

    /// <summary>Reads all tensors, in file order, and the optional string metadata.</summary>
    public static (Dictionary<string, RawTensor> Tensors, Dictionary<string, string> Metadata) Read(string path)
    {
        byte[] bytes;
        try { bytes = File.ReadAllBytes(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new CheckpointException(path, $"cannot read the file ({e.Message}).", inner: e);
        }
        if (bytes.Length < 8)
            throw new CheckpointException(path, $"is {bytes.Length} bytes long, too short for a safetensors file (truncated or not a checkpoint).");
        long headerLength = BinaryPrimitives.ReadInt64LittleEndian(bytes);
        if (headerLength <= 0 || headerLength > MaxHeaderBytes || 8 + headerLength > bytes.Length)
            throw new CheckpointException(path, $"is not a safetensors file: its first 8 bytes give a header length of {headerLength}, but the file has {bytes.Length} bytes (truncated, corrupt, or another format).");

        JsonDocument header;
        try { header = JsonDocument.Parse(bytes.AsMemory(8, (int)headerLength)); }
        catch (JsonException e)
        {
            throw new CheckpointException(path, $"has a safetensors header that is not valid JSON ({e.Message}); the file is corrupt.", inner: e);
        }

        long dataStart = 8 + headerLength;
        long dataLength = bytes.Length - dataStart;
        var tensors = new Dictionary<string, RawTensor>();
        var metadata = new Dictionary<string, string>();
        using (header)
        {
            if (header.RootElement.ValueKind != JsonValueKind.Object)
                throw new CheckpointException(path, "has a safetensors header that is not a JSON object; the file is corrupt.");
            foreach (var entry in header.RootElement.EnumerateObject())
            {
                if (entry.Name == MetadataKey) AddMetadata(entry.Value, metadata);
                else tensors[entry.Name] = ReadEntry(path, entry.Name, entry.Value, bytes, dataStart, dataLength);
            }
        }
        return (tensors, metadata);
    }

    private const string MetadataKey = "__metadata__";

    /// <summary>
    /// Only the string metadata, read from the header without the tensor data (a large checkpoint costs no more than a
    /// small one); empty when the file has none.
    /// </summary>
    public static Dictionary<string, string> ReadMetadata(string path)
    {
        var metadata = new Dictionary<string, string>();
        try
        {
            using var stream = File.OpenRead(path);
            Span<byte> size = stackalloc byte[8];
            if (stream.Read(size) < 8)
                throw new CheckpointException(path, "is too short for a safetensors file (truncated or not a checkpoint).");
            long headerLength = BinaryPrimitives.ReadInt64LittleEndian(size);
            if (headerLength <= 0 || headerLength > MaxHeaderBytes || 8 + headerLength > stream.Length)
                throw new CheckpointException(path, $"is not a safetensors file: its first 8 bytes give a header length of {headerLength}, but the file has {stream.Length} bytes (truncated, corrupt, or another format).");
            var bytes = new byte[headerLength];
            stream.ReadExactly(bytes);
            using var header = JsonDocument.Parse(bytes);
            if (header.RootElement.ValueKind == JsonValueKind.Object && header.RootElement.TryGetProperty(MetadataKey, out var m))
                AddMetadata(m, metadata);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new CheckpointException(path, $"cannot read the file ({e.Message}).", inner: e);
        }
        catch (JsonException e)
        {
            throw new CheckpointException(path, $"has a safetensors header that is not valid JSON ({e.Message}); the file is corrupt.", inner: e);
        }
        return metadata;
    }

    private static void AddMetadata(JsonElement entry, Dictionary<string, string> metadata)
    {
        if (entry.ValueKind != JsonValueKind.Object) return;
        foreach (var m in entry.EnumerateObject())
            metadata[m.Name] = m.Value.ValueKind == JsonValueKind.String ? m.Value.GetString()! : m.Value.GetRawText();
    }

    private static RawTensor ReadEntry(string path, string key, JsonElement e, byte[] bytes, long dataStart, long dataLength)
    {
        try
        {
            var dtype = ParseDType(e.GetProperty("dtype").GetString() ?? "");
            var shape = e.GetProperty("shape").EnumerateArray().Select(x => x.GetInt64()).ToArray();
            var offsets = e.GetProperty("data_offsets").EnumerateArray().Select(x => x.GetInt64()).ToArray();
            if (offsets.Length != 2) throw new FormatException("data_offsets must hold two numbers");
            long count = shape.Aggregate(1L, (a, b) => a * b);
            long expected = count * RawTensor.ElementSize(dtype);
            if (shape.Any(s => s < 0) || offsets[0] < 0 || offsets[1] < offsets[0])
                throw new FormatException($"invalid shape {RawTensor.FormatShape(shape)} or offsets [{offsets[0]}, {offsets[1]}]");
            if (offsets[1] > dataLength)
                throw new CheckpointException(path, $"key '{key}': its data ends at byte {offsets[1]} of the data section, which has only {dataLength} bytes. The file is truncated; copy or download it again.", key);
            if (offsets[1] - offsets[0] != expected)
                throw new CheckpointException(path, $"key '{key}': shape {RawTensor.FormatShape(shape)} of {dtype} needs {expected} bytes, the header gives {offsets[1] - offsets[0]}. The file is corrupt.", key);
            var data = new byte[expected];
            Buffer.BlockCopy(bytes, (int)(dataStart + offsets[0]), data, 0, (int)expected);
            return new RawTensor(dtype, shape, data);
        }
        catch (Exception ex) when (ex is KeyNotFoundException or InvalidOperationException or FormatException)
        {
            throw new CheckpointException(path, $"key '{key}' has a malformed header entry ({ex.Message}); the file is corrupt.", key, ex);
        }
    }

    public static RawDType ParseDType(string name) => name switch
    {
        "F64" => RawDType.F64, "F32" => RawDType.F32, "F16" => RawDType.F16, "BF16" => RawDType.BF16,
        "I64" => RawDType.I64, "I32" => RawDType.I32, "I16" => RawDType.I16, "I8" => RawDType.I8,
        "U8" => RawDType.U8, "BOOL" => RawDType.Bool,
        _ => throw new FormatException($"unsupported dtype '{name}'"),
    };

    public static string DTypeName(RawDType dtype) => dtype == RawDType.Bool ? "BOOL" : dtype.ToString().ToUpperInvariant();

    /// <summary>Writes tensors in the given order, with optional string metadata.</summary>
    public static void Write(string path, IEnumerable<KeyValuePair<string, RawTensor>> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        var list = tensors.ToList();
        using var headerStream = new MemoryStream();
        using (var w = new Utf8JsonWriter(headerStream))
        {
            w.WriteStartObject();
            if (metadata is { Count: > 0 })
            {
                w.WriteStartObject(MetadataKey);
                foreach (var (k, v) in metadata) w.WriteString(k, v);
                w.WriteEndObject();
            }
            long offset = 0;
            foreach (var (name, t) in list)
            {
                w.WriteStartObject(name);
                w.WriteString("dtype", DTypeName(t.DType));
                w.WriteStartArray("shape");
                foreach (var s in t.Shape) w.WriteNumberValue(s);
                w.WriteEndArray();
                w.WriteStartArray("data_offsets");
                w.WriteNumberValue(offset);
                w.WriteNumberValue(offset + t.Data.Length);
                w.WriteEndArray();
                w.WriteEndObject();
                offset += t.Data.Length;
            }
            w.WriteEndObject();
        }
        // Pad the header with spaces to an 8-byte boundary, as the reference writer does.
        var header = headerStream.ToArray().ToList();
        while ((header.Count + 8) % 8 != 0) header.Add((byte)' ');
        var dir = Path.GetDirectoryName(Path.GetFullPath(path));
        if (!string.IsNullOrEmpty(dir)) Directory.CreateDirectory(dir);
        var tmp = path + ".tmp";
        using (var f = File.Create(tmp))
        {
            Span<byte> len = stackalloc byte[8];
            BinaryPrimitives.WriteInt64LittleEndian(len, header.Count);
            f.Write(len);
            f.Write(header.ToArray());
            foreach (var (_, t) in list) f.Write(t.Data);
        }
        File.Move(tmp, path, overwrite: true);
    }
}
