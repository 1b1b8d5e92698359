namespace PromptFaces.Generation.Checkpoints;

/// <summary>
/// A checkpoint could not be read or does not fit the model. The message always names the file and, where one is
/// involved, the key and the expected and actual shapes, and says what to do.
/// </summary>
public sealed class CheckpointException : Exception
{
    public string FilePath { get; }
    public string? Key { get; }

    public CheckpointException(string filePath, string message, string? key = null, Exception? inner = null)
        : base($"{filePath}: {message}", inner)
    {
        FilePath = filePath;
        Key = key;
    }
}
