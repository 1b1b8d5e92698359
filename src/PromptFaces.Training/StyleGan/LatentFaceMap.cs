using PromptFaces.Generation.Checkpoints;
using PromptFaces.Training.Faces;

namespace PromptFaces.Training.StyleGan;

/// <summary>
/// The latent-tying map: a fixed, deterministic function from a StyleGAN2 latent z to the renderer's face attributes.
/// The trainer renders <c>Attributes(z)</c> for every z it feeds the generator and adds a reconstruction loss between
/// G(z) and that render (see <see cref="StyleGanTrainer"/>). This is the objective the issue permits "that ties latents
/// to renderer parameters": on two CPU cores a plain GAN cannot learn faces in a few hours, a supervised target per
/// latent can, and it makes every region of latent space a valid, labelled face, which gives CLIP-guided optimisation
/// a smooth, structured space to search.
/// </summary>
/// <remarks>
/// <para>Layout of z: one group of dimensions per categorical attribute, in <see cref="FaceAttributes.Schema"/> order,
/// one dimension per class, and the class is the argmax of the group plus fixed per-class offsets; then one dimension
/// per <see cref="FaceGeometry"/> value, which is the standard normal CDF of that dimension (uniform on [0, 1]); then
/// the renderer's unlabelled style choices (<see cref="RendererStyles"/>); the remaining dimensions are free (the
/// reconstruction loss teaches the generator to ignore them). Argmax over a class's own dimensions, rather than one
/// dimension cut into intervals, keeps the classes symmetric: no hair colour lies "between" two others.</para>
/// <para>The offsets make the classes as frequent as <see cref="AttributeSampler"/> draws them (hair style and facial
/// hair conditioned on gender the same way), so the generator's faces have the training renders' attribute mix, which
/// the realism score (a Fréchet distance against renders) needs. The geometry is read from the normalised z that the
/// mapping network itself sees (it divides z by its root mean square), so the map uses no information G lacks.</para>
/// </remarks>
public sealed class LatentFaceMap
{
    /// <summary>The layout name written into training settings.</summary>
    public static string Name(LatentLayout layout) => layout == LatentLayout.Intervals ? "intervals" : "argmax";

    /// <summary>Parses <see cref="Name"/>'s output; null for an unknown name.</summary>
    public static LatentLayout? Parse(string? name) => name?.Trim().ToLowerInvariant() switch
    {
        "argmax" => LatentLayout.Argmax,
        "intervals" => LatentLayout.Intervals,
        _ => null,
    };

    // The class frequencies of AttributeSampler (kept in step by LatentFaceMap's distribution test).
    private static readonly double[] WomanHair = { 0.33, 0.18, 0.04, 0.23, 0.22 };
    private static readonly double[] ManHair = { 0.12, 0.40, 0.20, 0.18, 0.10 };
    private static readonly double[] GlassesOdds = { 0.5, 0.25, 0.25 };
    private static readonly double[] ManFacialHair = { 0.6, 0.2, 0.2 };

    private static readonly int[] GroupOffsets;
    private static readonly double[][] UniformOffsets;       // per schema attribute, for the unconditional ones
    private static readonly double[] WomanHairOffsets = ArgmaxOffsets.For(WomanHair);
    private static readonly double[] ManHairOffsets = ArgmaxOffsets.For(ManHair);
    private static readonly double[] ManFacialHairOffsets = ArgmaxOffsets.For(ManFacialHair);
    private static readonly double[] GlassesOffsets = ArgmaxOffsets.For(GlassesOdds);

    /// <summary>The geometry fields in the order of their z dimensions.</summary>
    public static IReadOnlyList<string> GeometryFields { get; } = new[]
    {
        nameof(FaceGeometry.FaceWidth), nameof(FaceGeometry.FaceLength), nameof(FaceGeometry.JawRoundness),
        nameof(FaceGeometry.EyeSize), nameof(FaceGeometry.EyeSpacing), nameof(FaceGeometry.HeadX), nameof(FaceGeometry.HeadY),
        nameof(FaceGeometry.Tilt), nameof(FaceGeometry.HairShade), nameof(FaceGeometry.SkinShade),
        nameof(FaceGeometry.BackgroundShade), nameof(FaceGeometry.MouthWidth),
    };

    private static readonly int CategoricalDims = FaceAttributes.Schema.Sum(s => s.Classes);

    /// <summary>Dimensions of z the map reads: attribute classes, geometry values and renderer style choices.</summary>
    public static int RequiredZDim { get; } = CategoricalDims + GeometryFields.Count + RendererStyles.Dimensions;

    static LatentFaceMap()
    {
        GroupOffsets = new int[FaceAttributes.Schema.Count];
        UniformOffsets = new double[FaceAttributes.Schema.Count][];
        for (int a = 0, offset = 0; a < FaceAttributes.Schema.Count; offset += FaceAttributes.Schema[a].Classes, a++)
        {
            GroupOffsets[a] = offset;
            UniformOffsets[a] = new double[FaceAttributes.Schema[a].Classes];
        }
    }

    /// <summary>
    /// The tie a generator checkpoint was trained with, read from the <c>training_settings</c> that <c>train stylegan</c>
    /// writes into its safetensors metadata; null for a generator trained without it (a reconstruction weight of 0, or
    /// no such metadata, as in NVIDIA's checkpoints).
    /// </summary>
    /// <exception cref="InvalidDataException">the metadata is there but unreadable; the message names file and key.</exception>
    public static LatentFaceMap? FromTrainingMetadata(IReadOnlyDictionary<string, string> metadata, int zDim, string source)
    {
        const string key = "training_settings";
        if (!metadata.TryGetValue(key, out var json)) return null;
        System.Text.Json.Nodes.JsonObject settings;
        try
        {
            settings = System.Text.Json.Nodes.JsonNode.Parse(json) as System.Text.Json.Nodes.JsonObject
                ?? throw new InvalidDataException("not a JSON object");
        }
        catch (Exception e) when (e is System.Text.Json.JsonException or InvalidDataException)
        {
            throw new InvalidDataException($"{source}: the metadata '{key}' is not readable JSON ({e.Message}).", e);
        }
        if ((settings["reconstruction_weight"]?.GetValue<double>() ?? 0) <= 0 || zDim < RequiredZDim) return null;
        var name = settings["latent_layout"]?.GetValue<string>();
        var layout = name is null ? LatentLayout.Argmax : Parse(name)
            ?? throw new InvalidDataException($"{source}: the metadata '{key}' names the latent layout '{name}'; this build knows 'argmax' and 'intervals'.");
        return new LatentFaceMap(zDim, layout);
    }

    /// <summary>
    /// The tie the generator checkpoint at <paramref name="path"/> was trained with (<see cref="FromTrainingMetadata"/>),
    /// read from its safetensors header alone; null for a file that is not safetensors (an NVIDIA network pickle), which
    /// carries no such metadata.
    /// </summary>
    public static LatentFaceMap? FromGeneratorFile(string path, int zDim) =>
        SafeTensorsFile.LooksLikeSafeTensors(path) ? FromTrainingMetadata(SafeTensorsFile.ReadMetadata(path), zDim, path) : null;

    private readonly int _zDim;

    /// <summary>How a class is read from its z group.</summary>
    public LatentLayout Layout { get; }

    public LatentFaceMap(int zDim, LatentLayout layout = LatentLayout.Argmax)
    {
        Layout = layout;
        if (zDim < RequiredZDim)
            throw new ArgumentException($"Latent tying needs z_dim of at least {RequiredZDim} (attribute classes, geometry values and style choices); the generator has {zDim}.");
        _zDim = zDim;
    }

    /// <summary>The attributes of each row of <paramref name="z"/>, a row-major (batch, z_dim) array.</summary>
    public FaceAttributes[] Attributes(ReadOnlySpan<float> z)
    {
        if (z.Length % _zDim != 0) throw new ArgumentException($"z has {z.Length} values, not a multiple of z_dim {_zDim}.");
        var result = new FaceAttributes[z.Length / _zDim];
        var zs = z.ToArray();
        // Rows are independent; the style-choice search makes each one cost tens of microseconds, so they run in parallel.
        Parallel.For(0, result.Length, i => result[i] = Attributes1(zs.AsSpan(i * _zDim, _zDim)));
        return result;
    }

    /// <summary>The height of a class's entry (and of a two-way style choice's sign) in a designed code.</summary>
    public const float CodeAmplitude = 2f;

    /// <summary>
    /// The designed code of each row of <paramref name="z"/>: a w of <paramref name="wDim"/> values that spells out what
    /// z is tied to, for the designed-code path (<see cref="StyleGanTrainingSettings.DesignedCodes"/>). One entry per
    /// attribute class in <see cref="FaceAttributes.Schema"/> order (<see cref="CodeAmplitude"/> for the face's class,
    /// 0 for the others), then the normalised z value of each geometry dimension, then the renderer's style choices
    /// (a class entry per choice of the many-way ones, ±<see cref="CodeAmplitude"/> for the two-way ones); zeros after.
    /// </summary>
    /// <remarks>The classes are read from the attributes the map ties z to (facial hair "none" for every woman), and the
    /// style choices from the renderer's own hash of the final geometry, so a code never disagrees with its render.</remarks>
    public float[] Codes(ReadOnlySpan<float> z, int wDim) => Codes(z, Attributes(z), wDim);

    /// <summary>
    /// <see cref="Codes(ReadOnlySpan{float}, int)"/> for latents whose <see cref="Attributes"/> the caller has already
    /// read (<paramref name="faces"/>, one per row of <paramref name="z"/>), so the style-choice search is not run twice.
    /// </summary>
    public float[] Codes(ReadOnlySpan<float> z, IReadOnlyList<FaceAttributes> faces, int wDim)
    {
        if (wDim < RequiredZDim) throw new ArgumentException($"A designed code needs w_dim of at least {RequiredZDim}; the generator has {wDim}.");
        if (z.Length % _zDim != 0) throw new ArgumentException($"z has {z.Length} values, not a multiple of z_dim {_zDim}.");
        int rows = z.Length / _zDim;
        if (faces.Count != rows) throw new ArgumentException($"{faces.Count} faces for {rows} latents.");
        var codes = new float[rows * wDim];
        for (int i = 0; i < rows; i++)
        {
            var row = z.Slice(i * _zDim, _zDim);
            var code = codes.AsSpan(i * wDim, wDim);
            var face = faces[i];
            var labels = face.ToLabels();
            for (int a = 0; a < labels.Length; a++) code[GroupOffsets[a] + labels[a]] = CodeAmplitude;
            var scale = NormalisationScale(row);
            for (int k = 0; k < GeometryFields.Count; k++) code[CategoricalDims + k] = row[CategoricalDims + k] * scale;
            var choices = RendererStyles.Of(face.Geometry);
            for (int s = 0, d = CategoricalDims + GeometryFields.Count; s < choices.Length; s++)
            {
                int count = RendererStyles.Counts[s];
                if (count == 2) code[d++] = choices[s] == 1 ? CodeAmplitude : -CodeAmplitude;
                else
                {
                    code[d + choices[s]] = CodeAmplitude;
                    d += count;
                }
            }
        }
        return codes;
    }

    /// <summary>The mapping network's normalize_2nd_moment factor for one z, in the same precision.</summary>
    private static float NormalisationScale(ReadOnlySpan<float> z)
    {
        float meanSquare = 0;
        foreach (var v in z) meanSquare += v * v;
        return 1 / MathF.Sqrt(meanSquare / z.Length + 1e-8f);
    }

    private FaceAttributes Attributes1(ReadOnlySpan<float> z)
    {
        // The mapping network's normalize_2nd_moment, in the same precision, so the map reads what G reads.
        var scale = NormalisationScale(z);

        var gender = (Gender)Class(z, 0, scale, null, UniformOffsets[0]);
        bool man = gender == Gender.Man;
        var g = new double[GeometryFields.Count];
        for (int k = 0; k < g.Length; k++) g[k] = NormalCdf(z[CategoricalDims + k] * scale);
        var geometry = new FaceGeometry
        {
            FaceWidth = g[0], FaceLength = g[1], JawRoundness = g[2], EyeSize = g[3], EyeSpacing = g[4], HeadX = g[5],
            HeadY = g[6], Tilt = g[7], HairShade = g[8], SkinShade = g[9], BackgroundShade = g[10], MouthWidth = g[11],
        };
        var styleSlice = z.Slice(CategoricalDims + GeometryFields.Count, RendererStyles.Dimensions);
        var styles = Layout == LatentLayout.Intervals ? RendererStyles.FromLatentIntervals(styleSlice, scale) : RendererStyles.FromLatent(styleSlice);
        return new FaceAttributes
        {
            Gender = gender,
            HairColour = (HairColour)Class(z, 1, scale, null, UniformOffsets[1]),
            HairStyle = (HairStyle)Class(z, 2, scale, man ? ManHair : WomanHair, man ? ManHairOffsets : WomanHairOffsets),
            EyeColour = (EyeColour)Class(z, 3, scale, null, UniformOffsets[3]),
            SkinTone = (SkinTone)Class(z, 4, scale, null, UniformOffsets[4]),
            Expression = (Expression)Class(z, 5, scale, null, UniformOffsets[5]),
            Glasses = (Glasses)Class(z, 6, scale, GlassesOdds, GlassesOffsets),
            FacialHair = man ? (FacialHair)Class(z, 7, scale, ManFacialHair, ManFacialHairOffsets) : FacialHair.None,
            Background = (Background)Class(z, 8, scale, null, UniformOffsets[8]),
            Geometry = RendererStyles.WithStyles(geometry, styles),
        };
    }

    /// <summary>
    /// The class of schema attribute <paramref name="attribute"/> in this map's layout: from the class odds
    /// (<paramref name="odds"/>, equal when null) for intervals, or from the argmax <paramref name="offsets"/> that
    /// give the same odds.
    /// </summary>
    private int Class(ReadOnlySpan<float> z, int attribute, float scale, double[]? odds, double[] offsets) =>
        Layout == LatentLayout.Intervals ? Interval(z, attribute, scale, odds) : Pick(z, attribute, offsets);

    /// <summary>
    /// The class of schema attribute <paramref name="attribute"/> in the interval layout: the normal CDF of the group's
    /// first (normalised) dimension, cut at the cumulative class odds (<paramref name="odds"/>, or equal odds when null).
    /// </summary>
    private static int Interval(ReadOnlySpan<float> z, int attribute, float scale, double[]? odds) =>
        IntervalClass(NormalCdf(z[GroupOffsets[attribute]] * scale), FaceAttributes.Schema[attribute].Classes, odds);

    /// <summary>
    /// The class whose share of [0, 1) holds <paramref name="u"/>, one of <paramref name="classes"/>, the shares
    /// proportional to <paramref name="odds"/> (equal when null).
    /// </summary>
    internal static int IntervalClass(double u, int classes, IReadOnlyList<double>? odds)
    {
        double total = odds?.Sum() ?? classes, cumulative = 0;
        for (int c = 0; c < classes - 1; c++)
        {
            cumulative += (odds?[c] ?? 1.0) / total;
            if (u < cumulative) return c;
        }
        return classes - 1;
    }

    /// <summary>The class of schema attribute <paramref name="attribute"/>: argmax of its z group plus the class offsets.</summary>
    private static int Pick(ReadOnlySpan<float> z, int attribute, double[] offsets)
    {
        int start = GroupOffsets[attribute], best = 0;
        for (int c = 1; c < offsets.Length; c++)
            if (z[start + c] + offsets[c] > z[start + best] + offsets[best]) best = c;
        return best;
    }

    /// <summary>Φ(x) through erfc (Abramowitz and Stegun 7.1.26, |error| below 1.5e-7): accurate far beyond pixel precision.</summary>
    public static double NormalCdf(double x)
    {
        double t = Math.Abs(x) / Math.Sqrt(2);
        double k = 1 / (1 + 0.3275911 * t);
        double erfc = k * (0.254829592 + k * (-0.284496736 + k * (1.421413741 + k * (-1.453152027 + k * 1.061405429)))) * Math.Exp(-t * t);
        return x >= 0 ? 1 - erfc / 2 : erfc / 2;
    }
}

/// <summary>
/// Offsets b with P(argmax_k (z_k + b_k) = k) = p_k for independent standard normal z_k: how the latent map draws a
/// class with given odds while keeping one latent dimension per class.
/// </summary>
internal static class ArgmaxOffsets
{
    /// <summary>Solved once by fixed-point iteration on the exact win probabilities (numerical integration).</summary>
    public static double[] For(IReadOnlyList<double> odds)
    {
        var p = odds.Select(o => o / odds.Sum()).ToArray();
        var b = new double[p.Length];
        for (int iteration = 0; iteration < 500; iteration++)
        {
            var q = WinProbabilities(b);
            double change = 0;
            for (int k = 0; k < b.Length; k++)
            {
                var step = 0.7 * Math.Log(p[k] / q[k]);
                b[k] += step;
                change = Math.Max(change, Math.Abs(step));
            }
            var mean = b.Average();
            for (int k = 0; k < b.Length; k++) b[k] -= mean;
            if (change < 1e-10) break;
        }
        return b;
    }

    /// <summary>P(k wins) = ∫ φ(u) Π_{j≠k} Φ(u + b_k − b_j) du, on a grid over [−9, 9].</summary>
    public static double[] WinProbabilities(IReadOnlyList<double> b)
    {
        const double lo = -9, hi = 9;
        const int steps = 3600;
        double du = (hi - lo) / steps;
        var result = new double[b.Count];
        for (int k = 0; k < b.Count; k++)
        {
            double sum = 0;
            for (int i = 0; i <= steps; i++)
            {
                double u = lo + i * du, f = Math.Exp(-u * u / 2) / Math.Sqrt(2 * Math.PI);
                for (int j = 0; j < b.Count; j++)
                    if (j != k) f *= LatentFaceMap.NormalCdf(u + b[k] - b[j]);
                sum += (i == 0 || i == steps ? 0.5 : 1) * f;
            }
            result[k] = sum * du;
        }
        return result;
    }
}

/// <summary>How <see cref="LatentFaceMap"/> reads a categorical attribute from z.</summary>
public enum LatentLayout
{
    /// <summary>One dimension per class; the class is the argmax of the group plus the odds' offsets. Symmetric, but
    /// the class depends on every dimension of the group at once, which the mapping network learns slowly.</summary>
    Argmax,
    /// <summary>One dimension per attribute, its normal CDF cut into intervals by the class odds: the class depends on a
    /// single dimension, a staircase the mapping network can learn directly.</summary>
    Intervals,
}
