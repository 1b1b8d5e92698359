namespace PromptFaces.Generation.Optimisation;

/// <summary>
/// A tiny deterministic random source whose whole state is one number, so a job's augmentations are the same whether
/// it runs alone or in a batch, and resume exactly after a checkpoint.
/// </summary>
public sealed class SplitMix64
{
    public ulong State { get; private set; }

    public SplitMix64(ulong state) => State = state;

    public ulong NextUInt64()
    {
        ulong z = State += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    /// <summary>Uniform in [0, 1).</summary>
    public double NextDouble() => (NextUInt64() >> 11) * (1.0 / (1UL << 53));
}
