using System.Text.Json.Nodes;

namespace PromptFaces.Generation.Clip;

/// <summary>
/// Hugging Face's <c>CLIPTextConfig</c>: the fields that decide the text tower's shapes and arithmetic. Defaults are
/// Hugging Face's, so a <c>config.json</c> that omits a key (real openai/clip-vit-base-patch32 files do) means the same
/// here as there.
/// </summary>
public sealed record ClipTextConfig
{
    public int VocabSize { get; init; } = 49408;             // token embedding rows
    public int HiddenSize { get; init; } = 512;              // width of the residual stream
    public int IntermediateSize { get; init; } = 2048;       // width of the MLP's hidden layer
    public int NumHiddenLayers { get; init; } = 12;          // encoder layers
    public int NumAttentionHeads { get; init; } = 8;         // must divide hidden_size
    public int MaxPositionEmbeddings { get; init; } = 77;    // context length: the longest token sequence accepted
    public string HiddenAct { get; init; } = "quick_gelu";   // MLP activation, see ClipActivation
    public double LayerNormEps { get; init; } = 1e-5;
    public int EosTokenId { get; init; } = 49407;            // recorded only: pooling takes the largest id, as OpenAI's CLIP does

    public int HeadDim => HiddenSize / NumAttentionHeads;
}

/// <summary>Hugging Face's <c>CLIPVisionConfig</c>: the fields that decide the ViT image tower's shapes.</summary>
public sealed record ClipVisionConfig
{
    public int HiddenSize { get; init; } = 768;              // width of the residual stream
    public int IntermediateSize { get; init; } = 3072;       // width of the MLP's hidden layer
    public int NumHiddenLayers { get; init; } = 12;          // encoder layers
    public int NumAttentionHeads { get; init; } = 12;        // must divide hidden_size
    public int NumChannels { get; init; } = 3;               // input image channels (RGB)
    public int ImageSize { get; init; } = 224;               // the model accepts exactly image_size x image_size
    public int PatchSize { get; init; } = 32;                // side of a square patch; also the patch conv's stride
    public string HiddenAct { get; init; } = "quick_gelu";   // MLP activation, see ClipActivation
    public double LayerNormEps { get; init; } = 1e-5;

    public int HeadDim => HiddenSize / NumAttentionHeads;
    public int NumPatches => (ImageSize / PatchSize) * (ImageSize / PatchSize);
    public int NumPositions => NumPatches + 1;               // the patches and the class token
}

/// <summary>
/// Hugging Face's <c>CLIPConfig</c>: two towers and the shared embedding space they are projected into. Read from a
/// model folder's <c>config.json</c> with <see cref="Load"/>, or take a preset that matches OpenAI's released models.
/// </summary>
public sealed record ClipConfig
{
    public int ProjectionDim { get; init; } = 512;           // size of the shared text/image embedding
    public double LogitScaleInitValue { get; init; } = 2.6592; // log(1/0.07): logit_scale's initial value before loading
    public ClipTextConfig TextConfig { get; init; } = new();
    public ClipVisionConfig VisionConfig { get; init; } = new();

    /// <summary>openai/clip-vit-base-patch32 (Hugging Face's defaults).</summary>
    public static readonly ClipConfig VitB32 = new();

    /// <summary>openai/clip-vit-large-patch14.</summary>
    public static readonly ClipConfig VitL14 = new()
    {
        ProjectionDim = 768,
        TextConfig = new() { HiddenSize = 768, IntermediateSize = 3072, NumHiddenLayers = 12, NumAttentionHeads = 12 },
        VisionConfig = new() { HiddenSize = 1024, IntermediateSize = 4096, NumHiddenLayers = 24, NumAttentionHeads = 16, PatchSize = 14 },
    };

    /// <summary>Reads a Hugging Face CLIP <c>config.json</c>; every fault names the file and the key.</summary>
    public static ClipConfig Load(string configPath)
    {
        string text;
        try { text = File.ReadAllText(configPath); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new InvalidDataException($"{configPath}: cannot read the CLIP configuration ({e.Message}). A Hugging Face CLIP model folder holds config.json next to model.safetensors.", e);
        }
        return Parse(text, configPath);
    }

    /// <summary>Parses the JSON of a Hugging Face CLIP config; <paramref name="source"/> names where it came from in errors.</summary>
    public static ClipConfig Parse(string json, string source)
    {
        JsonNode? root;
        try { root = JsonNode.Parse(json); }
        catch (System.Text.Json.JsonException e)
        {
            throw new InvalidDataException($"{source}: not valid JSON ({e.Message}); restore the config.json that came with the model.", e);
        }
        if (root is not JsonObject top)
            throw new InvalidDataException($"{source}: expected a JSON object (a Hugging Face CLIPConfig), found {root?.ToJsonString() ?? "null"}.");
        var reader = new ConfigReader(source);

        // Some older files carry text_config_dict / vision_config_dict; Hugging Face lets them override the plain ones.
        var text = reader.Section(top, "text_config", "text_config_dict");
        var vision = reader.Section(top, "vision_config", "vision_config_dict");
        var d = new ClipConfig();
        var config = new ClipConfig
        {
            ProjectionDim = reader.Int(top, "", "projection_dim", d.ProjectionDim),
            LogitScaleInitValue = reader.Double(top, "", "logit_scale_init_value", d.LogitScaleInitValue),
            TextConfig = new ClipTextConfig
            {
                VocabSize = reader.Int(text, "text_config.", "vocab_size", d.TextConfig.VocabSize),
                HiddenSize = reader.Int(text, "text_config.", "hidden_size", d.TextConfig.HiddenSize),
                IntermediateSize = reader.Int(text, "text_config.", "intermediate_size", d.TextConfig.IntermediateSize),
                NumHiddenLayers = reader.Int(text, "text_config.", "num_hidden_layers", d.TextConfig.NumHiddenLayers),
                NumAttentionHeads = reader.Int(text, "text_config.", "num_attention_heads", d.TextConfig.NumAttentionHeads),
                MaxPositionEmbeddings = reader.Int(text, "text_config.", "max_position_embeddings", d.TextConfig.MaxPositionEmbeddings),
                HiddenAct = reader.String(text, "text_config.", "hidden_act", d.TextConfig.HiddenAct),
                LayerNormEps = reader.Double(text, "text_config.", "layer_norm_eps", d.TextConfig.LayerNormEps),
                EosTokenId = reader.Int(text, "text_config.", "eos_token_id", d.TextConfig.EosTokenId),
            },
            VisionConfig = new ClipVisionConfig
            {
                HiddenSize = reader.Int(vision, "vision_config.", "hidden_size", d.VisionConfig.HiddenSize),
                IntermediateSize = reader.Int(vision, "vision_config.", "intermediate_size", d.VisionConfig.IntermediateSize),
                NumHiddenLayers = reader.Int(vision, "vision_config.", "num_hidden_layers", d.VisionConfig.NumHiddenLayers),
                NumAttentionHeads = reader.Int(vision, "vision_config.", "num_attention_heads", d.VisionConfig.NumAttentionHeads),
                NumChannels = reader.Int(vision, "vision_config.", "num_channels", d.VisionConfig.NumChannels),
                ImageSize = reader.Int(vision, "vision_config.", "image_size", d.VisionConfig.ImageSize),
                PatchSize = reader.Int(vision, "vision_config.", "patch_size", d.VisionConfig.PatchSize),
                HiddenAct = reader.String(vision, "vision_config.", "hidden_act", d.VisionConfig.HiddenAct),
                LayerNormEps = reader.Double(vision, "vision_config.", "layer_norm_eps", d.VisionConfig.LayerNormEps),
            },
        };
        config.Validate(source);
        return config;
    }

    /// <summary>
    /// This configuration as a Hugging Face <c>config.json</c> that <see cref="Parse"/> reads back to an equal record:
    /// every field is written, so a folder exported by the project's own trainer does not depend on defaults.
    /// </summary>
    public string ToJson()
    {
        var t = TextConfig;
        var v = VisionConfig;
        var root = new JsonObject
        {
            ["architectures"] = new JsonArray("CLIPModel"),
            ["model_type"] = "clip",
            ["projection_dim"] = ProjectionDim,
            ["logit_scale_init_value"] = LogitScaleInitValue,
            ["text_config"] = new JsonObject
            {
                ["model_type"] = "clip_text_model",
                ["vocab_size"] = t.VocabSize,
                ["hidden_size"] = t.HiddenSize,
                ["intermediate_size"] = t.IntermediateSize,
                ["num_hidden_layers"] = t.NumHiddenLayers,
                ["num_attention_heads"] = t.NumAttentionHeads,
                ["max_position_embeddings"] = t.MaxPositionEmbeddings,
                ["hidden_act"] = t.HiddenAct,
                ["layer_norm_eps"] = t.LayerNormEps,
                ["eos_token_id"] = t.EosTokenId,
            },
            ["vision_config"] = new JsonObject
            {
                ["model_type"] = "clip_vision_model",
                ["hidden_size"] = v.HiddenSize,
                ["intermediate_size"] = v.IntermediateSize,
                ["num_hidden_layers"] = v.NumHiddenLayers,
                ["num_attention_heads"] = v.NumAttentionHeads,
                ["num_channels"] = v.NumChannels,
                ["image_size"] = v.ImageSize,
                ["patch_size"] = v.PatchSize,
                ["hidden_act"] = v.HiddenAct,
                ["layer_norm_eps"] = v.LayerNormEps,
            },
        };
        return root.ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true });
    }

    /// <summary>Checks that the values describe a buildable model and explains the first problem found.</summary>
    public void Validate(string source)
    {
        void Fail(string key, string why) =>
            throw new InvalidDataException($"{source}: '{key}' {why} Fix the config.json or use the config.json that came with the checkpoint.");
        void Positive(string key, long value)
        {
            if (value <= 0) Fail(key, $"is {value}; it must be positive.");
        }

        Positive("projection_dim", ProjectionDim);
        var t = TextConfig;
        Positive("text_config.vocab_size", t.VocabSize);
        Positive("text_config.hidden_size", t.HiddenSize);
        Positive("text_config.intermediate_size", t.IntermediateSize);
        Positive("text_config.num_hidden_layers", t.NumHiddenLayers);
        Positive("text_config.num_attention_heads", t.NumAttentionHeads);
        Positive("text_config.max_position_embeddings", t.MaxPositionEmbeddings);
        if (t.HiddenSize % t.NumAttentionHeads != 0)
            Fail("text_config.num_attention_heads", $"is {t.NumAttentionHeads}, which does not divide text_config.hidden_size {t.HiddenSize}.");
        if (!ClipActivation.IsKnown(t.HiddenAct))
            Fail("text_config.hidden_act", $"is '{t.HiddenAct}', which is not supported; known: {string.Join(", ", ClipActivation.Known)}.");
        if (!(t.LayerNormEps > 0)) Fail("text_config.layer_norm_eps", $"is {t.LayerNormEps}; it must be positive.");

        var v = VisionConfig;
        Positive("vision_config.hidden_size", v.HiddenSize);
        Positive("vision_config.intermediate_size", v.IntermediateSize);
        Positive("vision_config.num_hidden_layers", v.NumHiddenLayers);
        Positive("vision_config.num_attention_heads", v.NumAttentionHeads);
        Positive("vision_config.num_channels", v.NumChannels);
        Positive("vision_config.image_size", v.ImageSize);
        Positive("vision_config.patch_size", v.PatchSize);
        if (v.HiddenSize % v.NumAttentionHeads != 0)
            Fail("vision_config.num_attention_heads", $"is {v.NumAttentionHeads}, which does not divide vision_config.hidden_size {v.HiddenSize}.");
        if (v.PatchSize > v.ImageSize)
            Fail("vision_config.patch_size", $"is {v.PatchSize}, larger than vision_config.image_size {v.ImageSize}.");
        if (!ClipActivation.IsKnown(v.HiddenAct))
            Fail("vision_config.hidden_act", $"is '{v.HiddenAct}', which is not supported; known: {string.Join(", ", ClipActivation.Known)}.");
        if (!(v.LayerNormEps > 0)) Fail("vision_config.layer_norm_eps", $"is {v.LayerNormEps}; it must be positive.");
    }

    /// <summary>Typed reads from the JSON tree; a missing or null key takes the default, a wrong type is an error.</summary>
    private sealed class ConfigReader(string source)
    {
        public JsonObject Section(JsonObject top, string key, string overrideKey)
        {
            var merged = new JsonObject();
            foreach (var k in new[] { key, overrideKey })
            {
                switch (top[k])
                {
                    case null: break;
                    case JsonObject o:
                        foreach (var (name, value) in o) merged[name] = value?.DeepClone();
                        break;
                    case var other:
                        throw new InvalidDataException($"{source}: '{k}' must be a JSON object, found {other.ToJsonString()}.");
                }
            }
            return merged;
        }

        public int Int(JsonObject o, string prefix, string key, int fallback)
        {
            if (o[key] is not JsonNode n) return fallback;
            if (n is JsonValue v && v.TryGetValue(out double d) && d == Math.Floor(d) && d >= int.MinValue && d <= int.MaxValue)
                return (int)d;
            throw Bad(prefix + key, "an integer", n);
        }

        public double Double(JsonObject o, string prefix, string key, double fallback)
        {
            if (o[key] is not JsonNode n) return fallback;
            if (n is JsonValue v && v.TryGetValue(out double d)) return d;
            throw Bad(prefix + key, "a number", n);
        }

        public string String(JsonObject o, string prefix, string key, string fallback)
        {
            if (o[key] is not JsonNode n) return fallback;
            if (n is JsonValue v && v.TryGetValue(out string? s)) return s;
            throw Bad(prefix + key, "a string", n);
        }

        private InvalidDataException Bad(string key, string what, JsonNode found) =>
            new($"{source}: '{key}' must be {what}, found {found.ToJsonString()}. Fix the config.json or use the one that came with the checkpoint.");
    }
}
