using Microsoft.Extensions.Options;
using PromptFaces.Engine;
using PromptFaces.Scheduling;
using PromptFaces.Scheduling.FairShare;

namespace PromptFaces.Web.Hosting;

/// <summary>
/// Engines for the scheduler's workers. The first worker on the engine's configured device (or on no named device)
/// gets the app's registered <see cref="IGenerationEngine"/>, so one-device installations, and tests that replace that
/// registration, are unchanged; every other worker gets a <see cref="TorchGenerationEngine"/> of its own on its
/// device, which this factory warms up (see <see cref="EngineOptions.WarmUp"/>) and disposes.
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
                return services.GetRequiredService<IGenerationEngine>();
            }
            var options = new EngineOptions
            {
                ModelsFolder = configured.ModelsFolder,
                Generator = configured.Generator,
                Clip = configured.Clip,
                Device = device.Device ?? configured.Device,
                LibTorch = configured.LibTorch,
                PreviewSize = configured.PreviewSize,
                AnimationEvery = configured.AnimationEvery,
                NegativeWeight = configured.NegativeWeight,
                WarmUp = configured.WarmUp,
            };
            var engine = new TorchGenerationEngine(services.GetRequiredService<ModelPaths>(), Options.Create(options),
                services.GetRequiredService<ILogger<TorchGenerationEngine>>());
            _owned.Add(engine);
            if (options.WarmUp) _ = engine.WarmUpAsync();
            return engine;
        }
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
