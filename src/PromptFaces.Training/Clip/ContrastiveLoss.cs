using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace PromptFaces.Training.Clip;

/// <summary>What one contrastive step measured.</summary>
public readonly record struct ContrastiveResult(
    Tensor Loss,                 // scalar, with autograd history
    double ImageToTextAccuracy,  // share of images whose best caption is true of them
    double TextToImageAccuracy); // share of captions whose best image they are true of

/// <summary>
/// CLIP's symmetric contrastive loss with soft targets. Plain CLIP treats only the diagonal as positive; here a caption
/// that is true of another image in the batch (<paramref name="positives"/>) shares its target mass with it, in both
/// directions. With all-diagonal positives this is exactly CLIP's loss.
/// </summary>
public static class ContrastiveLoss
{
    /// <param name="imageFeatures">(B, D), not normalised</param>
    /// <param name="textFeatures">(B, D), not normalised; row i is the caption of image i</param>
    /// <param name="logitScale">scalar: log of the inverse temperature</param>
    /// <param name="positives">(B, B) bool on the features' device: [i, j] when caption i is true of image j; the diagonal must be set</param>
    public static ContrastiveResult Compute(Tensor imageFeatures, Tensor textFeatures, Tensor logitScale, Tensor positives)
    {
        using var scope = NewDisposeScope();
        var image = F.normalize(imageFeatures, dim: -1);
        var text = F.normalize(textFeatures, dim: -1);
        var perText = text.matmul(image.t()) * logitScale.exp();                // (B captions, B images)
        var perImage = perText.t();                                             // (B images, B captions)

        var targets = positives.to(ScalarType.Float32);                         // (captions, images)
        var textTargets = targets / targets.sum(1, keepdim: true);              // each caption's mass over its images
        var imageTargets = targets.t() / targets.t().sum(1, keepdim: true);     // each image's mass over its captions
        var textLoss = -(textTargets * F.log_softmax(perText, 1)).sum(1).mean();
        var imageLoss = -(imageTargets * F.log_softmax(perImage, 1)).sum(1).mean();
        var loss = (textLoss + imageLoss) / 2;

        using var noGrad = no_grad();
        var b = perText.shape[0];
        var rows = arange(b, device: perText.device);
        // A retrieval is right when it lands on any true pair, not only the diagonal: duplicates are not errors.
        var t2i = positives[rows, perText.argmax(1)].to(ScalarType.Float32).mean().item<float>();
        var i2t = positives.t()[rows, perImage.argmax(1)].to(ScalarType.Float32).mean().item<float>();
        return new ContrastiveResult(loss.MoveToOuterDisposeScope(), i2t, t2i);
    }
}
