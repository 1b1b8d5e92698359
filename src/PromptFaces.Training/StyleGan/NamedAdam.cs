using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PromptFaces.Training.StyleGan;

/// <summary>
/// Adam over a module's named parameters, with the arithmetic of <c>torch.optim.Adam</c>. It exists instead of
/// TorchSharp's optimiser because its state is plain named tensors (<c>{name}.exp_avg</c>, <c>{name}.exp_avg_sq</c>)
/// and one step count, which the training checkpoint stores in the same safetensors file as the networks, so a resumed
/// run continues bit for bit.
/// </summary>
public sealed class NamedAdam : IDisposable
{
    private readonly List<(string Name, Parameter Param, Tensor ExpAvg, Tensor ExpAvgSq)> _slots = new();

    /// <summary>The step size; a schedule may change it between steps.</summary>
    public double LearningRate { get; set; }
    public double Beta1 { get; }
    public double Beta2 { get; }
    public double Eps { get; }

    /// <summary>Steps taken; the bias corrections depend on it.</summary>
    public long StepCount { get; set; }

    public NamedAdam(nn.Module module, double learningRate, double beta1, double beta2, double eps)
    {
        LearningRate = learningRate;
        Beta1 = beta1;
        Beta2 = beta2;
        Eps = eps;
        using var noGrad = no_grad();
        foreach (var (name, p) in module.named_parameters())
            _slots.Add((name, p, zeros_like(p).DetachFromDisposeScope(), zeros_like(p).DetachFromDisposeScope()));
    }

    /// <summary>One update from the parameters' current gradients (parameters without one are skipped); clears the gradients.</summary>
    /// <param name="beta1">this step's first-moment decay instead of <see cref="Beta1"/> (a phase of training with momentum).</param>
    public void Step(double? beta1 = null)
    {
        StepCount++;
        double b1 = beta1 ?? Beta1;
        double bias1 = 1 - Math.Pow(b1, StepCount), bias2 = 1 - Math.Pow(Beta2, StepCount);
        double stepSize = LearningRate / bias1, bias2Sqrt = Math.Sqrt(bias2);
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        foreach (var (_, p, m, v) in _slots)
        {
            var g = p.grad;
            if (g is null) continue;
            m.mul_(b1).add_(g, alpha: 1 - b1);
            v.mul_(Beta2).addcmul_(g, g, value: 1 - Beta2);
            var denom = (v.sqrt() / bias2Sqrt).add_(Eps);
            p.addcdiv_(m, denom, value: -stepSize);
            g.zero_();
        }
    }

    /// <summary>The moments under "{prefix}{name}.exp_avg" and "{prefix}{name}.exp_avg_sq".</summary>
    public IEnumerable<KeyValuePair<string, Tensor>> State(string prefix)
    {
        foreach (var (name, _, m, v) in _slots)
        {
            yield return new($"{prefix}{name}.exp_avg", m);
            yield return new($"{prefix}{name}.exp_avg_sq", v);
        }
    }

    /// <summary>Copies the moments back from tensors named as <see cref="State"/> writes them; every one must be present.</summary>
    public void LoadState(string prefix, Func<string, Tensor> lookup)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        foreach (var (name, _, m, v) in _slots)
        {
            m.copy_(lookup($"{prefix}{name}.exp_avg"));
            v.copy_(lookup($"{prefix}{name}.exp_avg_sq"));
        }
    }

    public void Dispose()
    {
        foreach (var (_, _, m, v) in _slots)
        {
            m.Dispose();
            v.Dispose();
        }
        _slots.Clear();
    }
}
