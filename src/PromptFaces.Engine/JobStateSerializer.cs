using PromptFaces.Generation.Optimisation;

namespace PromptFaces.Engine;

/// <summary>
/// <see cref="OptimisationJobState"/> as compact bytes for the job store (little-endian floats, a format tag first so
/// a later layout can be told apart). A state that does not parse is reported as null: the job then starts afresh.
/// </summary>
public static class JobStateSerializer
{
    private const uint Magic = 0x31534A50; // "PJS1"

    public static byte[] Serialize(OptimisationJobState state)
    {
        using var stream = new MemoryStream();
        using (var w = new BinaryWriter(stream))
        {
            w.Write(Magic);
            w.Write(state.Step);
            w.Write(state.RngState);
            w.Write(state.SimilarityStart);
            w.Write(state.BestSimilarity);
            w.Write(state.BestStep);
            w.Write(state.PatienceReference);
            w.Write(state.StepsSinceImprovement);
            foreach (var array in new[] { state.Ws, state.StartWs, state.AdamM, state.AdamV, state.BestWs })
            {
                w.Write(array.Length);
                foreach (var v in array) w.Write(v);
            }
        }
        return stream.ToArray();
    }

    public static OptimisationJobState? TryDeserialize(byte[] bytes)
    {
        try
        {
            using var r = new BinaryReader(new MemoryStream(bytes));
            if (r.ReadUInt32() != Magic) return null;
            int step = r.ReadInt32();
            ulong rng = r.ReadUInt64();
            double simStart = r.ReadDouble(), best = r.ReadDouble();
            int bestStep = r.ReadInt32();
            double patienceRef = r.ReadDouble();
            int since = r.ReadInt32();
            var arrays = new float[5][];
            for (int a = 0; a < arrays.Length; a++)
            {
                int n = r.ReadInt32();
                if (n < 0 || n > (bytes.Length - r.BaseStream.Position) / sizeof(float)) return null;
                arrays[a] = new float[n];
                for (int i = 0; i < n; i++) arrays[a][i] = r.ReadSingle();
            }
            return new OptimisationJobState
            {
                Step = step, RngState = rng, SimilarityStart = simStart, BestSimilarity = best, BestStep = bestStep,
                PatienceReference = patienceRef, StepsSinceImprovement = since,
                Ws = arrays[0], StartWs = arrays[1], AdamM = arrays[2], AdamV = arrays[3], BestWs = arrays[4],
            };
        }
        catch (EndOfStreamException)
        {
            return null;
        }
    }
}
