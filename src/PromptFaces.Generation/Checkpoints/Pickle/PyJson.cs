using System.Globalization;
using System.Numerics;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace PromptFaces.Generation.Checkpoints.Pickle;

/// <summary>
/// Converts unpickled values (constructor kwargs, mostly) into JSON, so that callers can read them without knowing the
/// pickle object model. Values JSON cannot express become a small object naming their Python type
/// (<c>{"__python__": "torch.device"}</c>) rather than disappearing, so a missing setting is never mistaken for a default.
/// </summary>
/// <remarks>
/// The memo lets a pickle reference one object many times, so a file of a few kilobytes can describe a tree with
/// billions of nodes or a cycle. The conversion therefore has a node budget and a depth limit, and reports a cycle as a
/// marker instead of recursing forever.
/// </remarks>
internal sealed class PyJson
{
    private const int MaxDepth = 64;
    private int nodesLeft;
    private readonly HashSet<object> path = new(ReferenceEqualityComparer.Instance);

    public PyJson(int maxNodes = 100_000) => nodesLeft = maxNodes;

    public JsonNode? Convert(object? value) => Convert(value, 0);

    private JsonNode? Convert(object? value, int depth)
    {
        if (--nodesLeft < 0)
            throw new PickleException(PickleFailure.TooLarge, "the constructor arguments expand into too many values");
        if (depth > MaxDepth) return Marker("too deeply nested");
        switch (value)
        {
            case null: return null;
            case bool b: return JsonValue.Create(b);
            case long l: return Number(l.ToString(CultureInfo.InvariantCulture));
            case BigInteger big: return Number(big.ToString(CultureInfo.InvariantCulture));
            case double d:
                // JSON has no NaN or infinities; Python's spelling keeps the value recognisable.
                return double.IsFinite(d) ? Number(d.ToString("R", CultureInfo.InvariantCulture)) : JsonValue.Create(double.IsNaN(d) ? "nan" : d > 0 ? "inf" : "-inf");
            case string s: return JsonValue.Create(s);
            case PyBytes bytes: return JsonValue.Create(System.Convert.ToBase64String(bytes.Data.Span));
            case NumpyDType dtype: return JsonValue.Create(dtype.Descr);
            case PyGlobal g: return Marker(g.FullName);
            case PyTensor t:
            {
                var marker = Marker("torch.Tensor");
                marker["shape"] = new JsonArray(t.Size.Select(s => (JsonNode?)JsonValue.Create(s)).ToArray());
                marker["dtype"] = t.DType.ToString();
                return marker;
            }
            case PersistentObject p: return Marker(p.ClassName);
        }

        if (!path.Add(value)) return Marker("recursive reference");
        try
        {
            switch (value)
            {
                case PyTuple t: return Array(t.Items, depth);
                case PyList l: return Array(l.Items, depth);
                case PySet s: return Array(s.Items, depth);
                case PyDict d: return Object(d, depth);
                case PyInstance { DictItems: { } items, ListItems: null, State: null }:
                    return Object(items, depth); // a dict subclass such as dnnlib.EasyDict
                case PyInstance instance: return Marker(instance.TypeName);
                default: return Marker(PyDescribe.TypeName(value));
            }
        }
        finally
        {
            path.Remove(value);
        }
    }

    private JsonArray Array(IEnumerable<object?> items, int depth)
    {
        var array = new JsonArray();
        foreach (var item in items) array.Add(Convert(item, depth + 1));
        return array;
    }

    /// <summary>Dict keys become their Python str() text; a later duplicate text wins, as a later assignment would.</summary>
    public JsonObject Object(PyDict dict, int depth = 0)
    {
        var obj = new JsonObject();
        foreach (var (key, v) in dict.Items) obj[PyDescribe.KeyText(key)] = Convert(v, depth + 1);
        return obj;
    }

    /// <summary>
    /// Numbers are backed by a parsed JSON element, exactly as <see cref="JsonNode.Parse(string, JsonNodeOptions?, System.Text.Json.JsonDocumentOptions)"/>
    /// would give them, so callers can read them as int, long or double alike (a node created from a long refuses
    /// GetValue&lt;int&gt;).
    /// </summary>
    private static JsonValue Number(string text)
    {
        using var document = JsonDocument.Parse(text);
        return JsonValue.Create(document.RootElement.Clone())!;
    }

    private static JsonObject Marker(string pythonType) => new() { ["__python__"] = pythonType };
}
