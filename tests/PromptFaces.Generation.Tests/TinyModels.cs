using PromptFaces.Generation.Checkpoints;
using PromptFaces.Generation.Clip;
using PromptFaces.Generation.Optimisation;
using PromptFaces.Generation.StyleGan2;

namespace PromptFaces.Generation.Tests;

/// <summary>
/// The reference fixture networks (tiny StyleGAN2 32x32 and tiny CLIP) as a <see cref="FaceModels"/>, with a
/// byte-level tokenizer (514 ids) that fits the tiny CLIP's 1000-token vocabulary and 16-token context.
/// </summary>
public static class TinyModels
{
    public static FaceModels Load() =>
        new(LoadGenerator(), LoadClip(), Tokenizer(), "tiny-stylegan2-fixture", "tiny-clip-fixture");

    public static StyleGan2Generator LoadGenerator()
    {
        var config = StyleGan2Config.FromJsonFile(Fixtures.Path("stylegan2", "stylegan2_tiny_config.json"));
        var generator = new StyleGan2Generator(config);
        var weights = Fixtures.Path("stylegan2", "stylegan2_tiny_weights.safetensors");
        generator.LoadStateDict(SafeTensorsFile.Read(weights).Tensors, weights);
        return generator;
    }

    public static ClipModel LoadClip() => ClipModel.FromFolder(Fixtures.Path("clip", "clip_tiny"));

    public static ClipTokenizer Tokenizer() => ByteLevelTokenizer.Create(contextLength: 16);
}
