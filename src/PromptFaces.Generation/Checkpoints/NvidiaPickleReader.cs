using System.Text.Json.Nodes;
using PromptFaces.Generation.Checkpoints.Pickle;

namespace PromptFaces.Generation.Checkpoints;

/// <summary>
/// One network taken out of an NVIDIA network pickle.
/// </summary>
/// <param name="StateDict">Exactly what <c>module.state_dict()</c> would return in Python: PyTorch's key names, in
/// PyTorch's order (each module's parameters, then its persistent buffers, then its submodules in registration order),
/// every tensor contiguous.</param>
/// <param name="InitKwargs">The module's constructor arguments as <c>torch_utils.persistence</c> recorded them
/// (z_dim, w_dim, img_resolution, mapping_kwargs, synthesis_kwargs...), enough to build the same architecture.</param>
/// <param name="AvailableModules">The networks the file holds (e.g. G, D, G_ema), in file order.</param>
public sealed record NvidiaNetworkPickle(
    IReadOnlyDictionary<string, RawTensor> StateDict,
    JsonObject InitKwargs,
    IReadOnlyList<string> AvailableModules);

/// <summary>
/// Reads NVIDIA's official StyleGAN2(-ADA) / StyleGAN3 network pickles (<c>pickle.dump(dict(G=..., D=..., G_ema=...,
/// training_set_kwargs=...))</c>) without Python.
/// </summary>
/// <remarks>
/// Those files are plain pickles of <c>torch_utils.persistence</c> objects that embed their class source; loading them
/// the Python way means executing that source and any global the file names. This reader instead runs a pickle machine
/// that never executes anything (see <see cref="Unpickler"/>): tensors, OrderedDicts and persistent objects are rebuilt
/// as data, everything else becomes an inert placeholder. Every failure surfaces as a <see cref="CheckpointException"/>
/// naming the file and saying what to do, whatever the bytes contain.
/// </remarks>
public static class NvidiaPickleReader
{
    /// <summary>Deeper module trees than this are not networks but corrupt or hostile files.</summary>
    private const int MaxModuleDepth = 64;

    /// <summary>Upper bound on state-dict entries; real generators have a few hundred.</summary>
    private const int MaxStateDictEntries = 1_000_000;

    /// <summary>Reads the file and returns the state dict and constructor kwargs of <paramref name="moduleName"/>.</summary>
    /// <exception cref="CheckpointException">The file cannot be read, is not a valid network pickle, or lacks the
    /// module.</exception>
    public static NvidiaNetworkPickle Read(string path, string moduleName = "G_ema")
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        ArgumentException.ThrowIfNullOrEmpty(moduleName);

        byte[] bytes;
        try
        {
            bytes = File.ReadAllBytes(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or NotSupportedException or System.Security.SecurityException or ArgumentException)
        {
            throw new CheckpointException(path, $"cannot read the file ({e.Message}). Check that the path is right and the file is readable.", inner: e);
        }
        catch (OutOfMemoryException e)
        {
            throw new CheckpointException(path, "is too large to load into memory. Free memory or use a smaller network.", inner: e);
        }

        CheckLooksLikePickle(path, bytes);
        var context = new PickleContext(bytes.Length);
        try
        {
            var root = TorchSerialization.LoadFile(bytes, context);
            return Extract(path, root, moduleName, context);
        }
        catch (PickleException e)
        {
            throw Translate(path, e);
        }
        catch (CheckpointException)
        {
            throw;
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            // Defence in depth: whatever slipped through the checks above still reaches the caller as a file problem.
            throw new CheckpointException(path, $"could not be decoded ({e.GetType().Name}: {e.Message}). The file is probably corrupt; download it again.", inner: e);
        }
        catch (OutOfMemoryException e)
        {
            throw new CheckpointException(path, "needs more memory than is available to decode. Free memory or use a smaller network.", inner: e);
        }
    }

    private static void CheckLooksLikePickle(string path, byte[] bytes)
    {
        if (bytes.Length == 0)
            throw new CheckpointException(path, "is empty (0 bytes). The download or copy failed; fetch the network pickle again.");
        // NVIDIA's pickles use protocol 2 or later, which always starts with the PROTO opcode; torch.save zips start
        // with a zip header.
        if (bytes[0] == 0x80 || TorchSerialization.IsZip(bytes)) return;
        var head = bytes.AsSpan(0, Math.Min(8, bytes.Length));
        var hex = Convert.ToHexString(head);
        var text = new string(head.ToArray().Select(b => b is >= 0x20 and < 0x7f ? (char)b : '.').ToArray());
        var hint = SafeTensorsFile.LooksLikeSafeTensors(path)
            ? " It is a safetensors file: load it with SafeTensorsFile instead."
            : text.TrimStart().StartsWith('<')
                ? " It looks like an HTML or XML page, as servers return for a failed download; download the real .pkl."
                : " Check that the path points at a StyleGAN2/StyleGAN3 network pickle (.pkl) from stylegan2-ada-pytorch or stylegan3.";
        throw new CheckpointException(path, $"is not a Python pickle: it starts with bytes {hex} ('{text}'), not the pickle protocol marker 0x80.{hint}");
    }

    private static CheckpointException Translate(string path, PickleException e)
    {
        var message = e.Failure switch
        {
            PickleFailure.Truncated =>
                $"is truncated: {e.Message}. The file is incomplete (an interrupted download or copy); download or copy it again.",
            PickleFailure.Unsupported =>
                $"uses something this reader does not support: {e.Message}. Export the network's state_dict to safetensors with the official code and load that instead.",
            PickleFailure.TooLarge =>
                $"is not a plausible network pickle: {e.Message}. The file is corrupt or crafted; do not use it.",
            _ =>
                $"is not a valid network pickle: {e.Message}. The file is corrupt or is not an NVIDIA StyleGAN network pickle; download it again or check the path.",
        };
        return new CheckpointException(path, message, inner: e);
    }

    private static NvidiaNetworkPickle Extract(string path, object? root, string moduleName, PickleContext context)
    {
        if (root is not PyDict top)
            throw new CheckpointException(path, $"holds a {PyDescribe.TypeName(root)} at its top level, not the dict of networks (G, D, G_ema, ...) that NVIDIA's network pickles hold. Use a .pkl written by stylegan2-ada-pytorch or stylegan3.");

        var available = top.Items.Where(kv => kv.Key is string && ModuleState(kv.Value) is not null).Select(kv => (string)kv.Key!).ToList();
        var availableText = available.Count > 0 ? string.Join(", ", available) : "none";
        if (!top.TryGet(moduleName, out var module))
        {
            var entries = string.Join(", ", top.Items.Select(kv => $"{PyDescribe.KeyText(kv.Key)} ({PyDescribe.TypeName(kv.Value)})"));
            throw new CheckpointException(path,
                $"has no '{moduleName}' network. Its top-level entries are: {(entries.Length > 0 ? entries : "none")}. "
                + (available.Count > 0
                    ? $"Ask for one of the networks it does hold ({availableText}), or use a network pickle that contains {moduleName}."
                    : $"It holds no networks at all; use a network pickle that contains {moduleName}."),
                moduleName);
        }
        var state = ModuleState(module)
            ?? throw new CheckpointException(path,
                $"entry '{moduleName}' is a {PyDescribe.TypeName(module)}, not a network module. Networks in this file: {availableText}.",
                moduleName);

        var stateDict = new OrderedDictionary<string, RawTensor>(StringComparer.Ordinal);
        var materialised = new Dictionary<PyTensor, RawTensor>(ReferenceEqualityComparer.Instance);
        var onPath = new HashSet<object>(ReferenceEqualityComparer.Instance);
        CollectStateDict(path, moduleName, module!, state, "", 0, stateDict, materialised, onPath, context);

        var initKwargs = InitKwargs(module!, state);
        return new NvidiaNetworkPickle(stateDict, initKwargs, available);
    }

    /// <summary>The instance __dict__ of a torch module, or null when the value is not one.</summary>
    private static PyDict? ModuleState(object? value)
    {
        var state = value switch
        {
            PersistentObject p => p.State as PyDict,
            PyInstance i => i.State as PyDict, // a module pickled without persistence (nn.ModuleList, plain classes)
            _ => null,
        };
        return state is not null && (state.TryGet("_parameters", out _) || state.TryGet("_modules", out _) || state.TryGet("_buffers", out _))
            ? state
            : null;
    }

    /// <summary>
    /// Mirrors <c>torch.nn.Module._save_to_state_dict</c> and <c>state_dict</c>: own parameters (skipping None), own
    /// buffers (skipping None and names in <c>_non_persistent_buffers_set</c>), then each non-None child with
    /// "name." prepended.
    /// </summary>
    private static void CollectStateDict(string path, string moduleName, object module, PyDict state, string prefix, int depth,
        OrderedDictionary<string, RawTensor> output, Dictionary<PyTensor, RawTensor> materialised, HashSet<object> onPath, PickleContext context)
    {
        if (depth > MaxModuleDepth)
            throw new CheckpointException(path, $"module '{moduleName}' nests submodules more than {MaxModuleDepth} deep (at '{prefix}'); the file is corrupt.", moduleName);
        if (!onPath.Add(module))
            throw new CheckpointException(path, $"module '{moduleName}' contains itself (at '{prefix.TrimEnd('.')}'); the file is corrupt.", moduleName);

        var nonPersistent = state.GetOrNull("_non_persistent_buffers_set") as PySet;
        foreach (var (field, isBuffer) in new[] { ("_parameters", false), ("_buffers", true) })
        {
            var entries = state.GetOrNull(field);
            if (entries is null) continue;
            if (entries is not PyDict dict)
                throw new CheckpointException(path, $"'{prefix}{field}' is a {PyDescribe.TypeName(entries)}, not a dict; the file is corrupt.", moduleName);
            foreach (var (nameObject, value) in dict.Items)
            {
                if (nameObject is not string name)
                    throw new CheckpointException(path, $"'{prefix}{field}' has a non-string name {PyDescribe.KeyText(nameObject)}; the file is corrupt.", moduleName);
                if (value is null) continue;
                if (isBuffer && nonPersistent is not null && nonPersistent.Contains(name)) continue;
                var key = prefix + name;
                if (value is not PyTensor tensor)
                    throw new CheckpointException(path,
                        $"'{key}' is a {PyDescribe.TypeName(value)}, not a dense CPU/GPU tensor; this reader supports only ordinary float, integer and bool tensors.", key);
                if (!materialised.TryGetValue(tensor, out var raw))
                {
                    try
                    {
                        raw = tensor.Materialize(context);
                    }
                    catch (PickleException e)
                    {
                        throw new CheckpointException(path, $"tensor '{key}' cannot be read: {e.Message}. The file is corrupt; download it again.", key, e);
                    }
                    materialised[tensor] = raw;
                }
                if (output.Count >= MaxStateDictEntries)
                    throw new CheckpointException(path, $"module '{moduleName}' expands into more than {MaxStateDictEntries} tensors; the file is corrupt or crafted.", moduleName);
                if (!output.TryAdd(key, raw))
                    throw new CheckpointException(path, $"the state-dict key '{key}' occurs twice; the file is corrupt.", key);
            }
        }

        var modules = state.GetOrNull("_modules");
        if (modules is not null)
        {
            if (modules is not PyDict children)
                throw new CheckpointException(path, $"'{prefix}_modules' is a {PyDescribe.TypeName(modules)}, not a dict; the file is corrupt.", moduleName);
            foreach (var (nameObject, child) in children.Items)
            {
                if (child is null) continue;
                if (nameObject is not string name)
                    throw new CheckpointException(path, $"'{prefix}_modules' has a non-string name {PyDescribe.KeyText(nameObject)}; the file is corrupt.", moduleName);
                var childState = ModuleState(child)
                    ?? throw new CheckpointException(path, $"submodule '{prefix}{name}' is a {PyDescribe.TypeName(child)}, not a torch module; the file is corrupt.", prefix + name);
                CollectStateDict(path, moduleName, child, childState, prefix + name + ".", depth + 1, output, materialised, onPath, context);
            }
        }
        onPath.Remove(module);
    }

    /// <summary>
    /// The constructor arguments that <c>torch_utils.persistence</c> stores in <c>_init_args</c> / <c>_init_kwargs</c>.
    /// Positional arguments are named from the <c>__init__</c> signature in the embedded class source (read as text,
    /// never run); any that cannot be named are kept under <c>"_init_args"</c>.
    /// </summary>
    private static JsonObject InitKwargs(object module, PyDict state)
    {
        var json = new PyJson();
        var result = new JsonObject();
        var args = state.GetOrNull("_init_args") ?? state.GetOrNull("init_args");
        var kwargs = state.GetOrNull("_init_kwargs") ?? state.GetOrNull("init_kwargs");

        var positional = args switch
        {
            PyTuple t => t.Items,
            PyList l => l.Items.ToArray(),
            _ => [],
        };
        if (positional.Length > 0)
        {
            var names = module is PersistentObject p && p.ModuleSource is { } source
                ? PythonSignature.InitParameterNames(source, p.ClassName)
                : null;
            var unnamed = new JsonArray();
            for (int i = 0; i < positional.Length; i++)
            {
                if (names is not null && i < names.Count) result[names[i]] = json.Convert(positional[i]);
                else unnamed.Add(json.Convert(positional[i]));
            }
            if (unnamed.Count > 0) result["_init_args"] = unnamed;
        }
        var kwargsDict = kwargs switch
        {
            PyDict d => d,
            PyInstance { DictItems: { } items } => items,
            _ => null,
        };
        if (kwargsDict is not null)
            foreach (var (key, value) in json.Object(kwargsDict)) result[key] = value?.DeepClone();
        return result;
    }
}
