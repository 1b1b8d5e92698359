using PromptFaces.Generation.StyleGan2;
using TorchSharp.Modules;
using TorchSharp.Utils;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace PromptFaces.Training.StyleGan;

/// <summary>
/// The shape-deciding arguments of NVIDIA's stylegan2-ada-pytorch <c>Discriminator</c> (architecture 'resnet',
/// no conditioning). The trainer derives it from the generator's configuration, as NVIDIA's training script does.
/// </summary>
public sealed record StyleGan2DiscriminatorConfig
{
    public int Resolution { get; init; } = 64;            // input image size, a power of two from 8 up
    public int ImageChannels { get; init; } = 3;          // RGB
    public int ChannelBase { get; init; } = 8192;         // channels at resolution r are min(channel_base / r, channel_max)
    public int ChannelMax { get; init; } = 256;
    public double? ConvClamp { get; init; } = 256;        // activations are clamped to +-conv_clamp; null disables
    public int MbstdGroupSize { get; init; } = 4;         // minibatch-stddev group size; the batch must divide into groups
    public int MbstdChannels { get; init; } = 1;          // minibatch-stddev features appended at 4x4 (0 disables)

    public int Channels(int resolution) => Math.Min(ChannelBase / resolution, ChannelMax);

    /// <summary>Resolutions of the residual blocks, from the input down to 8 (b4 is the epilogue).</summary>
    public IReadOnlyList<int> BlockResolutions =>
        Enumerable.Range(3, (int)Math.Log2(Resolution) - 2).Select(i => 1 << i).Reverse().ToArray();

    /// <summary>The discriminator NVIDIA pairs with a generator: same resolution, channels and clamp.</summary>
    public static StyleGan2DiscriminatorConfig ForGenerator(StyleGan2Config g) => new()
    {
        Resolution = g.Resolution,
        ImageChannels = g.ImageChannels,
        ChannelBase = g.ChannelBase,
        ChannelMax = g.ChannelMax,
        ConvClamp = g.ConvClamp,
    };

    public void Validate()
    {
        if (Resolution < 8 || (Resolution & (Resolution - 1)) != 0)
            throw new ArgumentException($"Discriminator resolution {Resolution} must be a power of two of at least 8.");
        if (Channels(Resolution) < 1)
            throw new ArgumentException($"Discriminator channel_base {ChannelBase} leaves no channels at {Resolution}x{Resolution}.");
    }
}

/// <summary>
/// NVIDIA's Conv2dLayer: a KxK convolution with equalised learning rate (weight gain 1/sqrt(fan_in)), optional 2x
/// down-sampling with the [1,3,3,1] FIR filter, bias, leaky ReLU (gain sqrt 2) or linear, and conv_clamp.
/// </summary>
public sealed class Conv2dLayer : nn.Module
{
    [ComponentName(Name = "weight")]
    private readonly Parameter _weight;
    [ComponentName(Name = "bias")]
    private readonly Parameter? _bias;
    [ComponentName(Name = "resample_filter")]
    private readonly Tensor _resampleFilter;
    private readonly double _weightGain;
    private readonly bool _leakyRelu;
    private readonly bool _down;
    private readonly double? _convClamp;

    public Conv2dLayer(string name, int inChannels, int outChannels, int kernelSize, Device device,
        bool bias = true, bool leakyRelu = true, bool down = false, double? convClamp = null) : base(name)
    {
        _resampleFilter = Ops.SetupFilter(new double[] { 1, 3, 3, 1 }, device);
        _weight = new Parameter(randn(outChannels, inChannels, kernelSize, kernelSize, device: device));
        if (bias) _bias = new Parameter(zeros(outChannels, device: device));
        _weightGain = 1 / Math.Sqrt(inChannels * kernelSize * kernelSize);
        _leakyRelu = leakyRelu;
        _down = down;
        _convClamp = convClamp;
        RegisterComponents();
    }

    /// <param name="gain">scales the activation and the clamp, as NVIDIA's <c>forward(x, gain)</c> (sqrt 0.5 in resnet blocks).</param>
    public Tensor Forward(Tensor x, double gain = 1)                  // (B, I, H, W) -> (B, O, H, W) or (B, O, H/2, W/2)
    {
        var w = _weight * _weightGain;
        var pad = _weight.shape[3] / 2;
        x = _down ? Ops.ConvDown2(x, w, _resampleFilter) : F.conv2d(x, w, padding: new[] { pad, pad });
        var clamp = _convClamp * gain;
        if (_leakyRelu) return Ops.BiasLeakyRelu(x, _bias, Ops.LReluGain * gain, clamp);
        if (_bias is not null) return Ops.BiasLinear(gain == 1 ? x : x * gain, _bias, clamp);
        x = gain == 1 ? x : x * gain;
        return clamp is double c ? x.clamp(-c, c) : x;
    }

    /// <summary>
    /// The same 3x3 layer (stride 1, zero padding 1) applied to <paramref name="x"/> with F more input channels appended
    /// whose maps are constant per sample, given as <paramref name="constants"/> (B, F): the convolution runs on
    /// <paramref name="x"/>'s channels only and the constant channels add value × (sum of the kernel taps inside the
    /// map) per output pixel, which equals convolving the full input. See <see cref="DiscriminatorEpilogue"/> for why.
    /// </summary>
    public Tensor ForwardWithConstantChannels(Tensor x, Tensor? constants)
    {
        if (constants is null) return Forward(x);
        long c = x.shape[1], f = constants.shape[1], h = x.shape[2], w = x.shape[3];
        if (_down || _weight.shape[3] != 3 || _weight.shape[1] != c + f)
            throw new InvalidOperationException($"{GetName()}: constant channels need a 3x3 layer without down-sampling and {c} + {f} input channels.");
        var weight = _weight * _weightGain;                                        // (O, C + F, 3, 3)
        var y = F.conv2d(x, weight.narrow(1, 0, c), padding: new long[] { 1, 1 }); // (B, O, H, W)
        var taps = TapMasks(h, w, x.device).to(weight.dtype);                      // (9, H, W)
        var tapSums = weight.narrow(1, c, f).reshape(-1, f, 9)                     // (O, F, 9) · (9, H·W)
            .matmul(taps.reshape(9, h * w)).reshape(-1, f, h, w);                  // (O, F, H, W)
        y = y + einsum("bf,ofhw->bohw", constants, tapSums);
        return _leakyRelu ? Ops.BiasLeakyRelu(y, _bias, Ops.LReluGain, _convClamp) : Ops.BiasLinear(y, _bias!, _convClamp);
    }

    /// <summary>mask[k, i, j] = 1 where kernel tap k = (ky, kx) of output pixel (i, j) reads inside the H x W map.</summary>
    private static Tensor TapMasks(long h, long w, Device device)
    {
        var mask = new float[9 * h * w];
        for (int ky = 0; ky < 3; ky++)
        for (int kx = 0; kx < 3; kx++)
        for (long i = 0; i < h; i++)
        for (long j = 0; j < w; j++)
        {
            long si = i + ky - 1, sj = j + kx - 1;
            if (si >= 0 && si < h && sj >= 0 && sj < w) mask[((ky * 3 + kx) * h + i) * w + j] = 1;
        }
        return tensor(mask, new long[] { 9, h, w }, device: device);
    }
}

/// <summary>
/// One resolution of the residual discriminator: [fromrgb at the top] → conv0 → conv1 (down), plus a 1x1 down-sampling
/// skip; both paths are scaled by sqrt 0.5 so the sum keeps unit variance.
/// </summary>
public sealed class DiscriminatorBlock : nn.Module
{
    [ComponentName(Name = "resample_filter")]
    private readonly Tensor _resampleFilter;
    [ComponentName(Name = "fromrgb")]
    private readonly Conv2dLayer? _fromRgb;
    [ComponentName(Name = "conv0")]
    private readonly Conv2dLayer _conv0;
    [ComponentName(Name = "conv1")]
    private readonly Conv2dLayer _conv1;
    [ComponentName(Name = "skip")]
    private readonly Conv2dLayer _skip;
    private static readonly double SqrtHalf = Math.Sqrt(0.5);

    /// <param name="inChannels">0 for the first (highest-resolution) block, which reads the image through fromrgb.</param>
    public DiscriminatorBlock(int inChannels, int tmpChannels, int outChannels, int resolution, StyleGan2DiscriminatorConfig config, Device device)
        : base($"b{resolution}")
    {
        _resampleFilter = Ops.SetupFilter(new double[] { 1, 3, 3, 1 }, device);
        if (inChannels == 0)
            _fromRgb = new Conv2dLayer("fromrgb", config.ImageChannels, tmpChannels, 1, device, convClamp: config.ConvClamp);
        _conv0 = new Conv2dLayer("conv0", tmpChannels, tmpChannels, 3, device, convClamp: config.ConvClamp);
        _conv1 = new Conv2dLayer("conv1", tmpChannels, outChannels, 3, device, down: true, convClamp: config.ConvClamp);
        _skip = new Conv2dLayer("skip", tmpChannels, outChannels, 1, device, bias: false, leakyRelu: false, down: true);
        RegisterComponents();
    }

    /// <param name="x">(B, C, R, R) features, or null for the first block.</param>
    /// <param name="img">(B, 3, R, R) image; read only by the first block.</param>
    /// <returns>(B, C', R/2, R/2)</returns>
    public Tensor Forward(Tensor? x, Tensor img)
    {
        if (_fromRgb is not null)
        {
            var y = _fromRgb.Forward(img);
            x = x is null ? y : x + y;
        }
        var skip = _skip.Forward(x!, SqrtHalf);
        x = _conv0.Forward(x!);
        x = _conv1.Forward(x, SqrtHalf);
        return skip + x;
    }
}

/// <summary>
/// The 4x4 epilogue: minibatch standard deviation (one feature over groups of 4), a 3x3 conv, a fully-connected layer
/// and the output logit.
/// </summary>
/// <remarks>
/// The conv's weight is NVIDIA's single (C, C + F, 3, 3) tensor, but it is applied in two parts: the C feature channels
/// by an ordinary convolution and the F minibatch-stddev channels, which are constant over the 4x4 map, by an exact
/// closed form (each output pixel gets the stddev times the sum of the kernel taps that fall inside the zero-padded
/// map). Besides being cheaper, this keeps the convolution's input channels a multiple of 16: libtorch 2.x's CPU
/// convolution (oneDNN's AVX-512 kernels) computes wrong, sometimes non-finite, outputs for 3x3 convolutions with
/// C + 1 input channels (measured with 17, 65 and 129 on AMD EPYC; multiples of 16 are exact).
/// </remarks>
public sealed class DiscriminatorEpilogue : nn.Module
{
    [ComponentName(Name = "conv")]
    private readonly Conv2dLayer _conv;
    [ComponentName(Name = "fc")]
    private readonly FullyConnectedLayer _fc;
    [ComponentName(Name = "out")]
    private readonly FullyConnectedLayer _out;
    private readonly int _groupSize;
    private readonly int _mbstdChannels;
    private readonly int _inChannels;

    public DiscriminatorEpilogue(int inChannels, StyleGan2DiscriminatorConfig config, Device device) : base("b4")
    {
        _groupSize = config.MbstdGroupSize;
        _mbstdChannels = config.MbstdChannels;
        _inChannels = inChannels;
        _conv = new Conv2dLayer("conv", inChannels + _mbstdChannels, inChannels, 3, device, convClamp: config.ConvClamp);
        _fc = new FullyConnectedLayer("fc", inChannels * 4 * 4, inChannels, device, leakyRelu: true);
        _out = new FullyConnectedLayer("out", inChannels, 1, device);
        RegisterComponents();
    }

    public Tensor Forward(Tensor x)                                   // (B, C, 4, 4) -> (B, 1)
    {
        var stddev = _mbstdChannels > 0 ? MinibatchStdFeatures(x, _groupSize, _mbstdChannels) : null;   // (B, F)
        x = _conv.ForwardWithConstantChannels(x, stddev);
        x = _fc.Forward(x.flatten(1));
        return _out.Forward(x);
    }

    /// <summary>
    /// NVIDIA's MinibatchStdLayer: appends the standard deviation over groups of samples, averaged over channels and
    /// pixels, as extra feature maps. It lets the discriminator see a batch's lack of variety, which discourages mode
    /// collapse. (The epilogue uses <see cref="MinibatchStdFeatures"/> and never builds the appended maps.)
    /// </summary>
    public static Tensor MinibatchStd(Tensor x, int groupSize, int numChannels)
    {
        long h = x.shape[2], w = x.shape[3];
        var y = MinibatchStdFeatures(x, groupSize, numChannels);       // (N, F)
        return cat(new[] { x, y.reshape(-1, numChannels, 1, 1).expand(-1, -1, h, w) }, 1);
    }

    /// <summary>The per-sample values of the minibatch-stddev maps: (N, C, H, W) → (N, F).</summary>
    public static Tensor MinibatchStdFeatures(Tensor x, int groupSize, int numChannels)
    {
        long n = x.shape[0], c = x.shape[1], h = x.shape[2], w = x.shape[3];
        long g = Math.Min(groupSize, n);
        if (n % g != 0)
            throw new ArgumentException($"The discriminator's batch of {n} does not divide into minibatch-stddev groups of {g}; use a batch that is a multiple of {g}.");
        var y = x.reshape(g, -1, numChannels, c / numChannels, h, w);  // (G, n, F, c, H, W)
        y = y - y.mean(new long[] { 0 });                               // subtract the group mean
        y = y.square().mean(new long[] { 0 });                          // (n, F, c, H, W) variance over the group
        y = (y + 1e-8).sqrt();
        y = y.mean(new long[] { 2, 3, 4 });                             // (n, F)
        return y.repeat(g, 1);                                          // (N, F): sample i belongs to group i mod n
    }
}

/// <summary>
/// NVIDIA's residual StyleGAN2 discriminator (stylegan2-ada-pytorch <c>Discriminator</c>, architecture 'resnet',
/// unconditional), with NVIDIA's state-dict names: <c>b64.fromrgb.weight</c>, <c>b64.conv0.weight</c>,
/// <c>b64.skip.weight</c>, ..., <c>b4.conv.weight</c>, <c>b4.fc.weight</c>, <c>b4.out.weight</c>.
/// </summary>
public sealed class StyleGan2Discriminator : nn.Module
{
    private readonly List<DiscriminatorBlock> _blocks = new();
    private readonly DiscriminatorEpilogue _epilogue;

    public StyleGan2DiscriminatorConfig Config { get; }

    public StyleGan2Discriminator(StyleGan2DiscriminatorConfig config, Device? device = null) : base("discriminator")
    {
        config.Validate();
        Config = config;
        var dev = device ?? CPU;
        foreach (var res in config.BlockResolutions)
        {
            int inChannels = res < config.Resolution ? config.Channels(res) : 0;
            var block = new DiscriminatorBlock(inChannels, config.Channels(res), config.Channels(res / 2), res, config, dev);
            _blocks.Add(block);
            register_module($"b{res}", block);
        }
        _epilogue = new DiscriminatorEpilogue(config.Channels(4), config, dev);
        register_module("b4", _epilogue);
    }

    /// <param name="img">(B, 3, R, R) images in [-1, 1]; B a multiple of the minibatch-stddev group size (or smaller).</param>
    /// <param name="features">when given, each block's output is appended to it (finest first): what a feature-matching
    /// loss compares.</param>
    /// <returns>(B, 1) logits: positive means "real".</returns>
    public Tensor Forward(Tensor img, List<Tensor>? features = null)
    {
        if (img.dim() != 4 || img.shape[1] != Config.ImageChannels || img.shape[2] != Config.Resolution || img.shape[3] != Config.Resolution)
            throw new ArgumentException($"The discriminator expects images of shape [batch, {Config.ImageChannels}, {Config.Resolution}, {Config.Resolution}], got [{string.Join(", ", img.shape)}].");
        Tensor? x = null;
        foreach (var block in _blocks)
        {
            x = block.Forward(x, img);
            features?.Add(x);
        }
        return _epilogue.Forward(x!);
    }

    public long ParameterCount => parameters().Sum(p => p.numel());
}
