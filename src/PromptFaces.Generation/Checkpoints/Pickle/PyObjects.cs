using System.Numerics;
using System.Text;

namespace PromptFaces.Generation.Checkpoints.Pickle;

// The object model the pickle machine produces. Python values map onto plain .NET values where one fits
// (None = null, bool, int = long or BigInteger, float = double, str = string) and onto the small classes below
// otherwise. Nothing here can run code: every class is inert data.

/// <summary>A Python tuple. Immutable, like its Python counterpart, so it can serve as a dictionary key.</summary>
internal sealed class PyTuple(object?[] items)
{
    public static readonly PyTuple Empty = new([]);

    public object?[] Items { get; } = items;

    public int Count => Items.Length;

    public object? this[int index] => Items[index];
}

/// <summary>A Python list (or any object the stream treats as one through APPEND/APPENDS).</summary>
internal sealed class PyList
{
    public List<object?> Items { get; } = [];
}

/// <summary>A Python set or frozenset. Membership is all this reader needs (e.g. _non_persistent_buffers_set).</summary>
internal sealed class PySet(bool frozen)
{
    private readonly List<object?> items = [];
    private HashSet<object>? lookup;

    public bool Frozen { get; } = frozen;

    public IReadOnlyList<object?> Items => items;

    public void AddRange(IEnumerable<object?> values)
    {
        items.AddRange(values);
        lookup = null;
    }

    /// <summary>Hashed, so that a crafted file with huge sets cannot make membership tests quadratic.</summary>
    public bool Contains(object? value)
    {
        lookup ??= new HashSet<object>(items.Select(PyKeyComparer.Normalize), PyKeyComparer.Instance);
        return lookup.Contains(PyKeyComparer.Normalize(value));
    }
}

/// <summary>
/// Python bytes or bytearray. Holds a slice of the file's buffer rather than a copy, so that the tensor data inside a
/// multi-hundred-megabyte pickle is never duplicated while parsing.
/// </summary>
internal sealed class PyBytes(ReadOnlyMemory<byte> data)
{
    public ReadOnlyMemory<byte> Data { get; } = data;
}

/// <summary>
/// A Python dict, OrderedDict or dict subclass. Keeps insertion order, because PyTorch's state-dict order is the
/// insertion order of <c>_parameters</c>, <c>_buffers</c> and <c>_modules</c>; re-setting a key keeps its place, as in
/// Python.
/// </summary>
internal sealed class PyDict
{
    private readonly List<object?> keys = [];
    private readonly List<object?> values = [];
    private readonly Dictionary<object, int> index = new(PyKeyComparer.Instance);

    public int Count => keys.Count;

    public IEnumerable<KeyValuePair<object?, object?>> Items
    {
        get
        {
            for (int i = 0; i < keys.Count; i++) yield return new(keys[i], values[i]);
        }
    }

    public IEnumerable<object?> Keys => keys;

    public void Set(object? key, object? value)
    {
        var k = PyKeyComparer.Normalize(key);
        if (index.TryGetValue(k, out var i))
        {
            values[i] = value;
            return;
        }
        index[k] = keys.Count;
        keys.Add(key);
        values.Add(value);
    }

    public bool TryGet(object? key, out object? value)
    {
        if (index.TryGetValue(PyKeyComparer.Normalize(key), out var i))
        {
            value = values[i];
            return true;
        }
        value = null;
        return false;
    }

    public object? GetOrNull(object? key) => TryGet(key, out var v) ? v : null;
}

/// <summary>
/// Equality the way Python compares dict keys for the key types pickles use (str, int, bool, float, None, tuples of
/// those, bytes). Any other object compares by identity, which is what Python does for objects without __eq__.
/// </summary>
internal sealed class PyKeyComparer : IEqualityComparer<object>
{
    public static readonly PyKeyComparer Instance = new();

    private static readonly object NoneKey = new();

    /// <summary>Maps values that Python considers equal onto one .NET representation (True == 1 == 1.0).</summary>
    public static object Normalize(object? key) => key switch
    {
        null => NoneKey,
        bool b => b ? 1L : 0L,
        int i => (long)i,
        BigInteger big when big >= long.MinValue && big <= long.MaxValue => (long)big,
        double d when Math.Floor(d) == d && d >= long.MinValue && d <= long.MaxValue => (long)d,
        _ => key,
    };

    /// <summary>Tuples nested deeper than this compare by identity: a crafted file can nest tuples a million levels
    /// deep at one byte per level, and comparing those recursively would overflow the stack.</summary>
    private const int MaxDepth = 32;

    public new bool Equals(object? x, object? y) => Equals(x, y, 0);

    public int GetHashCode(object obj) => Hash(obj, 0);

    private bool Equals(object? x, object? y, int depth)
    {
        if (ReferenceEquals(x, y)) return true;
        if (x is null || y is null) return false;
        return (x, y) switch
        {
            (string a, string b) => string.Equals(a, b, StringComparison.Ordinal),
            (long a, long b) => a == b,
            (double a, double b) => a.Equals(b),
            (BigInteger a, BigInteger b) => a == b,
            (PyTuple a, PyTuple b) => depth < MaxDepth && a.Count == b.Count
                && a.Items.Zip(b.Items).All(p => Equals(Normalize(p.First), Normalize(p.Second), depth + 1)),
            (PyBytes a, PyBytes b) => a.Data.Span.SequenceEqual(b.Data.Span),
            _ => false,
        };
    }

    private int Hash(object obj, int depth) => obj switch
    {
        string s => StringComparer.Ordinal.GetHashCode(s),
        long l => l.GetHashCode(),
        double d => d.GetHashCode(),
        BigInteger b => b.GetHashCode(),
        PyTuple t when depth < MaxDepth => t.Items.Aggregate(t.Count, (h, item) => HashCode.Combine(h, Hash(Normalize(item), depth + 1))),
        PyTuple t => System.Runtime.CompilerServices.RuntimeHelpers.GetHashCode(t),
        PyBytes b => b.Data.Length,
        _ => System.Runtime.CompilerServices.RuntimeHelpers.GetHashCode(obj),
    };
}

/// <summary>
/// A reference to a Python global (module + name), as GLOBAL and STACK_GLOBAL produce. Never imported or called: the
/// <see cref="Reconstructors"/> allow-list decides what, if anything, it stands for.
/// </summary>
internal sealed record PyGlobal(string Module, string Name)
{
    public string FullName => Module + "." + Name;

    public override string ToString() => FullName;
}

/// <summary>
/// An inert stand-in for any object whose class is not on the allow-list (a torch.device, a numpy array, a user
/// class...). It records how the stream built it so that nothing is lost, but it has no behaviour. It also accepts
/// dict and list items, because subclasses of dict/list (dnnlib.EasyDict, say) are filled through SETITEMS/APPENDS.
/// </summary>
internal sealed class PyInstance(object? type, PyTuple args)
{
    /// <summary>The callable or class the stream named (usually a <see cref="PyGlobal"/>).</summary>
    public object? Type { get; } = type;

    public PyTuple Args { get; } = args;

    /// <summary>The BUILD state, normally the object's __dict__.</summary>
    public object? State { get; set; }

    public PyDict? DictItems { get; set; }

    public PyList? ListItems { get; set; }

    /// <summary>The class's dotted name. Not recursive: placeholders can be built from placeholders to any depth.</summary>
    public string TypeName => Type is PyGlobal g ? g.FullName : "object built from a " + (Type is PyInstance ? "placeholder" : PyDescribe.TypeName(Type));
}

/// <summary>
/// An object pickled by NVIDIA's <c>torch_utils.persistence</c>: <c>_reconstruct_persistent_obj(meta)</c> with the
/// class source embedded in <c>meta['module_src']</c> and the instance __dict__ in <c>meta['state']</c>. The source is
/// kept as text only (it is useful to name positional constructor arguments); it is never executed.
/// </summary>
internal sealed class PersistentObject(PyDict meta)
{
    public PyDict Meta { get; } = meta;

    public string ClassName => Meta.GetOrNull("class_name") as string ?? "?";

    public string? ModuleSource => Meta.GetOrNull("module_src") as string;

    public object? State => Meta.GetOrNull("state");
}

/// <summary>A numpy dtype, reduced to what is needed to decode numpy scalars: its type string and byte order.</summary>
internal sealed class NumpyDType(string descr)
{
    public string Descr { get; } = descr;

    /// <summary>'&lt;', '&gt;', '|' or '=' as numpy's BUILD state gives it.</summary>
    public string ByteOrder { get; set; } = "=";
}

/// <summary>
/// A torch storage: a flat array of one element type. Legacy torch.save streams announce storages in the pickle and
/// deliver their bytes afterwards, so <see cref="Data"/> is filled in late; a view (legacy <c>view_metadata</c>)
/// points into its root storage.
/// </summary>
internal sealed class PyStorage(RawDType dtype, long numel, string typeName)
{
    private ReadOnlyMemory<byte>? data;

    public RawDType DType { get; } = dtype;

    /// <summary>Element count as announced; untyped storages count bytes.</summary>
    public long Numel { get; } = numel;

    public string TypeName { get; } = typeName;

    /// <summary>True for torch.UntypedStorage, whose tensors carry their own dtype (_rebuild_tensor_v3).</summary>
    public bool IsUntyped { get; init; }

    public PyStorage? ViewOf { get; init; }

    public long ViewOffset { get; init; }

    public void SetData(ReadOnlyMemory<byte> bytes) => data = bytes;

    public bool HasData => ViewOf?.HasData ?? data.HasValue;

    public ReadOnlyMemory<byte> GetData()
    {
        int es = RawTensor.ElementSize(DType);
        if (ViewOf is { } root)
        {
            var rootData = root.GetData();
            long rootElements = rootData.Length / es;
            if (ViewOffset < 0 || Numel < 0 || ViewOffset > rootElements || Numel > rootElements - ViewOffset)
                throw new PickleException(PickleFailure.Corrupt, $"a storage view (offset {ViewOffset}, {Numel} elements) lies outside its storage of {rootElements} elements");
            long start = ViewOffset * es, length = Numel * es;
            return rootData.Slice((int)start, (int)length);
        }
        return data ?? throw new PickleException(PickleFailure.Corrupt, "a storage referenced by a tensor has no data in the stream");
    }
}

/// <summary>
/// A dense strided tensor as <c>torch._utils._rebuild_tensor_v2</c> describes it: a storage plus offset, sizes and
/// strides (all in elements). Kept lazy so that only the tensors of the requested module are ever materialised.
/// </summary>
internal sealed class PyTensor(PyStorage storage, RawDType dtype, long offset, long[] size, long[] stride)
{
    public PyStorage Storage { get; } = storage;

    public RawDType DType { get; } = dtype;

    public long Offset { get; } = offset;

    public long[] Size { get; } = size;

    public long[] Stride { get; } = stride;

    public bool RequiresGrad { get; set; }

    public bool IsParameter { get; set; }

    /// <summary>
    /// Copies the viewed elements into a new contiguous buffer (row-major), honouring the offset and arbitrary
    /// non-negative strides. Validates every index against the storage first, so a corrupt file cannot read outside it,
    /// and charges the output against <paramref name="context"/>'s budget, so broadcasting strides (stride 0) cannot
    /// make a small file expand into unbounded memory.
    /// </summary>
    public RawTensor Materialize(PickleContext context)
    {
        if (Size.Length != Stride.Length)
            throw new PickleException(PickleFailure.Corrupt, $"a tensor has {Size.Length} sizes but {Stride.Length} strides");
        if (Offset < 0 || Size.Any(s => s < 0) || Stride.Any(s => s < 0))
            throw new PickleException(PickleFailure.Corrupt, $"a tensor has a negative offset, size or stride (offset {Offset}, size {RawTensor.FormatShape(Size)}, stride {RawTensor.FormatShape(Stride)})");
        int es = RawTensor.ElementSize(DType);
        long count;
        long lastIndex = Offset;
        try
        {
            count = 1;
            foreach (var s in Size) count = checked(count * s);
            for (int d = 0; d < Size.Length; d++)
                if (Size[d] > 0) lastIndex = checked(lastIndex + (Size[d] - 1) * Stride[d]);
            _ = checked(count * es);
        }
        catch (OverflowException)
        {
            throw new PickleException(PickleFailure.Corrupt, $"a tensor's size {RawTensor.FormatShape(Size)} or strides overflow");
        }
        if (count * es > Array.MaxLength)
            throw new PickleException(PickleFailure.TooLarge, $"a tensor of size {RawTensor.FormatShape(Size)} needs {count * es} bytes, more than one .NET array can hold");
        context.ChargeOutput(count * es);
        if (count == 0) return new RawTensor(DType, (long[])Size.Clone(), []);

        var source = Storage.GetData().Span;
        long storageElements = source.Length / es;
        if (lastIndex >= storageElements)
            throw new PickleException(PickleFailure.Corrupt, $"a tensor of size {RawTensor.FormatShape(Size)} (offset {Offset}, stride {RawTensor.FormatShape(Stride)}) reaches element {lastIndex} of a storage holding only {storageElements}");

        var result = new byte[count * es];
        if (IsContiguous())
        {
            source.Slice((int)(Offset * es), result.Length).CopyTo(result);
        }
        else
        {
            CopyStrided(source, result, es);
        }
        return new RawTensor(DType, (long[])Size.Clone(), result);
    }

    private bool IsContiguous()
    {
        long expected = 1;
        for (int d = Size.Length - 1; d >= 0; d--)
        {
            if (Size[d] != 1 && Stride[d] != expected) return false;
            expected *= Size[d];
        }
        return true;
    }

    /// <summary>Walks the index space with an odometer; the innermost dimension is copied as a run when its stride is 1.</summary>
    private void CopyStrided(ReadOnlySpan<byte> source, byte[] destination, int es)
    {
        int rank = Size.Length;
        var index = new long[rank];
        long inner = Size[rank - 1], innerStride = Stride[rank - 1];
        long outerCount = 1;
        for (int d = 0; d < rank - 1; d++) outerCount *= Size[d];
        long written = 0;
        for (long o = 0; o < outerCount; o++)
        {
            long baseIndex = Offset;
            for (int d = 0; d < rank - 1; d++) baseIndex += index[d] * Stride[d];
            if (innerStride == 1)
            {
                source.Slice((int)(baseIndex * es), (int)(inner * es)).CopyTo(destination.AsSpan((int)(written * es)));
                written += inner;
            }
            else
            {
                for (long i = 0; i < inner; i++, written++)
                    source.Slice((int)((baseIndex + i * innerStride) * es), es).CopyTo(destination.AsSpan((int)(written * es), es));
            }
            for (int d = rank - 2; d >= 0; d--)
            {
                if (++index[d] < Size[d]) break;
                index[d] = 0;
            }
        }
    }
}

/// <summary>Short human-readable descriptions of pickled values, for error messages.</summary>
internal static class PyDescribe
{
    public static string TypeName(object? value) => value switch
    {
        null => "None",
        bool => "bool",
        long or int or BigInteger => "int",
        double => "float",
        string => "str",
        PyBytes => "bytes",
        PyTuple => "tuple",
        PyList => "list",
        PyDict => "dict",
        PySet s => s.Frozen ? "frozenset" : "set",
        PyGlobal g => "reference to " + g.FullName,
        PyInstance i => i.TypeName + " object",
        PersistentObject p => p.ClassName + " (torch_utils.persistence object)",
        NumpyDType => "numpy.dtype",
        PyStorage s => s.TypeName,
        PyTensor => "torch.Tensor",
        _ => value.GetType().Name,
    };

    /// <summary>Python's str() for the scalar key types that may appear as dict keys.</summary>
    public static string KeyText(object? key) => key switch
    {
        null => "None",
        string s => s,
        bool b => b ? "True" : "False",
        double d => d.ToString("R", System.Globalization.CultureInfo.InvariantCulture),
        IFormattable f => f.ToString(null, System.Globalization.CultureInfo.InvariantCulture),
        PyBytes b => "b'" + Encoding.Latin1.GetString(b.Data.Span) + "'",
        _ => "<" + TypeName(key) + ">",
    };
}
