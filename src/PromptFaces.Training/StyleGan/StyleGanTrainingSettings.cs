using System.Text.Json;
using System.Text.Json.Nodes;
using PromptFaces.Generation.StyleGan2;

namespace PromptFaces.Training.StyleGan;

/// <summary>
/// Everything that decides what a StyleGAN2 training run computes. Stored in every checkpoint, so a resumed run uses
/// the same values; only <see cref="WithRunControl"/>'s fields (how long, how often to write) may change on resume.
/// Defaults are NVIDIA's StyleGAN2 recipe where it has one (Adam 0.0025 with betas (0, 0.99), R1 every 16 steps,
/// G_ema with a half-life of batch·10/32 kimg and a 5% ramp-up) and the latent-tying objective on top.
/// </summary>
public sealed record StyleGanTrainingSettings
{
    public StyleGan2Config Generator { get; init; } = StyleGanPresets.Faces64;
    public int? DChannelBase { get; init; }                // the discriminator's channel_base; null: the generator's
    public int? DChannelMax { get; init; }                 // the discriminator's channel_max; null: the generator's
    public int BatchSize { get; init; } = 16;             // images per step for G and for D; a multiple of 4 (minibatch-stddev groups)
    public long Seed { get; init; }                        // initial weights and every random draw of every step derive from it
    public int TotalSteps { get; init; } = 10_000;        // the run stops after this many steps (run control)

    public double GLearningRate { get; init; } = 0.0025;
    public double DLearningRate { get; init; } = 0.0025;
    public double Beta1 { get; init; }                     // 0: StyleGAN2's Adam keeps no first-moment memory
    public double? ReconstructionBeta1 { get; init; }      // G's beta1 while no discriminator runs (a supervised phase gains from momentum); null: Beta1
    public double Beta2 { get; init; } = 0.99;
    public double AdamEps { get; init; } = 1e-8;

    public double? R1Gamma { get; init; }                  // R1 weight; null: NVIDIA's auto value 0.0002·res²/batch
    public int R1Interval { get; init; } = 16;             // lazy regularisation: R1 on every k-th D step, scaled by k
    public double AdversarialWeight { get; init; } = 1;    // weight of the non-saturating logistic G loss (0: pure reconstruction)
    public double AdversarialStartKimg { get; init; }      // reconstruction only (no D at all) until this many kimg: the layout is learned at several times the speed
    public double AdversarialRampKimg { get; init; }       // then the adversarial weight rises linearly from 0 over this many kimg (0: at once)

    /// <summary>
    /// How the synthesis layers' noise inputs are fed in training. None by default: the renders have no stochastic
    /// detail for noise to explain, and with noise on, the adversarial term turns it into speckle. The strengths then
    /// stay 0, so the exported generator gives the same faces in every noise mode.
    /// </summary>
    public NoiseMode TrainingNoise { get; init; } = NoiseMode.None;
    public double? EmaKimg { get; init; }                  // G_ema half-life in thousands of images; null: batch·10/32
    public double EmaRampup { get; init; } = 0.05;         // half-life at most this fraction of the images seen so far (0 disables)
    public double WAvgBeta { get; init; } = 0.995;         // decay of the tracked w average (the truncation centre)

    /// <summary>
    /// Weight of the latent-tying reconstruction loss: mean L1 between G(z) and the render of <see cref="LatentFaceMap"/>'s
    /// attributes for z, summed over full, 1/2 and 1/4 resolution. 0 trains a plain GAN.
    /// </summary>
    public double ReconstructionWeight { get; init; } = 10;

    /// <summary>
    /// Weight of the encoder path (0: no encoder): a <see cref="RenderEncoder"/> reads each target render, the
    /// synthesis network draws it back from that code, and the same three-scale L1 applies. The synthesis network
    /// then learns to draw every render sharply from a code that sees the render, instead of only from what the
    /// mapping network has so far made of z.
    /// </summary>
    public double EncoderWeight { get; init; }

    /// <summary>
    /// With the encoder on: weight of the squared distance between the mapping network's w for z and the encoder's
    /// (held fixed) code of z's render, so the mapping network learns by regression to hit the codes the synthesis
    /// network draws well.
    /// </summary>
    public double LatentMatchWeight { get; init; }

    /// <summary>
    /// The code path's codes: false for a learned <see cref="RenderEncoder"/>'s reading of each render, true for the
    /// designed code of <see cref="LatentFaceMap.Codes"/>, which spells out z's tied classes, geometry and style choices.
    /// A learned code is whatever the encoder finds easy to draw from, which the mapping network then has to hit by
    /// regression, and near misses draw no face; a designed code is a target the mapping network can be fitted to
    /// directly (<see cref="StyleGanTrainer.FitMapping"/>), class by class. Needs <see cref="EncoderWeight"/>, the
    /// code path's weight.
    /// </summary>
    public bool DesignedCodes { get; init; }

    /// <summary>
    /// Standard deviation of Gaussian noise added to each designed code before the synthesis network draws from it, so
    /// that it also draws the face from a code the mapping network only nearly hits (0: none).
    /// </summary>
    public double CodeNoise { get; init; }

    /// <summary>
    /// Weight of the attribute loss (0: none): a separately trained, frozen attribute classifier reads G(z) (and, in a
    /// run with a code path, the faces drawn from the codes), each face distorted afresh by the judge's training
    /// augmentations, and its cross-entropy against the attributes z is tied to is added to G's loss. The L1 term weighs
    /// every pixel alike, so cues of a few pixels (eye colour, lashes and lipstick, the mouth) earn it little; this term
    /// asks for them by name. The distortions keep G from drawing one exact pixel pattern that fools this one
    /// classifier. The classifier is given to the trainer; never the evaluation's judge.
    /// </summary>
    public double AttributeWeight { get; init; }

    /// <summary>
    /// Weight of the discriminator feature-matching loss (0: none), applied while the discriminator trains: the mean L1
    /// distance between D's block features of each face G drew and of the render it is tied to. The adversarial loss
    /// alone asks only for faces that look real, and on two cores it learns a few tricks that do (dark rings round every
    /// pair of eyes); matched to each face's own render, D's features become a perceptual loss that asks for this face's
    /// detail.
    /// </summary>
    public double FeatureMatchWeight { get; init; }

    /// <summary>How the latent-tying map reads each attribute's class from z (see <see cref="StyleGan.LatentLayout"/>).</summary>
    public LatentLayout LatentLayout { get; init; } = LatentLayout.Argmax;

    /// <summary>
    /// The exported generator a run started from (its file name and the start of its SHA-256), or null for a run from
    /// seeded weights. Set by the trainer, not by hand: it records where G's and G_ema's first weights came from.
    /// </summary>
    public string? InitialGenerator { get; init; }

    public int GridEvery { get; init; } = 500;            // steps between sample grids (run control)
    public int CheckpointEvery { get; init; } = 500;      // steps between checkpoints (run control)
    public int LogEvery { get; init; } = 20;              // steps between log lines (run control)

    /// <summary>
    /// NVIDIA's discriminator for the generator, with this run's channel overrides. Only the trainer uses D, so its
    /// width is a speed trade-off: on CPU its two forward passes per step cost more than the generator's.
    /// </summary>
    public StyleGan2DiscriminatorConfig Discriminator => StyleGan2DiscriminatorConfig.ForGenerator(Generator) with
    {
        ChannelBase = DChannelBase ?? Generator.ChannelBase,
        ChannelMax = DChannelMax ?? Generator.ChannelMax,
    };

    /// <summary>Whether D trains (and G's adversarial loss counts) at <paramref name="imagesSeen"/>.</summary>
    public bool AdversarialActiveAt(long imagesSeen) => AdversarialWeight > 0 && imagesSeen >= AdversarialStartKimg * 1000;

    /// <summary>The adversarial weight after <paramref name="imagesSeen"/> images, with the start and the ramp applied.</summary>
    public double AdversarialWeightAt(long imagesSeen)
    {
        if (!AdversarialActiveAt(imagesSeen)) return 0;
        double since = imagesSeen - AdversarialStartKimg * 1000;
        return AdversarialRampKimg <= 0 ? AdversarialWeight : AdversarialWeight * Math.Min(1, (since + 1) / (AdversarialRampKimg * 1000));
    }

    public double ResolvedR1Gamma => R1Gamma ?? 0.0002 * Generator.Resolution * Generator.Resolution / BatchSize;
    public double ResolvedEmaKimg => EmaKimg ?? BatchSize * 10.0 / 32;

    /// <summary>The first problem with the values, or null.</summary>
    public string? Validate()
    {
        if (BatchSize < 1 || (BatchSize > 4 && BatchSize % 4 != 0))
            return $"--batch {BatchSize}: the batch must be at most 4 or a multiple of 4 (the discriminator's minibatch-stddev groups).";
        if (TotalSteps < 0) return $"--steps {TotalSteps} must not be negative.";
        if (Beta1 is < 0 or >= 1 || ReconstructionBeta1 is < 0 or >= 1 || Beta2 is < 0 or >= 1) return "Adam's betas must lie in [0, 1).";
        if (R1Interval < 1) return $"The R1 interval {R1Interval} must be at least 1.";
        if (GridEvery < 0 || CheckpointEvery < 0 || LogEvery < 1) return "Grid, checkpoint and log intervals must not be negative (log at least 1).";
        if (ReconstructionWeight < 0 || AdversarialWeight < 0 || AdversarialRampKimg < 0 || AdversarialStartKimg < 0 || EncoderWeight < 0 || LatentMatchWeight < 0 || AttributeWeight < 0 || FeatureMatchWeight < 0)
            return "Loss weights and the adversarial start and ramp must not be negative.";
        if (LatentMatchWeight > 0 && EncoderWeight == 0) return "--latent-match-weight needs the encoder: give --encoder-weight too.";
        if (DesignedCodes && EncoderWeight == 0) return "--codes designed needs the code path's weight: give --encoder-weight too.";
        if (FeatureMatchWeight > 0 && (ReconstructionWeight == 0 || AdversarialWeight == 0))
            return "--feature-match-weight compares D's features of each face with its render: it needs the reconstruction loss and the discriminator (--rec-weight and --adv-weight above 0).";
        if (CodeNoise < 0) return $"--code-noise {CodeNoise} must not be negative.";
        if (CodeNoise > 0 && !DesignedCodes) return "--code-noise applies to designed codes: give --codes designed too.";
        if (DesignedCodes && Generator.WDim < LatentFaceMap.RequiredZDim)
            return $"Designed codes need w_dim >= {LatentFaceMap.RequiredZDim}; the generator has {Generator.WDim}.";
        // The reconstruction loss, the encoder path and the attribute loss all read what z is tied to.
        if ((ReconstructionWeight > 0 || EncoderWeight > 0 || AttributeWeight > 0) && Generator.ZDim < LatentFaceMap.RequiredZDim)
            return $"Latent tying needs z_dim >= {LatentFaceMap.RequiredZDim}; the generator has {Generator.ZDim}.";
        if (Generator.Resolution < 8) return "The generator's resolution must be at least 8 for the discriminator.";
        if (DChannelBase is <= 0 || DChannelMax is <= 0) return "The discriminator's channel base and maximum must be positive.";
        return null;
    }

    /// <summary>These settings with the run-control fields of <paramref name="other"/>: what a resume may change.</summary>
    public StyleGanTrainingSettings WithRunControl(StyleGanTrainingSettings other) => this with
    {
        TotalSteps = other.TotalSteps,
        GridEvery = other.GridEvery,
        CheckpointEvery = other.CheckpointEvery,
        LogEvery = other.LogEvery,
    };

    public string ToJson()
    {
        var o = new JsonObject
        {
            ["generator"] = Generator.ToKwargs(),
            ["d_channel_base"] = DChannelBase,
            ["d_channel_max"] = DChannelMax,
            ["batch_size"] = BatchSize,
            ["seed"] = Seed,
            ["total_steps"] = TotalSteps,
            ["g_lr"] = GLearningRate,
            ["d_lr"] = DLearningRate,
            ["beta1"] = Beta1,
            ["reconstruction_beta1"] = ReconstructionBeta1,
            ["beta2"] = Beta2,
            ["adam_eps"] = AdamEps,
            ["r1_gamma"] = R1Gamma,
            ["r1_interval"] = R1Interval,
            ["adversarial_weight"] = AdversarialWeight,
            ["adversarial_start_kimg"] = AdversarialStartKimg,
            ["adversarial_ramp_kimg"] = AdversarialRampKimg,
            ["training_noise"] = TrainingNoise.ToString().ToLowerInvariant(),
            ["ema_kimg"] = EmaKimg,
            ["ema_rampup"] = EmaRampup,
            ["w_avg_beta"] = WAvgBeta,
            ["reconstruction_weight"] = ReconstructionWeight,
            ["encoder_weight"] = EncoderWeight,
            ["latent_match_weight"] = LatentMatchWeight,
            ["latent_layout"] = LatentFaceMap.Name(LatentLayout),
            ["designed_codes"] = DesignedCodes,
            ["code_noise"] = CodeNoise,
            ["feature_match_weight"] = FeatureMatchWeight,
            ["attribute_weight"] = AttributeWeight,
            ["initial_generator"] = InitialGenerator,
            ["grid_every"] = GridEvery,
            ["checkpoint_every"] = CheckpointEvery,
            ["log_every"] = LogEvery,
        };
        return o.ToJsonString();
    }

    public static StyleGanTrainingSettings FromJson(string json, string source)
    {
        try
        {
            var o = JsonNode.Parse(json) as JsonObject ?? throw new InvalidDataException("not a JSON object");
            double D(string k) => o[k]?.GetValue<double>() ?? throw new InvalidDataException($"'{k}' is missing");
            int I(string k) => o[k]?.GetValue<int>() ?? throw new InvalidDataException($"'{k}' is missing");
            return new StyleGanTrainingSettings
            {
                Generator = StyleGan2Config.FromKwargs(o["generator"] as JsonObject ?? throw new InvalidDataException("'generator' is missing"), source),
                DChannelBase = o["d_channel_base"]?.GetValue<int>(),
                DChannelMax = o["d_channel_max"]?.GetValue<int>(),
                BatchSize = I("batch_size"),
                Seed = o["seed"]?.GetValue<long>() ?? 0,
                TotalSteps = I("total_steps"),
                GLearningRate = D("g_lr"),
                DLearningRate = D("d_lr"),
                Beta1 = D("beta1"),
                ReconstructionBeta1 = o["reconstruction_beta1"]?.GetValue<double>(),
                Beta2 = D("beta2"),
                AdamEps = D("adam_eps"),
                R1Gamma = o["r1_gamma"]?.GetValue<double>(),
                R1Interval = I("r1_interval"),
                AdversarialWeight = D("adversarial_weight"),
                AdversarialStartKimg = o["adversarial_start_kimg"]?.GetValue<double>() ?? 0,
                AdversarialRampKimg = o["adversarial_ramp_kimg"]?.GetValue<double>() ?? 0,
                TrainingNoise = Enum.Parse<NoiseMode>(o["training_noise"]?.GetValue<string>() ?? "none", ignoreCase: true),
                EmaKimg = o["ema_kimg"]?.GetValue<double>(),
                EmaRampup = D("ema_rampup"),
                WAvgBeta = D("w_avg_beta"),
                ReconstructionWeight = D("reconstruction_weight"),
                EncoderWeight = o["encoder_weight"]?.GetValue<double>() ?? 0,            // absent in checkpoints from before the encoder
                LatentMatchWeight = o["latent_match_weight"]?.GetValue<double>() ?? 0,
                AttributeWeight = o["attribute_weight"]?.GetValue<double>() ?? 0,
                DesignedCodes = o["designed_codes"]?.GetValue<bool>() ?? false,      // absent before designed codes: an encoder's
                CodeNoise = o["code_noise"]?.GetValue<double>() ?? 0,
                FeatureMatchWeight = o["feature_match_weight"]?.GetValue<double>() ?? 0,
                // Absent in checkpoints from before the interval layout, which all used argmax.
                LatentLayout = o["latent_layout"] is JsonNode layout
                    ? LatentFaceMap.Parse(layout.GetValue<string>()) ?? throw new InvalidDataException($"'latent_layout' is '{layout.GetValue<string>()}'; expected 'argmax' or 'intervals'")
                    : LatentLayout.Argmax,
                InitialGenerator = o["initial_generator"]?.GetValue<string>(),
                GridEvery = I("grid_every"),
                CheckpointEvery = I("checkpoint_every"),
                LogEvery = I("log_every"),
            };
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException or FormatException or ArgumentException
                                   || (e is InvalidDataException && !e.Message.StartsWith(source, StringComparison.Ordinal)))
        {
            throw new InvalidDataException($"{source}: the training settings cannot be read ({e.Message}).", e);
        }
    }
}

/// <summary>Generator shapes sized for training and running on two CPU cores.</summary>
public static class StyleGanPresets
{
    /// <summary>
    /// 64x64 faces: z 128 (75 dimensions tied to the renderer, 53 free), w 256, a 4-layer mapping network, 128 channels
    /// from 4x4 to 16x16, 64 at 32x32 and 32 at 64x64. About 1.5 M parameters (5.9 MB as float32) and 0.4 GFLOP per
    /// image forward: flat-shaded cartoons need few channels at full resolution, and on two shared CPU cores every
    /// halving of the top blocks nearly doubles the images per second (measured 4.0 → 7.4 img/s for G and D together
    /// against channel_base 4096).
    /// </summary>
    public static readonly StyleGan2Config Faces64 = new()
    {
        ZDim = 128,
        WDim = 256,
        MappingLayers = 4,
        Resolution = 64,
        ChannelBase = 2048,
        ChannelMax = 128,
        NumFp16Res = 0,
        ConvClamp = 256,
    };

    /// <summary>
    /// A 32x32 toy for tests: trains a few steps in seconds. 16 channels everywhere, not fewer: libtorch 2.x's CPU
    /// convolution (oneDNN) returns wrong, sometimes non-finite, input gradients for 3x3 convolutions with 8 or fewer
    /// channels in and out when it runs on more than one thread (measured on AMD EPYC with AVX2; 16 and more are exact).
    /// </summary>
    public static readonly StyleGan2Config Tiny32 = new()
    {
        ZDim = 80,
        WDim = 32,
        MappingLayers = 2,
        Resolution = 32,
        ChannelBase = 512,
        ChannelMax = 16,
        NumFp16Res = 0,
        ConvClamp = 256,
    };

    public static IReadOnlyDictionary<string, StyleGan2Config> All { get; } = new Dictionary<string, StyleGan2Config>
    {
        ["faces64"] = Faces64,
        ["tiny32"] = Tiny32,
    };

    public static StyleGan2Config FromName(string name) =>
        All.TryGetValue(name, out var c) ? c
            : throw new ArgumentException($"Unknown training preset '{name}'. Known presets: {string.Join(", ", All.Keys)}.");
}
