using System.Diagnostics;
using PromptFaces.Generation.Clip;
using PromptFaces.Generation.Tests;
using Xunit;

namespace PromptFaces.Cli.Tests;

/// <summary>What the CLI tests share: running the real <c>promptfaces</c> executable, and the fixture networks it runs on.</summary>
internal static class PromptfacesProcess
{
    /// <summary>Runs <c>promptfaces ARGS</c> and returns its exit code and both outputs; kills it after <paramref name="timeout"/>.</summary>
    public static (int Code, string Out, string Err) Run(TimeSpan timeout, params string[] args)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "promptfaces.dll"));
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(timeout))
        {
            p.Kill(entireProcessTree: true);
            throw new TimeoutException($"promptfaces {string.Join(' ', args)} did not finish");
        }
        return (p.ExitCode, stdout.Result, stderr.Result);
    }

    /// <summary>A file of the shared fixtures; the test is skipped where they are missing.</summary>
    public static string Fixture(params string[] parts)
    {
        Assert.SkipWhen(Fixtures.Root is null, Fixtures.MissingReason);
        return Fixtures.Path(parts);
    }

    /// <summary>
    /// A CLIP folder in <paramref name="dir"/>: the tiny fixture's config and weights plus a byte-level vocabulary that
    /// fits its token table.
    /// </summary>
    public static string TinyClipFolder(string dir)
    {
        var folder = Path.Combine(dir, "clip");
        Directory.CreateDirectory(folder);
        foreach (var f in new[] { "config.json", "model.safetensors" })
            File.Copy(Fixture("clip", "clip_tiny", f), Path.Combine(folder, f));
        ByteLevelTokenizer.WriteFiles(folder);
        return folder;
    }
}
