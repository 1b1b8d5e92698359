using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Reflection;
using System.Text;

namespace PromptFaces.Web.FaultTests;

/// <summary>
/// The real app as a separate process: <c>dotnet PromptFaces.Web.dll --urls http://127.0.0.1:PORT</c> from its own build
/// output, run from the repository root (so its appsettings.json applies), with the settings given as environment
/// variables. Its console output is kept for assertions and failure messages. Only the process started here is ever
/// killed.
/// </summary>
internal sealed class AppProcess : IDisposable
{
    private readonly Process _process;
    private readonly StringBuilder _output = new();

    private AppProcess(Process process, Uri baseAddress)
    {
        _process = process;
        BaseAddress = baseAddress;
    }

    public Uri BaseAddress { get; }

    /// <summary>Everything the app wrote to standard output and error so far.</summary>
    public string Output
    {
        get { lock (_output) return _output.ToString(); }
    }

    public bool HasExited => _process.HasExited;

    /// <summary>The repository root: the nearest folder above the test's output that holds PromptFaces.sln.</summary>
    public static string RepositoryRoot { get; } = FindRepositoryRoot();

    /// <summary>The app's entry assembly in its build output (same configuration as the tests).</summary>
    public static string AppDll
    {
        get
        {
            var output = typeof(AppProcess).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>()
                .Single(a => a.Key == "AppBuildOutput").Value!;
            var dll = Path.Combine(RepositoryRoot, output, "PromptFaces.Web.dll");
            return File.Exists(dll) ? dll : throw new FileNotFoundException($"The app is not built: {dll} is missing (build PromptFaces.sln first).");
        }
    }

    /// <summary>Starts the app and waits until it answers HTTP requests.</summary>
    public static async Task<AppProcess> StartAsync(IReadOnlyDictionary<string, string> environment, TimeSpan timeout)
    {
        var baseAddress = new Uri($"http://127.0.0.1:{FreePort()}");
        var psi = new ProcessStartInfo("dotnet")
        {
            WorkingDirectory = RepositoryRoot,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        psi.ArgumentList.Add(AppDll);
        psi.ArgumentList.Add("--urls");
        psi.ArgumentList.Add(baseAddress.ToString().TrimEnd('/'));
        psi.Environment["ASPNETCORE_ENVIRONMENT"] = "Production";
        psi.Environment["DOTNET_NOLOGO"] = "1";
        foreach (var (key, value) in environment) psi.Environment[key] = value;

        var process = new Process { StartInfo = psi };
        var app = new AppProcess(process, baseAddress);
        process.OutputDataReceived += (_, e) => app.Append(e.Data);
        process.ErrorDataReceived += (_, e) => app.Append(e.Data);
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();

        using var probe = new HttpClient { BaseAddress = baseAddress, Timeout = TimeSpan.FromSeconds(10) };
        var watch = Stopwatch.StartNew();
        while (true)
        {
            if (process.HasExited)
                throw new InvalidOperationException($"The app exited with code {process.ExitCode} while starting:\n{app.Output}");
            try
            {
                using var response = await probe.GetAsync("/account/register");
                if (response.IsSuccessStatusCode) return app;
            }
            catch (HttpRequestException)
            {
            }
            catch (TaskCanceledException)
            {
            }
            if (watch.Elapsed > timeout)
            {
                app.Dispose();
                throw new TimeoutException($"The app did not answer within {timeout.TotalSeconds:F0} s:\n{app.Output}");
            }
            await Task.Delay(200);
        }
    }

    /// <summary>kill -9: SIGKILL to this process only; nothing it would do on a graceful stop runs.</summary>
    public void KillHard()
    {
        if (_process.HasExited) return;
        _process.Kill(entireProcessTree: false);
        _process.WaitForExit();
    }

    public void Dispose()
    {
        KillHard();
        _process.Dispose();
    }

    private void Append(string? line)
    {
        if (line is null) return;
        lock (_output) _output.AppendLine(line);
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    private static string FindRepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "PromptFaces.sln"))) return dir.FullName;
        throw new InvalidOperationException($"No PromptFaces.sln above {AppContext.BaseDirectory}.");
    }
}
