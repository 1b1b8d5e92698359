using PromptFaces.Generation.Checkpoints;
using static TorchSharp.torch;

namespace PromptFaces.Generation.StyleGan2;

/// <summary>
/// NVIDIA's StyleGAN2 generator (stylegan2-ada-pytorch <c>training/networks.py</c>), with the same state-dict names
/// and shapes, so that official checkpoints load as they are.
/// </summary>
public sealed class StyleGan2Generator : nn.Module
{
    public StyleGan2Config Config { get; }
    public MappingNetwork Mapping { get; }
    public SynthesisNetwork Synthesis { get; }
    public Device Device { get; }

    public StyleGan2Generator(StyleGan2Config config, Device? device = null) : base("generator")
    {
        config.Validate("StyleGAN2 configuration");
        Config = config;
        Device = device ?? CPU;
        Synthesis = new SynthesisNetwork(config, Device);
        Mapping = new MappingNetwork(config, Device);
        register_module("synthesis", Synthesis);
        register_module("mapping", Mapping);
    }

    public int NumWs => Config.NumWs;

    /// <summary>z → image through mapping (with truncation) and synthesis.</summary>
    public Tensor Forward(Tensor z, double psi = 1, int? cutoff = null, NoiseMode noise = NoiseMode.Const, Generator? rng = null) =>
        Synthesis.Forward(Mapping.Forward(z, psi, cutoff), noise, rng);

    /// <summary>Stops gradients to the weights: latent optimisation needs gradients only for the ws.</summary>
    public StyleGan2Generator Freeze()
    {
        foreach (var p in parameters()) p.requires_grad = false;
        eval();
        return this;
    }

    /// <summary>Copies a state dict in, strictly: every key present with its exact shape, nothing left over.</summary>
    public void LoadStateDict(IReadOnlyDictionary<string, RawTensor> tensors, string sourcePath) =>
        StrictStateDict.Load(this, tensors, sourcePath);

    public long ParameterCount => parameters().Sum(p => p.numel());
}
