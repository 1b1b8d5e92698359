namespace PromptFaces.Data;

/// <summary>Column lengths the web forms validate against, kept beside the model that stores them.</summary>
public static class DataLimits
{
    public const int PromptLength = 500;
    public const int TeamNameLength = 100;
    public const int GalleryNameLength = 100;
    public const int GalleryDescriptionLength = 1000;
    public const int ErrorLength = 2000;
    public const int WorkerIdLength = 200;
}
