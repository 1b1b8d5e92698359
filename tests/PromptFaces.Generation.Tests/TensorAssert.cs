using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace PromptFaces.Generation.Tests;

/// <summary>Comparisons against reference tensors with a relative tolerance, reporting the worst error.</summary>
public static class TensorAssert
{
    /// <summary>max|a − b| ≤ tol · max(1, max|b|); returns the observed relative error.</summary>
    public static double Close(Tensor expected, Tensor actual, double tolerance = 1e-4, string what = "tensor")
    {
        Assert.Equal(expected.shape, actual.shape);
        using var scope = NewDisposeScope();
        var e = expected.to(ScalarType.Float64).cpu();
        var a = actual.detach().to(ScalarType.Float64).cpu();
        var maxDiff = (a - e).abs().max().item<double>();
        var scale = Math.Max(1.0, e.abs().max().item<double>());
        var relative = maxDiff / scale;
        Assert.True(relative <= tolerance, $"{what}: max |diff| {maxDiff:G4} relative to scale {scale:G4} is {relative:G4} > {tolerance:G4}");
        return relative;
    }
}
