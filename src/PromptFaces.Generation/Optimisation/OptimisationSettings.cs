namespace PromptFaces.Generation.Optimisation;

/// <summary>A prompt and its weight; a negative weight pushes the face away from the text.</summary>
public sealed record WeightedPrompt(string Text, double Weight = 1.0);

/// <summary>How the distance between an image embedding and a prompt embedding is measured.</summary>
public enum GuidanceLoss
{
    /// <summary>2·arcsin(‖a − b‖ / 2)², the squared great-circle distance of the unit embeddings.</summary>
    Spherical,
    /// <summary>1 − cos(a, b).</summary>
    Cosine,
}

/// <summary>Which latents the optimiser moves.</summary>
public enum LatentSpace
{
    /// <summary>One w per synthesis layer, each free (W+): the most expressive, and the easiest to push off the faces the generator knows.</summary>
    WPlus,
    /// <summary>One shared change for all layers (W): the layers' latents move together, as the mapping network's outputs do.</summary>
    W,
    /// <summary>
    /// The mapping network's input z: every face is one the mapping network can produce, so the face stays closest to
    /// those the generator was trained on, at the cost of freedom. Truncation applies to the mapped ws at every step.
    /// </summary>
    Z,
}

/// <summary>The short names the command line and the evaluation report give the latent spaces.</summary>
public static class LatentSpaceNames
{
    public static string Name(LatentSpace space) => space switch { LatentSpace.W => "w", LatentSpace.Z => "z", _ => "w+" };
}

/// <summary>
/// Everything that decides one optimisation run. Defaults follow what worked for CLIP-guided StyleGAN: truncation 0.7
/// for a typical start, Adam with a short warm-up and a cosine ramp-down of the learning rate; plus a range prior
/// that keeps each w inside the range the mapping network produces (measured on the shipped pair: the same judged
/// accuracy, faces closer to the training data). The latents are one shared w (W) at Adam 0.2 and CLIP's views are
/// crops down to half the side: on the shipped pair the judge found the prompt's attributes more often that way than
/// with a free w per layer (W+) at 0.05 and views down to 70%, because one shared w cannot be pushed apart, layer by
/// layer, into faces that satisfy CLIP alone. Each job starts from the best of 4 faces drawn for its seed (the one CLIP
/// finds closest to the prompt): one shared w moves less freely, so where it starts matters (see models/README.md).
/// </summary>
public sealed record OptimisationSettings
{
    public IReadOnlyList<WeightedPrompt> Prompts { get; init; } = Array.Empty<WeightedPrompt>();
    public long Seed { get; init; }                         // draws z (and the augmentations): same seed, same run on CPU
    public int Steps { get; init; } = 100;                  // maximum number of Adam steps
    public double TruncationPsi { get; init; } = 0.7;       // start latent: w_avg + psi (w − w_avg)
    public int? TruncationCutoff { get; init; }             // truncate only the first ws when set
    public int Starts { get; init; } = 4;                   // best-of-N: render N candidates, keep the one CLIP likes most
    public double LearningRate { get; init; } = 0.2;        // peak Adam learning rate in the latent space
    public double WarmupFraction { get; init; } = 0.05;     // linear ramp-up over this fraction of the steps
    public double RampDownFraction { get; init; } = 0.25;   // cosine ramp-down over the final fraction of the steps
    public int Cutouts { get; init; } = 8;                  // augmented views per step; the first is always the whole image
    public double CutoutMinScale { get; init; } = 0.5;      // smallest crop side as a fraction of the image side
    public double WholeViewWeight { get; init; } = 1;       // the whole image's weight in the views' mean, one crop counting 1
    public double CutoutNoise { get; init; }                // std of Gaussian pixel noise on every view but the first ([-1, 1] units); 0 disables
    public double CutoutBlur { get; init; }                 // largest Gaussian blur sigma, in view pixels, on every view but the first; 0 disables
    public GuidanceLoss Loss { get; init; } = GuidanceLoss.Spherical;
    public LatentSpace Space { get; init; } = LatentSpace.W;      // W (one shared change), W+ (per-layer latents) or Z
    public double LatentPullWeight { get; init; }           // L2 pull towards the starting latent; 0 disables
    public double RangePriorWeight { get; init; } = 10;     // charge for ws outside the mapping network's range (LatentRange); 0 disables
    public double LayerTieWeight { get; init; }             // W+ only: charge for the layers' ws moving apart (LatentRange.LayerSpread); 0 disables
    public int Patience { get; init; }                      // stop after this many steps without improvement; 0 disables
    public double MinImprovement { get; init; } = 1e-3;    // similarity gain that counts as improvement for Patience
    public int PreviewSize { get; init; } = 128;            // per-step preview side in pixels; 0 disables previews
    public int PreviewEvery { get; init; } = 1;             // send a preview every k-th step (and always the last)

    /// <summary>The first problem with the settings, phrased for the person who chose them, or null.</summary>
    public string? Validate()
    {
        if (Prompts.Count == 0) return "At least one prompt is required.";
        if (Prompts.Any(p => string.IsNullOrWhiteSpace(p.Text))) return "Prompts must not be empty.";
        if (!Prompts.Any(p => p.Weight > 0)) return "At least one prompt must have a positive weight.";
        if (Prompts.Any(p => double.IsNaN(p.Weight) || double.IsInfinity(p.Weight))) return "Prompt weights must be finite numbers.";
        if (Steps < 1 || Steps > 100_000) return $"Steps must be between 1 and 100000 (got {Steps}).";
        if (TruncationPsi < 0 || TruncationPsi > 2) return $"Truncation psi must be between 0 and 2 (got {TruncationPsi}).";
        if (Starts < 1 || Starts > 64) return $"Starts (best-of-N) must be between 1 and 64 (got {Starts}).";
        if (!(LearningRate > 0 && LearningRate <= 10)) return $"The learning rate must be in (0, 10] (got {LearningRate}).";
        if (Cutouts < 1 || Cutouts > 128) return $"Cutouts must be between 1 and 128 (got {Cutouts}).";
        if (CutoutMinScale <= 0 || CutoutMinScale > 1) return $"The minimum cutout scale must be in (0, 1] (got {CutoutMinScale}).";
        if (!(WholeViewWeight >= 0 && WholeViewWeight <= 1000)) return $"The whole-view weight must be between 0 and 1000 (got {WholeViewWeight}).";
        if (WholeViewWeight == 0 && Cutouts == 1) return "The whole-view weight must be above 0 when the whole image is the only view (cutouts 1).";
        if (!(CutoutNoise >= 0 && CutoutNoise <= 1)) return $"The cutout noise must be in [0, 1] (got {CutoutNoise}).";
        if (!(CutoutBlur >= 0 && CutoutBlur <= 8)) return $"The cutout blur must be between 0 and 8 pixels (got {CutoutBlur}).";
        if (WarmupFraction < 0 || WarmupFraction > 1 || RampDownFraction < 0 || RampDownFraction > 1) return "Warm-up and ramp-down fractions must be between 0 and 1.";
        if (LatentPullWeight < 0) return "The latent pull weight must not be negative.";
        if (!(RangePriorWeight >= 0 && RangePriorWeight <= 1000)) return $"The range prior weight must be between 0 and 1000 (got {RangePriorWeight}).";
        if (!(LayerTieWeight >= 0 && LayerTieWeight <= 1000)) return $"The layer tie weight must be between 0 and 1000 (got {LayerTieWeight}).";
        if (Patience < 0) return "Patience must not be negative.";
        if (PreviewSize < 0 || PreviewEvery < 1) return "Preview size must be >= 0 and preview interval >= 1.";
        return null;
    }
}
