using Microsoft.Extensions.Options;
using PromptFaces.Engine;
using PromptFaces.Scheduling;

namespace PromptFaces.Web.Hosting;

/// <summary>
/// Starts warming the real engine up when the app starts (models loaded, one throwaway optimisation), without holding
/// up the start: the first job's first step waits for it instead. Does nothing for another engine (tests' fakes) or
/// when <see cref="EngineOptions.WarmUp"/> is off.
/// </summary>
public sealed class EngineWarmUp(IGenerationEngine engine, IOptions<EngineOptions> options) : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken)
    {
        if (options.Value.WarmUp && engine is TorchGenerationEngine torch) _ = torch.WarmUpAsync();
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
