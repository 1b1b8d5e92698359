namespace PromptFaces.Generation.Checkpoints.Pickle;

/// <summary>
/// Limits shared by everything decoded from one file. Reading a pickle only ever allocates in proportion to the bytes
/// it has consumed, except where data is expanded on purpose (tensors materialised from strided views, nested torch
/// streams, recursive walks); those places charge this budget, so a hostile or corrupt file cannot make the reader
/// allocate much more than the file's own size or recurse until the process dies.
/// </summary>
internal sealed class PickleContext
{
    /// <summary>Torch streams inside pickles inside torch streams... Real files nest two levels at most.</summary>
    public const int MaxNesting = 4;

    /// <summary>Depth of reconstructor calls nested in one another's arguments (e.g. _rebuild_from_type_v2).</summary>
    public const int MaxCallDepth = 16;

    private long outputUsed;
    private long expansionUsed;
    private int nesting;

    public PickleContext(long inputLength)
    {
        // Tensors of one module never hold more bytes than the file that stores them, unless views overlap; allow
        // generous slack for that and for small files.
        OutputBudget = checked(4 * Math.Max(0, inputLength) + 64L * 1024 * 1024);
    }

    public long OutputBudget { get; }

    public int CallDepth { get; set; }

    public void ChargeOutput(long bytes)
    {
        outputUsed += bytes;
        if (bytes < 0 || outputUsed > OutputBudget)
            throw new PickleException(PickleFailure.TooLarge,
                $"the tensors it describes would need more than {OutputBudget} bytes, far more than the file holds");
    }

    /// <summary>Charges bytes decompressed or copied out of zip archives, which would otherwise let a small archive
    /// claim large entries.</summary>
    public void ChargeExpansion(long bytes)
    {
        expansionUsed += bytes;
        if (bytes < 0 || expansionUsed > OutputBudget)
            throw new PickleException(PickleFailure.TooLarge,
                $"its archive entries would need more than {OutputBudget} bytes, far more than the file holds");
    }

    /// <summary>Enters a nested torch stream (torch.storage._load_from_bytes); dispose to leave.</summary>
    public NestingScope EnterNested()
    {
        if (nesting >= MaxNesting)
            throw new PickleException(PickleFailure.TooLarge, $"torch streams are nested more than {MaxNesting} deep");
        nesting++;
        return new NestingScope(this);
    }

    public readonly struct NestingScope(PickleContext owner) : IDisposable
    {
        public void Dispose() => owner.nesting--;
    }
}
