using System.CommandLine;
using PromptFaces.Generation.Checkpoints;
using PromptFaces.Generation.Clip;
using PromptFaces.Generation.StyleGan2;
using static TorchSharp.torch;

namespace PromptFaces.Cli.Commands;

/// <summary><c>promptfaces inspect PATH</c>: what a checkpoint is, its configuration, size and problems.</summary>
internal static class InspectCommand
{
    public static Command Create()
    {
        var path = new Argument<string>("path") { Description = "A generator checkpoint (.pkl, .safetensors) or a CLIP model folder." };
        var command = new Command("inspect", "Show a checkpoint's detected configuration, parameter count and problems.") { path };
        command.SetAction(r =>
        {
            var target = r.GetValue(path)!;
            return Directory.Exists(target) ? InspectClip(target) : InspectGenerator(target);
        });
        return command;
    }

    private static int InspectGenerator(string path)
    {
        var contents = StyleGan2Checkpoint.Read(path);
        using var model = new StyleGan2Generator(contents.Config, META);
        var problems = StrictStateDict.Check(model, contents.Tensors);
        Console.WriteLine($"{path}");
        Console.WriteLine($"  kind:        StyleGAN2 generator ({contents.Format})");
        Console.WriteLine($"  resolution:  {contents.Config.Resolution}x{contents.Config.Resolution}, {contents.Config.ImageChannels} channels");
        Console.WriteLine($"  latents:     z {contents.Config.ZDim}, w {contents.Config.WDim}, {contents.Config.NumWs} ws, mapping {contents.Config.MappingLayers} layers");
        Console.WriteLine($"  channels:    base {contents.Config.ChannelBase}, max {contents.Config.ChannelMax}, conv_clamp {contents.Config.ConvClamp?.ToString() ?? "none"}");
        Console.WriteLine($"  parameters:  {model.ParameterCount:N0} ({contents.Tensors.Count} tensors in the file)");
        foreach (var note in contents.Notes) Console.WriteLine($"  note:        {note}");
        return Report(problems);
    }

    private static int InspectClip(string folder)
    {
        var configPath = Path.Combine(folder, "config.json");
        var config = ClipConfig.Load(configPath);
        var weights = Path.Combine(folder, "model.safetensors");
        using var model = new ClipModel(config, META);
        Console.WriteLine($"{folder}");
        Console.WriteLine($"  kind:        CLIP (Hugging Face layout)");
        Console.WriteLine($"  text:        width {config.TextConfig.HiddenSize}, {config.TextConfig.NumHiddenLayers} layers, {config.TextConfig.NumAttentionHeads} heads, context {config.TextConfig.MaxPositionEmbeddings}, vocab {config.TextConfig.VocabSize}, {config.TextConfig.HiddenAct}");
        Console.WriteLine($"  vision:      {config.VisionConfig.ImageSize}px, patch {config.VisionConfig.PatchSize}, width {config.VisionConfig.HiddenSize}, {config.VisionConfig.NumHiddenLayers} layers, {config.VisionConfig.NumAttentionHeads} heads");
        Console.WriteLine($"  projection:  {config.ProjectionDim}");
        Console.WriteLine($"  parameters:  {model.parameters().Sum(p => p.numel()):N0}");
        var problems = new List<StrictStateDict.Problem>();
        if (!File.Exists(weights)) problems.Add(new("model.safetensors", $"{weights} does not exist"));
        else problems.AddRange(StrictStateDict.Check(model, SafeTensorsFile.Read(weights).Tensors, k => k.EndsWith(".position_ids", StringComparison.Ordinal)));
        foreach (var file in new[] { "vocab.json", "merges.txt" })
            if (!File.Exists(Path.Combine(folder, file))) problems.Add(new(file, $"{file} is missing: the tokenizer needs it"));
        if (problems.Count == 0)
        {
            var tokenizer = ClipTokenizer.FromFolder(folder, config.TextConfig.MaxPositionEmbeddings);
            Console.WriteLine($"  tokenizer:   {tokenizer.VocabSize:N0} tokens");
            if (tokenizer.VocabSize > config.TextConfig.VocabSize)
                problems.Add(new("vocab.json", $"the tokenizer has {tokenizer.VocabSize} tokens but the text model only {config.TextConfig.VocabSize}"));
        }
        return Report(problems);
    }

    private static int Report(List<StrictStateDict.Problem> problems)
    {
        if (problems.Count == 0)
        {
            Console.WriteLine("  problems:    none; it loads strictly");
            return 0;
        }
        Console.WriteLine($"  problems:    {problems.Count}");
        foreach (var p in problems.Take(50)) Console.WriteLine($"    - {p.Message}");
        if (problems.Count > 50) Console.WriteLine($"    - and {problems.Count - 50} more");
        return 1;
    }
}
