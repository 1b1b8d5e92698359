using SixLabors.ImageSharp;
using SixLabors.ImageSharp.Formats.Gif;
using SixLabors.ImageSharp.PixelFormats;

namespace PromptFaces.Generation.Imaging;

/// <summary>
/// Collects frames of an optimisation run (every k-th step) and writes them as a looping animated GIF.
/// </summary>
/// <remarks>
/// <para>
/// GIF only: ImageSharp 2.1.13 decodes animated WebP but its WebP encoder writes the root frame alone (animated WebP
/// encoding arrived in 3.x, which needs a paid licence here), and APNG is not supported by 2.1 at all.
/// </para>
/// <para>
/// Memory is bounded whatever the run length: frames are shrunk to <c>maxFrameSize</c> on the way in and held as raw
/// RGB inside one ImageSharp image (no second copy is built to encode), and once <c>maxFrames</c> are held every other
/// frame is dropped and <see cref="CaptureInterval"/> doubles, so the animation still spans the whole run evenly.
/// 500 frames of 256x256 hold 98 MB.
/// </para>
/// <para>
/// One palette for all frames (GIF's global colour table): measured on 30 frames of 256x256 on this project's 2-core
/// CPU, a global table took 0.25 s against 3.3 s for per-frame tables, and frames of one run share their colours.
/// </para>
/// <para>Not thread-safe: one writer belongs to one run.</para>
/// </remarks>
public sealed class AnimationWriter : IDisposable
{
    private readonly int _frameDelayMs;
    private readonly int _lastFrameDelayMs;
    private readonly int _maxFrameSize;
    private readonly int _maxFrames;
    private Image<Rgb24>? _frames;
    private bool _disposed;

    /// <param name="captureInterval">Capture every k-th step (see <see cref="ShouldCapture"/>).</param>
    /// <param name="frameDelayMs">Display time of each frame. At least 20 ms: browsers show shorter GIF delays as 100 ms.</param>
    /// <param name="lastFrameDelayMs">Display time of the last frame (the result) before the loop restarts.</param>
    /// <param name="maxFrameSize">Frames larger than this on a side are shrunk to it, aspect ratio kept.</param>
    /// <param name="maxFrames">The most frames held; reaching it halves the frames and doubles the interval.</param>
    public AnimationWriter(int captureInterval = 1, int frameDelayMs = 80, int lastFrameDelayMs = 1500,
                           int maxFrameSize = 256, int maxFrames = 500)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(captureInterval, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(frameDelayMs, 20);
        ArgumentOutOfRangeException.ThrowIfLessThan(lastFrameDelayMs, 20);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxFrameSize, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxFrames, 2);
        CaptureInterval = captureInterval;
        _frameDelayMs = frameDelayMs;
        _lastFrameDelayMs = lastFrameDelayMs;
        _maxFrameSize = maxFrameSize;
        _maxFrames = maxFrames;
    }

    /// <summary>The current step interval; doubles each time the frame limit is reached.</summary>
    public int CaptureInterval { get; private set; }

    /// <summary>Frames held now.</summary>
    public int FrameCount => _frames?.Frames.Count ?? 0;

    /// <summary>
    /// Whether <paramref name="step"/> should be captured. Ask before converting a tensor to an image, so skipped
    /// steps cost nothing. (The final step is worth adding regardless, so the animation ends on the result.)
    /// </summary>
    public bool ShouldCapture(int step) => step % CaptureInterval == 0;

    /// <summary>Adds a copy of <paramref name="frame"/> (shrunk if needed); the caller keeps ownership of it.</summary>
    /// <exception cref="ArgumentException">The frame's (shrunk) size differs from the first frame's.</exception>
    public void AddFrame(Image<Rgb24> frame)
    {
        ArgumentNullException.ThrowIfNull(frame);
        ObjectDisposedException.ThrowIf(_disposed, this);
        using var shrunk = frame.Width > _maxFrameSize || frame.Height > _maxFrameSize
            ? PreviewEncoder.Shrink(frame, _maxFrameSize)
            : null;
        var source = shrunk ?? frame;

        if (_frames is null)
        {
            _frames = new Image<Rgb24>(source.Width, source.Height);
            _frames.Frames.AddFrame(source.Frames.RootFrame);
            _frames.Frames.RemoveFrame(0); // the blank frame the constructor made
            return;
        }
        if (source.Width != _frames.Width || source.Height != _frames.Height)
            throw new ArgumentException(
                $"Frame is {source.Width}x{source.Height} after shrinking, but the animation is {_frames.Width}x{_frames.Height}; all frames must have one size.",
                nameof(frame));
        if (_frames.Frames.Count >= _maxFrames)
            Thin();
        _frames.Frames.AddFrame(source.Frames.RootFrame);
    }

    /// <summary>The animation as a GIF that loops forever.</summary>
    /// <exception cref="InvalidOperationException">No frame was added.</exception>
    public byte[] EncodeGif()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_frames is null)
            throw new InvalidOperationException("The animation has no frames: add at least one before encoding.");
        _frames.Metadata.GetGifMetadata().RepeatCount = 0; // 0 = loop forever (NETSCAPE2.0 extension)
        for (int i = 0; i < _frames.Frames.Count; i++)
        {
            int delayMs = i == _frames.Frames.Count - 1 ? _lastFrameDelayMs : _frameDelayMs;
            _frames.Frames[i].Metadata.GetGifMetadata().FrameDelay = (delayMs + 5) / 10; // GIF counts centiseconds
        }
        using var output = new MemoryStream();
        _frames.Save(output, new GifEncoder { ColorTableMode = GifColorTableMode.Global });
        return output.ToArray();
    }

    /// <summary><see cref="EncodeGif"/> written atomically (temporary file, then move) to <paramref name="path"/>.</summary>
    public void SaveGif(string path) => AtomicFile.Write(path, EncodeGif());

    public void Dispose()
    {
        _disposed = true;
        _frames?.Dispose();
        _frames = null;
    }

    /// <summary>Drops every other frame (keeping the first) and doubles the interval, halving memory.</summary>
    private void Thin()
    {
        for (int i = _frames!.Frames.Count - 1; i >= 1; i--)
        {
            if (i % 2 == 1)
                _frames.Frames.RemoveFrame(i);
        }
        CaptureInterval *= 2;
    }
}
