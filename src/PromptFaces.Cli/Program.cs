using System.CommandLine;
using PromptFaces.Cli;
using PromptFaces.Cli.Commands;

// libtorch warns once per convolution that NNPACK does not support this CPU; the fallback is fine, so keep stderr readable.
if (Environment.GetEnvironmentVariable("TORCH_CPP_LOG_LEVEL") is null) Environment.SetEnvironmentVariable("TORCH_CPP_LOG_LEVEL", "ERROR");

var root = new RootCommand("promptfaces: turn text prompts into faces with CLIP-guided StyleGAN2 latent optimisation.")
{
    GenerateCommand.Create(),
    InspectCommand.Create(),
    ConvertCommand.Create(),
    BenchCommand.Create(),
};
return CliRunner.Invoke(root, args);
