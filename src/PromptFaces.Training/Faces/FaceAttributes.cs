namespace PromptFaces.Training.Faces;

public enum Gender { Woman, Man }
public enum HairColour { Blonde, Brown, Black, Red, Grey, White, Blue, Pink, Purple, Green }
public enum HairStyle { Long, Short, Bald, Curly, Ponytail }
public enum EyeColour { Blue, Green, Brown, Grey, Purple, Red, Amber }
public enum SkinTone { Pale, Light, Medium, Tan, Dark, Deep }
public enum Expression { Smiling, Neutral, Sad, Surprised }
public enum Glasses { None, Ordinary, Sunglasses }
public enum FacialHair { None, Beard, Moustache }
public enum Background { White, Grey, Blue, Green, Yellow, Pink, Orange, Purple }

/// <summary>
/// Continuous variation that no caption mentions: shape and placement of the face and small shade changes.
/// Every value is in [0, 1]; the renderer maps it to its own range (0.5 is the typical face).
/// </summary>
public sealed record FaceGeometry
{
    public double FaceWidth { get; init; } = 0.5;
    public double FaceLength { get; init; } = 0.5;
    public double JawRoundness { get; init; } = 0.5;
    public double EyeSize { get; init; } = 0.5;
    public double EyeSpacing { get; init; } = 0.5;
    public double HeadX { get; init; } = 0.5;
    public double HeadY { get; init; } = 0.5;
    public double Tilt { get; init; } = 0.5;
    public double HairShade { get; init; } = 0.5;
    public double SkinShade { get; init; } = 0.5;
    public double BackgroundShade { get; init; } = 0.5;
    public double MouthWidth { get; init; } = 0.5;
}

/// <summary>
/// Everything the procedural renderer needs to draw one portrait. The discrete attributes are what captions mention and
/// what the judge classifies; <see cref="Geometry"/> is variation on top.
/// </summary>
public sealed record FaceAttributes
{
    public Gender Gender { get; init; }
    public HairColour HairColour { get; init; }
    public HairStyle HairStyle { get; init; }
    public EyeColour EyeColour { get; init; }
    public SkinTone SkinTone { get; init; }
    public Expression Expression { get; init; }
    public Glasses Glasses { get; init; }
    public FacialHair FacialHair { get; init; }
    public Background Background { get; init; }
    public FaceGeometry Geometry { get; init; } = new();

    /// <summary>The judged attributes in a fixed order, with their number of classes: the label layout of datasets.</summary>
    public static IReadOnlyList<(string Name, Type Enum, int Classes)> Schema { get; } = new (string, Type, int)[]
    {
        ("gender", typeof(Gender), Enum.GetValues<Gender>().Length),
        ("hair_colour", typeof(HairColour), Enum.GetValues<HairColour>().Length),
        ("hair_style", typeof(HairStyle), Enum.GetValues<HairStyle>().Length),
        ("eye_colour", typeof(EyeColour), Enum.GetValues<EyeColour>().Length),
        ("skin_tone", typeof(SkinTone), Enum.GetValues<SkinTone>().Length),
        ("expression", typeof(Expression), Enum.GetValues<Expression>().Length),
        ("glasses", typeof(Glasses), Enum.GetValues<Glasses>().Length),
        ("facial_hair", typeof(FacialHair), Enum.GetValues<FacialHair>().Length),
        ("background", typeof(Background), Enum.GetValues<Background>().Length),
    };

    /// <summary>The class index of each judged attribute, in <see cref="Schema"/> order.</summary>
    public int[] ToLabels() => new[]
    {
        (int)Gender, (int)HairColour, (int)HairStyle, (int)EyeColour, (int)SkinTone,
        (int)Expression, (int)Glasses, (int)FacialHair, (int)Background,
    };

    public static FaceAttributes FromLabels(IReadOnlyList<int> labels, FaceGeometry? geometry = null) => new()
    {
        Gender = (Gender)labels[0],
        HairColour = (HairColour)labels[1],
        HairStyle = (HairStyle)labels[2],
        EyeColour = (EyeColour)labels[3],
        SkinTone = (SkinTone)labels[4],
        Expression = (Expression)labels[5],
        Glasses = (Glasses)labels[6],
        FacialHair = (FacialHair)labels[7],
        Background = (Background)labels[8],
        Geometry = geometry ?? new FaceGeometry(),
    };
}
