using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace PromptFaces.Generation.StyleGan2;

/// <summary>How the per-pixel noise inputs of the synthesis layers are fed.</summary>
public enum NoiseMode
{
    /// <summary>The fixed per-layer noise images stored in the checkpoint (deterministic).</summary>
    Const,
    /// <summary>Fresh Gaussian noise on every call.</summary>
    Random,
    /// <summary>No noise.</summary>
    None,
}

/// <summary>
/// The element-wise and resampling operators of stylegan2-ada-pytorch (bias_act, upfirdn2d, conv2d_resample),
/// written as plain tensor operations equivalent to NVIDIA's reference implementations. Public because the trainer's
/// discriminator (in PromptFaces.Training) is built from the same operators.
/// </summary>
public static class Ops
{
    public static readonly double LReluGain = Math.Sqrt(2);

    /// <summary>
    /// bias_act with 'lrelu': add bias, leaky ReLU 0.2, scale by gain, clamp. Where gradients are needed it runs as one
    /// autograd function that keeps only its output for the backward pass (as NVIDIA's CUDA kernel does): the slope
    /// and the clamp mask are read off the output's sign and size. Plain autograd would keep two more full-size
    /// activations per layer, which is most of the memory of a 1024x1024 step.
    /// </summary>
    public static Tensor BiasLeakyRelu(Tensor x, Tensor? bias, double gain, double? clamp)
    {
        bias ??= zeros(x.shape[1], dtype: x.dtype, device: x.device);
        if (is_grad_enabled() && (x.requires_grad || bias.requires_grad))
            return BiasLeakyReluFunction.apply(x, bias, gain, clamp ?? -1.0);
        return BiasLeakyReluForward(x, bias, gain, clamp ?? -1.0);
    }

    internal static Tensor BiasLeakyReluForward(Tensor x, Tensor bias, double gain, double clamp)
    {
        var y = F.leaky_relu(x + bias.reshape(BiasShape(x, bias)), 0.2) * gain;
        return clamp >= 0 ? y.clamp(-clamp, clamp) : y;
    }

    private sealed class BiasLeakyReluFunction : TorchSharp.torch.autograd.SingleTensorFunction<BiasLeakyReluFunction>
    {
        public override string Name => "BiasLeakyRelu";

        public override Tensor forward(TorchSharp.torch.autograd.AutogradContext ctx, params object[] vars)
        {
            var (x, bias, gain, clamp) = ((Tensor)vars[0], (Tensor)vars[1], (double)vars[2], (double)vars[3]);
            var y = BiasLeakyReluForward(x, bias, gain, clamp);
            ctx.save_for_backward(new List<Tensor> { y });
            ctx.save_data("gain", gain);
            ctx.save_data("clamp", clamp);
            ctx.save_data("bias_shape", bias.shape);
            return y;
        }

        // The gradients this thread returned last time. libtorch copies a returned tensor as soon as backward returns,
        // so by this thread's next call the wrappers only hold memory; they are disposed then.
        [ThreadStatic] private static List<Tensor>? t_returned;

        public override List<Tensor> backward(TorchSharp.torch.autograd.AutogradContext ctx, Tensor gradOutput)
        {
            // On CUDA, libtorch runs backward on its own device thread, where no dispose scope of the caller is open:
            // every tensor made here would then live until the garbage collector finalised it, a full-size activation
            // per layer and step (a 1024x1024 step ran out of 140 GB within seconds). So everything made here is
            // scoped, the incoming gradient's wrapper is released, and the returned ones are disposed on the next call.
            if (t_returned is { } previous)
            {
                foreach (var t in previous) t.Dispose();
                previous.Clear();
            }
            Tensor grad, gradBias;
            using (var scope = NewDisposeScope())
            {
                var y = ctx.get_saved_variables()[0];
                var gain = (double)ctx.get_data("gain");
                var clamp = (double)ctx.get_data("clamp");
                var slope = where(y > 0, gain, 0.2 * gain);                     // leaky ReLU's slope, read off the output
                grad = gradOutput * slope;
                if (clamp >= 0) grad = grad * (y.abs() < clamp);                  // clamped values pass no gradient
                var dims = Enumerable.Range(0, (int)grad.dim()).Where(d => d != 1).Select(d => (long)d).ToArray();
                gradBias = grad.sum(dims);
                grad.DetachFromDisposeScope();
                gradBias.DetachFromDisposeScope();
            }
            gradOutput.Dispose();
            (t_returned ??= []).AddRange([grad, gradBias]);
            return new List<Tensor> { grad, gradBias, null!, null! };   // one entry per argument: gain and clamp get none
        }
    }

    /// <summary>bias_act with 'linear': add bias, clamp.</summary>
    public static Tensor BiasLinear(Tensor x, Tensor bias, double? clamp)
    {
        x = x + bias.reshape(BiasShape(x, bias));
        return clamp is double c ? x.clamp(-c, c) : x;
    }

    private static long[] BiasShape(Tensor x, Tensor bias)
    {
        var shape = Enumerable.Repeat(1L, (int)x.dim()).ToArray();
        shape[1] = bias.shape[0];
        return shape;
    }

    /// <summary>NVIDIA's setup_filter: the outer product of a 1-D kernel, normalised to sum 1.</summary>
    public static Tensor SetupFilter(double[] taps, Device device)
    {
        var f = tensor(taps.Select(v => (float)v).ToArray(), device: device);
        var f2 = f.outer(f);
        return f2 / f2.sum();
    }

    /// <summary>
    /// upfirdn2d without up/down-sampling: pad, then a depthwise 2-D FIR filter scaled by <paramref name="gain"/>.
    /// The filter is symmetric, so correlation equals convolution.
    /// </summary>
    /// <param name="stride">2 keeps every second output pixel (upfirdn2d's down=2) without computing the others.</param>
    public static Tensor Filter2d(Tensor x, Tensor filter, long padX0, long padX1, long padY0, long padY1, double gain, long stride = 1)
    {
        var channels = x.shape[1];
        x = F.pad(x, new[] { padX0, padX1, padY0, padY1 });
        var f = (filter * gain).flip(0, 1).to(x.dtype);
        var weight = f.unsqueeze(0).unsqueeze(0).expand(channels, 1, f.shape[0], f.shape[1]);
        return F.conv2d(x, weight, strides: new[] { stride, stride }, groups: channels);
    }

    /// <summary>upsample2d: 2x up-sampling by zero insertion and the FIR filter (gain 4 keeps the mean).</summary>
    public static Tensor Upsample2d(Tensor x, Tensor filter)
    {
        long b = x.shape[0], c = x.shape[1], h = x.shape[2], w = x.shape[3];
        var fw = filter.shape[1];
        x = x.reshape(b, c, h, 1, w, 1);                              // (B, C, H, 1, W, 1)
        x = F.pad(x, new long[] { 0, 1, 0, 0, 0, 1 });               // (B, C, H, 2, W, 2): zeros between pixels
        x = x.reshape(b, c, h * 2, w * 2);                            // (B, C, 2H, 2W)
        long p0 = (fw + 1) / 2, p1 = (fw - 2) / 2;
        return Filter2d(x, filter, p0, p1, p0, p1, gain: 4);
    }

    /// <summary>
    /// A 3x3 convolution followed by 2x up-sampling, as conv2d_resample(up=2, padding=1): a stride-2 transposed
    /// convolution, then the FIR filter over the result.
    /// </summary>
    public static Tensor ConvUp2(Tensor x, Tensor weight, Tensor filter)
    {
        var kw = weight.shape[3];
        var fw = filter.shape[1];
        long pad = kw / 2;
        long p0 = pad + (fw + 1) / 2 - (kw - 1);                     // stylegan2-ada's padding bookkeeping
        long p1 = pad + (fw - 2) / 2 - (kw - 2);
        x = F.conv_transpose2d(x, weight.transpose(0, 1), strides: new long[] { 2, 2 });
        return Filter2d(x, filter, p0, p1, p0, p1, gain: 4);
    }

    /// <summary>
    /// A KxK convolution with 2x down-sampling, as conv2d_resample(down=2, padding=K/2): the FIR filter first, then the
    /// convolution with stride 2. A 1x1 kernel down-samples before convolving (NVIDIA's fast path: fewer pixels).
    /// </summary>
    public static Tensor ConvDown2(Tensor x, Tensor weight, Tensor filter)
    {
        var kw = weight.shape[3];
        var fw = filter.shape[1];
        long pad = kw / 2;
        long p0 = pad + (fw - 2 + 1) / 2;                              // stylegan2-ada's padding bookkeeping for down=2
        long p1 = pad + (fw - 2) / 2;
        if (kw == 1)
            return F.conv2d(Filter2d(x, filter, p0, p1, p0, p1, gain: 1, stride: 2), weight);
        return F.conv2d(Filter2d(x, filter, p0, p1, p0, p1, gain: 1), weight, strides: new long[] { 2, 2 });
    }
}
