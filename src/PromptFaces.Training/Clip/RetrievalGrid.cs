using PromptFaces.Generation.Imaging;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace PromptFaces.Training.Clip;

/// <summary>
/// The CLIP's periodic picture: one row per probe caption, holding the held-out renders it scores highest, best first.
/// Rows that show the named attributes mean the model reads those words; the PNG's text chunks name each row's caption.
/// </summary>
public static class RetrievalGrid
{
    /// <summary>Fixed probes, so that grids compare across steps and runs. They are for looking at, not a score.</summary>
    public static IReadOnlyList<string> DefaultProbes { get; } =
    [
        "a woman with blonde hair",
        "a bearded man",
        "someone wearing sunglasses",
        "a face with red eyes",
        "a smiling person on a blue background",
        "a bald man",
        "a person with dark skin and green hair",
        "a surprised woman wearing glasses",
    ];

    /// <param name="images">(N, 3, S, S) in [-1, 1]: the pool to retrieve from</param>
    /// <param name="imageFeatures">(N, D) unit-length features of <paramref name="images"/></param>
    /// <param name="probeFeatures">(P, D) unit-length features of <paramref name="probes"/></param>
    public static void Save(string path, Tensor images, Tensor imageFeatures, IReadOnlyList<string> probes, Tensor probeFeatures, int perRow = 8, int step = 0)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        int k = (int)Math.Min(perRow, images.shape[0]);
        var top = probeFeatures.matmul(imageFeatures.t()).topk(k, dim: 1).indexes;            // (P, k)
        var picked = images.index_select(0, top.flatten());                                       // (P·k, 3, S, S)
        const int gap = 2;
        var padded = F.pad(picked, [gap, 0, gap, 0], value: 1.0);                                // white gap left and above
        long s = padded.shape[2];
        var grid = padded.reshape(probes.Count, k, 3, s, s)
            .permute(2, 0, 3, 1, 4)                                                               // (3, P, s, k, s)
            .reshape(3, probes.Count * s, k * s);
        using var image = ImageTensors.ToImage(grid);
        var text = new Dictionary<string, string> { ["Software"] = "PromptFaces", ["step"] = step.ToString(System.Globalization.CultureInfo.InvariantCulture) };
        for (int i = 0; i < probes.Count; i++) text[$"row {i + 1}"] = probes[i];
        PngWriter.SavePng(path, image, text);
    }
}
