namespace PromptFaces.Training.Faces;

/// <summary>An RGB colour in 0–255 floats, so shading and blending keep precision until the final rounding.</summary>
internal readonly record struct Rgb(float R, float G, float B)
{
    public static Rgb operator *(Rgb c, float k) => new(c.R * k, c.G * k, c.B * k);

    /// <summary>Linear interpolation towards <paramref name="other"/>: 0 keeps this colour, 1 gives the other.</summary>
    public Rgb Mix(Rgb other, float t) => new(R + (other.R - R) * t, G + (other.G - G) * t, B + (other.B - B) * t);
}

/// <summary>An axis-aligned box in a shape's own coordinates: the only part of the canvas a shape can touch.</summary>
internal readonly record struct Bounds(float MinX, float MinY, float MaxX, float MaxY)
{
    /// <summary>Unbounded; only meaningful inside an intersection with a bounded shape.</summary>
    public static readonly Bounds Infinite = new(-1e6f, -1e6f, 1e6f, 1e6f);

    public Bounds Union(Bounds o) => new(MathF.Min(MinX, o.MinX), MathF.Min(MinY, o.MinY), MathF.Max(MaxX, o.MaxX), MathF.Max(MaxY, o.MaxY));
    public Bounds Intersect(Bounds o) => new(MathF.Max(MinX, o.MinX), MathF.Max(MinY, o.MinY), MathF.Min(MaxX, o.MaxX), MathF.Min(MaxY, o.MaxY));
    public Bounds Inflate(float r) => new(MinX - r, MinY - r, MaxX + r, MaxY + r);
}

/// <summary>
/// A 2-D signed distance function: negative inside, positive outside, in canvas units. Only the values within about a
/// pixel of the boundary need to be accurate, because the canvas turns distance into anti-aliased coverage there.
/// Shapes are structs used through generic constraints so that the JIT inlines the distance into the pixel loop.
/// </summary>
internal interface IShape
{
    float Distance(float x, float y);
    Bounds Bounds { get; }
}

internal readonly struct Circle(float cx, float cy, float r) : IShape
{
    public float Distance(float x, float y)
    {
        float dx = x - cx, dy = y - cy;
        return MathF.Sqrt(dx * dx + dy * dy) - r;
    }
    public Bounds Bounds => new(cx - r, cy - r, cx + r, cy + r);
}

/// <summary>Axis-aligned ellipse; distance by Quilez's gradient-normalised approximation, exact on the boundary.</summary>
internal readonly struct Ellipse(float cx, float cy, float rx, float ry) : IShape
{
    public float Distance(float x, float y)
    {
        float px = (x - cx) / rx, py = (y - cy) / ry;
        float k0 = MathF.Sqrt(px * px + py * py);
        float qx = px / rx, qy = py / ry;
        float k1 = MathF.Sqrt(qx * qx + qy * qy);
        return k1 < 1e-9f ? -MathF.Min(rx, ry) : k0 * (k0 - 1f) / k1;
    }
    public Bounds Bounds => new(cx - rx, cy - ry, cx + rx, cy + ry);
}

internal readonly struct RoundedBox(float cx, float cy, float hx, float hy, float radius) : IShape
{
    public float Distance(float x, float y)
    {
        float qx = MathF.Abs(x - cx) - hx + radius, qy = MathF.Abs(y - cy) - hy + radius;
        float ox = MathF.Max(qx, 0f), oy = MathF.Max(qy, 0f);
        return MathF.Sqrt(ox * ox + oy * oy) + MathF.Min(MathF.Max(qx, qy), 0f) - radius;
    }
    public Bounds Bounds => new(cx - hx, cy - hy, cx + hx, cy + hy);
}

/// <summary>A segment with round ends: every stroke (brows, mouths, frames, lashes) is one of these or an arc.</summary>
internal readonly struct Capsule(float ax, float ay, float bx, float by, float r) : IShape
{
    public float Distance(float x, float y)
    {
        float pax = x - ax, pay = y - ay, bax = bx - ax, bay = by - ay;
        float len2 = bax * bax + bay * bay;
        float h = len2 < 1e-12f ? 0f : Math.Clamp((pax * bax + pay * bay) / len2, 0f, 1f);
        float dx = pax - bax * h, dy = pay - bay * h;
        return MathF.Sqrt(dx * dx + dy * dy) - r;
    }
    public Bounds Bounds => new(MathF.Min(ax, bx) - r, MathF.Min(ay, by) - r, MathF.Max(ax, bx) + r, MathF.Max(ay, by) + r);
}

/// <summary>
/// A stroked circular arc with round caps (Quilez's sdArc): centre, radius, the unit direction from the centre to the
/// arc's middle, the half-aperture in radians and the stroke's half-thickness. A smile is an arc whose middle points
/// down (0, 1); a frown one whose middle points up.
/// </summary>
internal readonly struct Arc : IShape
{
    private readonly float _cx, _cy, _radius, _dx, _dy, _sin, _cos, _halfThickness;

    public Arc(float cx, float cy, float radius, float dirX, float dirY, float halfAperture, float halfThickness)
    {
        float n = MathF.Sqrt(dirX * dirX + dirY * dirY);
        (_cx, _cy, _radius, _dx, _dy, _halfThickness) = (cx, cy, radius, dirX / n, dirY / n, halfThickness);
        (_sin, _cos) = (MathF.Sin(halfAperture), MathF.Cos(halfAperture));
    }

    public float Distance(float x, float y)
    {
        float px = x - _cx, py = y - _cy;
        float along = px * _dx + py * _dy;
        float across = MathF.Abs(px * _dy - py * _dx);
        if (_cos * across > _sin * along)
        {
            float ex = across - _sin * _radius, ey = along - _cos * _radius;
            return MathF.Sqrt(ex * ex + ey * ey) - _halfThickness;
        }
        return MathF.Abs(MathF.Sqrt(px * px + py * py) - _radius) - _halfThickness;
    }

    public Bounds Bounds => new Bounds(_cx - _radius, _cy - _radius, _cx + _radius, _cy + _radius).Inflate(_halfThickness);
}

/// <summary>Everything on the side of a line that the normal (nx, ny) points away from: n·p ≤ offset.</summary>
internal readonly struct HalfPlane(float nx, float ny, float offset) : IShape
{
    public float Distance(float x, float y) => nx * x + ny * y - offset;
    public Bounds Bounds => Bounds.Infinite;

    /// <summary>The half plane on the visual left of the directed line a→b as seen on screen (y grows downwards):
    /// above a line drawn left to right.</summary>
    public static HalfPlane Through(float ax, float ay, float bx, float by)
    {
        float dx = bx - ax, dy = by - ay, n = MathF.Sqrt(dx * dx + dy * dy);
        float nx = -dy / n, ny = dx / n;
        return new HalfPlane(nx, ny, nx * ax + ny * ay);
    }
}

internal readonly struct Union<TA, TB>(TA a, TB b) : IShape where TA : struct, IShape where TB : struct, IShape
{
    public float Distance(float x, float y) => MathF.Min(a.Distance(x, y), b.Distance(x, y));
    public Bounds Bounds => a.Bounds.Union(b.Bounds);
}

internal readonly struct Intersect<TA, TB>(TA a, TB b) : IShape where TA : struct, IShape where TB : struct, IShape
{
    public float Distance(float x, float y) => MathF.Max(a.Distance(x, y), b.Distance(x, y));
    public Bounds Bounds => a.Bounds.Intersect(b.Bounds);
}

internal readonly struct Subtract<TA, TB>(TA a, TB b) : IShape where TA : struct, IShape where TB : struct, IShape
{
    public float Distance(float x, float y) => MathF.Max(a.Distance(x, y), -b.Distance(x, y));
    public Bounds Bounds => a.Bounds;
}

/// <summary>The inner shape grown (positive) or shrunk (negative) by a margin.</summary>
internal readonly struct Offset<T>(T inner, float margin) : IShape where T : struct, IShape
{
    public float Distance(float x, float y) => inner.Distance(x, y) - margin;
    public Bounds Bounds => inner.Bounds.Inflate(MathF.Max(margin, 0f));
}

/// <summary>The inner shape moved by (dx, dy).</summary>
internal readonly struct Translated<T>(T inner, float dx, float dy) : IShape where T : struct, IShape
{
    public float Distance(float x, float y) => inner.Distance(x - dx, y - dy);
    public Bounds Bounds => new(inner.Bounds.MinX + dx, inner.Bounds.MinY + dy, inner.Bounds.MaxX + dx, inner.Bounds.MaxY + dy);
}

/// <summary>The inner shape turned by an angle (radians, clockwise on screen) about a pivot.</summary>
internal readonly struct Rotated<T> : IShape where T : struct, IShape
{
    private readonly T _inner;
    private readonly float _px, _py, _cos, _sin;

    public Rotated(T inner, float pivotX, float pivotY, float angle)
    {
        (_inner, _px, _py) = (inner, pivotX, pivotY);
        (_sin, _cos) = (MathF.Sin(angle), MathF.Cos(angle));
    }

    public float Distance(float x, float y)
    {
        float dx = x - _px, dy = y - _py;
        return _inner.Distance(_px + _cos * dx + _sin * dy, _py - _sin * dx + _cos * dy);
    }

    public Bounds Bounds
    {
        get
        {
            var b = _inner.Bounds;
            if (b.MaxX - b.MinX > 1e5f) return Bounds.Infinite;
            float minX = float.MaxValue, minY = float.MaxValue, maxX = float.MinValue, maxY = float.MinValue;
            foreach (var (x, y) in new[] { (b.MinX, b.MinY), (b.MaxX, b.MinY), (b.MinX, b.MaxY), (b.MaxX, b.MaxY) })
            {
                float dx = x - _px, dy = y - _py;
                float rx = _px + _cos * dx - _sin * dy, ry = _py + _sin * dx + _cos * dy;
                (minX, minY, maxX, maxY) = (MathF.Min(minX, rx), MathF.Min(minY, ry), MathF.Max(maxX, rx), MathF.Max(maxY, ry));
            }
            return new Bounds(minX, minY, maxX, maxY);
        }
    }
}

/// <summary>
/// A float RGB raster that shapes are composited onto back to front. Coordinates are in units of the image side
/// (0..1 across), relative to a frame (origin and rotation) so that a whole head can be moved and tilted by changing
/// the frame, not every shape. Anti-aliasing is analytic: a pixel's coverage is its centre's signed distance mapped
/// linearly over one pixel, which equals box-filtered coverage for straight edges and costs one distance evaluation.
/// Only the pixels inside a shape's transformed bounds are visited, which keeps a 64x64 face well under a millisecond.
/// </summary>
internal sealed class Canvas
{
    private float _ox, _oy, _cos = 1f, _sin, _scale = 1f;

    public Canvas(int size)
    {
        Size = size;
        Pixels = new float[size * size * 3];
    }

    public int Size { get; }

    /// <summary>HWC floats in 0–255.</summary>
    public float[] Pixels { get; }

    /// <summary>Subsequent shapes are given relative to <paramref name="originX"/>, <paramref name="originY"/> (image
    /// units), turned clockwise by <paramref name="angle"/> radians about that origin and enlarged by
    /// <paramref name="scale"/>; distances, and so outline widths, scale with them.</summary>
    public void SetFrame(float originX, float originY, float angle, float scale = 1f)
    {
        (_ox, _oy, _scale) = (originX, originY, scale);
        (_sin, _cos) = ((float)Math.Sin(angle), (float)Math.Cos(angle));
    }

    /// <summary>A vertical gradient over the whole canvas, from <paramref name="top"/> to <paramref name="bottom"/>.</summary>
    public void FillGradient(Rgb top, Rgb bottom)
    {
        var px = Pixels;
        for (int y = 0; y < Size; y++)
        {
            var c = top.Mix(bottom, (y + 0.5f) / Size);
            int row = y * Size * 3;
            for (int x = 0; x < Size; x++)
            {
                px[row + 3 * x] = c.R;
                px[row + 3 * x + 1] = c.G;
                px[row + 3 * x + 2] = c.B;
            }
        }
    }

    public void Fill<T>(in T shape, Rgb colour, float alpha = 1f) where T : struct, IShape =>
        Draw(shape, colour, colour, 0f, alpha);

    /// <summary>Fills the shape and draws an outline of <paramref name="width"/> (image units) just inside its edge, in
    /// one pass, so the cartoon outline never leaves a seam between fill and edge.</summary>
    public void FillOutlined<T>(in T shape, Rgb fill, Rgb outline, float width, float alpha = 1f) where T : struct, IShape =>
        Draw(shape, fill, outline, width, alpha);

    private void Draw<T>(in T shape, Rgb fill, Rgb outline, float width, float alpha) where T : struct, IShape
    {
        if (!PixelRange(shape.Bounds, out int x0, out int y0, out int x1, out int y1)) return;
        float size = Size * _scale, inv = 1f / Size;
        float cos = _cos / _scale, sin = _sin / _scale;
        var px = Pixels;
        for (int py = y0; py <= y1; py++)
        {
            float iy = (py + 0.5f) * inv - _oy;
            int row = py * Size * 3;
            for (int pxi = x0; pxi <= x1; pxi++)
            {
                float ix = (pxi + 0.5f) * inv - _ox;
                float lx = cos * ix + sin * iy, ly = -sin * ix + cos * iy;
                float d = shape.Distance(lx, ly);
                float a = 0.5f - d * size;
                if (a <= 0f) continue;
                if (a > 1f) a = 1f;
                a *= alpha;
                Rgb c = fill;
                if (width > 0f)
                {
                    float inner = Math.Clamp(0.5f - (d + width) * size, 0f, 1f);
                    c = outline.Mix(fill, inner);
                }
                int i = row + 3 * pxi;
                px[i] += (c.R - px[i]) * a;
                px[i + 1] += (c.G - px[i + 1]) * a;
                px[i + 2] += (c.B - px[i + 2]) * a;
            }
        }
    }

    /// <summary>The pixel rectangle covering <paramref name="b"/> under the current frame, grown by a pixel for the
    /// anti-aliasing ramp; false when it misses the canvas.</summary>
    private bool PixelRange(Bounds b, out int x0, out int y0, out int x1, out int y1)
    {
        float minX = float.MaxValue, minY = float.MaxValue, maxX = float.MinValue, maxY = float.MinValue;
        if (b.MaxX - b.MinX > 1e5f || b.MaxY - b.MinY > 1e5f)
        {
            (minX, minY, maxX, maxY) = (0f, 0f, 1f, 1f);
        }
        else
        {
            Span<float> xs = [b.MinX, b.MaxX, b.MinX, b.MaxX];
            Span<float> ys = [b.MinY, b.MinY, b.MaxY, b.MaxY];
            for (int k = 0; k < 4; k++)
            {
                float ix = _ox + _scale * (_cos * xs[k] - _sin * ys[k]), iy = _oy + _scale * (_sin * xs[k] + _cos * ys[k]);
                (minX, minY, maxX, maxY) = (MathF.Min(minX, ix), MathF.Min(minY, iy), MathF.Max(maxX, ix), MathF.Max(maxY, iy));
            }
        }
        x0 = Math.Max(0, (int)MathF.Floor(minX * Size) - 1);
        y0 = Math.Max(0, (int)MathF.Floor(minY * Size) - 1);
        x1 = Math.Min(Size - 1, (int)MathF.Ceiling(maxX * Size) + 1);
        y1 = Math.Min(Size - 1, (int)MathF.Ceiling(maxY * Size) + 1);
        return x0 <= x1 && y0 <= y1;
    }

    /// <summary>Rounds to bytes, HWC.</summary>
    public void CopyTo(Span<byte> rgb)
    {
        var px = Pixels;
        for (int i = 0; i < px.Length; i++) rgb[i] = (byte)Math.Clamp((int)(px[i] + 0.5f), 0, 255);
    }
}
