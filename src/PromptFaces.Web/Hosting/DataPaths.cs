using PromptFaces.Data;

namespace PromptFaces.Web.Hosting;

/// <summary>
/// The data folder and the database connection, resolved when first needed (not while the host is being built), so
/// every configuration source, test hosts' included, has its say.
/// </summary>
public sealed class DataPaths
{
    public DataPaths(IConfiguration configuration, IHostEnvironment environment)
    {
        var options = configuration.GetSection(DataOptions.Section).Get<DataOptions>() ?? new DataOptions();
        DataFolder = Path.GetFullPath(options.DataFolder, environment.ContentRootPath);
        Directory.CreateDirectory(DataFolder);
        ConnectionString = configuration.GetConnectionString("PromptFaces") ?? $"Data Source={Path.Combine(DataFolder, options.DatabaseFile)}";
    }

    /// <summary>Absolute path of the data folder (created if missing).</summary>
    public string DataFolder { get; }

    public string ConnectionString { get; }

    public string ImagesFolder => Path.Combine(DataFolder, "images");

    public string KeysFolder => Path.Combine(DataFolder, "keys");
}
