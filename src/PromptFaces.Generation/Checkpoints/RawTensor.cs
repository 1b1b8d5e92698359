namespace PromptFaces.Generation.Checkpoints;

/// <summary>Element types a checkpoint may store, with safetensors' names.</summary>
public enum RawDType { F64, F32, F16, BF16, I64, I32, I16, I8, U8, Bool }

/// <summary>
/// A tensor as stored in a checkpoint file: element type, shape and contiguous little-endian bytes. Independent of
/// TorchSharp so that file formats can be parsed and validated before any native memory is touched.
/// </summary>
public sealed record RawTensor(RawDType DType, long[] Shape, byte[] Data)
{
    public long ElementCount => Shape.Aggregate(1L, (a, b) => a * b);

    public static int ElementSize(RawDType dtype) => dtype switch
    {
        RawDType.F64 or RawDType.I64 => 8,
        RawDType.F32 or RawDType.I32 => 4,
        RawDType.F16 or RawDType.BF16 or RawDType.I16 => 2,
        _ => 1,
    };

    public string ShapeText => FormatShape(Shape);

    public static string FormatShape(IEnumerable<long> shape) => "[" + string.Join(", ", shape) + "]";

    /// <summary>The values widened to float32 (integers and halves included).</summary>
    public float[] ToFloatArray()
    {
        var n = checked((int)ElementCount);
        var result = new float[n];
        var span = Data.AsSpan();
        for (int i = 0; i < n; i++)
        {
            result[i] = DType switch
            {
                RawDType.F32 => BitConverter.ToSingle(span.Slice(i * 4, 4)),
                RawDType.F64 => (float)BitConverter.ToDouble(span.Slice(i * 8, 8)),
                RawDType.F16 => (float)BitConverter.ToHalf(span.Slice(i * 2, 2)),
                RawDType.BF16 => BitConverter.Int32BitsToSingle(BitConverter.ToUInt16(span.Slice(i * 2, 2)) << 16),
                RawDType.I64 => BitConverter.ToInt64(span.Slice(i * 8, 8)),
                RawDType.I32 => BitConverter.ToInt32(span.Slice(i * 4, 4)),
                RawDType.I16 => BitConverter.ToInt16(span.Slice(i * 2, 2)),
                RawDType.I8 => (sbyte)span[i],
                RawDType.U8 or RawDType.Bool => span[i],
                _ => throw new NotSupportedException(DType.ToString()),
            };
        }
        return result;
    }
}
