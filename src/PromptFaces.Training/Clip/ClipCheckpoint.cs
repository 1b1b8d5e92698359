using System.Text.Json;
using System.Text.Json.Nodes;
using PromptFaces.Generation.Checkpoints;
using PromptFaces.Generation.Clip;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace PromptFaces.Training.Clip;

/// <summary>
/// A CLIP training run's resumable state in one folder: <c>model.safetensors</c> (weights), <c>optimizer.bin</c>
/// (AdamW's moments and step counts, TorchSharp's format), <c>vocab.json</c>/<c>merges.txt</c>, <c>excluded.txt</c>
/// and <c>state.json</c> (step, seed and every setting that shapes the result). The random state is the seed plus the
/// step: each step draws from a generator seeded by both, so no generator needs saving.
/// </summary>
/// <remarks>
/// Written to a sibling <c>.tmp</c> folder and swapped in by renames, so an interrupted save leaves the previous
/// checkpoint intact (as <c>checkpoint</c>, or as <c>checkpoint.old</c> in the instant between the two renames).
/// </remarks>
internal static class ClipCheckpoint
{
    public const int FormatVersion = 1;

    public sealed record State(
        int Step,
        double TrainingSeconds,
        double CpuSeconds,
        long Redrawn,
        ClipTrainingOptions Options,
        ClipConfig Config);

    public static string FolderOf(string outputFolder) => Path.Combine(outputFolder, "checkpoint");

    /// <summary>The folder holding the latest complete checkpoint, or null when there is none.</summary>
    public static string? Find(string outputFolder)
    {
        var folder = FolderOf(outputFolder);
        if (File.Exists(Path.Combine(folder, "state.json"))) return folder;
        var old = folder + ".old";
        return File.Exists(Path.Combine(old, "state.json")) ? old : null;
    }

    public static void Save(string outputFolder, State state, ClipModel model, OptimizerHelper optimizer, BpeVocabulary vocabulary)
    {
        var folder = FolderOf(outputFolder);
        var tmp = folder + ".tmp";
        if (Directory.Exists(tmp)) Directory.Delete(tmp, recursive: true);
        Directory.CreateDirectory(tmp);
        SafeTensorsFile.Write(Path.Combine(tmp, "model.safetensors"), StrictStateDict.ToRaw(model));
        optimizer.save_state_dict(Path.Combine(tmp, "optimizer.bin"));
        vocabulary.Write(tmp);
        File.WriteAllLines(Path.Combine(tmp, "excluded.txt"), state.Options.Exclusions.Sentences);
        File.WriteAllText(Path.Combine(tmp, "state.json"), ToJson(state).ToJsonString(new JsonSerializerOptions { WriteIndented = true }));

        var old = folder + ".old";
        if (Directory.Exists(old)) Directory.Delete(old, recursive: true);
        if (Directory.Exists(folder)) Directory.Move(folder, old);
        Directory.Move(tmp, folder);
        if (Directory.Exists(old)) Directory.Delete(old, recursive: true);
    }

    /// <summary>Reads a checkpoint's state; <paramref name="outputFolder"/> becomes the options' output folder.</summary>
    public static State ReadState(string folder, string outputFolder)
    {
        var path = Path.Combine(folder, "state.json");
        JsonObject o;
        try { o = JsonNode.Parse(File.ReadAllText(path))!.AsObject(); }
        catch (Exception e) when (e is JsonException or InvalidOperationException or NullReferenceException)
        {
            throw new InvalidDataException($"{path}: not a readable CLIP training state ({e.Message}). The checkpoint is damaged; start a new run in another folder.", e);
        }
        int version = o["format_version"]?.GetValue<int>() ?? 0;
        if (version != FormatVersion)
            throw new InvalidDataException($"{path}: checkpoint format {version}, this build reads format {FormatVersion}. Resume with the build that wrote it, or start a new run.");
        var config = ClipConfig.Parse(o["config"]!.ToJsonString(), path + " (config)");
        var exclusions = new ExclusionList(File.ReadAllLines(Path.Combine(folder, "excluded.txt")));
        var a = o["augmentation"]!.AsObject();
        var options = new ClipTrainingOptions
        {
            OutputFolder = outputFolder,
            Steps = o["steps"]!.GetValue<int>(),
            BatchSize = o["batch_size"]!.GetValue<int>(),
            VocabSize = o["vocab_size"]!.GetValue<int>(),
            BpeCorpusSize = o["bpe_corpus_size"]!.GetValue<int>(),
            Seed = o["seed"]!.GetValue<ulong>(),
            DataPath = o["data"]?.GetValue<string>(),
            Exclusions = exclusions,
            LearningRate = o["learning_rate"]!.GetValue<double>(),
            WarmupSteps = o["warmup_steps"]!.GetValue<int>(),
            MinLearningRateFraction = o["min_learning_rate_fraction"]!.GetValue<double>(),
            WeightDecay = o["weight_decay"]!.GetValue<double>(),
            MaxLogitScale = o["max_logit_scale"]!.GetValue<double>(),
            SoftTargets = o["soft_targets"]!.GetValue<bool>(),
            TwinShare = o["twin_share"]?.GetValue<double>() ?? 0,          // absent in runs from before twins existed
            TwinFocus = o["twin_focus"] is JsonObject focus ? focus.ToDictionary(kv => kv.Key, kv => kv.Value!.GetValue<double>()) : null,
            StartFrom = o["start_from"]?.GetValue<string>(),
            Augmentation = new ClipAugmentation
            {
                MinScale = a["min_scale"]!.GetValue<double>(),
                WholeImage = a["whole_image"]!.GetValue<double>(),
                FlipProbability = a["flip_probability"]!.GetValue<double>(),
                BlurProbability = a["blur_probability"]!.GetValue<double>(),
                MaxNoise = a["max_noise"]!.GetValue<double>(),
                MaxBrightness = a["max_brightness"]!.GetValue<double>(),
                MaxContrast = a["max_contrast"]!.GetValue<double>(),
            },
            Architecture = _ => config,
            CheckpointEvery = o["checkpoint_every"]!.GetValue<int>(),
            GridEvery = o["grid_every"]!.GetValue<int>(),
            EvalImages = o["eval_images"]!.GetValue<int>(),
            Resume = true,
        };
        return new State(o["step"]!.GetValue<int>(), o["training_seconds"]!.GetValue<double>(),
            o["cpu_seconds"]?.GetValue<double>() ?? 0, o["redrawn"]!.GetValue<long>(), options, config);
    }

    /// <summary>Loads weights and optimiser state saved by <see cref="Save"/> into a model and optimiser built from the same state.</summary>
    public static void LoadInto(string folder, ClipModel model, OptimizerHelper optimizer)
    {
        var weights = Path.Combine(folder, "model.safetensors");
        StrictStateDict.Load(model, SafeTensorsFile.Read(weights).Tensors, weights);
        optimizer.load_state_dict(Path.Combine(folder, "optimizer.bin"));
    }

    public static JsonObject ToJson(State s)
    {
        var o = s.Options;
        var a = o.Augmentation;
        return new JsonObject
        {
            ["format_version"] = FormatVersion,
            ["step"] = s.Step,
            ["training_seconds"] = s.TrainingSeconds,
            ["cpu_seconds"] = s.CpuSeconds,
            ["redrawn"] = s.Redrawn,
            ["steps"] = o.Steps,
            ["batch_size"] = o.BatchSize,
            ["vocab_size"] = o.VocabSize,
            ["bpe_corpus_size"] = o.BpeCorpusSize,
            ["seed"] = o.Seed,
            ["data"] = o.DataPath is null ? null : Path.GetFullPath(o.DataPath),
            ["learning_rate"] = o.LearningRate,
            ["warmup_steps"] = o.WarmupSteps,
            ["min_learning_rate_fraction"] = o.MinLearningRateFraction,
            ["weight_decay"] = o.WeightDecay,
            ["max_logit_scale"] = o.MaxLogitScale,
            ["soft_targets"] = o.SoftTargets,
            ["twin_share"] = o.TwinShare,
            ["twin_focus"] = o.TwinFocus is null ? null : new JsonObject(o.TwinFocus.Select(kv => KeyValuePair.Create(kv.Key, (JsonNode?)kv.Value))),
            ["start_from"] = o.StartFrom is null ? null : Path.GetFullPath(o.StartFrom),
            ["augmentation"] = new JsonObject
            {
                ["min_scale"] = a.MinScale,
                ["whole_image"] = a.WholeImage,
                ["flip_probability"] = a.FlipProbability,
                ["blur_probability"] = a.BlurProbability,
                ["max_noise"] = a.MaxNoise,
                ["max_brightness"] = a.MaxBrightness,
                ["max_contrast"] = a.MaxContrast,
            },
            ["checkpoint_every"] = o.CheckpointEvery,
            ["grid_every"] = o.GridEvery,
            ["eval_images"] = o.EvalImages,
            ["excluded_sentences"] = o.Exclusions.Count,
            ["config"] = JsonNode.Parse(s.Config.ToJson()),
        };
    }
}

/// <summary>
/// Writes a trained CLIP as a Hugging Face model folder (<c>config.json</c>, <c>model.safetensors</c>,
/// <c>vocab.json</c>, <c>merges.txt</c>), which <see cref="ClipModel.FromFolder"/>, <see cref="ClipTokenizer.FromFolder"/>
/// and the engine's <c>FaceModels.Load</c> read, plus <c>training.json</c>: how it was trained, for the model card.
/// </summary>
public static class ClipExport
{
    public static void Write(string folder, ClipModel model, BpeVocabulary vocabulary, JsonObject? provenance = null)
    {
        var full = Path.GetFullPath(folder);
        var tmp = full + ".tmp";
        if (Directory.Exists(tmp)) Directory.Delete(tmp, recursive: true);
        Directory.CreateDirectory(tmp);
        File.WriteAllText(Path.Combine(tmp, "config.json"), model.Config.ToJson());
        SafeTensorsFile.Write(Path.Combine(tmp, "model.safetensors"), StrictStateDict.ToRaw(model),
            new Dictionary<string, string> { ["format"] = "pt" });
        vocabulary.Write(tmp);
        if (provenance is not null)
            File.WriteAllText(Path.Combine(tmp, "training.json"), provenance.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));

        // Swap in whole, so that a folder read while a long run exports is never half old, half new.
        var old = full + ".old";
        if (Directory.Exists(old)) Directory.Delete(old, recursive: true);
        if (Directory.Exists(full)) Directory.Move(full, old);
        Directory.Move(tmp, full);
        if (Directory.Exists(old)) Directory.Delete(old, recursive: true);
    }
}
