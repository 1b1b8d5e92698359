using System.CommandLine;
using PromptFaces.Generation.Devices;
using PromptFaces.Generation.Optimisation;
using static TorchSharp.torch;

namespace PromptFaces.Cli.Commands;

/// <summary>Options shared by several commands.</summary>
internal static class CommonOptions
{
    public static Option<string> Device() => new("--device")
    {
        Description = "cpu (default), cuda or cuda:N. CUDA needs libtorch with CUDA: reference TorchSharp-cuda-linux, or pass --libtorch.",
        DefaultValueFactory = _ => "cpu",
    };

    public static Option<string?> Libtorch() => new("--libtorch")
    {
        Description = "Folder holding CUDA libtorch (for example an installed PyTorch's torch/lib); also read from PROMPTFACES_LIBTORCH.",
    };

    public static Option<int?> Threads() => new("--threads")
    {
        Description = "CPU threads for libtorch (default: all cores).",
    };

    public static Option<string> Space() => new("--space")
    {
        Description = "Latents to optimise: w+ (one per layer, the most freedom), w (one shared change, closer to the faces the generator knows) or z (the mapping network's input, the closest).",
        DefaultValueFactory = _ => LatentSpaceNames.Name(new OptimisationSettings().Space),
    };

    public static Option<int> Starts() => new("--starts")
    {
        Description = "Best-of-N: render N starting faces and keep the one CLIP likes most.",
        DefaultValueFactory = _ => new OptimisationSettings().Starts,
    };

    public static Option<double> Psi() => new("--psi")
    {
        Description = "Truncation psi of the starting latent (0: the average face, 1: no truncation).",
        DefaultValueFactory = _ => new OptimisationSettings().TruncationPsi,
    };

    public static Option<double> CutoutScale() => new("--cutout-scale")
    {
        Description = "Smallest side of an augmented view, as a fraction of the image (views are random crops between this and the whole image).",
        DefaultValueFactory = _ => new OptimisationSettings().CutoutMinScale,
    };

    public static Option<double> WholeViewWeight() => new("--whole-view-weight")
    {
        Description = "Weight of the whole image among CLIP's views, one crop counting 1 (1: a plain mean; 7 with 8 views: half the guidance).",
        DefaultValueFactory = _ => new OptimisationSettings().WholeViewWeight,
    };

    public static Option<double> CutoutNoise() => new("--cutout-noise")
    {
        Description = "Standard deviation of Gaussian pixel noise added to every augmented view but the first (pixels in [-1, 1]; 0: none).",
        DefaultValueFactory = _ => new OptimisationSettings().CutoutNoise,
    };

    public static Option<double> CutoutBlur() => new("--cutout-blur")
    {
        Description = "Largest Gaussian blur (sigma in pixels of CLIP's input) on every augmented view but the first; each view draws its own sigma up to this (0: none).",
        DefaultValueFactory = _ => new OptimisationSettings().CutoutBlur,
    };

    public static Option<double> Pull() => new("--pull")
    {
        Description = "Weight of the L2 pull towards the starting latent (0: none); keeps the face closer to where it began.",
        DefaultValueFactory = _ => new OptimisationSettings().LatentPullWeight,
    };

    public static Option<double> RangePrior() => new("--range-prior")
    {
        Description = "Weight of the range prior (0: none): charges each w for every standard deviation it leaves the range of the mapping network's outputs, so the face stays one the generator can draw.",
        DefaultValueFactory = _ => new OptimisationSettings().RangePriorWeight,
    };

    public static Option<double> LayerTie() => new("--layer-tie")
    {
        Description = "W+ only: weight of the tie between the layers' latents (0: none, each layer free); a high weight makes W+ behave like w.",
        DefaultValueFactory = _ => new OptimisationSettings().LayerTieWeight,
    };

    public static LatentSpace ParseSpace(string? value) => value?.Trim().ToLowerInvariant() switch
    {
        "w" => LatentSpace.W,
        "w+" or "wplus" => LatentSpace.WPlus,
        "z" => LatentSpace.Z,
        _ => throw new CliException($"--space {value}: use w+, w or z."),
    };

    public static Device ResolveDevice(ParseResult r, Option<string> device, Option<string?> libtorch, Option<int?> threads)
    {
        // The device first: it may load libtorch from a folder, and any earlier call into torch (setting the thread
        // count) would make TorchSharp search for its own backend, which a GPU build does not ship, and fail.
        var resolved = ComputeDevices.Resolve(r.GetValue(device) ?? "cpu", r.GetValue(libtorch));
        ComputeDevices.ConfigureCpuThreads(r.GetValue(threads));
        return resolved;
    }

    /// <summary>--clip, repeatable: the CLIP folders that guide together (the first is the primary one).</summary>
    public static Option<string[]> Clip() => new("--clip")
    {
        Description = "CLIP model folder in Hugging Face layout; repeat it to guide with several CLIPs at once (their mean loss; the first is the one " +
            "that reads faces for reports). Default: the shipped models/clip/, with models/clip-second/ when present.",
        AllowMultipleArgumentsPerToken = false,
        Arity = ArgumentArity.OneOrMore,
    };
}
