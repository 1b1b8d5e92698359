using TorchSharp;
using static TorchSharp.torch;

namespace PromptFaces.Generation.Checkpoints;

/// <summary>Moves tensors between checkpoint bytes (<see cref="RawTensor"/>) and TorchSharp.</summary>
public static class TensorConversion
{
    public static ScalarType ToScalarType(RawDType dtype) => dtype switch
    {
        RawDType.F64 => ScalarType.Float64,
        RawDType.F32 => ScalarType.Float32,
        RawDType.F16 => ScalarType.Float16,
        RawDType.BF16 => ScalarType.BFloat16,
        RawDType.I64 => ScalarType.Int64,
        RawDType.I32 => ScalarType.Int32,
        RawDType.I16 => ScalarType.Int16,
        RawDType.I8 => ScalarType.Int8,
        RawDType.U8 => ScalarType.Byte,
        RawDType.Bool => ScalarType.Bool,
        _ => throw new NotSupportedException(dtype.ToString()),
    };

    public static RawDType ToRawDType(ScalarType type) => type switch
    {
        ScalarType.Float64 => RawDType.F64,
        ScalarType.Float32 => RawDType.F32,
        ScalarType.Float16 => RawDType.F16,
        ScalarType.BFloat16 => RawDType.BF16,
        ScalarType.Int64 => RawDType.I64,
        ScalarType.Int32 => RawDType.I32,
        ScalarType.Int16 => RawDType.I16,
        ScalarType.Int8 => RawDType.I8,
        ScalarType.Byte => RawDType.U8,
        ScalarType.Bool => RawDType.Bool,
        _ => throw new NotSupportedException($"tensors of type {type} cannot be stored"),
    };

    /// <summary>A new CPU tensor holding a copy of the bytes.</summary>
    public static Tensor ToTensor(RawTensor raw)
    {
        var t = empty(raw.Shape, ToScalarType(raw.DType));
        if (raw.Data.Length > 0)
            t.bytes = raw.Data;
        return t;
    }

    /// <summary>A contiguous CPU copy of the tensor's bytes.</summary>
    public static RawTensor ToRaw(Tensor tensor)
    {
        using var scope = NewDisposeScope();
        var cpu = tensor.detach().cpu().contiguous();
        return new RawTensor(ToRawDType(cpu.dtype), cpu.shape.ToArray(), cpu.bytes.ToArray());
    }
}
