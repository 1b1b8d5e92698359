using System.Runtime.CompilerServices;

namespace PromptFaces.Training.Tests;

/// <summary>
/// Every test of this assembly runs libtorch on one CPU thread, set once before any test starts. Several tests compare
/// a resumed training run with an uninterrupted one byte for byte, and a parallel test that changed the thread count
/// half-way (the judge's, which needs one thread) made float reductions split differently between the two halves.
/// One thread is also what the trainers default to for narrow convolutions.
/// </summary>
internal static class SingleThreadedTorch
{
    [ModuleInitializer]
    internal static void Initialise() => TorchSharp.torch.set_num_threads(1);
}
