using PromptFaces.Generation.Clip;
using PromptFaces.Training.Faces;

namespace PromptFaces.Training.Clip;

/// <summary>
/// One CLIP training run. A resumed run takes everything that shapes the result (seed, batch, learning rate, vocabulary,
/// architecture, exclusions) from its checkpoint; only <see cref="Steps"/> and the reporting intervals may change, and
/// <see cref="Exclusions"/> given on resume are added to the saved ones.
/// </summary>
public sealed record ClipTrainingOptions
{
    public required string OutputFolder { get; init; }   // checkpoint/, model/ (the export), samples/, log.tsv
    public int Steps { get; init; } = 20_000;             // total optimiser steps; the schedule spans exactly these
    public int BatchSize { get; init; } = 256;            // pairs per step; more pairs, more (and harder) negatives
    public int VocabSize { get; init; } = 1024;           // largest BPE vocabulary, special tokens included
    public int BpeCorpusSize { get; init; } = 100_000;    // captions the vocabulary is learned from
    public ulong Seed { get; init; } = 1;                 // decides the initial weights, faces, captions and views
    public string? DataPath { get; init; }                // a FaceDataset file; null renders faces on the fly
    public ExclusionList Exclusions { get; init; } = ExclusionList.Empty;
    public double LearningRate { get; init; } = 1e-3;     // peak, reached after the warm-up
    public int WarmupSteps { get; init; } = 500;          // linear warm-up from zero
    public double MinLearningRateFraction { get; init; } = 0.05; // the cosine decays to this fraction of the peak
    public double WeightDecay { get; init; } = 0.1;       // AdamW's decoupled decay, on weight matrices only
    public double MaxLogitScale { get; init; } = 100;     // CLIP clamps exp(logit_scale) here so logits cannot explode
    public bool SoftTargets { get; init; } = true;        // count captions true of other images as positives
    public double TwinShare { get; init; }                // share of each batch in counterfactual twin pairs (CounterfactualTwins); 0: none
    public IReadOnlyDictionary<string, double>? TwinFocus { get; init; } // relative odds of each attribute being the one a twin changes; null: all alike
    public string? StartFrom { get; init; }               // an exported CLIP model folder whose weights and vocabulary a new run starts from (a fine-tune)
    public ClipAugmentation Augmentation { get; init; } = new();
    public Func<int, ClipConfig> Architecture { get; init; } = SmallClip.Config;  // vocabulary size → configuration
    public int CheckpointEvery { get; init; } = 250;      // steps between checkpoints (and exports of model/)
    public int GridEvery { get; init; } = 500;            // steps between evaluations and probe grids; 0 only at the end
    public int EvalImages { get; init; } = 512;           // held-out renders for zero-shot accuracy and grids
    public bool Resume { get; init; }

    /// <summary>
    /// Reads <c>--twin-focus</c>: comma-separated <c>attribute=weight</c> pairs, the others keeping weight 1; null or
    /// empty gives null (every attribute alike).
    /// </summary>
    public static IReadOnlyDictionary<string, double>? ParseTwinFocus(string? spec)
    {
        if (string.IsNullOrWhiteSpace(spec)) return null;
        var focus = new Dictionary<string, double>(StringComparer.Ordinal);
        foreach (var part in spec.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var pieces = part.Split('=', StringSplitOptions.TrimEntries);
            if (pieces.Length != 2 || !double.TryParse(pieces[1], System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out var weight))
                throw new FormatException($"--twin-focus: '{part}' is not attribute=weight (for example expression=4,facial_hair=2).");
            focus[pieces[0].ToLowerInvariant()] = weight;
        }
        return focus;
    }

    /// <summary>The first problem with these options, or null.</summary>
    public string? Validate()
    {
        if (string.IsNullOrWhiteSpace(OutputFolder)) return "the output folder is empty";
        if (Steps < 1) return $"--steps is {Steps}; it must be at least 1";
        if (BatchSize < 2) return $"--batch is {BatchSize}; a contrastive batch needs at least 2 pairs";
        if (VocabSize < 514) return $"--vocab-size is {VocabSize}; it must be at least 514 (the 512 byte symbols and 2 special tokens)";
        if (!(TwinShare >= 0 && TwinShare <= 1)) return $"--twins is {TwinShare}; it must be between 0 and 1 (the share of each batch in twin pairs)";
        if (TwinFocus is not null)
        {
            foreach (var (name, weight) in TwinFocus)
            {
                if (!FaceAttributes.Schema.Any(a => a.Name == name))
                    return $"--twin-focus names '{name}', which is no attribute; use {string.Join(", ", FaceAttributes.Schema.Select(a => a.Name))}";
                if (!(weight >= 0 && weight <= 1000)) return $"--twin-focus gives {name} the weight {weight}; weights must be between 0 and 1000";
            }
            if (!FaceAttributes.Schema.Any(a => (TwinFocus.TryGetValue(a.Name, out var w) ? w : 1) > 0 && a.Name != "facial_hair"))
                return "--twin-focus gives the weight 0 to every attribute but facial_hair, which only men's faces can change; give at least one other attribute a positive weight";
        }
        if (StartFrom is not null && !File.Exists(Path.Combine(StartFrom, "model.safetensors")))
            return $"--from {StartFrom} is not an exported CLIP model folder (it has no model.safetensors); give a folder that 'train clip' wrote as model/, or the shipped models/clip";
        if (!(LearningRate > 0)) return $"the learning rate is {LearningRate}; it must be positive";
        if (CheckpointEvery < 1) return $"the checkpoint interval is {CheckpointEvery}; it must be at least 1";
        if (GridEvery < 0) return $"--grid-every is {GridEvery}; it must be 0 (only at the end) or more";
        if (EvalImages < 8) return $"the evaluation pool is {EvalImages} images; use at least 8";
        if (DataPath is not null && !File.Exists(DataPath) && !Directory.Exists(DataPath)) return $"--data {DataPath} does not exist";
        return null;
    }
}
