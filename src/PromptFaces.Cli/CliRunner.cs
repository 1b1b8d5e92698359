using System.CommandLine;
using PromptFaces.Generation.Checkpoints;
using PromptFaces.Generation.Clip;
using Spectre.Console;

namespace PromptFaces.Cli;

/// <summary>Runs the command line and turns the errors users can fix into one clear line and exit code 2.</summary>
public static class CliRunner
{
    /// <summary>Progress and messages go to standard error so that standard output holds only results (and --json).</summary>
    public static IAnsiConsole Err { get; } = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Error) });

    public static int Invoke(RootCommand root, string[] args)
    {
        try
        {
            return root.Parse(args).Invoke(new InvocationConfiguration { EnableDefaultExceptionHandler = false });
        }
        catch (Exception e) when (IsUserError(e))
        {
            Console.Error.WriteLine($"error: {e.Message}");
            return 2;
        }
    }

    public static bool IsUserError(Exception e) => e is CliException or CheckpointException or ClipTokenizerException
        or InvalidDataException or FileNotFoundException or DirectoryNotFoundException or ArgumentException
        || e.GetType().Name == "DeviceUnavailableException";
}
