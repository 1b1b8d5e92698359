using System.Buffers.Binary;
using System.Numerics;
using System.Text;

namespace PromptFaces.Generation.Checkpoints.Pickle;

/// <summary>
/// The allow-list that stands in for Python's import-and-call. A handful of globals that network pickles rely on are
/// recognised and rebuilt as data (OrderedDict, torch tensors and storages, NVIDIA's persistent objects, numpy scalars,
/// builtin containers); every other global yields an inert <see cref="PyInstance"/>. Nothing is ever looked up by
/// reflection or executed, so a pickle naming os.system gets a placeholder and nothing else.
/// </summary>
internal static class Reconstructors
{
    /// <summary>Builds the reference for GLOBAL/STACK_GLOBAL, mapping Python 2 module names to their Python 3 names
    /// as Python's fix_imports does.</summary>
    public static PyGlobal Global(string module, string name)
    {
        module = module switch
        {
            "__builtin__" => "builtins",
            "copy_reg" => "copyreg",
            _ => module,
        };
        return new PyGlobal(module, name);
    }

    /// <summary>REDUCE: <c>func(*args)</c> for allow-listed functions, a placeholder for anything else.</summary>
    public static object? Call(object? func, PyTuple args, PickleContext context)
    {
        if (func is not PyGlobal g) return new PyInstance(func, args);
        if (context.CallDepth >= PickleContext.MaxCallDepth)
            throw new PickleException(PickleFailure.TooLarge, $"reconstructor calls are nested more than {PickleContext.MaxCallDepth} deep");
        context.CallDepth++;
        try
        {
            return CallKnown(g, args, context);
        }
        finally
        {
            context.CallDepth--;
        }
    }

    private static object? CallKnown(PyGlobal g, PyTuple args, PickleContext context)
    {
        if (IsPersistenceReconstructor(g))
        {
            if (args.Count < 1 || args[0] is not PyDict meta)
                throw new PickleException(PickleFailure.Corrupt, "_reconstruct_persistent_obj is called without its meta dict");
            return new PersistentObject(meta);
        }
        switch (g.FullName)
        {
            case "collections.OrderedDict":
            case "builtins.dict":
            case "dnnlib.util.EasyDict":
            case "dnnlib.EasyDict":
                return DictFrom(args, g);
            case "builtins.list":
            {
                var list = new PyList();
                if (args.Count > 0) list.Items.AddRange(Iterate(args[0], g));
                return list;
            }
            case "builtins.tuple":
                return args.Count > 0 ? new PyTuple(Iterate(args[0], g).ToArray()) : PyTuple.Empty;
            case "builtins.set":
            case "builtins.frozenset":
            {
                var set = new PySet(frozen: g.Name == "frozenset");
                if (args.Count > 0) set.AddRange(Iterate(args[0], g));
                return set;
            }
            case "builtins.bytes":
            case "builtins.bytearray":
            case "_codecs.encode":
                return BytesFrom(args, g);
            case "copyreg._reconstructor":
            {
                // copyreg._reconstructor(cls, base, state): protocol 0/1 form of object construction.
                if (args.Count < 2) return new PyInstance(g, args);
                var obj = New(args[0], PyTuple.Empty, null);
                if (obj is PyDict dict && args.Count > 2 && args[2] is PyDict initial)
                    foreach (var (k, v) in initial.Items) dict.Set(k, v);
                return obj;
            }
            case "copyreg.__newobj__":
                return args.Count > 0 ? New(args[0], new PyTuple(args.Items[1..]), null) : new PyInstance(g, args);
            case "copyreg.__newobj_ex__":
                return args.Count > 0 ? New(args[0], args.Count > 1 && args[1] is PyTuple t ? t : PyTuple.Empty, null) : new PyInstance(g, args);
            case "torch._utils._rebuild_tensor":
                return RebuildTensor(g, args, 4, null);
            case "torch._utils._rebuild_tensor_v2":
                return RebuildTensor(g, args, 4, null);
            case "torch._utils._rebuild_tensor_v3":
                return RebuildTensor(g, args, 7, args.Count > 6 ? args[6] : null);
            case "torch._utils._rebuild_parameter":
            case "torch._utils._rebuild_parameter_with_state":
            {
                if (args.Count < 1 || args[0] is not PyTensor tensor)
                    return new PyInstance(g, args); // e.g. a parameter of a non-dense tensor type: reported if it is used
                tensor.IsParameter = true;
                if (args.Count > 1 && args[1] is bool requiresGrad) tensor.RequiresGrad = requiresGrad;
                return tensor;
            }
            case "torch._tensor._rebuild_from_type_v2":
            case "torch._tensor._rebuild_from_type":
            {
                // (func, type, args[, state]): torch's wrapper for Tensor subclasses. Rebuild through the allow-list.
                if (args.Count < 3 || args[2] is not PyTuple innerArgs) return new PyInstance(g, args);
                var result = Call(args[0], innerArgs, context);
                if (result is PyTensor tensor && args[1] is PyGlobal { Name: "Parameter" }) tensor.IsParameter = true;
                return result;
            }
            case "torch.storage._load_from_bytes":
            {
                if (args.Count < 1 || args[0] is not PyBytes bytes)
                    throw new PickleException(PickleFailure.Corrupt, "torch.storage._load_from_bytes is called without bytes");
                var loaded = TorchSerialization.LoadFromBytes(bytes.Data, context);
                return loaded as PyStorage
                    ?? throw new PickleException(PickleFailure.Corrupt, $"a serialised storage holds a {PyDescribe.TypeName(loaded)} instead of a storage");
            }
            case "torch.Size":
                return args.Count > 0 ? new PyTuple(Iterate(args[0], g).ToArray()) : PyTuple.Empty;
            case "numpy.dtype":
                return args.Count > 0 && args[0] is string descr ? new NumpyDType(descr) : new PyInstance(g, args);
            case "numpy.core.multiarray.scalar":
            case "numpy._core.multiarray.scalar":
                return NumpyScalar(args) ?? new PyInstance(g, args);
            default:
                return new PyInstance(g, args);
        }
    }

    /// <summary>NEWOBJ/NEWOBJ_EX/INST/OBJ: <c>cls.__new__(cls, *args)</c>. Containers become containers, so that the
    /// SETITEMS/APPENDS that follow fill them; everything else becomes a placeholder that BUILD gives a state.</summary>
    public static object? New(object? cls, PyTuple args, PyDict? kwargs)
    {
        _ = kwargs; // __new__ keyword arguments carry nothing this reader needs.
        if (cls is PyGlobal g)
        {
            switch (g.FullName)
            {
                case "collections.OrderedDict":
                case "builtins.dict":
                case "dnnlib.util.EasyDict":
                case "dnnlib.EasyDict":
                    return new PyDict();
                case "builtins.list":
                    return new PyList();
                case "builtins.set":
                    return new PySet(frozen: false);
                case "builtins.frozenset":
                {
                    var set = new PySet(frozen: true);
                    if (args.Count > 0) set.AddRange(Iterate(args[0], g));
                    return set;
                }
                case "builtins.tuple":
                case "torch.Size":
                    return args.Count > 0 ? new PyTuple(Iterate(args[0], g).ToArray()) : PyTuple.Empty;
            }
        }
        return new PyInstance(cls, args);
    }

    /// <summary>BUILD: <c>obj.__setstate__(state)</c>. Only placeholders keep their state (it is their __dict__); numpy
    /// dtypes take their byte order from it; for everything else the state carries nothing this reader needs.</summary>
    public static void Build(object? target, object? state)
    {
        switch (target)
        {
            case PyInstance instance:
                instance.State = state;
                break;
            case NumpyDType dtype when state is PyTuple { Count: >= 2 } t && t[1] is string order:
                dtype.ByteOrder = order;
                break;
        }
    }

    private static bool IsPersistenceReconstructor(PyGlobal g) =>
        g.Name == "_reconstruct_persistent_obj" && (g.Module == "torch_utils.persistence" || g.Module.EndsWith(".persistence", StringComparison.Ordinal));

    /// <summary>Maps a storage class (torch.FloatStorage, torch.cuda.HalfStorage, torch.UntypedStorage...) onto an
    /// element type. Returns false for anything else.</summary>
    public static bool TryGetStorageType(object? type, out RawDType dtype, out bool untyped)
    {
        untyped = false;
        dtype = RawDType.U8;
        if (type is not PyGlobal { Module: "torch" or "torch.cuda" or "torch.storage" } g) return false;
        switch (g.Name)
        {
            case "FloatStorage": dtype = RawDType.F32; return true;
            case "DoubleStorage": dtype = RawDType.F64; return true;
            case "HalfStorage": dtype = RawDType.F16; return true;
            case "BFloat16Storage": dtype = RawDType.BF16; return true;
            case "LongStorage": dtype = RawDType.I64; return true;
            case "IntStorage": dtype = RawDType.I32; return true;
            case "ShortStorage": dtype = RawDType.I16; return true;
            case "CharStorage": dtype = RawDType.I8; return true;
            case "ByteStorage": dtype = RawDType.U8; return true;
            case "BoolStorage": dtype = RawDType.Bool; return true;
            case "UntypedStorage": dtype = RawDType.U8; untyped = true; return true;
            default: return false;
        }
    }

    /// <summary>Maps torch dtype globals (torch.float32, torch.half...) as _rebuild_tensor_v3 passes them.</summary>
    private static RawDType? TorchDType(object? value) => value is PyGlobal { Module: "torch" } g
        ? g.Name switch
        {
            "float32" or "float" => RawDType.F32,
            "float64" or "double" => RawDType.F64,
            "float16" or "half" => RawDType.F16,
            "bfloat16" => RawDType.BF16,
            "int64" or "long" => RawDType.I64,
            "int32" or "int" => RawDType.I32,
            "int16" or "short" => RawDType.I16,
            "int8" => RawDType.I8,
            "uint8" => RawDType.U8,
            "bool" => RawDType.Bool,
            _ => null,
        }
        : null;

    private static object RebuildTensor(PyGlobal g, PyTuple args, int minArgs, object? dtypeArg) =>
        (object?)RebuildDenseTensor(args, minArgs, dtypeArg) ?? new PyInstance(g, args);

    /// <summary>The tensor, or null when its storage is not one this reader rebuilt; such a tensor matters only if the
    /// requested module uses it, and is then reported there.</summary>
    private static PyTensor? RebuildDenseTensor(PyTuple args, int minArgs, object? dtypeArg)
    {
        if (args.Count < minArgs)
            throw new PickleException(PickleFailure.Corrupt, $"a tensor is rebuilt with {args.Count} arguments, fewer than {minArgs}");
        if (args[0] is not PyStorage storage)
            return null; // storage of a kind not on the allow-list: the caller keeps a placeholder
        var dtype = storage.DType;
        if (dtypeArg is not null)
        {
            var requested = TorchDType(dtypeArg)
                ?? throw new PickleException(PickleFailure.Unsupported, $"tensor element type {PyDescribe.TypeName(dtypeArg)} is not supported");
            if (storage.IsUntyped) dtype = requested;
            else if (requested != storage.DType)
                throw new PickleException(PickleFailure.Corrupt, $"a {requested} tensor is built on a {storage.DType} storage");
        }
        else if (storage.IsUntyped)
        {
            throw new PickleException(PickleFailure.Corrupt, "a tensor on an untyped storage does not say its element type");
        }
        var tensor = new PyTensor(storage, dtype, ToLong(args[1], "storage offset"), ToLongArray(args[2], "size"), ToLongArray(args[3], "stride"));
        if (args.Count > 4 && args[4] is bool requiresGrad) tensor.RequiresGrad = requiresGrad;
        return tensor;
    }

    public static long ToLong(object? value, string what) => value switch
    {
        long l => l,
        bool b => b ? 1 : 0,
        BigInteger big when big >= long.MinValue && big <= long.MaxValue => (long)big,
        _ => throw new PickleException(PickleFailure.Corrupt, $"a tensor's {what} is a {PyDescribe.TypeName(value)}, not an integer"),
    };

    private static long[] ToLongArray(object? value, string what) => value switch
    {
        PyTuple t => t.Items.Select(x => ToLong(x, what)).ToArray(),
        PyList l => l.Items.Select(x => ToLong(x, what)).ToArray(),
        _ => throw new PickleException(PickleFailure.Corrupt, $"a tensor's {what} is a {PyDescribe.TypeName(value)}, not a tuple"),
    };

    private static IEnumerable<object?> Iterate(object? value, PyGlobal caller) => value switch
    {
        PyTuple t => t.Items,
        PyList l => l.Items,
        PySet s => s.Items,
        PyDict d => d.Keys,
        string s => s.Select(c => (object?)c.ToString()),
        _ => throw new PickleException(PickleFailure.Corrupt, $"{caller.FullName} is given a {PyDescribe.TypeName(value)} to iterate"),
    };

    private static PyDict DictFrom(PyTuple args, PyGlobal caller)
    {
        var dict = new PyDict();
        if (args.Count == 0 || args[0] is null) return dict;
        if (args[0] is PyDict source)
        {
            foreach (var (k, v) in source.Items) dict.Set(k, v);
            return dict;
        }
        foreach (var item in Iterate(args[0], caller))
        {
            if (item is PyTuple { Count: 2 } pair) dict.Set(pair[0], pair[1]);
            else if (item is PyList { Items.Count: 2 } listPair) dict.Set(listPair.Items[0], listPair.Items[1]);
            else throw new PickleException(PickleFailure.Corrupt, $"{caller.FullName} is given an item that is not a key/value pair");
        }
        return dict;
    }

    private static object BytesFrom(PyTuple args, PyGlobal caller)
    {
        if (args.Count == 0) return new PyBytes(ReadOnlyMemory<byte>.Empty);
        switch (args[0])
        {
            case PyBytes b:
                return b;
            case string s:
            {
                // _codecs.encode(str, 'latin1') is how protocol 2 stores Python 3 bytes; its default is UTF-8.
                var encoding = (args.Count > 1 ? args[1] as string : null)?.Replace("-", "").Replace("_", "").ToLowerInvariant();
                return encoding switch
                {
                    "latin1" or "iso88591" or "l1" or "ascii" => new PyBytes(Encoding.Latin1.GetBytes(s)),
                    "utf8" or "u8" => new PyBytes(Encoding.UTF8.GetBytes(s)),
                    null when caller.Name == "encode" => new PyBytes(Encoding.UTF8.GetBytes(s)),
                    _ => new PyInstance(caller, args),
                };
            }
            case PyList l when l.Items.All(x => x is long v && v is >= 0 and <= 255):
                return new PyBytes(l.Items.Select(x => (byte)(long)x!).ToArray());
            default:
                return new PyInstance(caller, args);
        }
    }

    /// <summary>numpy.core.multiarray.scalar(dtype, bytes): the numpy float64/int64/bool values that NVIDIA's modules
    /// keep as attributes and that can appear in constructor kwargs. Unknown dtypes return null.</summary>
    private static object? NumpyScalar(PyTuple args)
    {
        if (args.Count < 2 || args[0] is not NumpyDType dtype) return null;
        ReadOnlySpan<byte> raw = args[1] switch
        {
            PyBytes b => b.Data.Span,
            string s => Encoding.Latin1.GetBytes(s), // Python 2 pickles store the bytes as a str
            _ => default,
        };
        var descr = dtype.Descr.TrimStart('<', '>', '=', '|');
        if (descr.Length < 2 || !int.TryParse(descr.AsSpan(1), out var size) || size is < 1 or > 8 || raw.Length != size) return null;
        Span<byte> bytes = stackalloc byte[8];
        raw.CopyTo(bytes);
        bool bigEndian = dtype.ByteOrder == ">" || dtype.Descr.StartsWith('>');
        if (bigEndian) bytes[..size].Reverse();
        return (descr[0], size) switch
        {
            ('f', 8) => BinaryPrimitives.ReadDoubleLittleEndian(bytes),
            ('f', 4) => (double)BinaryPrimitives.ReadSingleLittleEndian(bytes),
            ('f', 2) => (double)BinaryPrimitives.ReadHalfLittleEndian(bytes),
            ('i', 8) => BinaryPrimitives.ReadInt64LittleEndian(bytes),
            ('i', 4) => (long)BinaryPrimitives.ReadInt32LittleEndian(bytes),
            ('i', 2) => (long)BinaryPrimitives.ReadInt16LittleEndian(bytes),
            ('i', 1) => (long)(sbyte)bytes[0],
            ('u', 8) => BinaryPrimitives.ReadUInt64LittleEndian(bytes) is var u && u <= long.MaxValue ? (long)u : (object)new BigInteger(u),
            ('u', 4) => (long)BinaryPrimitives.ReadUInt32LittleEndian(bytes),
            ('u', 2) => (long)BinaryPrimitives.ReadUInt16LittleEndian(bytes),
            ('u', 1) => (long)bytes[0],
            ('b', 1) => bytes[0] != 0,
            _ => null,
        };
    }
}
