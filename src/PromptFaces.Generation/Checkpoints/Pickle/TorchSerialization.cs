using System.Buffers.Binary;
using System.IO.Compression;
using System.Numerics;
using System.Runtime.InteropServices;
using System.Text;

namespace PromptFaces.Generation.Checkpoints.Pickle;

/// <summary>
/// Reads the two stream formats of <c>torch.save</c> without torch: the legacy one (a magic-number pickle, a protocol
/// version pickle, a sys-info pickle, the main pickle whose persistent ids name storages, a pickle listing the storage
/// keys, then for each key an 8-byte little-endian element count and the raw elements), and the zip one (an archive
/// holding <c>&lt;name&gt;/data.pkl</c> and one <c>&lt;name&gt;/data/&lt;key&gt;</c> entry per storage).
/// </summary>
/// <remarks>
/// A plain <c>pickle.dump</c> of a module (NVIDIA's .pkl files) pickles each storage as
/// <c>torch.storage._load_from_bytes(b'...')</c>, where the bytes are a whole torch.save stream. PyTorch always writes
/// that inner stream in the legacy format (<c>_use_new_zipfile_serialization=False</c>), but both are accepted.
/// </remarks>
internal static class TorchSerialization
{
    /// <summary>torch.serialization.MAGIC_NUMBER, 0x1950a86a20f9469cfc6c.</summary>
    private static readonly BigInteger LegacyMagic = BigInteger.Parse("119547037146038801333356", System.Globalization.CultureInfo.InvariantCulture);

    private const long LegacyProtocolVersion = 1001;

    /// <summary>What <c>torch.load(io.BytesIO(bytes))</c> returns, for <c>torch.storage._load_from_bytes</c>.</summary>
    public static object? LoadFromBytes(ReadOnlyMemory<byte> bytes, PickleContext context)
    {
        using var scope = context.EnterNested();
        if (IsZip(bytes.Span)) return LoadZip(bytes, context);
        var first = new Unpickler(bytes, 0, context);
        var magic = first.Load();
        if (!IsMagic(magic))
            throw new PickleException(PickleFailure.Corrupt, "an embedded torch storage does not start with torch.save's magic number");
        return LoadLegacyAfterMagic(bytes, first.Position, context);
    }

    /// <summary>
    /// Loads a whole file: a plain pickle (NVIDIA's network pickles) or, as a convenience, a torch.save file (zip or
    /// legacy) whose top-level object is what a plain pickle would hold.
    /// </summary>
    public static object? LoadFile(ReadOnlyMemory<byte> bytes, PickleContext context)
    {
        if (IsZip(bytes.Span)) return LoadZip(bytes, context);
        var first = new Unpickler(bytes, 0, context);
        var value = first.Load();
        if (IsMagic(value) && first.Position < bytes.Length) return LoadLegacyAfterMagic(bytes, first.Position, context);
        return value;
    }

    public static bool IsZip(ReadOnlySpan<byte> bytes) =>
        bytes.Length >= 4 && bytes[0] == (byte)'P' && bytes[1] == (byte)'K' && bytes[2] == 3 && bytes[3] == 4;

    private static bool IsMagic(object? value) => value is BigInteger big && big == LegacyMagic;

    private static object? LoadLegacyAfterMagic(ReadOnlyMemory<byte> bytes, int position, PickleContext context)
    {
        var header = new Unpickler(bytes, position, context);
        var protocol = header.Load();
        if (protocol is not long version || version != LegacyProtocolVersion)
            throw new PickleException(PickleFailure.Unsupported, $"torch.save stream protocol version {PyDescribe.KeyText(protocol)} is not the known {LegacyProtocolVersion}");
        var sysInfo = header.Load();
        if (sysInfo is PyDict info && info.GetOrNull("little_endian") is false)
            throw new PickleException(PickleFailure.Unsupported, "the tensors were saved on a big-endian machine, which this reader does not support");

        var storages = new Dictionary<string, PyStorage>(StringComparer.Ordinal);
        var views = new Dictionary<string, PyStorage>(StringComparer.Ordinal);
        var main = new Unpickler(bytes, header.Position, context, pid => LegacyPersistentLoad(pid, storages, views, bytes.Length));
        var result = main.Load();

        var keysReader = new Unpickler(bytes, main.Position, context);
        var keysObject = keysReader.Load();
        if (keysObject is not PyList keys)
            throw new PickleException(PickleFailure.Corrupt, $"the torch.save storage key list is a {PyDescribe.TypeName(keysObject)}");
        long pos = keysReader.Position;
        foreach (var keyObject in keys.Items)
        {
            var key = PyDescribe.KeyText(keyObject);
            if (!storages.TryGetValue(key, out var storage))
                throw new PickleException(PickleFailure.Corrupt, $"the torch.save data section lists storage '{key}', which its pickle never mentions");
            if (bytes.Length - pos < 8)
                throw new PickleException(PickleFailure.Truncated, $"the torch.save data section ends before storage '{key}'", pos);
            long count = BinaryPrimitives.ReadInt64LittleEndian(bytes.Span.Slice((int)pos, 8));
            if (count != storage.Numel)
                throw new PickleException(PickleFailure.Corrupt, $"storage '{key}' is announced with {storage.Numel} elements but its data section says {count}", pos);
            long length = count * RawTensor.ElementSize(storage.DType);
            if (bytes.Length - pos - 8 < length)
                throw new PickleException(PickleFailure.Truncated, $"the data of storage '{key}' ({length} bytes) runs past the end of the stream", pos);
            storage.SetData(bytes.Slice((int)pos + 8, (int)length));
            pos += 8 + length;
        }
        return result;
    }

    /// <summary>Legacy persistent ids: ('storage', storage_type, root_key, location, numel, view_metadata).</summary>
    private static object? LegacyPersistentLoad(object? pid, Dictionary<string, PyStorage> storages, Dictionary<string, PyStorage> views, long streamLength)
    {
        if (pid is not PyTuple { Count: >= 1 } t)
            throw new PickleException(PickleFailure.Corrupt, $"a persistent id is a {PyDescribe.TypeName(pid)}, not a tuple");
        if (t[0] is "module") return new PyInstance(new PyGlobal("torch.serialization", "module_source"), t); // source check only
        if (t[0] is not "storage" || t.Count < 5)
            throw new PickleException(PickleFailure.Corrupt, $"unknown persistent id kind '{PyDescribe.KeyText(t[0])}'");
        var root = GetOrAddStorage(storages, t[1], t[2], t[4], streamLength);
        if (t.Count > 5 && t[5] is PyTuple { Count: >= 3 } view)
        {
            var viewKey = PyDescribe.KeyText(view[0]);
            if (!views.TryGetValue(viewKey, out var viewStorage))
            {
                viewStorage = new PyStorage(root.DType, Reconstructors.ToLong(view[2], "storage view size"), root.TypeName)
                {
                    ViewOf = root,
                    ViewOffset = Reconstructors.ToLong(view[1], "storage view offset"),
                    IsUntyped = root.IsUntyped,
                };
                views[viewKey] = viewStorage;
            }
            return viewStorage;
        }
        return root;
    }

    private static PyStorage GetOrAddStorage(Dictionary<string, PyStorage> storages, object? type, object? keyObject, object? numelObject, long streamLength)
    {
        var key = PyDescribe.KeyText(keyObject);
        if (storages.TryGetValue(key, out var existing)) return existing;
        if (!Reconstructors.TryGetStorageType(type, out var dtype, out var untyped))
            throw new PickleException(PickleFailure.Unsupported, $"storage type {PyDescribe.TypeName(type)} is not supported (only real float, integer and bool storages are)");
        long numel = Reconstructors.ToLong(numelObject, "storage size");
        if (numel < 0 || numel > streamLength)
            throw new PickleException(PickleFailure.Corrupt, $"storage '{key}' claims {numel} elements in a stream of {streamLength} bytes");
        var storage = new PyStorage(dtype, numel, ((PyGlobal)type!).FullName) { IsUntyped = untyped };
        storages[key] = storage;
        return storage;
    }

    private static object? LoadZip(ReadOnlyMemory<byte> bytes, PickleContext context)
    {
        if (!MemoryMarshal.TryGetArray(bytes, out var segment)) segment = new ArraySegment<byte>(bytes.ToArray());
        using var stream = new MemoryStream(segment.Array!, segment.Offset, segment.Count, writable: false);
        ZipArchive archive;
        try
        {
            archive = new ZipArchive(stream, ZipArchiveMode.Read);
        }
        catch (InvalidDataException e)
        {
            throw new PickleException(PickleFailure.Truncated, $"the torch.save zip archive's directory cannot be read ({e.Message}); the data is truncated or damaged", -1, e);
        }
        using (archive)
        {
            var pickleEntry = archive.Entries
                .Where(e => e.FullName == "data.pkl" || e.FullName.EndsWith("/data.pkl", StringComparison.Ordinal))
                .OrderBy(e => e.FullName.Length)
                .FirstOrDefault()
                ?? throw new PickleException(PickleFailure.Corrupt, "the zip archive has no data.pkl, so it is not a torch.save file");
            var prefix = pickleEntry.FullName[..^"data.pkl".Length];
            if (archive.GetEntry(prefix + "byteorder") is { } byteOrderEntry
                && Encoding.ASCII.GetString(ReadEntry(byteOrderEntry, bytes.Length, context)).Trim() == "big")
                throw new PickleException(PickleFailure.Unsupported, "the tensors were saved on a big-endian machine, which this reader does not support");

            var storages = new Dictionary<string, PyStorage>(StringComparer.Ordinal);
            object? PersistentLoad(object? pid)
            {
                if (pid is not PyTuple { Count: >= 5 } t || t[0] is not "storage")
                    throw new PickleException(PickleFailure.Corrupt, $"unknown persistent id {PyDescribe.TypeName(pid)} in a torch zip archive");
                var key = PyDescribe.KeyText(t[2]);
                if (storages.TryGetValue(key, out var known)) return known;
                var storage = GetOrAddStorage(storages, t[1], t[2], t[4], bytes.Length);
                var entry = archive.GetEntry(prefix + "data/" + key)
                    ?? throw new PickleException(PickleFailure.Corrupt, $"the zip archive lacks the data of storage '{key}'");
                var data = ReadEntry(entry, bytes.Length, context);
                long length = storage.Numel * RawTensor.ElementSize(storage.DType);
                if (data.Length < length)
                    throw new PickleException(PickleFailure.Corrupt, $"storage '{key}' needs {length} bytes but its zip entry holds {data.Length}");
                storage.SetData(data.AsMemory(0, (int)length));
                return storage;
            }

            var pickle = ReadEntry(pickleEntry, bytes.Length, context);
            return new Unpickler(pickle, 0, context, PersistentLoad).Load();
        }
    }

    /// <summary>Reads a zip entry, refusing entries that claim to expand beyond the archive's own size: torch stores
    /// its entries uncompressed, so anything larger is a zip bomb or corruption.</summary>
    private static byte[] ReadEntry(ZipArchiveEntry entry, long archiveLength, PickleContext context)
    {
        if (entry.Length < 0 || entry.Length > archiveLength)
            throw new PickleException(PickleFailure.TooLarge, $"zip entry '{entry.FullName}' claims {entry.Length} bytes, more than the archive's {archiveLength}");
        context.ChargeExpansion(entry.Length);
        var buffer = new byte[entry.Length];
        try
        {
            using var s = entry.Open();
            int read = 0;
            while (read < buffer.Length)
            {
                int n = s.Read(buffer, read, buffer.Length - read);
                if (n == 0) break;
                read += n;
            }
            if (read != buffer.Length)
                throw new PickleException(PickleFailure.Truncated, $"zip entry '{entry.FullName}' ends after {read} of its {buffer.Length} bytes");
        }
        catch (InvalidDataException e)
        {
            throw new PickleException(PickleFailure.Corrupt, $"zip entry '{entry.FullName}' cannot be read ({e.Message})", -1, e);
        }
        return buffer;
    }
}
