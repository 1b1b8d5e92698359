using PromptFaces.EndToEnd;
using Xunit;

// One app and one browser for the assembly; the tests run one at a time so the engine has the CPU to itself.
[assembly: AssemblyFixture(typeof(LiveApp))]
[assembly: CollectionBehavior(DisableTestParallelization = true)]
[assembly: CaptureConsole]
