namespace PromptFaces.Scheduling.FairShare;

/// <summary>Makes the engine of one worker. Each worker gets its own instance; the factory owns what it makes (and
/// disposes it, where it must).</summary>
public interface IGenerationEngineFactory
{
    IGenerationEngine Create(SchedulerDevice device);
}

/// <summary>A factory over a function (tests, and hosts that build engines themselves).</summary>
public sealed class DelegateEngineFactory(Func<SchedulerDevice, IGenerationEngine> create) : IGenerationEngineFactory
{
    public IGenerationEngine Create(SchedulerDevice device) => create(device);
}
