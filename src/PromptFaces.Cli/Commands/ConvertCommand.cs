using System.CommandLine;
using PromptFaces.Generation.Checkpoints;
using PromptFaces.Generation.StyleGan2;
using static TorchSharp.torch;

namespace PromptFaces.Cli.Commands;

/// <summary><c>promptfaces convert IN OUT.safetensors</c>: any loadable generator checkpoint to safetensors.</summary>
internal static class ConvertCommand
{
    public static Command Create()
    {
        var input = new Argument<string>("input") { Description = "A generator checkpoint: NVIDIA .pkl (G_ema is taken) or .safetensors." };
        var output = new Argument<string>("output") { Description = "The .safetensors file to write (its configuration goes into the metadata)." };
        var command = new Command("convert", "Write a loadable generator checkpoint as safetensors.") { input, output };
        command.SetAction(r =>
        {
            var inPath = r.GetValue(input)!;
            var outPath = r.GetValue(output)!;
            if (!outPath.EndsWith(".safetensors", StringComparison.OrdinalIgnoreCase))
                throw new CliException($"The output '{outPath}' should end in .safetensors.");
            var contents = StyleGan2Checkpoint.Read(inPath);
            using (var shape = new StyleGan2Generator(contents.Config, META))
            {
                // Refuse to write a file that would not load: the same strict check as loading.
                var problems = StrictStateDict.Check(shape, contents.Tensors);
                if (problems.Count > 0)
                    throw new CheckpointException(inPath, $"does not fit its own configuration, so it is not converted: {string.Join("; ", problems.Take(8).Select(p => p.Message))}");
                var order = shape.state_dict().Keys.ToList();
                StyleGan2Checkpoint.Save(order.Select(k => new KeyValuePair<string, RawTensor>(k, contents.Tensors[k])), contents.Config, outPath,
                    new Dictionary<string, string> { ["converted_from"] = Path.GetFileName(inPath) });
            }
            Console.WriteLine($"{outPath}: {contents.Config.Resolution}x{contents.Config.Resolution} StyleGAN2 generator from {contents.Format}, {contents.Tensors.Count} tensors.");
            return 0;
        });
        return command;
    }
}
