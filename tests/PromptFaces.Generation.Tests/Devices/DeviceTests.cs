using PromptFaces.Generation.Devices;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace PromptFaces.Generation.Tests.Devices;

/// <summary>
/// The test project references TorchSharp-cpu, so CUDA is never available here and the CUDA failure paths are what
/// can be checked: each must name what was asked, what was tried and what to do, and must leave the process able to
/// run on the CPU afterwards. (The success path needs a GPU and a CUDA libtorch folder.)
/// </summary>
[Collection(nameof(ThreadCountChanges))]
public sealed class DeviceTests : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("promptfaces-libtorch-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    [Theory]
    [InlineData("cpu")]
    [InlineData(" CPU ")]
    public void Cpu_Resolves_AndRuns(string spec)
    {
        var device = ComputeDevices.Resolve(spec);

        Assert.Equal(DeviceType.CPU, device.type);
        using var x = ones(3, device: device);
        Assert.Equal(3f, x.sum().item<float>());
    }

    [Theory]
    [InlineData("tpu")]
    [InlineData("cuda:")]
    [InlineData("cuda:x")]
    [InlineData("cuda:-1")]
    [InlineData("gpu0")]
    [InlineData("")]
    public void UnknownSpec_ListsTheValidValues(string spec)
    {
        var error = Assert.Throws<ArgumentException>(() => ComputeDevices.Resolve(spec));

        Assert.Equal("spec", error.ParamName);
        Assert.Contains($"'{spec}'", error.Message, StringComparison.Ordinal);
        Assert.Contains("cpu, cuda, cuda:N", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Cuda_FromAnEmptyFolder_NamesTheFolderAndTheMissingFiles_AndCpuStillWorks()
    {
        SkipIfCudaIsAvailable();

        var error = Assert.Throws<DeviceUnavailableException>(() => ComputeDevices.Resolve("cuda", _folder));

        Assert.Equal("cuda", error.RequestedDevice);
        Assert.Equal(_folder, error.LibTorchFolder);
        Assert.Contains(_folder, error.Message, StringComparison.Ordinal);
        Assert.Contains("libc10.so", error.Message, StringComparison.Ordinal);
        Assert.Contains("libtorch_cuda.so", error.Message, StringComparison.Ordinal);
        Assert.Contains("--libtorch", error.Message, StringComparison.Ordinal);
        AssertCpuStillWorks();
    }

    [Fact]
    public void Cuda_FromAMissingFolder_SaysItDoesNotExist()
    {
        SkipIfCudaIsAvailable();
        var missing = Path.Combine(_folder, "no-such-folder");

        var error = Assert.Throws<DeviceUnavailableException>(() => ComputeDevices.Resolve("cuda:0", missing));

        Assert.Contains(missing, error.Message, StringComparison.Ordinal);
        Assert.Contains("does not exist", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Cuda_FromAFolderOfBrokenLibraries_ReportsTheFileAndTheLoadersMessage_AndCpuStillWorks()
    {
        SkipIfCudaIsAvailable();
        foreach (var name in ComputeDevices.RequiredCudaLibraries)
            File.WriteAllText(Path.Combine(_folder, name), "not a shared library");

        var error = Assert.Throws<DeviceUnavailableException>(() => ComputeDevices.Resolve("cuda", _folder));

        Assert.Contains(Path.Combine(_folder, "libc10.so"), error.Message, StringComparison.Ordinal);
        Assert.Contains("could not load", error.Message, StringComparison.Ordinal);
        Assert.Contains("Nothing was loaded", error.Message, StringComparison.Ordinal);
        Assert.NotNull(error.InnerException); // the loader's own exception, whose text is in the message
        Assert.Contains(error.InnerException.Message, error.Message, StringComparison.Ordinal);
        AssertCpuStillWorks();
    }

    [Fact]
    public void Cuda_WithoutAFolder_OnACpuOnlyBuild_SaysWhatToDo()
    {
        SkipIfCudaIsAvailable();

        var error = Assert.Throws<DeviceUnavailableException>(() => ComputeDevices.ResolveCore("cuda:1", folder: null));

        Assert.Equal("cuda:1", error.RequestedDevice);
        Assert.Null(error.LibTorchFolder);
        Assert.Contains("'cuda:1'", error.Message, StringComparison.Ordinal);
        Assert.Contains("CUDA is not available", error.Message, StringComparison.Ordinal);
        Assert.Contains("--libtorch", error.Message, StringComparison.Ordinal);
        Assert.Contains("TorchSharp-cuda-linux", error.Message, StringComparison.Ordinal);
        AssertCpuStillWorks();
    }

    [Fact]
    public void Cuda_TakesTheFolderFromTheEnvironmentVariable()
    {
        SkipIfCudaIsAvailable();
        var before = Environment.GetEnvironmentVariable(ComputeDevices.LibTorchEnvironmentVariable);
        try
        {
            Environment.SetEnvironmentVariable(ComputeDevices.LibTorchEnvironmentVariable, _folder);

            var error = Assert.Throws<DeviceUnavailableException>(() => ComputeDevices.Resolve("cuda"));

            Assert.Equal(_folder, error.LibTorchFolder);
            Assert.Contains("libc10.so", error.Message, StringComparison.Ordinal);
        }
        finally
        {
            Environment.SetEnvironmentVariable(ComputeDevices.LibTorchEnvironmentVariable, before);
        }
    }

    [Fact]
    public void DescribeDevice_GivesThreadsForCpu_AndTheIndexForCuda()
    {
        Assert.Equal($"CPU ({get_num_threads()} threads)", ComputeDevices.DescribeDevice(ComputeDevices.Resolve("cpu")));
        // The constructor, not torch.device(...), which would try to initialise CUDA.
        Assert.Equal("CUDA:1", ComputeDevices.DescribeDevice(new Device(DeviceType.CUDA, 1)));
    }

    [Fact]
    public void ConfigureCpuThreads_SetsTheCount_AndRefusesZero()
    {
        int before = ComputeDevices.ConfigureCpuThreads(null);
        try
        {
            Assert.Equal(1, ComputeDevices.ConfigureCpuThreads(1));
            Assert.Equal("CPU (1 thread)", ComputeDevices.DescribeDevice(device(DeviceType.CPU)));
            Assert.Throws<ArgumentOutOfRangeException>(() => ComputeDevices.ConfigureCpuThreads(0));
        }
        finally
        {
            ComputeDevices.ConfigureCpuThreads(before);
        }
        Assert.Equal(before, get_num_threads());
    }

    private static void SkipIfCudaIsAvailable()
    {
        if (cuda.is_available())
            Assert.Skip("CUDA is available to this test process, so the CUDA failure paths cannot be provoked.");
    }

    private static void AssertCpuStillWorks()
    {
        using var a = ones(2, 2);
        using var b = a.matmul(a);
        Assert.Equal(8f, b.sum().item<float>());
    }
}

/// <summary>
/// Tests that change libtorch's process-wide thread count run alone: a parallel test that compares two runs byte for
/// byte (batch against alone, resumed against uninterrupted) would otherwise see its halves split reductions differently.
/// </summary>
[CollectionDefinition(nameof(ThreadCountChanges), DisableParallelization = true)]
public sealed class ThreadCountChanges;
