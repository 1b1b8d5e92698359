namespace PromptFaces.Engine;

/// <summary>Which models the engine loads and where it runs them, bound from <c>PromptFaces:Engine</c>.</summary>
public sealed class EngineOptions
{
    public const string Section = "PromptFaces:Engine";

    /// <summary>A folder with <c>generator.safetensors</c> and <c>clip/</c>. Empty: the default models folder
    /// (<c>PROMPTFACES_MODELS</c>, else a <c>models/</c> folder found from the content root or the executable).</summary>
    public string? ModelsFolder { get; set; }

    /// <summary>A generator checkpoint (.safetensors or NVIDIA .pkl); overrides the models folder's.</summary>
    public string? Generator { get; set; }

    /// <summary>A Hugging Face CLIP folder (config.json, model.safetensors, vocab.json, merges.txt); overrides the
    /// models folder's.</summary>
    public string? Clip { get; set; }

    /// <summary>A second CLIP folder that guides together with the first (the optimiser follows their mean loss). Empty:
    /// the models folder's <c>clip-second/</c> when the first CLIP is the models folder's too and that folder exists;
    /// none otherwise.</summary>
    public string? SecondClip { get; set; }

    /// <summary>"cpu", "cuda" or "cuda:N".</summary>
    public string Device { get; set; } = "cpu";

    /// <summary>A libtorch folder for CUDA (see the CLI's --libtorch); empty: <c>PROMPTFACES_LIBTORCH</c> or none.</summary>
    public string? LibTorch { get; set; }

    /// <summary>Side of the per-step JPEG previews streamed to the browser, in pixels.</summary>
    public int PreviewSize { get; set; } = 128;

    /// <summary>Keep every k-th step in the optimisation's GIF (the writer thins further for long runs).</summary>
    public int AnimationEvery { get; set; } = 2;

    /// <summary>Load the models and run a throwaway optimisation when the app starts, so the first job's first preview
    /// is not held up by loading (see <see cref="TorchGenerationEngine.WarmUpAsync"/>).</summary>
    public bool WarmUp { get; set; } = true;

    /// <summary>Weight of the negative prompt; negative, so it pushes away (as the CLI's --negative does).</summary>
    public double NegativeWeight { get; set; } = -0.5;

    /// <summary>These options with another device: a shallow copy (every field is a value or a string), so an option
    /// added later reaches the engines of extra devices without being listed anywhere.</summary>
    public EngineOptions ForDevice(string device)
    {
        var copy = (EngineOptions)MemberwiseClone();
        copy.Device = device;
        return copy;
    }
}
