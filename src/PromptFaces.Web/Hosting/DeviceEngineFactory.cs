using Microsoft.Extensions.Options;
using PromptFaces.Engine;
using PromptFaces.Scheduling;
using PromptFaces.Scheduling.FairShare;

namespace PromptFaces.Web.Hosting;

/// <summary>
/// Engines for the scheduler's workers. The first worker on the engine's configured device (or on no named device)
/// gets the app's registered <see cref="IGenerationEngine"/>, so one-device installations, and tests that replace that
/// registration, are unchanged; every other worker gets a <see cref="TorchGenerationEngine"/> of its own on its
/// device, which this factory disposes. Every real engine it hands out is warmed up (see <see cref="EngineOptions.WarmUp"/>).
/// </summary>
public sealed class DeviceEngineFactory(IServiceProvider services, IOptions<EngineOptions> engineOptions) : IGenerationEngineFactory, IDisposable
{
    private readonly List<IDisposable> _owned = new();
    private bool _sharedTaken;

    public IGenerationEngine Create(SchedulerDevice device)
    {
        var configured = engineOptions.Value;
        bool onConfiguredDevice = device.Device is null || string.Equals(device.Device.Trim(), configured.Device.Trim(), StringComparison.OrdinalIgnoreCase);
        lock (_owned)
        {
            if (onConfiguredDevice && !_sharedTaken)
            {
                _sharedTaken = true;
                return WarmedUp(services.GetRequiredService<IGenerationEngine>(), configured);
            }
            var options = configured.ForDevice(device.Device ?? configured.Device);
            var engine = new TorchGenerationEngine(services.GetRequiredService<ModelPaths>(), Options.Create(options),
                services.GetRequiredService<ILogger<TorchGenerationEngine>>());
            _owned.Add(engine);
            return WarmedUp(engine, options);
        }
    }

    /// <summary>Starts a real engine's warm-up (models loaded, one throwaway optimisation) without waiting for it: the
    /// scheduler asks for its engines as the app starts, and a first step waits for the warm-up instead. Other engines
    /// (tests' fakes) are returned as they are.</summary>
    private static IGenerationEngine WarmedUp(IGenerationEngine engine, EngineOptions options)
    {
        if (options.WarmUp && engine is TorchGenerationEngine torch) _ = torch.WarmUpAsync();
        return engine;
    }

    public void Dispose()
    {
        lock (_owned)
        {
            foreach (var engine in _owned) engine.Dispose();
            _owned.Clear();
        }
    }
}
