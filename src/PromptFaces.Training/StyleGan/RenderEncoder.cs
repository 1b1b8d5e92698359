using PromptFaces.Generation.StyleGan2;
using TorchSharp.Utils;
using static TorchSharp.torch;

namespace PromptFaces.Training.StyleGan;

/// <summary>
/// A convolutional encoder from a render to one w (the training-only half of an autoencoder whose decoder is the
/// generator's synthesis network). With it the synthesis network learns to draw every render from a code that sees
/// the render, which is far easier than from z alone, and the mapping network learns to hit those codes by
/// regression (see <see cref="StyleGanTrainingSettings.EncoderWeight"/>). It is never exported: a generator
/// checkpoint holds G_ema only.
/// </summary>
/// <remarks>
/// Layout mirrors the discriminator without its residual paths: a 1x1 fromrgb at full resolution, then per resolution a
/// 3x3 convolution and a 3x3 down-sampling convolution, the generator's channel counts, down to 4x4; then two fully
/// connected layers to w_dim. Its output is one w that the trainer broadcasts to every synthesis layer, as the mapping
/// network's output is, so the codes live in the space that truncation and the optimiser's W and W+ start from.
/// </remarks>
public sealed class RenderEncoder : nn.Module
{
    [ComponentName(Name = "fromrgb")]
    private readonly Conv2dLayer _fromRgb;
    private readonly List<(Conv2dLayer Conv, Conv2dLayer Down)> _blocks = new();   // registered by name below
    [ComponentName(Name = "fc")]
    private readonly FullyConnectedLayer _fc;
    [ComponentName(Name = "out")]
    private readonly FullyConnectedLayer _out;

    public RenderEncoder(StyleGan2Config config, Device device) : base("encoder")
    {
        int top = config.Resolution;
        _fromRgb = new Conv2dLayer("fromrgb", config.ImageChannels, config.Channels(top), 1, device);
        for (int res = top; res > 4; res /= 2)
        {
            var conv = new Conv2dLayer($"b{res}_conv", config.Channels(res), config.Channels(res), 3, device);
            var down = new Conv2dLayer($"b{res}_down", config.Channels(res), config.Channels(res / 2), 3, device, down: true);
            register_module($"b{res}_conv", conv);
            register_module($"b{res}_down", down);
            _blocks.Add((conv, down));
        }
        _fc = new FullyConnectedLayer("fc", config.Channels(4) * 16, config.WDim, device, leakyRelu: true);
        _out = new FullyConnectedLayer("out", config.WDim, config.WDim, device);
        RegisterComponents();
    }

    /// <param name="images">(B, 3, R, R) in [-1, 1]</param>
    /// <returns>(B, w_dim)</returns>
    public Tensor Forward(Tensor images)
    {
        var x = _fromRgb.Forward(images);
        foreach (var (conv, down) in _blocks) x = down.Forward(conv.Forward(x));
        return _out.Forward(_fc.Forward(x.flatten(1)));
    }
}
