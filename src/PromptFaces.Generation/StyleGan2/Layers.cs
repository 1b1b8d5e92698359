using TorchSharp.Modules;
using TorchSharp.Utils;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace PromptFaces.Generation.StyleGan2;

/// <summary>
/// A fully-connected layer with equalised learning rate: weights are stored unscaled and multiplied at run time by
/// lr_multiplier / sqrt(fan_in); the bias by lr_multiplier.
/// </summary>
public sealed class FullyConnectedLayer : nn.Module
{
    [ComponentName(Name = "weight")]
    private readonly Parameter _weight;
    [ComponentName(Name = "bias")]
    private readonly Parameter _bias;
    private readonly double _weightGain;
    private readonly double _biasGain;
    private readonly bool _leakyRelu;

    public FullyConnectedLayer(string name, int inFeatures, int outFeatures, Device device,
        bool leakyRelu = false, double lrMultiplier = 1, double biasInit = 0) : base(name)
    {
        _weight = new Parameter(randn(outFeatures, inFeatures, device: device) / lrMultiplier);
        _bias = new Parameter(full(outFeatures, biasInit, device: device));
        _weightGain = lrMultiplier / Math.Sqrt(inFeatures);
        _biasGain = lrMultiplier;
        _leakyRelu = leakyRelu;
        RegisterComponents();
    }

    public Tensor Forward(Tensor x)                                   // (B, in) -> (B, out)
    {
        var w = _weight * _weightGain;
        var b = _biasGain == 1 ? (Tensor)_bias : _bias * _biasGain;
        return _leakyRelu
            ? Ops.BiasLeakyRelu(x.matmul(w.t()), b, Ops.LReluGain, clamp: null)
            : addmm(b.unsqueeze(0), x, w.t(), beta: 1, alpha: 1);
    }
}

/// <summary>The mapping network z → w: 2nd-moment normalisation, an MLP, broadcast to num_ws, and truncation.</summary>
public sealed class MappingNetwork : nn.Module
{
    private readonly List<FullyConnectedLayer> _layers = new();
    [ComponentName(Name = "w_avg")]
    private readonly Tensor _wAvg;
    private readonly int _numWs;

    public MappingNetwork(StyleGan2Config config, Device device) : base("mapping")
    {
        _numWs = config.NumWs;
        _wAvg = zeros(config.WDim, device: device);
        for (int i = 0; i < config.MappingLayers; i++)
        {
            int inFeatures = i == 0 ? config.ZDim : config.WDim;
            var layer = new FullyConnectedLayer($"fc{i}", inFeatures, config.WDim, device, leakyRelu: true, lrMultiplier: config.MappingLrMultiplier);
            _layers.Add(layer);
            register_module($"fc{i}", layer);
        }
        RegisterComponents();
    }

    /// <summary>The running average of w, the centre of truncation.</summary>
    public Tensor WAvg => _wAvg;

    /// <param name="z">(B, z_dim) latents.</param>
    /// <param name="psi">truncation: w_avg + psi (w − w_avg); 1 disables.</param>
    /// <param name="cutoff">when set, only the first <paramref name="cutoff"/> ws are truncated.</param>
    /// <returns>(B, num_ws, w_dim)</returns>
    public Tensor Forward(Tensor z, double psi = 1, int? cutoff = null)
    {
        var x = z.to(ScalarType.Float32);
        x = x * (x.square().mean(new long[] { 1 }, keepdim: true) + 1e-8).rsqrt();
        foreach (var layer in _layers) x = layer.Forward(x);
        x = x.unsqueeze(1).repeat(1, _numWs, 1);                      // (B, num_ws, w_dim)
        if (psi == 1) return x;
        if (cutoff is not int c || c >= _numWs)
            return _wAvg.lerp(x, psi);
        var head = _wAvg.lerp(x.narrow(1, 0, c), psi);
        return cat(new[] { head, x.narrow(1, c, _numWs - c) }, 1);
    }
}

/// <summary>
/// A modulated, demodulated 3x3 convolution with optional 2x up-sampling, noise input, bias and leaky ReLU
/// (NVIDIA's SynthesisLayer). It runs the "non-fused" form: styles scale the activations before one ordinary
/// batched convolution with the shared weight, and demodulation scales them after. That equals the grouped
/// per-sample convolution mathematically and lets libtorch use its fastest kernels at any batch size.
/// </summary>
public sealed class SynthesisLayer : nn.Module
{
    [ComponentName(Name = "affine")]
    private readonly FullyConnectedLayer _affine;
    [ComponentName(Name = "weight")]
    private readonly Parameter _weight;
    [ComponentName(Name = "bias")]
    private readonly Parameter _bias;
    [ComponentName(Name = "noise_strength")]
    private readonly Parameter _noiseStrength;
    [ComponentName(Name = "noise_const")]
    private readonly Tensor _noiseConst;
    [ComponentName(Name = "resample_filter")]
    private readonly Tensor _resampleFilter;
    private readonly int _resolution;
    private readonly bool _up;
    private readonly double? _convClamp;

    public SynthesisLayer(string name, int inChannels, int outChannels, int wDim, int resolution, bool up, double? convClamp, Device device)
        : base(name)
    {
        _resolution = resolution;
        _up = up;
        _convClamp = convClamp;
        _resampleFilter = Ops.SetupFilter(new double[] { 1, 3, 3, 1 }, device);
        _affine = new FullyConnectedLayer("affine", wDim, inChannels, device, biasInit: 1);
        _weight = new Parameter(randn(outChannels, inChannels, 3, 3, device: device));
        _noiseConst = randn(resolution, resolution, device: device);
        _noiseStrength = new Parameter(zeros(Array.Empty<long>(), device: device));
        _bias = new Parameter(zeros(outChannels, device: device));
        RegisterComponents();
    }

    public Tensor Forward(Tensor x, Tensor w, NoiseMode noise, Generator? rng)  // (B, I, r, r) -> (B, O, R, R)
    {
        var batch = x.shape[0];
        var styles = _affine.Forward(w);                                         // (B, I)
        var dcoefs = (styles.square().matmul(_weight.square().sum(new long[] { 2, 3 }).t()) + 1e-8).rsqrt(); // (B, O)
        x = x * styles.reshape(batch, -1, 1, 1);
        x = _up ? Ops.ConvUp2(x, _weight, _resampleFilter) : F.conv2d(x, _weight, padding: new long[] { 1, 1 });
        x = x * dcoefs.reshape(batch, -1, 1, 1);
        x = noise switch
        {
            NoiseMode.Const => x + _noiseConst * _noiseStrength,
            NoiseMode.Random => x + randn(new long[] { batch, 1, _resolution, _resolution }, generator: rng).to(x.device) * _noiseStrength,
            _ => x,
        };
        return Ops.BiasLeakyRelu(x, _bias, Ops.LReluGain, _convClamp);
    }
}

/// <summary>A modulated 1x1 convolution to RGB without demodulation (NVIDIA's ToRGBLayer).</summary>
public sealed class ToRgbLayer : nn.Module
{
    [ComponentName(Name = "affine")]
    private readonly FullyConnectedLayer _affine;
    [ComponentName(Name = "weight")]
    private readonly Parameter _weight;
    [ComponentName(Name = "bias")]
    private readonly Parameter _bias;
    private readonly double _weightGain;
    private readonly double? _convClamp;

    public ToRgbLayer(int inChannels, int outChannels, int wDim, double? convClamp, Device device) : base("torgb")
    {
        _convClamp = convClamp;
        _affine = new FullyConnectedLayer("affine", wDim, inChannels, device, biasInit: 1);
        _weight = new Parameter(randn(outChannels, inChannels, 1, 1, device: device));
        _bias = new Parameter(zeros(outChannels, device: device));
        _weightGain = 1 / Math.Sqrt(inChannels);
        RegisterComponents();
    }

    public Tensor Forward(Tensor x, Tensor w)                        // (B, I, R, R) -> (B, 3, R, R)
    {
        var styles = _affine.Forward(w) * _weightGain;                // (B, I)
        x = F.conv2d(x * styles.reshape(x.shape[0], -1, 1, 1), _weight);
        return Ops.BiasLinear(x, _bias, _convClamp);
    }
}

/// <summary>One resolution of the skip-architecture synthesis network: [const | conv0 (up)] → conv1 → ToRGB.</summary>
public sealed class SynthesisBlock : nn.Module
{
    [ComponentName(Name = "const")]
    private readonly Parameter? _const;
    [ComponentName(Name = "conv0")]
    private readonly SynthesisLayer? _conv0;
    [ComponentName(Name = "conv1")]
    private readonly SynthesisLayer _conv1;
    [ComponentName(Name = "torgb")]
    private readonly ToRgbLayer _toRgb;
    [ComponentName(Name = "resample_filter")]
    private readonly Tensor _resampleFilter;

    public SynthesisBlock(int inChannels, int outChannels, StyleGan2Config config, int resolution, Device device)
        : base($"b{resolution}")
    {
        _resampleFilter = Ops.SetupFilter(new double[] { 1, 3, 3, 1 }, device);
        if (inChannels == 0)
        {
            _const = new Parameter(randn(outChannels, resolution, resolution, device: device));
        }
        else
        {
            _conv0 = new SynthesisLayer("conv0", inChannels, outChannels, config.WDim, resolution, up: true, config.ConvClamp, device);
        }
        _conv1 = new SynthesisLayer("conv1", outChannels, outChannels, config.WDim, resolution, up: false, config.ConvClamp, device);
        _toRgb = new ToRgbLayer(outChannels, config.ImageChannels, config.WDim, config.ConvClamp, device);
        RegisterComponents();
    }

    /// <summary>The number of ws the convolutions consume (the ToRGB's w is shared with the next block's first).</summary>
    public int NumConv => _conv0 is null ? 1 : 2;

    /// <param name="ws">(B, NumConv + 1, w_dim)</param>
    public (Tensor X, Tensor Img) Forward(Tensor? x, Tensor? img, Tensor ws, NoiseMode noise, Generator? rng)
    {
        int i = 0;
        if (_const is not null)
        {
            x = _const.unsqueeze(0).expand(ws.shape[0], -1, -1, -1);    // (B, C, 4, 4)
        }
        else
        {
            x = _conv0!.Forward(x!, ws.select(1, i++), noise, rng);
        }
        x = _conv1.Forward(x, ws.select(1, i++), noise, rng);
        var y = _toRgb.Forward(x, ws.select(1, i));
        img = img is null ? y : Ops.Upsample2d(img, _resampleFilter) + y;
        return (x, img);
    }
}

/// <summary>The synthesis network: ws → image, one block per resolution from 4 to the output size.</summary>
public sealed class SynthesisNetwork : nn.Module
{
    private readonly List<SynthesisBlock> _blocks = new();
    private readonly int _numWs;
    private readonly int _wDim;

    public SynthesisNetwork(StyleGan2Config config, Device device) : base("synthesis")
    {
        _numWs = config.NumWs;
        _wDim = config.WDim;
        foreach (var res in config.BlockResolutions)
        {
            int inChannels = res > 4 ? config.Channels(res / 2) : 0;
            var block = new SynthesisBlock(inChannels, config.Channels(res), config, res, device);
            _blocks.Add(block);
            register_module($"b{res}", block);
        }
        RegisterComponents();
    }

    /// <param name="ws">(B, num_ws, w_dim)</param>
    /// <returns>(B, 3, R, R), nominally in [-1, 1]</returns>
    public Tensor Forward(Tensor ws, NoiseMode noise = NoiseMode.Const, Generator? rng = null)
    {
        if (ws.dim() != 3 || ws.shape[1] != _numWs || ws.shape[2] != _wDim)
            throw new ArgumentException($"ws must have shape [batch, {_numWs}, {_wDim}], got [{string.Join(", ", ws.shape)}].");
        ws = ws.to(ScalarType.Float32);
        Tensor? x = null, img = null;
        int index = 0;
        foreach (var block in _blocks)
        {
            (x, img) = block.Forward(x, img, ws.narrow(1, index, block.NumConv + 1), noise, rng);
            index += block.NumConv;
        }
        return img!;
    }
}
