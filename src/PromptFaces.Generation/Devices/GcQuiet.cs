using System.Runtime;

namespace PromptFaces.Generation.Devices;

/// <summary>
/// Runs TorchSharp work with the garbage collector paused. TorchSharp turns every <c>double</c> passed to an op into a
/// <c>Scalar</c> that nothing disposes: a finalizer frees it. A collection started by another thread while the op's
/// native call still reads that Scalar lets the finalizer free it mid-call, and libtorch then fails at random (seen
/// here after ~110 training steps: "Expected false to be true" from <c>Scalar::toFloat</c> inside AdamW's step). With no
/// collection inside the region, no Scalar created there can be finalized before its op returns.
/// </summary>
/// <remarks>
/// Each region starts with one blocking collection (milliseconds for this process's heap) and reserves a budget for
/// the managed allocations inside it: a training step's torch work allocates a few megabytes of wrappers. Code that
/// allocates a lot (caption drawing, rendering) belongs outside. Regions are process-wide, so they are serialised.
/// </remarks>
public static class GcQuiet
{
    private const long Budget = 128L << 20;
    private static readonly object Gate = new();

    public static T Run<T>(Func<T> body)
    {
        lock (Gate)
        {
            bool paused = false;
            try
            {
                paused = GCSettings.LatencyMode != GCLatencyMode.NoGCRegion && GC.TryStartNoGCRegion(Budget);
            }
            catch (Exception e) when (e is ArgumentOutOfRangeException or InvalidOperationException)
            {
                // A budget this runtime cannot reserve: run unprotected rather than not at all.
            }
            try
            {
                return body();
            }
            finally
            {
                // A region ends by itself when its budget runs out; ending it again would throw.
                if (paused && GCSettings.LatencyMode == GCLatencyMode.NoGCRegion)
                {
                    try { GC.EndNoGCRegion(); }
                    catch (InvalidOperationException) { }
                }
            }
        }
    }

    public static void Run(Action body) => Run(() =>
    {
        body();
        return 0;
    });
}
