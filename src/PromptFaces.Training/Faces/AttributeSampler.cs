using PromptFaces.Generation.Optimisation;

namespace PromptFaces.Training.Faces;

/// <summary>
/// Draws random but plausible <see cref="FaceAttributes"/>, deterministically from a seed.
/// </summary>
/// <remarks>
/// The distribution trades realism against balance: facial hair only for men (two in five), women mostly long,
/// ponytail or curly hair and men mostly short or bald, but every class of every attribute keeps well over 3% of the
/// faces so that the generator, CLIP and the judge all see plenty of each. Hair and eye colour, skin tone, expression
/// and background are uniform and independent of everything else, so no caption word can be guessed from another.
/// Geometry values are rounded to float32 so that a dataset's float32 geometry reproduces the face exactly.
/// </remarks>
public static class AttributeSampler
{
    //                                              Long  Short Bald  Curly Ponytail
    private static readonly double[] WomanHair = { 0.33, 0.18, 0.04, 0.23, 0.22 };
    private static readonly double[] ManHair = { 0.12, 0.40, 0.20, 0.18, 0.10 };

    //                                            None  Ordinary Sunglasses
    private static readonly double[] GlassesOdds = { 0.5, 0.25, 0.25 };

    //                                                None  Beard Moustache
    private static readonly double[] ManFacialHair = { 0.6, 0.2, 0.2 };

    /// <summary>The face for <paramref name="seed"/>; neighbouring seeds give unrelated faces.</summary>
    public static FaceAttributes Sample(ulong seed) => Sample(new SplitMix64(seed ^ 0xFACE_5EED_0F_A77C5UL));

    /// <summary>The next face from <paramref name="rng"/> (advances it by a fixed number of draws).</summary>
    public static FaceAttributes Sample(SplitMix64 rng)
    {
        ArgumentNullException.ThrowIfNull(rng);
        var gender = rng.NextDouble() < 0.5 ? Gender.Woman : Gender.Man;
        var man = gender == Gender.Man;
        var hairStyle = (HairStyle)Pick(rng, man ? ManHair : WomanHair);
        var hairColour = (HairColour)Uniform(rng, Enum.GetValues<HairColour>().Length);
        var eyeColour = (EyeColour)Uniform(rng, Enum.GetValues<EyeColour>().Length);
        var skin = (SkinTone)Uniform(rng, Enum.GetValues<SkinTone>().Length);
        var expression = (Expression)Uniform(rng, Enum.GetValues<Expression>().Length);
        var glasses = (Glasses)Pick(rng, GlassesOdds);
        // Drawn for women too, then discarded, so that every face consumes the same number of draws.
        var facialHair = (FacialHair)Pick(rng, ManFacialHair);
        if (!man) facialHair = FacialHair.None;
        var background = (Background)Uniform(rng, Enum.GetValues<Background>().Length);
        var geometry = new FaceGeometry
        {
            FaceWidth = Unit(rng),
            FaceLength = Unit(rng),
            JawRoundness = Unit(rng),
            EyeSize = Unit(rng),
            EyeSpacing = Unit(rng),
            HeadX = Unit(rng),
            HeadY = Unit(rng),
            Tilt = Unit(rng),
            HairShade = Unit(rng),
            SkinShade = Unit(rng),
            BackgroundShade = Unit(rng),
            MouthWidth = Unit(rng),
        };
        return new FaceAttributes
        {
            Gender = gender, HairColour = hairColour, HairStyle = hairStyle, EyeColour = eyeColour, SkinTone = skin,
            Expression = expression, Glasses = glasses, FacialHair = facialHair, Background = background, Geometry = geometry,
        };
    }

    private static int Uniform(SplitMix64 rng, int count) => (int)(rng.NextDouble() * count);

    private static int Pick(SplitMix64 rng, double[] odds)
    {
        double u = rng.NextDouble() * odds.Sum();
        for (int i = 0; i < odds.Length - 1; i++)
        {
            if (u < odds[i]) return i;
            u -= odds[i];
        }
        return odds.Length - 1;
    }

    private static double Unit(SplitMix64 rng) => (float)rng.NextDouble();
}
