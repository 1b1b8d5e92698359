using PromptFaces.Generation.Optimisation;
using PromptFaces.Training.Clip;
using PromptFaces.Training.Faces;
using Xunit;

namespace PromptFaces.Training.Tests;

/// <summary>The CLIP trainer's batch rendering: spread over libtorch's threads, byte for byte what one thread draws.</summary>
public sealed class TrainingFacesTests
{
    [Fact]
    public void A_batch_rendered_on_several_threads_equals_its_faces_rendered_one_by_one()
    {
        const int size = 32, count = 40;
        var rng = new SplitMix64(77);
        var faces = Enumerable.Range(0, count).Select(_ => AttributeSampler.Sample(rng)).ToArray();
        var expected = new byte[count * size * size * 3];
        for (int i = 0; i < count; i++)
            FaceRenderer.RenderInto(faces[i], size, expected.AsSpan(i * size * size * 3, size * size * 3));

        int threads = TorchSharp.torch.get_num_threads();
        TorchSharp.torch.set_num_threads(4);   // the assembly runs on one thread (SingleThreadedTorch); the batch splits only above one
        try
        {
            Assert.Equal(expected, TrainingFaces.RenderBytes(faces, size));
        }
        finally
        {
            TorchSharp.torch.set_num_threads(threads);
        }
    }
}
