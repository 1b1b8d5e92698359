using System.CommandLine;
using PromptFaces.Cli;
using PromptFaces.Cli.Commands;
using PromptFaces.Generation.Devices;

NativeLogging.QuietLibTorchWarnings();

var root = new RootCommand("promptfaces: turn text prompts into faces with CLIP-guided StyleGAN2 latent optimisation.")
{
    GenerateCommand.Create(),
    InspectCommand.Create(),
    ConvertCommand.Create(),
    BenchCommand.Create(),
    DatasetCommand.Create(),
    TrainCommand.Create(),
    EvalCommand.Create(),
};
return CliRunner.Invoke(root, args);
