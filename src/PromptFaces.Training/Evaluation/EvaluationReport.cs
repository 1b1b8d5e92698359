using System.Text.Json;
using System.Text.Json.Serialization;
using PromptFaces.Generation.Optimisation;

namespace PromptFaces.Training.Evaluation;

// The figures of one `promptfaces eval` run, as plain records so they serialise to JSON one to one (snake_case).
// Accuracies are fractions in [0, 1]; per-attribute dictionaries are keyed by schema name, in schema order.

/// <summary>The whole evaluation: the judge's trustworthiness, prompt accuracy, realism and diversity.</summary>
public sealed record EvaluationReport(
    EvaluatedModels Models,
    JudgeFigures Judge,
    PromptFigures Prompts,
    RealismFigures? Realism,
    DiversityFigures? Diversity,
    double Seconds)
{
    public static JsonSerializerOptions JsonOptions { get; } = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    };

    /// <summary>One line of JSON.</summary>
    public string ToJson() => JsonSerializer.Serialize(this, JsonOptions);
}

/// <summary>What was evaluated, so a figure is never read without the models behind it.</summary>
/// <remarks>The judge reads faces in the style of the renderer version it was trained on; <see cref="JudgeMatchesRenderer"/>
/// is false when the renderer has changed since, and the judge should be retrained before its figures are trusted.</remarks>
public sealed record EvaluatedModels(string Generator, int GeneratorResolution, string Clip, string Judge, int JudgeRendererVersion,
    int RendererVersion, string Device, int CpuThreads)
{
    public bool JudgeMatchesRenderer => JudgeRendererVersion == RendererVersion;
}

/// <summary>The judge's accuracy on fresh renders it never trained on; the goal is 95% or more for every attribute.</summary>
public sealed record JudgeFigures(
    int HeldOutFaces,
    IReadOnlyDictionary<string, double> Accuracy,
    IReadOnlyDictionary<string, double> AccuracyBlurred,  // after a Gaussian blur of BlurSigma pixels: how it reads soft faces
    double BlurSigma,
    double MinAccuracy,
    double Goal,
    bool MeetsGoal);

/// <summary>Accuracy of one attribute over every prompt that states it.</summary>
public sealed record AttributeAccuracy(int Checks, double Baseline, double Optimised);

/// <summary>One prompt's results over its seeds.</summary>
public sealed record PromptResult(
    string Text,
    IReadOnlyDictionary<string, string> Stated,
    IReadOnlyList<long> Seeds,
    double Baseline,                                       // share of stated attributes the judge finds on the starting faces
    double Optimised,                                      // ... on the optimised faces
    IReadOnlyList<IReadOnlyDictionary<string, string>> JudgedStart,   // per seed: the judge's reading of the stated attributes
    IReadOnlyList<IReadOnlyDictionary<string, string>> JudgedFinal,
    double SimilarityStart,                                // mean CLIP similarity over seeds
    double SimilarityEnd);

/// <summary>
/// Prompt accuracy: for every prompt and seed, the judge checks each stated attribute on the starting face (the
/// baseline: what a random face gets right by chance) and on the optimised face. The goal is 80% or more.
/// </summary>
public sealed record PromptFigures(
    int PromptCount,
    int SeedsPerPrompt,
    int Steps,
    int Jobs,
    int AttributeChecks,
    double BaselineAccuracy,
    double OptimisedAccuracy,
    double BaselineAllStated,                              // share of jobs whose face has every stated attribute
    double OptimisedAllStated,
    IReadOnlyDictionary<string, AttributeAccuracy> PerAttribute,
    IReadOnlyDictionary<int, AttributeAccuracy> ByStatedCount,   // 1, 2 or 3 stated attributes
    double MeanSimilarityStart,
    double MeanSimilarityEnd,
    double SecondsPerEngineStep,
    int BatchSize,
    double Goal,
    bool MeetsGoal,
    IReadOnlyList<PromptResult> PerPrompt)
{
    /// <summary>The same checks read by CLIP's zero-shot classification instead of the judge.</summary>
    public ClipReadingFigures? ClipReading { get; init; }

    /// <summary>The optimisation every job ran.</summary>
    public OptimisationUsed? Optimisation { get; init; }

    /// <summary>The index of each prompt's first seed: 0 for the evaluation's own seeds, higher for seeds set aside to tune on.</summary>
    public int FirstSeed { get; init; }
}

/// <summary>The settings of the evaluated optimisation, so an accuracy is never read without the settings behind it.</summary>
public sealed record OptimisationUsed(string Space, double LearningRate, int Cutouts, double CutoutScale, double WholeViewWeight, double CutoutNoise,
    double CutoutBlur, double TruncationPsi, int Starts, double RangePrior, double LayerTie, double Pull)
{
    public static OptimisationUsed From(OptimisationSettings s) => new(
        LatentSpaceNames.Name(s.Space),
        s.LearningRate, s.Cutouts, s.CutoutMinScale, s.WholeViewWeight, s.CutoutNoise, s.CutoutBlur, s.TruncationPsi, s.Starts,
        s.RangePriorWeight, s.LayerTieWeight, s.LatentPullWeight);
}

/// <summary>
/// The stated attributes read by CLIP itself: each face is scored against one caption per class of the attribute
/// (<c>ZeroShotEvaluator.Prompts</c>) and the best caption is CLIP's reading. It separates the two ways a prompt can
/// fail: CLIP not yet seeing the attribute (the optimiser fell short), or CLIP seeing it where the judge does not (CLIP
/// was satisfied by something else: its blind spots, or pixels that fool it).
/// </summary>
public sealed record ClipReadingFigures(
    double BaselineAccuracy,                               // share of checks where CLIP reads the stated class on the starting face
    double OptimisedAccuracy,                              // ... on the optimised face
    double OptimisedAgreementWithJudge,                    // share of checks on optimised faces where CLIP and the judge read the same class
    double OptimisedClipOnly,                              // share of checks on optimised faces that CLIP reads as stated and the judge does not
    IReadOnlyDictionary<string, AttributeAccuracy> PerAttribute);

/// <summary>
/// Fréchet distances in the judge's feature space against renders: the generator's samples, next to a trivial
/// baseline (heavily blurred renders) and the floor (renders against other renders; sampling noise alone). Also the
/// faces the evaluated jobs started from and ended with, against the same renders: how far the optimisation takes
/// its faces from what a face looks like (both sets have the jobs' count, so the two distances compare).
/// </summary>
public sealed record RealismFigures(
    int Samples,
    double GeneratorPsi1,
    double GeneratorPsi07,
    double BlurredRenders,
    double BlurSigma,
    double RenderFloor,
    double BaselineOverGenerator,                          // BlurredRenders / GeneratorPsi1: above 1 means the generator is closer
    bool GeneratorFarCloser,                               // the generator's distance is under a quarter of the baseline's
    int JobFaces = 0,                                      // jobs whose faces were measured; 0 when none were given
    double? StartingFaces = null,                          // the jobs' starting faces against the renders
    double? OptimisedFaces = null,                         // the jobs' optimised faces against the renders
    TiedAttributeFigures? TiedAttributes = null);          // how often the psi-1 samples show what their z is tied to (latent-tied generators only)

/// <summary>
/// For a generator trained with the latent tie (<c>train stylegan</c>'s reconstruction objective): the share of its
/// random samples (psi 1, the realism samples) in which the judge reads each attribute as the class their z is tied to.
/// It measures the generator's drawing apart from CLIP and the optimiser: an attribute it seldom draws as tied is one
/// the optimiser can seldom reach either.
/// </summary>
/// <remarks><see cref="MostCommon"/> is the share of the samples tied to each attribute's most common class: what a
/// generator that always drew that class would score, the level an agreement must beat to mean anything.</remarks>
public sealed record TiedAttributeFigures(int Samples, IReadOnlyDictionary<string, double> Agreement, double Mean,
    IReadOnlyDictionary<string, double> MostCommon);

/// <summary>
/// How different the faces of different seeds for the same prompt are: mean pairwise L2 distance of judge features and
/// mean absolute pixel difference (pixels in [0, 1]), for the optimised faces, their starting faces and, as a
/// reference, pairs of unrelated renders.
/// </summary>
public sealed record DiversityFigures(
    int Pairs,
    double FeatureDistanceOptimised,
    double FeatureDistanceStart,
    double FeatureDistanceRenders,
    double PixelDifferenceOptimised,
    double PixelDifferenceStart,
    double PixelDifferenceRenders,
    int ReferencePairs);
