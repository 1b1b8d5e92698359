using System.Buffers.Binary;
using System.Globalization;
using System.Numerics;
using System.Text;

namespace PromptFaces.Generation.Checkpoints.Pickle;

/// <summary>
/// A pickle virtual machine that never executes anything. It implements every opcode of protocols 0 to 5 except the
/// extension registry and out-of-band buffers, but where Python would import a global and call it, this machine only
/// consults the <see cref="Reconstructors"/> allow-list; any other global becomes an inert <see cref="PyInstance"/>.
/// Loading a pickle is therefore safe on untrusted files, and unknown attributes simply do not matter.
/// </summary>
/// <remarks>
/// Every length read from the stream is checked against the bytes that remain, and each opcode pushes at most one
/// value, so memory stays proportional to the input. Byte strings are slices of the input, not copies.
/// </remarks>
internal sealed class Unpickler
{
    private const int HighestProtocol = 5;

    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    private readonly ReadOnlyMemory<byte> data;
    private readonly PickleContext context;
    private readonly Func<object?, object?>? persistentLoad;
    private readonly List<object?> stack = [];
    private readonly List<int> marks = [];
    private readonly Dictionary<long, object?> memo = [];
    private int pos;
    private int opStart;

    /// <param name="data">The buffer holding the pickle (possibly followed by more data).</param>
    /// <param name="start">Offset of the pickle's first byte.</param>
    /// <param name="context">Budgets shared with the rest of the file.</param>
    /// <param name="persistentLoad">Resolves persistent ids (torch storages); null where the format has none.</param>
    public Unpickler(ReadOnlyMemory<byte> data, int start, PickleContext context, Func<object?, object?>? persistentLoad = null)
    {
        this.data = data;
        pos = start;
        this.context = context;
        this.persistentLoad = persistentLoad;
    }

    /// <summary>Offset just past the STOP of the last pickle loaded: where the next pickle or raw data starts.</summary>
    public int Position => pos;

    /// <summary>Runs one pickle to its STOP opcode and returns the value it leaves. Each call starts a fresh memo, as
    /// Python's pickle.load does.</summary>
    public object? Load()
    {
        stack.Clear();
        marks.Clear();
        memo.Clear();
        while (true)
        {
            opStart = pos;
            byte op = ReadByte();
            switch (op)
            {
                // ---- framing and control
                case 0x80: // PROTO
                {
                    int proto = ReadByte();
                    if (proto > HighestProtocol)
                        throw Fail(PickleFailure.Unsupported, $"pickle protocol {proto} is newer than the highest known ({HighestProtocol})");
                    break;
                }
                case 0x95: // FRAME: the length is advisory, but a frame running past the end means the file was cut.
                {
                    ulong length = ReadUInt64();
                    if (length > (ulong)(data.Length - pos))
                        throw Fail(PickleFailure.Truncated, $"a frame of {length} bytes starts at byte {opStart} but only {data.Length - pos} bytes follow");
                    break;
                }
                case (byte)'.': // STOP
                {
                    if (marks.Count > 0 || stack.Count == 0)
                        throw Fail(PickleFailure.Corrupt, "STOP with an unbalanced stack");
                    return Pop();
                }
                case (byte)'(': // MARK
                    marks.Add(stack.Count);
                    break;
                case (byte)'0': // POP
                    if (stack.Count > CurrentMarkBase()) Pop();
                    else PopMark();
                    break;
                case (byte)'1': // POP_MARK
                    PopMark();
                    break;
                case (byte)'2': // DUP
                    Push(Peek());
                    break;

                // ---- constants and numbers
                case (byte)'N': Push(null); break;
                case 0x88: Push(true); break; // NEWTRUE
                case 0x89: Push(false); break; // NEWFALSE
                case (byte)'J': Push((long)BinaryPrimitives.ReadInt32LittleEndian(ReadSpan(4))); break; // BININT
                case (byte)'K': Push((long)ReadByte()); break; // BININT1
                case (byte)'M': Push((long)BinaryPrimitives.ReadUInt16LittleEndian(ReadSpan(2))); break; // BININT2
                case 0x8a: Push(ReadLong(ReadByte())); break; // LONG1
                case 0x8b: // LONG4
                {
                    int n = BinaryPrimitives.ReadInt32LittleEndian(ReadSpan(4));
                    if (n < 0) throw Fail(PickleFailure.Corrupt, "LONG4 with a negative byte count");
                    Push(ReadLong(n));
                    break;
                }
                case (byte)'G': Push(BinaryPrimitives.ReadDoubleBigEndian(ReadSpan(8))); break; // BINFLOAT
                case (byte)'I': // INT (protocol 0): "00"/"01" are the protocol-0 spellings of False/True.
                {
                    var text = ReadLine();
                    Push(text switch { "00" => false, "01" => true, _ => ParseInteger(text) });
                    break;
                }
                case (byte)'L': // LONG (protocol 0)
                {
                    var text = ReadLine();
                    Push(ParseInteger(text.EndsWith('L') ? text[..^1] : text));
                    break;
                }
                case (byte)'F': // FLOAT (protocol 0)
                {
                    var text = ReadLine();
                    if (!double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var d))
                        d = text.ToLowerInvariant() switch
                        {
                            "nan" => double.NaN,
                            "inf" => double.PositiveInfinity,
                            "-inf" => double.NegativeInfinity,
                            _ => throw Fail(PickleFailure.Corrupt, $"FLOAT with the text '{Clip(text)}'"),
                        };
                    Push(d);
                    break;
                }

                // ---- strings and bytes
                case (byte)'X': Push(ReadUtf8(ReadLength4())); break; // BINUNICODE
                case 0x8c: Push(ReadUtf8(ReadByte())); break; // SHORT_BINUNICODE
                case 0x8d: Push(ReadUtf8(ReadLength8())); break; // BINUNICODE8
                case (byte)'V': Push(DecodeRawUnicodeEscape(ReadLine())); break; // UNICODE (protocol 0)
                case (byte)'S': Push(DecodeStringRepr(ReadLine())); break; // STRING (protocol 0)
                case (byte)'T': // BINSTRING: Python 2 str; decoded as Latin-1, which loses nothing.
                {
                    int n = BinaryPrimitives.ReadInt32LittleEndian(ReadSpan(4));
                    if (n < 0) throw Fail(PickleFailure.Corrupt, "BINSTRING with a negative length");
                    Push(Encoding.Latin1.GetString(ReadSpan(n)));
                    break;
                }
                case (byte)'U': Push(Encoding.Latin1.GetString(ReadSpan(ReadByte()))); break; // SHORT_BINSTRING
                case (byte)'B': Push(new PyBytes(ReadMemory(ReadLength4()))); break; // BINBYTES
                case (byte)'C': Push(new PyBytes(ReadMemory(ReadByte()))); break; // SHORT_BINBYTES
                case 0x8e: Push(new PyBytes(ReadMemory(ReadLength8()))); break; // BINBYTES8
                case 0x96: Push(new PyBytes(ReadMemory(ReadLength8()))); break; // BYTEARRAY8
                case 0x97: // NEXT_BUFFER
                    throw Fail(PickleFailure.Unsupported, "the pickle refers to out-of-band buffers (protocol 5 NEXT_BUFFER), which a file cannot carry");
                case 0x98: // READONLY_BUFFER: only changes mutability.
                    Peek();
                    break;

                // ---- containers
                case (byte)')': Push(PyTuple.Empty); break; // EMPTY_TUPLE
                case 0x85: Push(new PyTuple([Pop()])); break; // TUPLE1
                case 0x86: // TUPLE2
                {
                    var b = Pop();
                    var a = Pop();
                    Push(new PyTuple([a, b]));
                    break;
                }
                case 0x87: // TUPLE3
                {
                    var c = Pop();
                    var b = Pop();
                    var a = Pop();
                    Push(new PyTuple([a, b, c]));
                    break;
                }
                case (byte)'t': Push(new PyTuple(PopMark())); break; // TUPLE
                case (byte)']': Push(new PyList()); break; // EMPTY_LIST
                case (byte)'l': // LIST
                {
                    var list = new PyList();
                    list.Items.AddRange(PopMark());
                    Push(list);
                    break;
                }
                case (byte)'}': Push(new PyDict()); break; // EMPTY_DICT
                case (byte)'d': // DICT
                {
                    var items = PopMark();
                    var dict = new PyDict();
                    SetItems(dict, items);
                    Push(dict);
                    break;
                }
                case 0x8f: Push(new PySet(frozen: false)); break; // EMPTY_SET
                case 0x91: // FROZENSET
                {
                    var set = new PySet(frozen: true);
                    set.AddRange(PopMark());
                    Push(set);
                    break;
                }
                case (byte)'a': // APPEND
                {
                    var value = Pop();
                    Append(Peek(), [value]);
                    break;
                }
                case (byte)'e': // APPENDS
                {
                    var items = PopMark();
                    Append(Peek(), items);
                    break;
                }
                case (byte)'s': // SETITEM
                {
                    var value = Pop();
                    var key = Pop();
                    SetItems(Peek(), [key, value]);
                    break;
                }
                case (byte)'u': // SETITEMS
                {
                    var items = PopMark();
                    SetItems(Peek(), items);
                    break;
                }
                case 0x90: // ADDITEMS
                {
                    var items = PopMark();
                    if (Peek() is not PySet set) throw Fail(PickleFailure.Corrupt, $"ADDITEMS on a {PyDescribe.TypeName(Peek())}");
                    set.AddRange(items);
                    break;
                }

                // ---- memo
                case (byte)'p': Memo(ParseMemoIndex(ReadLine())); break; // PUT
                case (byte)'q': Memo(ReadByte()); break; // BINPUT
                case (byte)'r': Memo(BinaryPrimitives.ReadUInt32LittleEndian(ReadSpan(4))); break; // LONG_BINPUT
                case 0x94: Memo(memo.Count); break; // MEMOIZE
                case (byte)'g': Recall(ParseMemoIndex(ReadLine())); break; // GET
                case (byte)'h': Recall(ReadByte()); break; // BINGET
                case (byte)'j': Recall(BinaryPrimitives.ReadUInt32LittleEndian(ReadSpan(4))); break; // LONG_BINGET

                // ---- globals and object construction (all through the allow-list)
                case (byte)'c': // GLOBAL
                {
                    var module = ReadLine();
                    var name = ReadLine();
                    Push(Reconstructors.Global(module, name));
                    break;
                }
                case 0x93: // STACK_GLOBAL
                {
                    var name = Pop();
                    var module = Pop();
                    if (module is not string m || name is not string n)
                        throw Fail(PickleFailure.Corrupt, "STACK_GLOBAL with non-string module or name");
                    Push(Reconstructors.Global(m, n));
                    break;
                }
                case (byte)'R': // REDUCE
                {
                    var args = Pop();
                    var func = Pop();
                    if (args is not PyTuple tuple) throw Fail(PickleFailure.Corrupt, $"REDUCE with a {PyDescribe.TypeName(args)} as arguments");
                    Push(Guard(() => Reconstructors.Call(func, tuple, context)));
                    break;
                }
                case 0x81: // NEWOBJ
                {
                    var args = Pop();
                    var cls = Pop();
                    if (args is not PyTuple tuple) throw Fail(PickleFailure.Corrupt, $"NEWOBJ with a {PyDescribe.TypeName(args)} as arguments");
                    Push(Guard(() => Reconstructors.New(cls, tuple, null)));
                    break;
                }
                case 0x92: // NEWOBJ_EX
                {
                    var kwargs = Pop();
                    var args = Pop();
                    var cls = Pop();
                    if (args is not PyTuple tuple) throw Fail(PickleFailure.Corrupt, $"NEWOBJ_EX with a {PyDescribe.TypeName(args)} as arguments");
                    Push(Guard(() => Reconstructors.New(cls, tuple, kwargs as PyDict)));
                    break;
                }
                case (byte)'i': // INST (protocol 0)
                {
                    var module = ReadLine();
                    var name = ReadLine();
                    var args = PopMark();
                    Push(Guard(() => Reconstructors.New(Reconstructors.Global(module, name), new PyTuple(args), null)));
                    break;
                }
                case (byte)'o': // OBJ (protocol 1)
                {
                    var items = PopMark();
                    if (items.Length == 0) throw Fail(PickleFailure.Corrupt, "OBJ without a class");
                    Push(Guard(() => Reconstructors.New(items[0], new PyTuple(items[1..]), null)));
                    break;
                }
                case (byte)'b': // BUILD
                {
                    var state = Pop();
                    var target = Peek();
                    Guard(() => { Reconstructors.Build(target, state); return null; });
                    break;
                }
                case 0x82 or 0x83 or 0x84: // EXT1, EXT2, EXT4
                    throw Fail(PickleFailure.Unsupported, "the pickle uses the copyreg extension registry (EXT opcodes), which only the writing process knows");

                // ---- persistent ids (torch storages)
                case (byte)'Q': // BINPERSID
                {
                    var pid = Pop();
                    Push(PersistentLoad(pid));
                    break;
                }
                case (byte)'P': // PERSID
                    Push(PersistentLoad(ReadLine()));
                    break;

                default:
                    throw Fail(PickleFailure.Corrupt, $"unknown opcode 0x{op:x2}");
            }
        }
    }

    private object? PersistentLoad(object? pid)
    {
        if (persistentLoad is null)
            throw Fail(PickleFailure.Corrupt, "a persistent id appears in a stream that cannot have any");
        return Guard(() => persistentLoad(pid));
    }

    /// <summary>Attaches the position of the current opcode to failures raised by reconstructors.</summary>
    private object? Guard(Func<object?> action)
    {
        try
        {
            return action();
        }
        catch (PickleException e) when (e.Position < 0)
        {
            throw new PickleException(e.Failure, e.Message, opStart, e.InnerException);
        }
    }

    // ---- stack helpers

    private int CurrentMarkBase() => marks.Count > 0 ? marks[^1] : 0;

    private void Push(object? value) => stack.Add(value);

    private object? Pop()
    {
        if (stack.Count <= CurrentMarkBase()) throw Fail(PickleFailure.Corrupt, "stack underflow");
        var value = stack[^1];
        stack.RemoveAt(stack.Count - 1);
        return value;
    }

    private object? Peek()
    {
        if (stack.Count <= CurrentMarkBase()) throw Fail(PickleFailure.Corrupt, "stack underflow");
        return stack[^1];
    }

    private object?[] PopMark()
    {
        if (marks.Count == 0) throw Fail(PickleFailure.Corrupt, "an opcode needs a MARK but there is none");
        int start = marks[^1];
        marks.RemoveAt(marks.Count - 1);
        var items = stack.GetRange(start, stack.Count - start).ToArray();
        stack.RemoveRange(start, stack.Count - start);
        return items;
    }

    private void Memo(long index)
    {
        memo[index] = Peek();
    }

    private void Recall(long index)
    {
        if (!memo.TryGetValue(index, out var value))
            throw Fail(PickleFailure.Corrupt, $"memo entry {index} is read before it is written");
        Push(value);
    }

    private void Append(object? target, object?[] items)
    {
        switch (target)
        {
            case PyList list:
                list.Items.AddRange(items);
                break;
            case PyInstance instance:
                (instance.ListItems ??= new PyList()).Items.AddRange(items);
                break;
            default:
                throw Fail(PickleFailure.Corrupt, $"APPEND to a {PyDescribe.TypeName(target)}");
        }
    }

    private void SetItems(object? target, object?[] items)
    {
        if (items.Length % 2 != 0) throw Fail(PickleFailure.Corrupt, "SETITEMS with an odd number of items");
        var dict = target switch
        {
            PyDict d => d,
            PyInstance instance => instance.DictItems ??= new PyDict(),
            _ => throw Fail(PickleFailure.Corrupt, $"SETITEM on a {PyDescribe.TypeName(target)}"),
        };
        for (int i = 0; i < items.Length; i += 2) dict.Set(items[i], items[i + 1]);
    }

    // ---- reading primitives (every read is bounds-checked: running out of data means the file was truncated)

    private PickleException Fail(PickleFailure failure, string message) =>
        new(failure, message + (failure == PickleFailure.Truncated ? "" : $" (opcode at byte {opStart})"), opStart);

    private PickleException Truncated() =>
        new(PickleFailure.Truncated, $"the data ends at byte {data.Length} in the middle of the pickle (opcode at byte {opStart})", opStart);

    private byte ReadByte()
    {
        if (pos >= data.Length) throw Truncated();
        return data.Span[pos++];
    }

    private ReadOnlySpan<byte> ReadSpan(long count) => ReadMemory(count).Span;

    private ReadOnlyMemory<byte> ReadMemory(long count)
    {
        if (count < 0 || count > data.Length - pos) throw Truncated();
        var slice = data.Slice(pos, (int)count);
        pos += (int)count;
        return slice;
    }

    private ulong ReadUInt64() => BinaryPrimitives.ReadUInt64LittleEndian(ReadSpan(8));

    private long ReadLength4() => BinaryPrimitives.ReadUInt32LittleEndian(ReadSpan(4));

    private long ReadLength8()
    {
        ulong n = ReadUInt64();
        if (n > (ulong)(data.Length - pos)) throw Truncated();
        return (long)n;
    }

    private string ReadLine()
    {
        var span = data.Span[pos..];
        int end = span.IndexOf((byte)'\n');
        if (end < 0) throw Truncated();
        var text = Encoding.Latin1.GetString(span[..end]);
        pos += end + 1;
        return text.EndsWith('\r') ? text[..^1] : text;
    }

    private string ReadUtf8(long count)
    {
        var bytes = ReadSpan(count);
        try
        {
            return StrictUtf8.GetString(bytes);
        }
        catch (DecoderFallbackException)
        {
            throw Fail(PickleFailure.Corrupt, "a string is not valid UTF-8");
        }
    }

    /// <summary>Little-endian two's complement, as LONG1/LONG4 store it. Small values become long.</summary>
    private object ReadLong(long count)
    {
        var bytes = ReadSpan(count);
        if (bytes.Length == 0) return 0L;
        var value = new BigInteger(bytes, isUnsigned: false, isBigEndian: false);
        return value >= long.MinValue && value <= long.MaxValue ? (object)(long)value : value;
    }

    private object ParseInteger(string text)
    {
        if (long.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var l)) return l;
        if (text.Length <= 10_000 && BigInteger.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var big)) return big;
        throw Fail(PickleFailure.Corrupt, $"integer with the text '{Clip(text)}'");
    }

    private long ParseMemoIndex(string text) =>
        long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var i)
            ? i
            : throw Fail(PickleFailure.Corrupt, $"memo index '{Clip(text)}'");

    private static string Clip(string text) => text.Length > 40 ? text[..40] + "..." : text;

    /// <summary>Decodes Python's repr of a str (protocol 0 STRING): quoted, with backslash escapes.</summary>
    private string DecodeStringRepr(string text)
    {
        if (text.Length < 2 || text[0] != text[^1] || (text[0] != '\'' && text[0] != '"'))
            throw Fail(PickleFailure.Corrupt, "STRING argument is not a quoted string");
        var body = text[1..^1];
        var sb = new StringBuilder(body.Length);
        for (int i = 0; i < body.Length; i++)
        {
            char c = body[i];
            if (c != '\\' || i + 1 >= body.Length)
            {
                sb.Append(c);
                continue;
            }
            char e = body[++i];
            switch (e)
            {
                case 'n': sb.Append('\n'); break;
                case 'r': sb.Append('\r'); break;
                case 't': sb.Append('\t'); break;
                case 'a': sb.Append('\a'); break;
                case 'b': sb.Append('\b'); break;
                case 'f': sb.Append('\f'); break;
                case 'v': sb.Append('\v'); break;
                case 'x' when IsHex(body, i + 1, 2):
                    sb.Append((char)Convert.ToInt32(body.Substring(i + 1, 2), 16));
                    i += 2;
                    break;
                case >= '0' and <= '7':
                {
                    int value = 0, digits = 0;
                    while (digits < 3 && i < body.Length && body[i] >= '0' && body[i] <= '7')
                    {
                        value = value * 8 + (body[i] - '0');
                        i++;
                        digits++;
                    }
                    i--;
                    sb.Append((char)(value & 0xff));
                    break;
                }
                default:
                    if (e is '\\' or '\'' or '"') sb.Append(e);
                    else sb.Append('\\').Append(e);
                    break;
            }
        }
        return sb.ToString();
    }

    /// <summary>Decodes Python's raw-unicode-escape (protocol 0 UNICODE): Latin-1 with \uXXXX and \UXXXXXXXX.</summary>
    private string DecodeRawUnicodeEscape(string text)
    {
        var sb = new StringBuilder(text.Length);
        for (int i = 0; i < text.Length; i++)
        {
            if (text[i] == '\\' && i + 1 < text.Length && (text[i + 1] == 'u' || text[i + 1] == 'U'))
            {
                int digits = text[i + 1] == 'u' ? 4 : 8;
                if (!IsHex(text, i + 2, digits)) throw Fail(PickleFailure.Corrupt, "UNICODE with a malformed escape");
                int code = Convert.ToInt32(text.Substring(i + 2, digits), 16);
                if (code < 0 || code > 0x10FFFF) throw Fail(PickleFailure.Corrupt, "UNICODE with an escape beyond U+10FFFF");
                if (code is >= 0xD800 and <= 0xDFFF) sb.Append((char)code);
                else sb.Append(char.ConvertFromUtf32(code));
                i += 1 + digits;
            }
            else
            {
                sb.Append(text[i]);
            }
        }
        return sb.ToString();
    }

    private static bool IsHex(string s, int start, int count)
    {
        if (start < 0 || start + count > s.Length) return false;
        for (int i = start; i < start + count; i++)
            if (!char.IsAsciiHexDigit(s[i])) return false;
        return true;
    }
}
