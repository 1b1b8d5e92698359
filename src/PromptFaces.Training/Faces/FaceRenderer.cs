using PromptFaces.Generation.Optimisation;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace PromptFaces.Training.Faces;

/// <summary>
/// Draws a cartoon portrait from <see cref="FaceAttributes"/>: pure C#, deterministic (the same attributes and size give
/// the same bytes on any thread), anti-aliased, and fast enough to render training sets on the fly.
/// </summary>
/// <remarks>
/// <para>Every shape is a signed distance function composited back to front on a <see cref="Canvas"/>; coordinates are
/// fractions of the image side, so one description serves every size (64 for training, 128 or more for viewing).</para>
/// <para>The drawing is deliberately exaggerated: the generator, CLIP and the judge all learn from these pictures at
/// 64x64, so every judged attribute must survive that resolution. Irises are several pixels wide, sunglasses are dark
/// but let a dimmed iris show (the eye colour stays a readable label), bald heads keep a fringe of hair at the sides
/// and every face has eyebrows in the hair colour (so hair colour is readable on bald heads), and the palettes keep
/// neighbouring classes (grey and white, purple, pink and blue, ...) far apart, with shade variation well inside the
/// gaps. Gender shows in the jaw, brows, lashes, lipstick, blush, neck and neckline.</para>
/// <para>Small stylistic choices no caption mentions (fringe style, shirt colour, lipstick shade, the side of a ponytail,
/// frame style) come from a hash of <see cref="FaceAttributes.Geometry"/> only, so changing one judged attribute
/// changes only the pixels that attribute owns.</para>
/// </remarks>
public static class FaceRenderer
{
    /// <summary>Bumped whenever a change alters any rendered pixel; datasets record it.</summary>
    public const int Version = 3;

    /// <summary>The smallest side at which the features stay recognisable.</summary>
    public const int MinSize = 32;

    [ThreadStatic] private static Canvas? _canvas;

    public static Image<Rgb24> Render(FaceAttributes attributes, int size)
    {
        var rgb = new byte[checked(size * size * 3)];
        RenderInto(attributes, size, rgb);
        return Image.LoadPixelData<Rgb24>(rgb, size, size);
    }

    /// <summary>Renders into <paramref name="rgb"/>: size*size*3 bytes, rows top to bottom, RGB per pixel (HWC).</summary>
    public static void RenderInto(FaceAttributes attributes, int size, Span<byte> rgb)
    {
        ArgumentNullException.ThrowIfNull(attributes);
        if (size < MinSize) throw new ArgumentOutOfRangeException(nameof(size), size, $"The renderer needs at least {MinSize}x{MinSize} pixels.");
        if (rgb.Length != size * size * 3)
            throw new ArgumentException($"Expected {size * size * 3} bytes for a {size}x{size} RGB image, got {rgb.Length}.", nameof(rgb));
        var canvas = _canvas is { } c && c.Size == size ? c : _canvas = new Canvas(size);
        new Painter(attributes, canvas).Paint();
        canvas.CopyTo(rgb);
    }

    // ---- Palettes: well separated base colours; shades multiply them by a factor close to 1. ----

    internal static readonly Rgb[] HairColours =
    {
        new(236, 200, 92),   // blonde
        new(116, 70, 36),    // brown
        new(38, 34, 36),     // black
        new(208, 78, 30),    // red (ginger)
        new(150, 150, 156),  // grey
        new(244, 244, 246),  // white
        new(44, 96, 216),    // blue
        new(246, 128, 186),  // pink
        new(134, 62, 198),   // purple
        new(42, 160, 74),    // green
    };

    internal static readonly Rgb[] EyeColours =
    {
        new(40, 124, 240),   // blue
        new(28, 172, 62),    // green
        new(118, 64, 24),    // brown
        new(150, 156, 168),  // grey
        new(158, 58, 224),   // purple
        new(224, 30, 40),    // red
        new(244, 172, 18),   // amber
    };

    internal static readonly Rgb[] SkinTones =
    {
        new(255, 228, 214),  // pale
        new(242, 200, 164),  // light
        new(216, 164, 116),  // medium
        new(180, 122, 78),   // tan
        new(128, 82, 52),    // dark
        new(80, 50, 34),     // deep
    };

    internal static readonly Rgb[] Backgrounds =
    {
        new(246, 246, 243),  // white
        new(150, 153, 158),  // grey
        new(96, 156, 236),   // blue
        new(112, 200, 108),  // green
        new(248, 222, 84),   // yellow
        new(246, 166, 206),  // pink
        new(248, 150, 52),   // orange
        new(166, 114, 218),  // purple
    };

    /// <summary>Muted clothing colours, none close to a background, so the background reads from the corners alone.</summary>
    private static readonly Rgb[] Shirts =
    {
        new(44, 60, 112), new(118, 40, 52), new(44, 94, 62), new(62, 64, 72),
        new(34, 108, 114), new(108, 80, 56), new(88, 104, 130),
    };

    private static readonly Rgb[] Lipsticks = { new(204, 44, 66), new(218, 84, 122), new(164, 38, 84) };

    private static readonly Rgb Ink = new(28, 22, 24);
    private static readonly Rgb White = new(255, 255, 255);
    private static readonly Rgb MouthInside = new(96, 24, 36);
    private static readonly Rgb Tongue = new(232, 104, 118);

    /// <summary>Lays out and paints one face. A class rather than static methods so the layout is computed once.</summary>
    private sealed class Painter
    {
        /// <summary>The head's drawing units are this much larger than image units: the features were laid out in
        /// image units, then the whole head enlarged to give eyes and mouth more pixels at 64x64.</summary>
        private const float HeadScale = 1.1f;

        private readonly FaceAttributes _a;
        private readonly Canvas _c;
        private readonly ulong _styleHash;
        private readonly bool _man;

        // Layout, in image units relative to the head centre (x right, y down).
        private readonly float _cx, _cy, _tilt;
        private readonly float _headW, _headH, _taper, _square;
        private readonly float _eyeX, _eyeY, _eyeScale, _browY, _noseY, _mouthY, _mouthW;
        private readonly float _line;

        // Colours.
        private readonly Rgb _skin, _skinLine, _skinShadow, _hair, _hairLine, _brow, _lips;

        public Painter(FaceAttributes a, Canvas canvas)
        {
            _a = a;
            _c = canvas;
            var g = a.Geometry;
            _styleHash = GeometryHash(g);
            _man = a.Gender == Gender.Man;

            _cx = 0.5f + (float)(g.HeadX - 0.5) * 0.12f;
            _cy = 0.46f + (float)(g.HeadY - 0.5) * 0.07f;
            _tilt = (float)((g.Tilt - 0.5) * 2 * 12 * Math.PI / 180);
            _headW = Lerp(0.180f, 0.218f, g.FaceWidth) * (_man ? 1.04f : 1f);
            _headH = Lerp(0.232f, 0.266f, g.FaceLength);
            _taper = _man ? 0.10f : 0.20f;
            _square = _man ? Lerp(0.35f, 0.85f, g.JawRoundness) : Lerp(0f, 0.3f, g.JawRoundness);
            _eyeScale = Lerp(0.88f, 1.12f, g.EyeSize);
            _eyeX = Lerp(0.084f, 0.104f, g.EyeSpacing);
            _eyeY = 0.005f;
            _browY = _eyeY - 0.062f * _eyeScale - 0.012f;
            _noseY = 0.075f;
            _mouthY = _headH * 0.52f;
            _mouthW = Lerp(0.05f, 0.068f, g.MouthWidth);
            _line = 1f / 64f;

            _skin = SkinTones[(int)a.SkinTone] * Lerp(0.96f, 1.04f, g.SkinShade);
            _skinLine = _skin * 0.45f;
            _skinShadow = _skin * 0.82f;
            _hair = HairColours[(int)a.HairColour] * Lerp(0.9f, 1.08f, g.HairShade);
            _hairLine = _hair * 0.5f;
            _brow = _hair.Mix(Ink, a.HairColour is HairColour.White or HairColour.Grey or HairColour.Blonde ? 0.3f : 0.15f);
            _lips = _man ? _skin.Mix(new Rgb(150, 50, 50), 0.4f) : Lipsticks[Choice(Slot.Lipstick, Lipsticks.Length)];
        }

        /// <summary>Each stylistic choice reads its own slot of the geometry hash, so choices never shift each other:
        /// whether one is made (lipstick only for women, say) cannot change another (the shirt).</summary>
        private enum Slot { Lipstick = 1, Shirt, PonytailSide, ShortLock, Bangs, FrameShape, SunglassFrame, Curls = 100 }

        private int Choice(Slot slot, int count) => (int)(new SplitMix64(_styleHash + (ulong)slot).NextUInt64() % (ulong)count);

        private double Fraction(int slot) => new SplitMix64(_styleHash + (ulong)slot).NextDouble();

        /// <summary>Back to front. Body, neck and background stay upright in image units; everything on the head is
        /// drawn in the head's frame (moved, tilted and enlarged by <see cref="HeadScale"/>).</summary>
        public void Paint()
        {
            var bg = Backgrounds[(int)_a.Background] * Lerp(0.93f, 1.05f, _a.Geometry.BackgroundShade);
            _c.FillGradient(bg * 1.03f, bg * 0.94f);

            ImageFrame();
            Body();
            HeadFrame();
            HairBack();
            ImageFrame();
            Neck();
            HeadFrame();
            Ears();
            Face();
            if (_a.FacialHair == FacialHair.Beard) Beard();
            Eyes();
            Nose();
            Mouth();
            if (_a.FacialHair != FacialHair.None) Moustache();
            HairFront();
            if (_a.Glasses != Glasses.None) Spectacles();
            Brows();
        }

        private void ImageFrame() => _c.SetFrame(0f, 0f, 0f);

        private void HeadFrame() => _c.SetFrame(_cx, _cy, _tilt, HeadScale);

        // ---- Body ----

        private float ShirtTop => _cy + (_headH + 0.07f) * HeadScale;

        private float ShirtX => 0.5f + (_cx - 0.5f) * 0.6f;

        private void Body()
        {
            var shirt = Shirts[Choice(Slot.Shirt, Shirts.Length)];
            float half = _man ? 0.37f : 0.32f;
            _c.FillOutlined(new RoundedBox(ShirtX, ShirtTop + 0.3f, half, 0.3f, 0.13f), shirt, shirt * 0.55f, _line);
        }

        private void Neck()
        {
            float half = (_man ? 0.07f : 0.056f) * HeadScale, top = _cy + 0.05f, bottom = ShirtTop + 0.08f;
            float x = (_cx + ShirtX) / 2, nx = ShirtX, shirtTop = ShirtTop;
            _c.FillOutlined(new RoundedBox(x, (top + bottom) / 2, half, (bottom - top) / 2, 0.02f), _skin * 0.93f, _skinLine, _line);
            // The neckline: a V with a collar for men, a scoop for women.
            if (_man)
            {
                var v = new Intersect<Intersect<HalfPlane, HalfPlane>, HalfPlane>(
                    new Intersect<HalfPlane, HalfPlane>(
                        HalfPlane.Through(nx - 0.075f, shirtTop - 0.01f, nx, shirtTop + 0.1f),
                        HalfPlane.Through(nx, shirtTop + 0.1f, nx + 0.075f, shirtTop - 0.01f)),
                    new HalfPlane(0, -1, -shirtTop + 0.005f));
                _c.FillOutlined(v, _skin * 0.93f, _skinLine, _line * 0.8f);
                var collar = new Rgb(236, 236, 232);
                for (int s = -1; s <= 1; s += 2)
                    _c.FillOutlined(new Capsule(nx + s * 0.08f, shirtTop + 0.002f, nx + s * 0.012f, shirtTop + 0.082f, 0.017f), collar, collar * 0.6f, _line * 0.8f);
            }
            else
            {
                _c.FillOutlined(new Intersect<Ellipse, HalfPlane>(new Ellipse(nx, shirtTop, 0.105f, 0.075f), new HalfPlane(0, -1, -shirtTop + 0.002f)),
                    _skin * 0.93f, _skinLine, _line * 0.8f);
            }
        }

        // ---- Head ----

        private FaceShape Outline(float grow = 0f) => new(_headW + grow, _headH + grow, _taper, _square);

        private void Ears()
        {
            for (int s = -1; s <= 1; s += 2)
            {
                float x = s * (_headW - 0.004f);
                _c.FillOutlined(new Ellipse(x, 0.02f, 0.032f, 0.046f), _skin, _skinLine, _line);
                _c.Fill(new Ellipse(x + s * 0.006f, 0.022f, 0.013f, 0.024f), _skinShadow);
            }
        }

        private void Face()
        {
            // Shadow cast on the neck by the chin, drawn before the face so only its lower part shows.
            _c.Fill(new Ellipse(0, _headH + 0.005f, _man ? 0.064f : 0.05f, 0.04f), _skin * 0.78f, 0.7f);
            _c.FillOutlined(Outline(), _skin, _skinLine, _line * 1.1f);
            // Soft form shadow along the lower right (light from the upper left): the face minus itself moved up-left.
            _c.Fill(new Subtract<Offset<FaceShape>, Translated<FaceShape>>(new Offset<FaceShape>(Outline(), -_line * 1.1f), new Translated<FaceShape>(Outline(), -0.03f, -0.025f)),
                _skinShadow, 0.45f);
            if (!_man)
            {
                // Blush: a gender cue that survives 64x64.
                for (int s = -1; s <= 1; s += 2)
                    _c.Fill(new Ellipse(s * (_eyeX + 0.018f), _mouthY - 0.045f, 0.03f, 0.017f), new Rgb(240, 100, 120), 0.35f);
            }
            if (_a.HairStyle == HairStyle.Bald)
            {
                _c.Fill(new Rotated<Ellipse>(new Ellipse(-0.07f, -_headH + 0.05f, 0.05f, 0.022f), -0.07f, -_headH + 0.05f, -0.45f), White, 0.45f);
            }
        }

        private void Eyes()
        {
            // The geometry has no eye shade of its own; the hair shade varies it a little (never across classes).
            var iris = EyeColours[(int)_a.EyeColour] * Lerp(0.95f, 1.05f, _a.Geometry.HairShade);
            float rx = 0.05f * _eyeScale, ry = 0.041f * _eyeScale;
            if (_a.Expression == Expression.Surprised) ry *= 1.3f;
            if (_a.Expression == Expression.Smiling) ry *= 0.92f;
            float ir = 0.036f * _eyeScale;
            for (int s = -1; s <= 1; s += 2)
            {
                float x = s * _eyeX, y = _eyeY;
                var eye = new Ellipse(x, y, rx, ry);
                _c.Fill(eye, new Rgb(250, 250, 250));
                var irisShape = new Intersect<Circle, Ellipse>(new Circle(x, y + 0.002f, ir), eye);
                _c.FillOutlined(irisShape, iris, iris * 0.55f, _line * 0.7f);
                _c.Fill(new Circle(x, y + 0.002f, 0.013f * _eyeScale), new Rgb(14, 12, 16));
                _c.Fill(new Circle(x - 0.011f, y - 0.009f, 0.0085f), White, 0.95f);
                if (_a.Expression == Expression.Sad)
                {
                    // Drooping upper lid: skin over the eye above a line from the inner corner (high) to the outer (low).
                    float innerX = x - s * rx * 1.1f, outerX = x + s * rx * 1.1f, innerY = y - ry * 0.95f, outerY = y - ry * 0.05f;
                    var above = s > 0 ? HalfPlane.Through(innerX, innerY, outerX, outerY) : HalfPlane.Through(outerX, outerY, innerX, innerY);
                    _c.Fill(new Intersect<Ellipse, HalfPlane>(new Ellipse(x, y, rx + 0.004f, ry + 0.004f), above), _skinShadow);
                }
                // Eye outline, heavier on top (the lid line).
                _c.Fill(new Subtract<Offset<Ellipse>, Ellipse>(new Offset<Ellipse>(eye, _line * 0.5f), eye), Ink, 0.9f);
                _c.Fill(new Arc(x, y + ry * 0.35f, ry * 1.35f, 0, -1, 1.15f, _line * (_man ? 0.6f : 0.85f)), Ink);
                if (!_man)
                {
                    // Lashes: two flicks at the outer corner.
                    float ox = x + s * rx * 0.9f, oy = y - ry * 0.45f;
                    _c.Fill(new Capsule(ox, oy, ox + s * 0.022f, oy - 0.014f, _line * 0.55f), Ink);
                    _c.Fill(new Capsule(ox - s * 0.012f, oy - ry * 0.45f, ox + s * 0.004f, oy - ry * 0.45f - 0.02f, _line * 0.55f), Ink);
                }
            }
        }

        private void Brows()
        {
            float thick = _man ? 0.0125f : 0.0075f;
            float len = 0.04f;
            float raise = _a.Expression switch { Expression.Surprised => -0.028f, Expression.Smiling => -0.01f, _ => 0f };
            if (_a.Glasses == Glasses.Sunglasses) raise -= 0.012f;
            for (int s = -1; s <= 1; s += 2)
            {
                float x = s * _eyeX, y = _browY + raise;
                float inner = x - s * len, outer = x + s * len;
                switch (_a.Expression)
                {
                    case Expression.Sad:
                        // Steeply slanted, inner ends high: the clearest sad cue after the mouth.
                        _c.FillOutlined(new Capsule(inner, y - 0.02f, outer, y + 0.014f, thick), _brow, _brow * 0.6f, _line * 0.5f);
                        break;
                    case Expression.Surprised:
                        _c.FillOutlined(new Arc(x, y + 0.05f, 0.058f, 0, -1, 0.72f, thick), _brow, _brow * 0.6f, _line * 0.5f);
                        break;
                    case Expression.Smiling:
                        // Raised and arched.
                        _c.FillOutlined(new Arc(x, y + 0.07f, 0.075f, s * 0.15f, -1, 0.5f, thick), _brow, _brow * 0.6f, _line * 0.5f);
                        break;
                    default:
                        // Neutral: level and straight.
                        _c.FillOutlined(new Capsule(inner, y + 0.002f, outer, y + 0.002f, thick), _brow, _brow * 0.6f, _line * 0.5f);
                        break;
                }
            }
        }

        private void Nose()
        {
            _c.Fill(new Ellipse(0.004f, _noseY, 0.016f, 0.011f), _skinShadow, 0.9f);
            _c.Fill(new Arc(0f, _noseY - 0.006f, 0.015f, 0, 1, 0.9f, _line * 0.45f), _skinLine, 0.8f);
        }

        private void Mouth()
        {
            float y = _mouthY, w = _mouthW;
            var line = _man ? _skinLine : _lips * 0.6f;
            switch (_a.Expression)
            {
                case Expression.Smiling:
                {
                    // A wide open grin: a D with its flat side up, a band of teeth along the top, corners turned up.
                    float top = y - 0.014f, gw = w * 1.12f;
                    var grin = new Intersect<Ellipse, HalfPlane>(new Ellipse(0, top, gw, gw * 0.82f), new HalfPlane(0, -1, -top));
                    _c.FillOutlined(grin, MouthInside, _man ? _skinLine : _lips, _line * (_man ? 1.1f : 1.5f));
                    var teeth = new Intersect<Offset<Intersect<Ellipse, HalfPlane>>, HalfPlane>(
                        new Offset<Intersect<Ellipse, HalfPlane>>(grin, -_line * (_man ? 1f : 1.3f)), new HalfPlane(0, 1, top + gw * 0.34f));
                    _c.Fill(teeth, new Rgb(252, 252, 250));
                    // The tongue: a bright patch that reads on every skin tone.
                    _c.Fill(new Intersect<Ellipse, Offset<Intersect<Ellipse, HalfPlane>>>(new Ellipse(0, top + gw * 0.8f, gw * 0.6f, gw * 0.35f),
                        new Offset<Intersect<Ellipse, HalfPlane>>(grin, -_line * 0.8f)), Tongue);
                    for (int s = -1; s <= 1; s += 2)
                        _c.Fill(new Capsule(s * gw * 0.95f, top + 0.002f, s * (gw + 0.012f), top - 0.01f, _line * 0.6f), _man ? _skinLine : _lips * 0.7f);
                    break;
                }
                case Expression.Neutral:
                    _c.FillOutlined(new Ellipse(0, y + (_man ? 0.006f : 0f), w * (_man ? 0.55f : 0.72f), _man ? 0.011f : 0.017f), _lips, _lips * 0.8f, _line * 0.6f);
                    _c.Fill(new Capsule(-w * 0.8f, y, w * 0.8f, y, _line * 0.8f), line);
                    break;
                case Expression.Sad:
                {
                    var frown = new Arc(0, y + 0.05f, 0.054f, 0, -1, 0.95f, _line * 0.9f);
                    _c.Fill(new Arc(0, y + 0.05f, 0.054f, 0, -1, 0.9f, _man ? 0.009f : 0.012f), _lips);
                    _c.Fill(frown, line);
                    break;
                }
                case Expression.Surprised:
                {
                    var o = new Ellipse(0, y + 0.006f, 0.031f, 0.042f);
                    _c.FillOutlined(o, MouthInside, _man ? _skinLine : _lips, _line * (_man ? 1f : 1.5f));
                    _c.Fill(new Intersect<Ellipse, Offset<Ellipse>>(new Ellipse(0, y + 0.036f, 0.024f, 0.016f), new Offset<Ellipse>(o, -_line)), Tongue);
                    break;
                }
            }
        }

        private void Beard()
        {
            // The face outline minus the upper face: a band along the jaw, full at the chin, thin at the sideburns.
            var band = new Intersect<Subtract<FaceShape, Ellipse>, HalfPlane>(
                new Subtract<FaceShape, Ellipse>(Outline(0.012f), new Ellipse(0, -0.03f, _headW * 0.86f, _mouthY - 0.01f + 0.03f)),
                new HalfPlane(0, -1, 0.0f));
            var beard = _hair.Mix(Ink, 0.1f);
            _c.FillOutlined(band, beard, beard * 0.55f, _line);
            // A little texture: short darker strokes.
            for (int i = -2; i <= 2; i++)
                _c.Fill(new Capsule(i * 0.035f, _headH - 0.02f, i * 0.038f, _headH - 0.005f, _line * 0.4f), beard * 0.7f, 0.8f);
        }

        private void Moustache()
        {
            var colour = _hair.Mix(Ink, 0.1f);
            float y = _mouthY - (_a.Expression switch { Expression.Smiling => 0.034f, Expression.Surprised => 0.044f, _ => 0.023f });
            for (int s = -1; s <= 1; s += 2)
            {
                var half = new Rotated<Ellipse>(new Ellipse(s * 0.031f, y, 0.04f, 0.019f), s * 0.031f, y, s * 0.3f);
                _c.FillOutlined(half, colour, colour * 0.45f, _line);
            }
        }

        // ---- Hair ----

        private void HairBack()
        {
            switch (_a.HairStyle)
            {
                case HairStyle.Long:
                {
                    // Two splayed locks falling to the shoulders behind the face, joined over the skull.
                    float bottom = _headH + 0.2f + (float)_a.Geometry.FaceLength * 0.03f;
                    var back = new Union<Ellipse, Union<Capsule, Capsule>>(
                        new Ellipse(0, -0.02f, _headW + 0.05f, _headH + 0.045f),
                        new Union<Capsule, Capsule>(
                            new Capsule(-_headW * 0.5f, -0.04f, -(_headW + 0.03f), bottom - 0.07f, 0.075f),
                            new Capsule(_headW * 0.5f, -0.04f, _headW + 0.03f, bottom - 0.07f, 0.075f)));
                    _c.FillOutlined(back, _hair * 0.86f, _hairLine, _line);
                    for (int s = -1; s <= 1; s += 2)
                        _c.Fill(new Capsule(s * (_headW + 0.045f), 0.02f, s * (_headW + 0.07f), bottom - 0.04f, _line * 0.4f), _hairLine, 0.6f);
                    break;
                }
                case HairStyle.Curly:
                {
                    // A puff of overlapping outlined circles: the overlaps draw the curls.
                    const int n = 15;
                    for (int i = 0; i < n; i++)
                    {
                        double t = Math.PI * (1.12 + 1.26 * i / (n - 1)) + (Fraction((int)Slot.Curls + 2 * i) - 0.5) * 0.08;
                        float x = (_headW + 0.04f) * (float)Math.Cos(t), y = -0.02f + (_headH + 0.03f) * (float)Math.Sin(t);
                        float r = 0.05f + 0.012f * (float)Fraction((int)Slot.Curls + 2 * i + 1);
                        _c.FillOutlined(new Circle(x, y, r), _hair, _hairLine, _line);
                    }
                    for (int s = -1; s <= 1; s += 2)
                    for (int k = 0; k < 3; k++)
                        _c.FillOutlined(new Circle(s * (_headW + 0.035f - 0.01f * k), 0.07f + 0.055f * k, 0.045f), _hair, _hairLine, _line);
                    break;
                }
                case HairStyle.Ponytail:
                {
                    // One thick tail hanging beside the head from a tie high at the back: asymmetric, unlike long hair.
                    float s = Choice(Slot.PonytailSide, 2) == 0 ? -1f : 1f;
                    float bx = s * (_headW + 0.0f), by = -_headH * 0.6f;
                    float tx = bx + s * 0.075f, ty = by + 0.15f;
                    var tail = new Union<Rotated<Ellipse>, Circle>(
                        new Rotated<Ellipse>(new Ellipse(tx, ty, 0.058f, 0.155f), tx, ty, -s * 0.32f),
                        new Circle(bx + s * 0.025f, by + 0.01f, 0.05f));
                    _c.FillOutlined(tail, _hair, _hairLine, _line);
                    for (int k = 0; k < 2; k++)
                        _c.Fill(new Arc(tx + s * (0.045f + 0.025f * k), ty, 0.1f, -s, 0, 0.6f, _line * 0.4f), _hairLine, 0.7f);
                    // The hair tie.
                    var tie = new Rgb(230, 60, 80).Mix(_hair, 0.15f);
                    _c.FillOutlined(new Rotated<RoundedBox>(new RoundedBox(bx + s * 0.035f, by + 0.035f, 0.024f, 0.014f, 0.008f), bx + s * 0.035f, by + 0.035f, -s * 0.5f),
                        tie, tie * 0.5f, _line * 0.8f);
                    break;
                }
            }
        }

        private void HairFront()
        {
            var shine = _hair.Mix(White, 0.35f);
            switch (_a.HairStyle)
            {
                case HairStyle.Bald:
                {
                    // A horseshoe hugging the sides of the skull, so a bald head still shows its hair colour.
                    var band = new Subtract<FaceShape, FaceShape>(Outline(0.034f), Outline(-0.02f));
                    var sides = new Intersect<Subtract<FaceShape, FaceShape>, Union<Ellipse, Ellipse>>(band,
                        new Union<Ellipse, Ellipse>(new Ellipse(-_headW, 0.0f, 0.085f, 0.14f), new Ellipse(_headW, 0.0f, 0.085f, 0.14f)));
                    _c.FillOutlined(sides, _hair, _hairLine, _line);
                    // The ears stay in front of the hair.
                    Ears();
                    break;
                }
                case HairStyle.Short:
                {
                    _c.FillOutlined(Cap(grow: 0.034f, hairline: -0.135f, windowWidth: 0.86f, bottom: 0.0f), _hair, _hairLine, _line);
                    // A fringe of tufts along the hairline, leaning to one side.
                    float side = Choice(Slot.ShortLock, 2) == 0 ? -1f : 1f;
                    for (int i = 0; i < 5; i++)
                    {
                        float t = (i - 2f) / 2f, x = t * _headW * 0.62f, y = -0.132f + 0.022f * t * t;
                        var tuft = new Rotated<Ellipse>(new Ellipse(x, y, 0.026f, 0.042f), x, y - 0.03f, side * 0.45f);
                        _c.FillOutlined(tuft, _hair, _hairLine, _line * 0.9f);
                    }
                    _c.Fill(Cap(grow: 0.02f, hairline: -0.16f, windowWidth: 0.8f, bottom: -0.05f), _hair);
                    Shine(shine);
                    break;
                }
                case HairStyle.Long:
                {
                    bool bangs = Choice(Slot.Bangs, 2) == 0;
                    var cap = Cap(grow: 0.032f, hairline: bangs ? -0.1f : -0.14f, windowWidth: 0.84f, bottom: 0.0f);
                    _c.FillOutlined(cap, _hair, _hairLine, _line);
                    if (!bangs) _c.Fill(new Capsule(0, -_headH - 0.02f, 0.006f, -0.135f, _line * 0.5f), _hairLine);
                    for (int s = -1; s <= 1; s += 2)
                    {
                        var curtain = new Capsule(s * (_headW - 0.004f), -0.06f, s * (_headW + 0.02f), _headH + 0.1f, 0.034f);
                        _c.FillOutlined(curtain, _hair, _hairLine, _line);
                        _c.Fill(new Capsule(s * (_headW + 0.004f), 0.0f, s * (_headW + 0.018f), _headH + 0.08f, _line * 0.4f), _hairLine, 0.6f);
                    }
                    Shine(shine);
                    break;
                }
                case HairStyle.Curly:
                {
                    _c.Fill(Cap(grow: 0.03f, hairline: -0.12f, windowWidth: 0.86f, bottom: -0.02f), _hair);
                    // A row of curls along the hairline.
                    const int n = 6;
                    for (int i = 0; i < n; i++)
                    {
                        float t = -1f + 2f * i / (n - 1);
                        float x = t * _headW * 0.78f, y = -0.135f - 0.055f * (1 - t * t) * 0.5f + 0.03f * t * t;
                        _c.FillOutlined(new Circle(x, y, 0.034f), _hair, _hairLine, _line);
                    }
                    for (int i = 0; i < 4; i++)
                    {
                        float x = (i - 1.5f) * 0.07f;
                        _c.FillOutlined(new Circle(x, -_headH - 0.01f + 0.01f * MathF.Abs(i - 1.5f), 0.04f), _hair, _hairLine, _line);
                    }
                    break;
                }
                case HairStyle.Ponytail:
                {
                    var cap = Cap(grow: 0.014f, hairline: -0.155f, windowWidth: 0.88f, bottom: -0.03f);
                    _c.FillOutlined(cap, _hair, _hairLine, _line);
                    // Combed-back strands.
                    for (int k = -2; k <= 2; k++)
                        _c.Fill(new Arc(k * 0.04f, 0.02f, _headH + 0.0f, 0, -1, 0.05f + 0.08f * MathF.Abs(k), _line * 0.35f), _hairLine, 0.5f);
                    Shine(shine);
                    break;
                }
            }
        }

        /// <summary>The hair on the skull: the face outline grown by <paramref name="grow"/>, minus a window for the face
        /// whose top edge is the hairline, cut off at <paramref name="bottom"/> (sideburn length).</summary>
        private Intersect<Subtract<FaceShape, Ellipse>, HalfPlane> Cap(float grow, float hairline, float windowWidth, float bottom)
        {
            float wy = 0.55f * _headH * 2;
            float wcy = hairline + wy;
            return new Intersect<Subtract<FaceShape, Ellipse>, HalfPlane>(
                new Subtract<FaceShape, Ellipse>(Outline(grow), new Ellipse(0, wcy, _headW * windowWidth, wy)),
                new HalfPlane(0, 1, bottom));
        }

        private void Shine(Rgb shine) =>
            _c.Fill(new Arc(0, 0.02f, _headH + 0.005f, -0.35f, -1, 0.3f, 0.008f), shine, 0.55f);

        private void Spectacles()
        {
            bool sun = _a.Glasses == Glasses.Sunglasses;
            bool roundFrames = Choice(Slot.FrameShape, 2) == 0;
            var frame = sun ? (Choice(Slot.SunglassFrame, 2) == 0 ? new Rgb(20, 20, 24) : new Rgb(196, 156, 60)) : new Rgb(30, 28, 34);
            float thick = sun ? _line * 1.3f : _line * 0.95f;
            float rx = sun ? 0.066f : 0.06f, ry = sun ? 0.056f : 0.05f;
            for (int s = -1; s <= 1; s += 2)
            {
                float x = s * _eyeX, y = _eyeY;
                if (sun)
                {
                    var lens = new Rotated<RoundedBox>(new RoundedBox(x, y + 0.004f, rx, ry, 0.035f), x, y, s * 0.08f);
                    _c.Fill(lens, new Rgb(12, 14, 22), 0.52f);
                    _c.Fill(new Intersect<Capsule, Rotated<RoundedBox>>(new Capsule(x - 0.04f, y - 0.01f, x - 0.015f, y - 0.04f, 0.006f), lens), White, 0.35f);
                    _c.Fill(new Subtract<Offset<Rotated<RoundedBox>>, Rotated<RoundedBox>>(new Offset<Rotated<RoundedBox>>(lens, thick), lens), frame);
                }
                else if (roundFrames)
                {
                    var lens = new Circle(x, y, rx * 0.95f);
                    _c.Fill(lens, White, 0.12f);
                    _c.Fill(new Subtract<Offset<Circle>, Circle>(new Offset<Circle>(lens, thick), lens), frame);
                }
                else
                {
                    var lens = new RoundedBox(x, y, rx, ry * 0.85f, 0.018f);
                    _c.Fill(lens, White, 0.12f);
                    _c.Fill(new Subtract<Offset<RoundedBox>, RoundedBox>(new Offset<RoundedBox>(lens, thick), lens), frame);
                }
                // Temple arm towards the ear.
                _c.Fill(new Capsule(x + s * rx, y - 0.01f, s * (_headW + 0.01f), y - 0.005f, thick * 0.6f), frame);
            }
            _c.Fill(new Arc(0, _eyeY + 0.0f, _eyeX - rx + 0.004f, 0, -1, 1.2f, thick * 0.6f), frame);
        }
    }

    /// <summary>The head outline: an ellipse whose lower half narrows towards the chin (<c>taper</c>) and blends towards
    /// a rounded box (<c>square</c>) for a squarer jaw.</summary>
    internal readonly struct FaceShape(float w, float h, float taper, float square) : IShape
    {
        public float Distance(float x, float y)
        {
            float t = y > 0 ? y / h : 0f;
            float xs = x / (1f - taper * t * t);
            float dEllipse = new Ellipse(0, 0, w, h).Distance(xs, y);
            if (square <= 0f || y <= 0f) return dEllipse;
            float dBox = new RoundedBox(0, 0, w * 0.97f, h, w * 0.55f).Distance(x, y);
            float k = square * Math.Clamp(y / (0.3f * h), 0f, 1f);
            return dEllipse + (dBox - dEllipse) * k;
        }

        public Bounds Bounds => new(-w, -h, w, h);
    }

    private static float Lerp(float a, float b, double t) => a + (b - a) * (float)Math.Clamp(t, 0, 1);

    /// <summary>A stable hash of the geometry's exact bit patterns (never of labels) for the style choices.</summary>
    internal static ulong GeometryHash(FaceGeometry g)
    {
        ulong h = 0x5EED_FACE_0000_0001UL;
        foreach (var v in new[] { g.FaceWidth, g.FaceLength, g.JawRoundness, g.EyeSize, g.EyeSpacing, g.HeadX, g.HeadY, g.Tilt, g.HairShade, g.SkinShade, g.BackgroundShade, g.MouthWidth })
            h = new SplitMix64(h ^ (ulong)BitConverter.DoubleToInt64Bits(v)).NextUInt64();
        return h;
    }
}
