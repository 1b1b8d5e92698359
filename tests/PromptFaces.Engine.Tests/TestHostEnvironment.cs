using Microsoft.Extensions.FileProviders;
using Microsoft.Extensions.Hosting;

namespace PromptFaces.Engine.Tests;

/// <summary>A host environment whose content root is a test's own folder (relative model paths resolve against it).</summary>
internal sealed class TestHostEnvironment(string root) : IHostEnvironment
{
    public string EnvironmentName { get; set; } = "Testing";
    public string ApplicationName { get; set; } = "tests";
    public string ContentRootPath { get; set; } = root;
    public IFileProvider ContentRootFileProvider { get; set; } = new NullFileProvider();
}
