namespace PromptFaces.Generation.Checkpoints.Pickle;

/// <summary>How a pickle stream failed, so that the caller can tell the user what to do about it.</summary>
internal enum PickleFailure
{
    /// <summary>The data ends in the middle of an opcode or before STOP: the file was cut short.</summary>
    Truncated,

    /// <summary>The bytes do not form a valid pickle (unknown opcode, stack underflow, wrong operand types...).</summary>
    Corrupt,

    /// <summary>A valid pickle that uses a feature this reader deliberately does not implement.</summary>
    Unsupported,

    /// <summary>The file asks for more memory or nesting than its size could justify.</summary>
    TooLarge,
}

/// <summary>
/// Raised by the pickle machine and the torch stream readers. It never leaves the checkpoint layer: the public readers
/// translate it into a <see cref="CheckpointException"/> that names the file, so callers handle a single exception type.
/// </summary>
internal sealed class PickleException(PickleFailure failure, string message, long position = -1, Exception? inner = null)
    : Exception(message, inner)
{
    public PickleFailure Failure { get; } = failure;

    /// <summary>Byte offset in the stream being decoded where the problem was found, or -1 when not meaningful.</summary>
    public long Position { get; } = position;
}
