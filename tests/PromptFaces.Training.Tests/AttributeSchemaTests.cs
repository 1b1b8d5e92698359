using PromptFaces.Training.Faces;
using Xunit;

namespace PromptFaces.Training.Tests;

public sealed class AttributeSchemaTests
{
    [Fact]
    public void Labels_round_trip_through_the_schema()
    {
        var a = new FaceAttributes
        {
            Gender = Gender.Man, HairColour = HairColour.Purple, HairStyle = HairStyle.Curly, EyeColour = EyeColour.Amber,
            SkinTone = SkinTone.Deep, Expression = Expression.Surprised, Glasses = Glasses.Sunglasses,
            FacialHair = FacialHair.Moustache, Background = Background.Orange,
        };
        var labels = a.ToLabels();
        Assert.Equal(FaceAttributes.Schema.Count, labels.Length);
        Assert.Equal(a, FaceAttributes.FromLabels(labels));
        for (int i = 0; i < labels.Length; i++) Assert.InRange(labels[i], 0, FaceAttributes.Schema[i].Classes - 1);
    }

    [Fact]
    public void The_schema_offers_the_variety_the_captions_need()
    {
        int Classes(string name) => FaceAttributes.Schema.Single(s => s.Name == name).Classes;
        Assert.True(Classes("hair_colour") >= 8);
        Assert.True(Classes("hair_style") >= 4);
        Assert.True(Classes("eye_colour") >= 6);
        Assert.True(Classes("skin_tone") >= 5);
        Assert.Equal(4, Classes("expression"));
        Assert.Equal(3, Classes("glasses"));
        Assert.Equal(3, Classes("facial_hair"));
        Assert.True(Classes("background") >= 6);
    }
}
