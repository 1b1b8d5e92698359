using System.Runtime.InteropServices;

namespace PromptFaces.Generation.Devices;

/// <summary>
/// Quietens libtorch's C++ warnings (for example "Could not initialize NNPACK", printed once per convolution on CPUs
/// NNPACK does not support, where libtorch falls back to other kernels) unless the user chose a level. libtorch reads
/// TORCH_CPP_LOG_LEVEL from the native environment when it loads, and .NET's Environment.SetEnvironmentVariable does
/// not reach the native environment on Unix, so this calls setenv directly. Call it before the first tensor is made.
/// </summary>
public static class NativeLogging
{
    public static void QuietLibTorchWarnings()
    {
        if (Environment.GetEnvironmentVariable("TORCH_CPP_LOG_LEVEL") is not null || OperatingSystem.IsWindows()) return;
        try
        {
            setenv("TORCH_CPP_LOG_LEVEL", "ERROR", 0);
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            // no libc setenv: the warnings stay, nothing else changes
        }
    }

    [DllImport("libc", EntryPoint = "setenv")]
    private static extern int setenv(string name, string value, int overwrite);
}
