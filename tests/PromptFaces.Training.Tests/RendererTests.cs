using PromptFaces.Training.Faces;
using Xunit;

namespace PromptFaces.Training.Tests;

public sealed class RendererTests
{
    private const int Size = 64;

    /// <summary>A face with the default geometry: centred, upright, so feature positions are known.</summary>
    private static FaceAttributes Centred(Gender gender = Gender.Woman, HairStyle style = HairStyle.Short) => new()
    {
        Gender = gender, HairColour = HairColour.Brown, HairStyle = style, EyeColour = EyeColour.Blue, SkinTone = SkinTone.Light,
        Expression = Expression.Neutral, Glasses = Glasses.None, FacialHair = FacialHair.None, Background = Background.Blue,
    };

    private static byte[] Render(FaceAttributes a, int size = Size)
    {
        var rgb = new byte[size * size * 3];
        FaceRenderer.RenderInto(a, size, rgb);
        return rgb;
    }

    private static FaceAttributes With(FaceAttributes a, int attribute, int cls)
    {
        var labels = a.ToLabels();
        labels[attribute] = cls;
        return FaceAttributes.FromLabels(labels, a.Geometry);
    }

    /// <summary>The pixels (x, y) whose colour differs by more than <paramref name="threshold"/> in some channel.</summary>
    private static List<(int X, int Y)> Changed(byte[] a, byte[] b, int size = Size, int threshold = 24)
    {
        var changed = new List<(int, int)>();
        for (int y = 0; y < size; y++)
        for (int x = 0; x < size; x++)
        {
            int i = (y * size + x) * 3;
            if (Math.Abs(a[i] - b[i]) > threshold || Math.Abs(a[i + 1] - b[i + 1]) > threshold || Math.Abs(a[i + 2] - b[i + 2]) > threshold)
                changed.Add((x, y));
        }
        return changed;
    }

    [Fact]
    public void Same_attributes_and_size_give_identical_bytes()
    {
        for (ulong seed = 0; seed < 50; seed++)
        {
            var a = AttributeSampler.Sample(seed);
            var first = Render(a);
            Assert.Equal(first, Render(a with { }));
            Assert.Equal(first, Render(AttributeSampler.Sample(seed)));
        }
    }

    [Fact]
    public void Rendering_on_many_threads_matches_rendering_on_one()
    {
        var faces = Enumerable.Range(0, 64).Select(i => AttributeSampler.Sample((ulong)i)).ToArray();
        var serial = faces.Select(a => Render(a)).ToArray();
        var parallel = new byte[faces.Length][];
        Parallel.For(0, faces.Length, new ParallelOptions { MaxDegreeOfParallelism = 4 }, i => parallel[i] = Render(faces[i]));
        for (int i = 0; i < faces.Length; i++) Assert.Equal(serial[i], parallel[i]);
    }

    [Fact]
    public void Render_and_RenderInto_agree()
    {
        var a = AttributeSampler.Sample(3);
        using var image = FaceRenderer.Render(a, Size);
        var pixels = new byte[Size * Size * 3];
        image.CopyPixelDataTo(pixels);
        Assert.Equal(Render(a), pixels);
    }

    [Fact]
    public void Different_faces_give_different_images()
    {
        var images = Enumerable.Range(0, 100).Select(i => Render(AttributeSampler.Sample((ulong)i))).ToArray();
        for (int i = 0; i < images.Length; i++)
        for (int j = i + 1; j < images.Length; j++)
            Assert.True(Changed(images[i], images[j]).Count > 50, $"faces {i} and {j} look almost the same");
    }

    [Fact]
    public void Every_class_of_every_attribute_changes_the_picture()
    {
        // On several random faces: switching any attribute to any other class changes a clearly visible area.
        for (ulong seed = 0; seed < 12; seed++)
        {
            var face = AttributeSampler.Sample(seed);
            var original = Render(face);
            for (int attribute = 0; attribute < FaceAttributes.Schema.Count; attribute++)
            for (int cls = 0; cls < FaceAttributes.Schema[attribute].Classes; cls++)
            {
                if (cls == face.ToLabels()[attribute]) continue;
                // Keep the faces plausible: facial hair only on men.
                var changed = With(face, attribute, cls);
                if (changed.FacialHair != FacialHair.None && face.FacialHair == FacialHair.None) changed = changed with { Gender = Gender.Man };
                else if (changed.Gender == Gender.Woman) changed = changed with { FacialHair = FacialHair.None };
                var count = Changed(original, Render(changed)).Count;
                Assert.True(count >= 8, $"face {seed}: {FaceAttributes.Schema[attribute].Name} -> {Enum.GetName(FaceAttributes.Schema[attribute].Enum, cls)} changed only {count} pixels");
            }
        }
    }

    [Fact]
    public void Eye_colour_changes_only_the_eyes()
    {
        var face = Centred();
        var original = Render(face);
        foreach (var eye in Enum.GetValues<EyeColour>().Where(e => e != face.EyeColour))
        {
            var changed = Changed(original, Render(face with { EyeColour = eye }), threshold: 8);
            Assert.True(changed.Count >= 16, $"{eye}: only {changed.Count} pixels changed");
            // Both eyes, and nothing outside the eye band.
            Assert.Contains(changed, p => p.X < Size / 2);
            Assert.Contains(changed, p => p.X >= Size / 2);
            Assert.All(changed, p => Assert.InRange(p.Y, (int)(0.38 * Size), (int)(0.56 * Size)));
        }
    }

    [Fact]
    public void Eye_colour_stays_visible_behind_sunglasses()
    {
        var face = Centred() with { Glasses = Glasses.Sunglasses };
        var original = Render(face);
        foreach (var eye in Enum.GetValues<EyeColour>().Where(e => e != face.EyeColour))
            Assert.True(Changed(original, Render(face with { EyeColour = eye }), threshold: 8).Count >= 10, $"{eye} is invisible behind sunglasses");
    }

    [Fact]
    public void Background_changes_the_corners_but_not_the_face()
    {
        var face = Centred();
        var original = Render(face);
        foreach (var bg in Enum.GetValues<Background>().Where(b => b != face.Background))
        {
            var changed = Changed(original, Render(face with { Background = bg })).ToHashSet();
            foreach (var corner in new[] { (0, 0), (Size - 1, 0), (2, 2), (Size - 3, 2) }) Assert.Contains(corner, changed);
            Assert.DoesNotContain((Size / 2, Size / 2), changed);
            Assert.DoesNotContain((Size / 2, (int)(0.6 * Size)), changed);
        }
    }

    [Fact]
    public void Skin_tone_changes_the_cheeks_and_not_the_corners()
    {
        var face = Centred();
        var original = Render(face);
        foreach (var skin in Enum.GetValues<SkinTone>().Where(s => s != face.SkinTone))
        {
            var changed = Changed(original, Render(face with { SkinTone = skin }), threshold: 8).ToHashSet();
            Assert.Contains(((int)(0.42 * Size), (int)(0.56 * Size)), changed);
            Assert.DoesNotContain((0, 0), changed);
        }
    }

    [Fact]
    public void Expression_changes_the_mouth()
    {
        var face = Centred();
        var original = Render(face);
        foreach (var e in Enum.GetValues<Expression>().Where(e => e != face.Expression))
        {
            var changed = Changed(original, Render(face with { Expression = e }));
            int inMouth = changed.Count(p => p.X > 0.38 * Size && p.X < 0.62 * Size && p.Y > 0.54 * Size && p.Y < 0.7 * Size);
            Assert.True(inMouth >= 6, $"{e}: only {inMouth} mouth pixels changed");
            Assert.DoesNotContain((0, 0), changed);
        }
    }

    [Fact]
    public void Hair_and_facial_hair_change_their_regions()
    {
        var face = Centred(Gender.Man);
        var original = Render(face);
        foreach (var colour in Enum.GetValues<HairColour>().Where(c => c != face.HairColour))
            Assert.True(Changed(original, Render(face with { HairColour = colour })).Count(p => p.Y < 0.4 * Size) >= 40, $"{colour} hair barely shows");
        var bald = Centred(Gender.Man, HairStyle.Bald);
        var baldPixels = Render(bald);
        foreach (var colour in Enum.GetValues<HairColour>().Where(c => c != bald.HairColour))
            Assert.True(Changed(baldPixels, Render(bald with { HairColour = colour })).Count >= 20, $"{colour} hair barely shows on a bald head");
        foreach (var f in new[] { FacialHair.Beard, FacialHair.Moustache })
        {
            var changed = Changed(original, Render(face with { FacialHair = f }));
            Assert.True(changed.Count(p => p.Y > 0.5 * Size && p.Y < 0.75 * Size) >= 15, $"{f} barely shows");
        }
        // A beard covers the chin; a moustache does not.
        int Chin(FacialHair f) => Changed(original, Render(face with { FacialHair = f })).Count(p => p.Y > 0.66 * Size && p.Y < 0.76 * Size);
        Assert.True(Chin(FacialHair.Beard) > Chin(FacialHair.Moustache) + 20);
    }

    [Fact]
    public void Head_position_and_tilt_move_the_face()
    {
        var face = Centred();
        var original = Render(face);
        foreach (var g in new[] { face.Geometry with { HeadX = 0 }, face.Geometry with { HeadY = 1 }, face.Geometry with { Tilt = 0 } })
            Assert.True(Changed(original, Render(face with { Geometry = g })).Count > 100);
    }

    [Theory]
    [InlineData(32)]
    [InlineData(48)]
    [InlineData(128)]
    public void Any_size_from_32_renders(int size)
    {
        for (ulong seed = 0; seed < 10; seed++)
        {
            var rgb = Render(AttributeSampler.Sample(seed), size);
            Assert.Contains(rgb, b => b < 60);
            Assert.Contains(rgb, b => b > 180);
        }
    }

    [Fact]
    public void Too_small_a_size_or_buffer_is_refused()
    {
        var a = AttributeSampler.Sample(1);
        Assert.Throws<ArgumentOutOfRangeException>(() => FaceRenderer.Render(a, 16));
        Assert.Throws<ArgumentException>(() => FaceRenderer.RenderInto(a, 64, new byte[10]));
    }

    [Fact]
    public void Sampler_is_deterministic_and_plausible()
    {
        const int n = 20_000;
        var faces = Enumerable.Range(0, n).Select(i => AttributeSampler.Sample((ulong)i)).ToArray();
        Assert.Equal(faces[123], AttributeSampler.Sample(123));
        Assert.All(faces, f => Assert.True(f.Gender == Gender.Man || f.FacialHair == FacialHair.None));
        for (int attribute = 0; attribute < FaceAttributes.Schema.Count; attribute++)
        for (int cls = 0; cls < FaceAttributes.Schema[attribute].Classes; cls++)
        {
            double share = faces.Count(f => f.ToLabels()[attribute] == cls) / (double)n;
            Assert.True(share >= 0.03, $"{FaceAttributes.Schema[attribute].Name} class {cls} has only {share:P1} of the faces");
        }
        var g = faces[7].Geometry;
        foreach (var v in new[] { g.FaceWidth, g.FaceLength, g.JawRoundness, g.EyeSize, g.EyeSpacing, g.HeadX, g.HeadY, g.Tilt, g.HairShade, g.SkinShade, g.BackgroundShade, g.MouthWidth })
        {
            Assert.InRange(v, 0, 1);
            Assert.Equal(v, (double)(float)v);
        }
    }
}
