using System.Net;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Playwright;
using PromptFaces.Web.Hosting;
using Xunit;

namespace PromptFaces.EndToEnd;

/// <summary>
/// One real PromptFaces app for the whole assembly, served by Kestrel on 127.0.0.1 with a fresh data folder (a real
/// SQLite file and image files) and the shipped default models on the CPU, plus one headless Chromium. Each test makes
/// its own browser contexts, so every user has their own cookies.
/// </summary>
public sealed class LiveApp : IAsyncLifetime
{
    public const string AdminEmail = "admin@e2e.example";
    public const string Password = "Password1";

    /// <summary>Where Debian puts Chromium; PROMPTFACES_CHROMIUM names another build.</summary>
    public static string ChromiumPath => Environment.GetEnvironmentVariable("PROMPTFACES_CHROMIUM") is { Length: > 0 } path ? path : "/usr/bin/chromium";

    private readonly string _dataFolder = Directory.CreateTempSubdirectory("pf-e2e-").FullName;
    private Factory? _factory;
    private IPlaywright? _playwright;

    public Uri BaseAddress { get; private set; } = null!;
    public IBrowser Browser { get; private set; } = null!;

    /// <summary>The repository root (models/, appsettings.json, wwwroot/).</summary>
    public static string RepositoryRoot { get; } = ContentRoot.FindRepositoryRoot(AppContext.BaseDirectory)
        ?? throw new InvalidOperationException("The end-to-end tests run from a build inside the repository (no PromptFaces.sln above " + AppContext.BaseDirectory + ").");

    /// <summary>Screenshots and measurements of the run: artifacts/e2e at the repository root, or PROMPTFACES_E2E_ARTIFACTS.</summary>
    public static string ArtifactsFolder { get; } = Directory.CreateDirectory(
        Environment.GetEnvironmentVariable("PROMPTFACES_E2E_ARTIFACTS") is { Length: > 0 } folder ? folder : Path.Combine(RepositoryRoot, "artifacts", "e2e")).FullName;

    public async ValueTask InitializeAsync()
    {
        if (!File.Exists(ChromiumPath))
            throw new InvalidOperationException($"Chromium is not at {ChromiumPath}. Install it (Debian: apt-get install -y chromium; build/test.sh does this) or set PROMPTFACES_CHROMIUM.");
        var models = Path.Combine(RepositoryRoot, "models");
        if (!File.Exists(Path.Combine(models, "generator.safetensors")))
            throw new InvalidOperationException($"The default models are missing from {models}.");

        // Each run's screenshots and figures replace the last run's.
        foreach (var old in Directory.EnumerateFiles(ArtifactsFolder).Where(f => f.EndsWith(".png") || f.EndsWith(".json")))
            File.Delete(old);

        _factory = new Factory(_dataFolder, models);
        _factory.UseKestrel(options => options.Listen(IPAddress.Loopback, 0));
        _factory.StartServer();
        var address = _factory.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        BaseAddress = new Uri(address);

        _playwright = await Playwright.CreateAsync();
        Browser = await _playwright.Chromium.LaunchAsync(new BrowserTypeLaunchOptions
        {
            ExecutablePath = ChromiumPath,
            Headless = true,
            Args =
            [
                "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync",
            ],
        });
    }

    /// <summary>A fresh browser profile (own cookies) on the app.</summary>
    public async Task<IBrowserContext> NewContextAsync()
    {
        var context = await Browser.NewContextAsync(new BrowserNewContextOptions
        {
            BaseURL = BaseAddress.ToString(),
            ViewportSize = new ViewportSize { Width = 1280, Height = 900 },
        });
        context.SetDefaultTimeout(60_000);
        return context;
    }

    public async ValueTask DisposeAsync()
    {
        if (Browser is not null) await Browser.DisposeAsync();
        _playwright?.Dispose();
        if (_factory is not null) await _factory.DisposeAsync();
        try { Directory.Delete(_dataFolder, recursive: true); }
        catch (IOException) { }
    }

    private sealed class Factory(string dataFolder, string models) : WebApplicationFactory<Program>
    {
        protected override void ConfigureWebHost(IWebHostBuilder builder)
        {
            builder.UseEnvironment("Production");
            builder.UseSetting("PromptFaces:DataFolder", dataFolder);
            builder.UseSetting("PromptFaces:AdminEmail", AdminEmail);
            builder.UseSetting("PromptFaces:Engine:ModelsFolder", models);
        }
    }
}
