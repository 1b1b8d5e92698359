using System.CommandLine;

namespace PromptFaces.Cli.Commands;

/// <summary><c>promptfaces train</c>: the project's own default models.</summary>
internal static class TrainCommand
{
    public static Command Create() => new("train", "Train the project's own models on procedurally rendered faces.")
    {
        TrainClipCommand.Create(),
        TrainStyleGanCommand.Create(),
        TrainJudgeCommand.Create(),
    };
}
