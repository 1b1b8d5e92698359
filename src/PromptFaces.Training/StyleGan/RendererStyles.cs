using PromptFaces.Generation.Optimisation;
using PromptFaces.Training.Faces;

namespace PromptFaces.Training.StyleGan;

/// <summary>
/// Puts the renderer's unlabelled style choices (lipstick shade, shirt colour, ponytail side, short-hair lock side,
/// bangs, frame shape, sunglass frame) under the control of latent dimensions.
/// </summary>
/// <remarks>
/// <para>The renderer derives these choices from a hash of the geometry's exact bits (so that changing a judged
/// attribute never changes them). For latent tying that hash is noise: nearby latents would get unrelated shirts,
/// and a generator cannot learn a hash, so it would learn their blurred average. Instead, the map picks the choices
/// from their own z dimensions and then nudges one geometry value by a few units in the last place (about 1e-13,
/// far below a pixel's worth) until the renderer's hash yields exactly those choices.</para>
/// <para>This mirrors FaceRenderer's private <c>Painter.Choice</c>: choice = SplitMix64(hash + slot) mod count, slots
/// 1 to 7 in the order of <see cref="Counts"/>. RendererStyles' test renders faces whose predicted choices agree and
/// differ and fails if the renderer changes that scheme; then this class must follow it.</para>
/// </remarks>
internal static class RendererStyles
{
    /// <summary>Choices per slot: lipstick (3), shirt (7), ponytail side, short lock side, bangs, frame shape, sunglass frame (2 each).</summary>
    public static readonly int[] Counts = { 3, 7, 2, 2, 2, 2, 2 };

    /// <summary>Latent dimensions: one per class for the many-way choices, one sign for each two-way choice.</summary>
    public static int Dimensions { get; } = Counts.Sum(c => c == 2 ? 1 : c);

    private const int MaxTries = 1 << 18;

    /// <summary>The choices that <paramref name="z"/> (this class's slice of the latent) asks for.</summary>
    public static int[] FromLatent(ReadOnlySpan<float> z)
    {
        var choices = new int[Counts.Length];
        int d = 0;
        for (int s = 0; s < Counts.Length; s++)
        {
            if (Counts[s] == 2)
            {
                choices[s] = z[d++] > 0 ? 1 : 0;
                continue;
            }
            int best = 0;
            for (int c = 1; c < Counts[s]; c++)
                if (z[d + c] > z[d + best]) best = c;
            choices[s] = best;
            d += Counts[s];
        }
        return choices;
    }

    /// <summary>The interval layout's choices: each slot from the normal CDF of its first dimension, equal shares per choice.</summary>
    public static int[] FromLatentIntervals(ReadOnlySpan<float> z, float scale)
    {
        var choices = new int[Counts.Length];
        int d = 0;
        for (int s = 0; s < Counts.Length; s++)
        {
            choices[s] = LatentFaceMap.IntervalClass(LatentFaceMap.NormalCdf(z[d] * scale), Counts[s], odds: null);
            d += Counts[s] == 2 ? 1 : Counts[s];
        }
        return choices;
    }

    /// <summary>The renderer's choices for a geometry (its hash), in <see cref="Counts"/> order.</summary>
    public static int[] Of(FaceGeometry geometry)
    {
        var hash = FaceRenderer.GeometryHash(geometry);
        var result = new int[Counts.Length];
        for (int s = 0; s < Counts.Length; s++) result[s] = Choice(hash, s + 1, Counts[s]);
        return result;
    }

    /// <summary>
    /// <paramref name="geometry"/> with <see cref="FaceGeometry.MouthWidth"/> moved by the fewest units in the last
    /// place (towards 0.5, so it stays inside [0, 1]) that make the renderer pick <paramref name="choices"/>.
    /// </summary>
    public static FaceGeometry WithStyles(FaceGeometry geometry, IReadOnlyList<int> choices)
    {
        long bits = BitConverter.DoubleToInt64Bits(geometry.MouthWidth);
        long direction = geometry.MouthWidth > 0.5 ? -1 : 1;
        for (long k = 0; k < MaxTries; k++)
        {
            var candidate = geometry with { MouthWidth = BitConverter.Int64BitsToDouble(bits + direction * k) };
            var hash = FaceRenderer.GeometryHash(candidate);
            bool match = true;
            for (int s = 0; s < Counts.Length && match; s++) match = Choice(hash, s + 1, Counts[s]) == choices[s];
            if (match) return candidate;
        }
        return geometry;   // 672 combinations: not finding one in 2^18 tries has probability below e^-390
    }

    private static int Choice(ulong hash, int slot, int count) => (int)(new SplitMix64(hash + (ulong)slot).NextUInt64() % (ulong)count);
}
