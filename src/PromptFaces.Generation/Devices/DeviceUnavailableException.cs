namespace PromptFaces.Generation.Devices;

/// <summary>
/// A requested compute device cannot be used. The message says what was asked for, what was tried (the libtorch folder,
/// the file that failed and the loader's own words) and what to do about it, so a user can act on the CLI's or the web
/// app's error text without reading code.
/// </summary>
public sealed class DeviceUnavailableException : Exception
{
    /// <summary>The device specification as the user wrote it, e.g. <c>cuda:1</c>.</summary>
    public string RequestedDevice { get; }

    /// <summary>The libtorch folder that was tried, or null where none was given.</summary>
    public string? LibTorchFolder { get; }

    public DeviceUnavailableException(string requestedDevice, string? libTorchFolder, string message, Exception? inner = null)
        : base(message, inner)
    {
        RequestedDevice = requestedDevice;
        LibTorchFolder = libTorchFolder;
    }
}
