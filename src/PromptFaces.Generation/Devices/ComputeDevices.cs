using System.Globalization;
using System.Runtime.InteropServices;
using TorchSharp;
using static TorchSharp.torch;

namespace PromptFaces.Generation.Devices;

/// <summary>
/// Turns a user's device choice ("cpu", "cuda", "cuda:N") into a TorchSharp <see cref="Device"/>, loading libtorch
/// from a folder when the application does not ship a backend package for that device.
/// </summary>
/// <remarks>
/// <para>
/// Why a folder: the CUDA backend packages (<c>TorchSharp-cuda-linux</c>) are several GB and are not available on every
/// build machine, while a GPU machine with Python PyTorch already has a matching libtorch in
/// <c>site-packages/torch/lib</c>. Loading that folder's libraries by full path before TorchSharp initialises makes
/// TorchSharp's own by-name loads resolve to them (the dynamic loader matches the already-loaded sonames).
/// </para>
/// <para>
/// Why the care about order and probing: a failed <see cref="NativeLibrary.Load(string)"/> loads nothing, but a library
/// that did load cannot be safely unloaded, and two different libtorch copies in one process crash. So every required
/// file is checked to exist before the first load, TorchSharp's CUDA initialisation is only attempted once all of them
/// loaded, and a folder is never loaded over a CUDA libtorch the application already ships.
/// </para>
/// </remarks>
public static class ComputeDevices
{
    /// <summary>Environment variable consulted when no libtorch folder is passed explicitly.</summary>
    public const string LibTorchEnvironmentVariable = "PROMPTFACES_LIBTORCH";

    /// <summary>
    /// Libraries loaded from a libtorch folder for CUDA, in load order (each only depends on earlier ones). All are
    /// required: <c>libLibTorchSharp.so</c> links <c>libc10</c>, <c>libtorch_cpu</c> and <c>libtorch</c>, and the CUDA
    /// kernels register themselves from <c>libc10_cuda</c> and <c>libtorch_cuda</c>. Their own dependencies (cuDNN,
    /// cuBLAS, the CUDA runtime) are found by the dynamic loader through the libraries' RUNPATH, as in a PyTorch wheel.
    /// </summary>
    public static IReadOnlyList<string> RequiredCudaLibraries { get; } =
        ["libc10.so", "libtorch_cpu.so", "libc10_cuda.so", "libtorch_cuda.so", "libtorch.so"];

    /// <summary>Libraries loaded from a libtorch folder for the CPU device, in load order; all required.</summary>
    public static IReadOnlyList<string> RequiredCpuLibraries { get; } = ["libc10.so", "libtorch_cpu.so", "libtorch.so"];

    /// <summary>TorchSharp's own native bridge; it ships in the <c>TorchSharp</c> package, next to the application.</summary>
    public const string TorchSharpNativeLibrary = "libLibTorchSharp.so";

    private const string Advice =
        "Install PyTorch with CUDA and pass --libtorch <site-packages>/torch/lib (or set " + LibTorchEnvironmentVariable +
        "), or build the application with a reference to the TorchSharp-cuda-linux package.";

    private static readonly Lock Gate = new();
    private static bool s_cudaReady;
    private static bool s_cpuReady;

    /// <summary>
    /// Resolves <paramref name="spec"/> to a device and makes sure libtorch can run on it.
    /// </summary>
    /// <param name="spec">"cpu", "cuda" (= cuda:0) or "cuda:N"; case-insensitive.</param>
    /// <param name="libtorchFolder">A folder holding libtorch's shared libraries (e.g. <c>site-packages/torch/lib</c>),
    /// used only when the application's own backend cannot serve the device. Null: the
    /// <see cref="LibTorchEnvironmentVariable"/> environment variable, if set.</param>
    /// <exception cref="ArgumentException">The spec is not one of the valid forms.</exception>
    /// <exception cref="DeviceUnavailableException">The device cannot be used; the message says why and what to do.</exception>
    public static Device Resolve(string spec, string? libtorchFolder = null)
    {
        var folder = string.IsNullOrWhiteSpace(libtorchFolder)
            ? Environment.GetEnvironmentVariable(LibTorchEnvironmentVariable)
            : libtorchFolder;
        return ResolveCore(spec, string.IsNullOrWhiteSpace(folder) ? null : folder);
    }

    /// <summary><see cref="Resolve"/> without the environment lookup, so tests do not depend on the caller's environment.</summary>
    internal static Device ResolveCore(string spec, string? folder)
    {
        var (type, index) = ParseSpec(spec);
        lock (Gate)
        {
            if (type == DeviceType.CPU)
            {
                EnsureCpuBackend(spec, folder);
                return torch.device(DeviceType.CPU);
            }
            EnsureCudaBackend(spec, folder);
        }

        int count = torch.cuda.device_count();
        if (index >= count)
        {
            var visible = Environment.GetEnvironmentVariable("CUDA_VISIBLE_DEVICES");
            throw new DeviceUnavailableException(spec, folder,
                $"Device '{spec}' was requested but this machine has {count} visible CUDA device(s)" +
                (count > 0 ? $" (cuda:0 to cuda:{count - 1})" : "") +
                (visible is null ? "" : $"; CUDA_VISIBLE_DEVICES={visible}") +
                ". Choose an index below the device count (see nvidia-smi).");
        }
        return torch.device(DeviceType.CUDA, index);
    }

    /// <summary>
    /// A short human description for logs and the UI, e.g. "CPU (2 threads)" or "CUDA:0".
    /// </summary>
    public static string DescribeDevice(Device device)
    {
        ArgumentNullException.ThrowIfNull(device);
        switch (device.type)
        {
            case DeviceType.CPU:
                int threads = torch.get_num_threads();
                return threads == 1 ? "CPU (1 thread)" : $"CPU ({threads} threads)";
            case DeviceType.CUDA:
                return $"CUDA:{Math.Max(0, device.index)}";
            default:
                return device.ToString();
        }
    }

    /// <summary>
    /// Sets libtorch's intra-op CPU thread count (null keeps libtorch's default, one per physical core) and returns the
    /// count in effect. Exposed for the CLI's <c>--threads</c>: on a shared machine a user may want to leave cores free.
    /// </summary>
    public static int ConfigureCpuThreads(int? threads)
    {
        if (threads is { } n)
        {
            ArgumentOutOfRangeException.ThrowIfLessThan(n, 1, nameof(threads));
            torch.set_num_threads(n);
        }
        return torch.get_num_threads();
    }

    /// <summary>Parses "cpu", "cuda" or "cuda:N". Index is 0 for "cuda" and for "cpu".</summary>
    internal static (DeviceType Type, int Index) ParseSpec(string spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        var s = spec.Trim().ToLowerInvariant();
        if (s == "cpu")
            return (DeviceType.CPU, 0);
        if (s == "cuda")
            return (DeviceType.CUDA, 0);
        if (s.StartsWith("cuda:", StringComparison.Ordinal)
            && int.TryParse(s.AsSpan(5), NumberStyles.None, CultureInfo.InvariantCulture, out int index))
            return (DeviceType.CUDA, index);
        throw new ArgumentException(
            $"Unknown device '{spec}'. Valid values: cpu, cuda, cuda:N (N = 0, 1, ... the GPU index).", nameof(spec));
    }

    private static void EnsureCpuBackend(string spec, string? folder)
    {
        if (s_cpuReady || s_cudaReady)
            return;
        // A CPU libtorch TorchSharp finds by itself (TorchSharp-cpu, or one already loaded): use it and ignore the folder.
        bool shipped = NativeLibrary.TryLoad("torch_cpu", typeof(torch).Assembly, null, out _);
        if (!shipped && folder is not null)
            LoadFromFolder(spec, folder, RequiredCpuLibraries);
        try
        {
            torch.InitializeDeviceType(DeviceType.CPU);
        }
        catch (Exception e) when (e is NotSupportedException or DllNotFoundException or InvalidOperationException)
        {
            throw new DeviceUnavailableException(spec, folder,
                $"TorchSharp found no CPU libtorch{(folder is null ? "" : $" (folder tried: '{folder}')")}: {FirstLine(e.Message)} " +
                "Reference the TorchSharp-cpu package in the application, or pass --libtorch <folder with libtorch_cpu.so>.", e);
        }
        s_cpuReady = true;
    }

    private static void EnsureCudaBackend(string spec, string? folder)
    {
        if (s_cudaReady)
            return;

        // A CUDA libtorch that TorchSharp would find by itself: the TorchSharp-cuda-* packages, or one on LD_LIBRARY_PATH.
        // Only then is asking TorchSharp cheap and quiet; without one, and with a folder to try, TorchSharp's own search
        // would print a long failure trace first.
        bool shipped = NativeLibrary.TryLoad("torch_cuda", typeof(torch).Assembly, null, out _);
        if (shipped || folder is null)
        {
            var (available, problem) = ProbeCuda();
            if (available)
            {
                s_cudaReady = true;
                return;
            }
            if (folder is null)
            {
                throw new DeviceUnavailableException(spec, null,
                    $"Device '{spec}' was requested but CUDA is not available: " +
                    (shipped
                        ? "the application's CUDA libtorch loaded but sees no usable GPU (check nvidia-smi and the driver)"
                        : "TorchSharp found no loadable CUDA libtorch (the application ships none, or its CUDA dependencies are missing) and no libtorch folder was given") +
                    (problem is null ? "" : $" ({problem})") + ". " + Advice);
            }
            throw new DeviceUnavailableException(spec, folder,
                $"Device '{spec}' was requested: the application's own CUDA libtorch is loaded but sees no usable GPU" +
                (problem is null ? "" : $" ({problem})") +
                $", and the libtorch folder '{folder}' was not loaded over it because two libtorch copies in one process crash. " +
                "Check nvidia-smi and the driver, or build without the TorchSharp-cuda package to use the folder.");
        }

        LoadFromFolder(spec, folder, RequiredCudaLibraries);
        try
        {
            torch.InitializeDeviceType(DeviceType.CUDA);
        }
        catch (Exception e) when (e is NotSupportedException or DllNotFoundException or InvalidOperationException)
        {
            throw new DeviceUnavailableException(spec, folder,
                $"libtorch from '{folder}' loaded, but TorchSharp could not initialise CUDA: {FirstLine(e.Message)} " +
                $"TorchSharp {typeof(torch).Assembly.GetName().Version} was built for libtorch {torch.__version__}; " +
                "check that the folder's PyTorch is close to that version and that nvidia-smi sees a GPU.", e);
        }
        if (!torch.cuda.is_available())
        {
            throw new DeviceUnavailableException(spec, folder,
                $"libtorch from '{folder}' loaded, but CUDA reports no usable GPU. Check nvidia-smi, the driver and " +
                "CUDA_VISIBLE_DEVICES.");
        }
        s_cudaReady = true;
    }

    private static (bool Available, string? Problem) ProbeCuda()
    {
        try
        {
            return (torch.cuda.is_available(), null);
        }
        catch (Exception e) when (e is NotSupportedException or DllNotFoundException or InvalidOperationException)
        {
            return (false, FirstLine(e.Message));
        }
    }

    /// <summary>
    /// Loads <paramref name="libraries"/> from <paramref name="folder"/>, then TorchSharp's native bridge. Checks that
    /// every file exists before loading any, so a wrong folder leaves the process untouched.
    /// </summary>
    private static void LoadFromFolder(string spec, string folder, IReadOnlyList<string> libraries)
    {
        if (!OperatingSystem.IsLinux())
        {
            throw new DeviceUnavailableException(spec, folder,
                $"Loading libtorch from a folder ('{folder}') is implemented for Linux only. On " +
                $"{RuntimeInformation.OSDescription}, reference the TorchSharp backend package for your platform instead.");
        }

        var full = Path.GetFullPath(folder);
        if (!Directory.Exists(full))
        {
            throw new DeviceUnavailableException(spec, folder,
                $"Device '{spec}': the libtorch folder '{full}' does not exist. {Advice}");
        }

        var missing = libraries.Where(name => !File.Exists(Path.Combine(full, name))).ToList();
        if (missing.Count > 0)
        {
            throw new DeviceUnavailableException(spec, folder,
                $"Device '{spec}': the libtorch folder '{full}' " +
                (missing.Count == libraries.Count
                    ? $"has none of the required libraries ({string.Join(", ", libraries)})"
                    : $"lacks {string.Join(", ", missing)} (required: {string.Join(", ", libraries)})") +
                ". Nothing was loaded. PyTorch's folder is printed by " +
                "python3 -c \"import torch, os; print(os.path.join(os.path.dirname(torch.__file__), 'lib'))\". " + Advice);
        }

        var searched = TorchSharpNativeCandidates().ToList();
        var bridge = searched.FirstOrDefault(File.Exists) ?? throw new DeviceUnavailableException(spec, folder,
            $"Device '{spec}': TorchSharp's native library {TorchSharpNativeLibrary} was not found next to the application " +
            $"(searched: {string.Join(", ", searched)}). Nothing was loaded. Reference the TorchSharp package in the " +
            "application (a self-contained linux-x64 publish places it beside the executable).");

        var loaded = new List<string>();
        foreach (var path in libraries.Select(name => Path.Combine(full, name)).Append(bridge))
        {
            try
            {
                NativeLibrary.Load(path);
            }
            catch (Exception e) when (e is DllNotFoundException or BadImageFormatException)
            {
                throw new DeviceUnavailableException(spec, folder,
                    $"Device '{spec}': could not load '{path}': {e.Message}" +
                    (loaded.Count == 0
                        ? " Nothing was loaded."
                        : $" Already loaded (they stay loaded; restart before trying another folder): {string.Join(", ", loaded.Select(Path.GetFileName))}.") +
                    " " + Advice, e);
            }
            loaded.Add(path);
        }
    }

    /// <summary>Where a build or publish puts <see cref="TorchSharpNativeLibrary"/>, most specific first.</summary>
    private static IEnumerable<string> TorchSharpNativeCandidates()
    {
        var rid = RuntimeInformation.ProcessArchitecture == Architecture.Arm64 ? "linux-arm64" : "linux-x64";
        var folders = new List<string> { AppContext.BaseDirectory };
        var torchSharpFolder = Path.GetDirectoryName(typeof(torch).Assembly.Location);
        if (!string.IsNullOrEmpty(torchSharpFolder))
            folders.Add(torchSharpFolder);
        return folders
            .SelectMany(f => new[] { f, Path.Combine(f, "runtimes", rid, "native") })
            .Select(f => Path.GetFullPath(Path.Combine(f, TorchSharpNativeLibrary)))
            .Distinct(StringComparer.Ordinal);
    }

    private static string FirstLine(string message)
    {
        var line = message.AsSpan().TrimStart();
        int end = line.IndexOfAny('\r', '\n');
        return (end < 0 ? line : line[..end]).Trim().ToString();
    }
}
