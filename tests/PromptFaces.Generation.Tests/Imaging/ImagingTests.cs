using System.Diagnostics;
using System.Text;
using PromptFaces.Generation.Imaging;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.Formats.Gif;
using SixLabors.ImageSharp.Formats.Jpeg;
using SixLabors.ImageSharp.Formats.Png;
using SixLabors.ImageSharp.PixelFormats;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace PromptFaces.Generation.Tests.Imaging;

public sealed class ImagingTests : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("promptfaces-imaging-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    private static readonly GenerationMetadata Sample = new()
    {
        Prompt = "a smiling woman with red hair, 顔 🙂",
        NegativePrompt = "blurry, café",
        Seed = 9_007_199_254_740_993,
        Steps = 300,
        GeneratorModel = "faces-256",
        ClipModel = "ViT-B/32",
        FinalSimilarity = 0.31415926535897931,
    };

    // ---- PNG text chunks -------------------------------------------------------------------------------------------

    [Fact]
    public void PngTextChunks_RoundTripEveryKeyAndThePixels()
    {
        using var image = Gradient(40, 24);
        var path = Path.Combine(_folder, "face.png");
        var written = Sample.ToTextChunks();

        PngWriter.SavePng(path, image, Sample);
        var read = PngWriter.ReadPngText(path);

        Assert.Equal(written.OrderBy(p => p.Key, StringComparer.Ordinal), read.OrderBy(p => p.Key, StringComparer.Ordinal));
        Assert.Equal("PromptFaces", read[GenerationMetadata.Keys.Software]);
        Assert.Equal(Sample, GenerationMetadata.FromTextChunks(read));

        // Latin-1 values go to tEXt, the Unicode prompt to iTXt.
        var bytes = File.ReadAllBytes(path);
        Assert.Contains("tEXt", Encoding.Latin1.GetString(bytes), StringComparison.Ordinal);
        Assert.Contains("iTXt", Encoding.Latin1.GetString(bytes), StringComparison.Ordinal);

        using var decoded = Image.Load<Rgb24>(path);
        AssertSamePixels(image, decoded);
    }

    [Fact]
    public void PngText_IsReadFromANonSeekableStream()
    {
        using var image = Gradient(16, 16);
        var png = PngWriter.EncodePng(image, new Dictionary<string, string> { ["prompt"] = "x", ["seed"] = "7" });

        var read = PngWriter.ReadPngText(new NonSeekableStream(png));

        Assert.Equal(new Dictionary<string, string> { ["prompt"] = "x", ["seed"] = "7" }, read);
    }

    [Fact]
    public void PngText_ReadsCompressedChunks_AndSkipsOnesThatInflateTooFar()
    {
        using var image = Gradient(8, 8);
        image.Metadata.GetPngMetadata().TextData.Add(new PngTextData("long", new string('a', 5000), "", ""));
        image.Metadata.GetPngMetadata().TextData.Add(new PngTextData("bomb", new string('0', 8 << 20), "", ""));
        image.Metadata.GetPngMetadata().TextData.Add(new PngTextData("short", "kept", "", ""));
        using var output = new MemoryStream();
        image.Save(output, new PngEncoder { TextCompressionThreshold = 100 }); // zTXt for the two long values
        Assert.True(output.Length < 100_000, "the 8 MiB value should compress to a small chunk");
        Assert.Contains("zTXt", Encoding.Latin1.GetString(output.ToArray()), StringComparison.Ordinal);

        output.Position = 0;
        var read = PngWriter.ReadPngText(output);

        Assert.Equal(new string('a', 5000), read["long"]);
        Assert.Equal("kept", read["short"]);
        Assert.False(read.ContainsKey("bomb"));
    }

    [Fact]
    public void PngText_CorruptChunkIsReportedAsCorrupt()
    {
        using var image = Gradient(8, 8);
        var png = PngWriter.EncodePng(image, new Dictionary<string, string> { ["prompt"] = "a portrait" });
        int at = Encoding.Latin1.GetString(png).IndexOf("a portrait", StringComparison.Ordinal);
        png[at] = (byte)'A';

        var error = Assert.Throws<InvalidDataException>(() => PngWriter.ReadPngText(new MemoryStream(png)));
        Assert.Contains("tEXt", error.Message, StringComparison.Ordinal);
        Assert.Contains("CRC", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void PngText_RefusesNonPngAndTruncatedFiles()
    {
        var notPng = Assert.Throws<InvalidDataException>(() => PngWriter.ReadPngText(new MemoryStream("GIF89a and more"u8.ToArray())));
        Assert.Contains("Not a PNG", notPng.Message, StringComparison.Ordinal);

        using var image = Gradient(8, 8);
        var png = PngWriter.EncodePng(image, null);
        var truncated = Assert.Throws<InvalidDataException>(() => PngWriter.ReadPngText(new MemoryStream(png[..(png.Length - 6)])));
        Assert.Contains("truncated", truncated.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("")]
    [InlineData(" prompt")]
    [InlineData("two  spaces")]
    [InlineData("new\nline")]
    public void EncodePng_RefusesKeywordsPngCannotHold(string keyword)
    {
        using var image = Gradient(4, 4);
        var error = Assert.Throws<ArgumentException>(() => PngWriter.EncodePng(image, new Dictionary<string, string> { [keyword] = "v" }));
        Assert.Contains("keyword", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void SavePng_ReplacesTheFileAndLeavesNoTemporaryFiles()
    {
        using var image = Gradient(8, 8);
        var path = Path.Combine(_folder, "sub", "out.png");

        PngWriter.SavePng(path, image, new Dictionary<string, string> { ["prompt"] = "first" });
        PngWriter.SavePng(path, image, new Dictionary<string, string> { ["prompt"] = "second" });

        Assert.Equal("second", PngWriter.ReadPngText(path)["prompt"]);
        Assert.Equal(new[] { path }, Directory.GetFiles(Path.GetDirectoryName(path)!));
    }

    [Fact]
    public void FromTextChunks_NamesAMissingKey()
    {
        var text = Sample.ToTextChunks().Where(p => p.Key != GenerationMetadata.Keys.Seed).ToDictionary();
        var error = Assert.Throws<InvalidDataException>(() => GenerationMetadata.FromTextChunks(text));
        Assert.Contains("'seed'", error.Message, StringComparison.Ordinal);
    }

    // ---- tensors <-> images ----------------------------------------------------------------------------------------

    [Fact]
    public void ToImages_QuantisesLikeNvidia()
    {
        // One row of 5 pixels; R = v, G = -v, B = 0.5 (0.5 * 127.5 + 128 = 191.75 -> 191).
        using var scope = NewDisposeScope();
        var r = tensor(new[] { -1f, 1f, 0f, -2f, 2f });
        var x = stack([r, -r, full(5, 0.5f)]).reshape(1, 3, 1, 5);

        using var image = Assert.Single(ImageTensors.ToImages(x));

        Assert.Equal((5, 1), (image.Width, image.Height));
        byte[] expectedR = [0, 255, 128, 0, 255], expectedG = [255, 0, 128, 255, 0];
        for (int i = 0; i < 5; i++)
            Assert.Equal(new Rgb24(expectedR[i], expectedG[i], 191), image[i, 0]);
    }

    [Fact]
    public void ToImages_KeepsBatchOrderAndLayout_ForNonSquareImages()
    {
        using var scope = NewDisposeScope();
        manual_seed(1);
        var x = rand(2, 3, 4, 6, requires_grad: true) * 2 - 1; // (N, C, H=4, W=6), with autograd history

        var images = ImageTensors.ToImages(x);
        try
        {
            Assert.Equal(2, images.Length);
            var expected = (x.detach() * 127.5 + 128).clamp(0, 255).floor();
            for (int n = 0; n < 2; n++)
            {
                Assert.Equal((6, 4), (images[n].Width, images[n].Height));
                for (int h = 0; h < 4; h++)
                    for (int w = 0; w < 6; w++)
                    {
                        var p = images[n][w, h];
                        Assert.Equal(expected[n, 0, h, w].item<float>(), p.R);
                        Assert.Equal(expected[n, 1, h, w].item<float>(), p.G);
                        Assert.Equal(expected[n, 2, h, w].item<float>(), p.B);
                    }
            }
        }
        finally
        {
            foreach (var image in images)
                image.Dispose();
        }
    }

    [Fact]
    public void TensorToImageToTensor_IsWithinHalfAQuantisationStep()
    {
        using var scope = NewDisposeScope();
        manual_seed(2);
        var x = rand(1, 3, 32, 20) * 2 - 1;

        using var image = ImageTensors.ToImage(x);
        var back = ImageTensors.FromImage(image);

        Assert.Equal(x.shape, back.shape);
        Assert.Equal(ScalarType.Float32, back.dtype);
        double worst = (back - x).abs().max().item<float>();
        Assert.True(worst <= 0.5 / 127.5 + 1e-6, $"max |diff| {worst} > 0.5/127.5");
    }

    [Fact]
    public void ImageToTensorToImage_IsExact()
    {
        using var image = Gradient(33, 17);
        using var x = ImageTensors.FromImage(image);
        Assert.True(x.min().item<float>() >= -1f && x.max().item<float>() <= 1f);

        using var back = ImageTensors.ToImage(x);

        AssertSamePixels(image, back);
    }

    [Fact]
    public void ToImages_RefusesWrongShapes()
    {
        using var gray = zeros(1, 1, 8, 8);
        Assert.Throws<ArgumentException>(() => ImageTensors.ToImages(gray));
        using var batch = zeros(2, 3, 8, 8);
        Assert.Throws<ArgumentException>(() => ImageTensors.ToImage(batch));
    }

    // ---- previews --------------------------------------------------------------------------------------------------

    [Fact]
    public void Preview_IsNoLargerThanMaxSize_KeepsAspect_AndDecodes()
    {
        using var image = Gradient(300, 200);

        var bytes = PreviewEncoder.EncodePreview(image, 128);

        using var decoded = Image.Load<Rgb24>(bytes, out var format);
        Assert.Equal(JpegFormat.Instance, format);
        Assert.Equal(128, decoded.Width);
        Assert.InRange(decoded.Height, 85, 86);
        // Content survives: the gradient's left edge is dark red, its right edge bright red.
        Assert.True(decoded[2, 40].R < 40 && decoded[125, 40].R > 215, "the preview lost the image content");
    }

    [Fact]
    public void Preview_DoesNotEnlargeSmallImages()
    {
        using var image = Gradient(64, 48);
        using var decoded = Image.Load<Rgb24>(PreviewEncoder.EncodePreview(image, 128));
        Assert.Equal((64, 48), (decoded.Width, decoded.Height));
        Assert.Equal((64, 48), (image.Width, image.Height));
    }

    // ---- animation -------------------------------------------------------------------------------------------------

    [Fact]
    public void Gif_HasEveryFrame_LoopsForever_AndKeepsDelays()
    {
        using var writer = new AnimationWriter(frameDelayMs: 100, lastFrameDelayMs: 1500);
        for (int i = 0; i < 7; i++)
        {
            using var frame = Solid(32, 32, new Rgb24((byte)(i * 36), 0, (byte)(255 - i * 36)));
            writer.AddFrame(frame);
        }
        var path = Path.Combine(_folder, "run.gif");

        writer.SaveGif(path);

        using var gif = Image.Load<Rgb24>(path, out var format);
        Assert.Equal(GifFormat.Instance, format);
        Assert.Equal(7, gif.Frames.Count);
        Assert.Equal(0, gif.Metadata.GetGifMetadata().RepeatCount);
        Assert.Equal(10, gif.Frames[0].Metadata.GetGifMetadata().FrameDelay);
        Assert.Equal(150, gif.Frames[6].Metadata.GetGifMetadata().FrameDelay);
        var third = gif.Frames[3][16, 16];
        Assert.InRange(third.R, 108 - 12, 108 + 12);
        Assert.InRange(third.B, 147 - 12, 147 + 12);
    }

    [Fact]
    public void Gif_FramesAreShrunkToMaxFrameSize()
    {
        using var writer = new AnimationWriter(maxFrameSize: 64);
        using var frame = Gradient(512, 256);
        writer.AddFrame(frame);
        writer.AddFrame(frame);

        using var gif = Image.Load<Rgb24>(writer.EncodeGif());

        Assert.Equal((64, 32), (gif.Width, gif.Height));
        Assert.Equal(2, gif.Frames.Count);
        Assert.Equal((512, 256), (frame.Width, frame.Height));
    }

    [Fact]
    public void Gif_FrameLimitThinsFramesAndDoublesTheInterval()
    {
        using var writer = new AnimationWriter(captureInterval: 1, maxFrames: 4);
        int added = 0;
        for (int step = 0; step < 20; step++)
        {
            if (!writer.ShouldCapture(step))
                continue;
            using var frame = Solid(8, 8, new Rgb24((byte)step, 0, 0));
            writer.AddFrame(frame);
            added++;
            Assert.True(writer.FrameCount <= 4, $"{writer.FrameCount} frames held after step {step}");
        }

        // Steps 0-3 fill it; 4 thins to 0,2 (+4); 8 thins to 0,4 (+8); 16 thins to 0,8 (+16): evenly spaced.
        Assert.Equal(9, added);
        Assert.Equal(8, writer.CaptureInterval);
        Assert.Equal(3, writer.FrameCount);
        using var gif = Image.Load<Rgb24>(writer.EncodeGif());
        Assert.Equal([0, 8, 16], gif.Frames.Cast<ImageFrame<Rgb24>>().Select(f => (int)f[4, 4].R));
    }

    [Fact]
    public void Gif_RefusesFramesOfAnotherSize_AndAnEmptyAnimation()
    {
        using var writer = new AnimationWriter();
        Assert.Throws<InvalidOperationException>(() => writer.EncodeGif());
        using var a = Solid(16, 16, new Rgb24(1, 2, 3));
        using var b = Solid(16, 8, new Rgb24(1, 2, 3));
        writer.AddFrame(a);
        Assert.Throws<ArgumentException>(() => writer.AddFrame(b));
    }

    // ---- untrusted input -------------------------------------------------------------------------------------------

    [Fact]
    public void OversizeImage_IsRefusedBeforeDecoding()
    {
        using var wide = new Image<Rgb24>(4097, 4);
        var png = PngWriter.EncodePng(wide, new Dictionary<string, string> { ["prompt"] = "x" });

        var decode = Assert.Throws<InvalidDataException>(() => ImageDecoding.LoadRgb24(new MemoryStream(png)));
        Assert.Contains("4097x4", decode.Message, StringComparison.Ordinal);
        Assert.Contains("4096x4096", decode.Message, StringComparison.Ordinal);

        var text = Assert.Throws<InvalidDataException>(() => PngWriter.ReadPngText(new MemoryStream(png)));
        Assert.Contains("4097x4", text.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void ImageAtTheLimit_Decodes()
    {
        using var edge = new Image<Rgb24>(4096, 4);
        edge[4095, 3] = new Rgb24(9, 8, 7);
        var png = PngWriter.EncodePng(edge, null);

        using var decoded = ImageDecoding.LoadRgb24(new NonSeekableStream(png));

        Assert.Equal((4096, 4), (decoded.Width, decoded.Height));
        Assert.Equal(new Rgb24(9, 8, 7), decoded[4095, 3]);
    }

    [Fact]
    public void UnsupportedFormats_AreRefused()
    {
        using var writer = new AnimationWriter();
        using var frame = Solid(8, 8, new Rgb24(1, 2, 3));
        writer.AddFrame(frame);
        var gif = writer.EncodeGif();

        var error = Assert.Throws<InvalidDataException>(() => ImageDecoding.LoadRgb24(new MemoryStream(gif)));
        Assert.Contains("PNG or JPEG", error.Message, StringComparison.Ordinal);
        Assert.Throws<InvalidDataException>(() => ImageDecoding.LoadRgb24(new MemoryStream("not an image"u8.ToArray())));
    }

    // ---- helpers ---------------------------------------------------------------------------------------------------

    /// <summary>Red rises left to right, green top to bottom, blue is fixed: every pixel differs from its neighbours.</summary>
    private static Image<Rgb24> Gradient(int width, int height)
    {
        var image = new Image<Rgb24>(width, height);
        for (int y = 0; y < height; y++)
            for (int x = 0; x < width; x++)
                image[x, y] = new Rgb24((byte)(x * 255 / Math.Max(1, width - 1)), (byte)(y * 255 / Math.Max(1, height - 1)), 77);
        return image;
    }

    private static Image<Rgb24> Solid(int width, int height, Rgb24 color) => new(width, height, color);

    private static void AssertSamePixels(Image<Rgb24> expected, Image<Rgb24> actual)
    {
        Assert.Equal((expected.Width, expected.Height), (actual.Width, actual.Height));
        for (int y = 0; y < expected.Height; y++)
            for (int x = 0; x < expected.Width; x++)
                Assert.True(expected[x, y] == actual[x, y], $"pixel ({x}, {y}): expected {expected[x, y]}, got {actual[x, y]}");
    }

    /// <summary>A stream that cannot seek, as an HTTP request body.</summary>
    private sealed class NonSeekableStream(byte[] data) : Stream
    {
        private readonly MemoryStream _inner = new(data);
        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
        public override int Read(byte[] buffer, int offset, int count) => _inner.Read(buffer, offset, count);
        public override void Flush() { }
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
