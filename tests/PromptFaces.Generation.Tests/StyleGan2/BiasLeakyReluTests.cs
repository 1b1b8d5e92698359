using PromptFaces.Generation.StyleGan2;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace PromptFaces.Generation.Tests.StyleGan2;

/// <summary>The fused bias + leaky ReLU autograd function: its gradients, and that its backward pass frees what it makes.</summary>
public sealed class BiasLeakyReluTests
{
    [Fact]
    public void Gradients_match_plain_autograd_with_and_without_a_clamp()
    {
        foreach (double? clamp in new double?[] { null, 0.5 })
        {
            using var scope = NewDisposeScope();
            manual_seed(3);
            var x = randn(2, 3, 5, 5).requires_grad_();
            var bias = randn(3).requires_grad_();
            var weights = randn(2, 3, 5, 5);

            (Ops.BiasLeakyRelu(x, bias, Ops.LReluGain, clamp) * weights).sum().backward();
            var fusedX = x.grad!.clone();
            var fusedBias = bias.grad!.clone();
            x.grad!.zero_();
            bias.grad!.zero_();

            var plain = nn.functional.leaky_relu(x + bias.reshape(1, 3, 1, 1), 0.2) * Ops.LReluGain;
            if (clamp is double c) plain = plain.clamp(-c, c);
            (plain * weights).sum().backward();

            Assert.True(fusedX.allclose(x.grad!, rtol: 1e-5, atol: 1e-6), $"input gradient differs (clamp {clamp})");
            Assert.True(fusedBias.allclose(bias.grad!, rtol: 1e-5, atol: 1e-5), $"bias gradient differs (clamp {clamp})");
            Assert.True(x.grad!.abs().sum().item<float>() > 0);
        }
    }

    [Fact]
    public void Backward_with_no_dispose_scope_open_leaves_no_tensors_behind()
    {
        // On CUDA, libtorch runs backward on its own thread, where no caller's scope is open. On the CPU it runs on the
        // calling thread, so calling it with no scope open reproduces that: each step must leave the count of live
        // tensors made outside any scope where it was (the gradients of the last call are held until the next).
        var stats = DisposeScopeManager.Statistics;
        using var x = randn(2, 4, 8, 8).requires_grad_();
        using var bias = zeros(4).requires_grad_();

        long LiveAfterStep()
        {
            // The forward pass runs in a scope, as the callers' steps do; only the backward pass runs outside one.
            Tensor loss;
            using (var scope = NewDisposeScope())
                loss = Ops.BiasLeakyRelu(x, bias, Ops.LReluGain, 256).sum().MoveToOuterDisposeScope();
            loss.backward();
            loss.Dispose();
            using (var gx = x.grad) { }
            using (var gb = bias.grad) { }
            return stats.ThreadTotalLiveCount;
        }

        LiveAfterStep();
        long settled = LiveAfterStep();
        for (int i = 0; i < 5; i++) LiveAfterStep();
        Assert.Equal(settled, LiveAfterStep());
    }
}
