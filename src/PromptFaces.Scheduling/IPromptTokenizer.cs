namespace PromptFaces.Scheduling;

/// <summary>
/// Counts a prompt's tokens with the tokenizer of the loaded models, so the interface can show a live count and warn
/// before the end of a long prompt is silently dropped. Part of the engine seam: the web app never touches TorchSharp.
/// </summary>
public interface IPromptTokenizer
{
    /// <summary>The count for <paramref name="prompt"/>, or null when no tokenizer is available (no models found).</summary>
    PromptTokenCount? Count(string prompt);
}

/// <param name="Tokens">tokens the prompt needs, start and end tokens included.</param>
/// <param name="ContextLength">what the text model reads; tokens past it are dropped.</param>
/// <param name="Warning">a sentence for the user when tokens would be dropped, else null.</param>
public sealed record PromptTokenCount(int Tokens, int ContextLength, string? Warning)
{
    public bool Truncated => Tokens > ContextLength;
}
