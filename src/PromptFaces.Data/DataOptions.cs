namespace PromptFaces.Data;

/// <summary>Where the app keeps its state, bound from <c>PromptFaces</c>.</summary>
public sealed class DataOptions
{
    public const string Section = "PromptFaces";

    /// <summary>The data folder: the SQLite database and the image files. Relative paths are taken from the content root.</summary>
    public string DataFolder { get; set; } = "data";

    /// <summary>The database file name inside the data folder, used when no <c>ConnectionStrings:PromptFaces</c> is set.</summary>
    public string DatabaseFile { get; set; } = "promptfaces.db";
}
