using SixLabors.ImageSharp;
using SixLabors.ImageSharp.Formats.Jpeg;
using SixLabors.ImageSharp.PixelFormats;
using SixLabors.ImageSharp.Processing;

namespace PromptFaces.Data.Files;

/// <summary>Where an image's files went, relative to the store's root, and its size.</summary>
public sealed record StoredImageFiles(string FilePath, string ThumbnailPath, string? AnimationPath, int Width, int Height);

/// <summary>
/// Image files under one root folder (the data folder's <c>images/</c>, a folder per month): the PNG exactly as the engine wrote it (its
/// generation metadata embedded), a JPEG thumbnail, and the optimisation's GIF. The database keeps relative paths.
/// </summary>
public sealed class ImageFileStore
{
    /// <summary>Thumbnail side in pixels (the longer side; aspect ratio kept).</summary>
    public const int ThumbnailSize = 256;

    /// <summary>The largest image side accepted from the engine; guards decoding against a broken result.</summary>
    public const int MaxSide = 4096;

    private static readonly JpegEncoder ThumbnailEncoder = new() { Quality = 85 };

    public ImageFileStore(string root)
    {
        Root = Path.GetFullPath(root);
    }

    public string Root { get; }

    /// <summary>Writes the files of image <paramref name="imageId"/>; each file appears whole or not at all.</summary>
    /// <exception cref="InvalidDataException">The PNG is not a decodable image of a sensible size.</exception>
    public StoredImageFiles Save(Guid imageId, DateTime createdAt, byte[] png, byte[]? animationGif)
    {
        var info = Image.Identify(png) ?? throw new InvalidDataException("The engine's result is not a readable image.");
        if (info.Width < 1 || info.Height < 1 || info.Width > MaxSide || info.Height > MaxSide)
            throw new InvalidDataException($"The engine's result is {info.Width}x{info.Height}; images must be 1 to {MaxSide} pixels on a side.");

        // A folder per month keeps folders small without a lookup table.
        var folder = Path.Combine(createdAt.ToString("yyyy"), createdAt.ToString("MM"));
        var file = Path.Combine(folder, $"{imageId:N}.png");
        var thumbnail = Path.Combine(folder, $"{imageId:N}.thumb.jpg");
        var animation = animationGif is null ? null : Path.Combine(folder, $"{imageId:N}.gif");

        WriteAtomically(file, png);
        using (var image = Image.Load<Rgb24>(png))
        {
            image.Mutate(c => c.Resize(new ResizeOptions { Size = new Size(ThumbnailSize, ThumbnailSize), Mode = ResizeMode.Max }));
            using var output = new MemoryStream();
            image.Save(output, ThumbnailEncoder);
            WriteAtomically(thumbnail, output.ToArray());
        }
        if (animation is not null) WriteAtomically(animation, animationGif!);
        return new StoredImageFiles(ToStored(file), ToStored(thumbnail), animation is null ? null : ToStored(animation), info.Width, info.Height);
    }

    /// <summary>Opens a stored file for reading, or returns null when it is missing.</summary>
    public Stream? OpenRead(string relativePath)
    {
        var path = Resolve(relativePath);
        return File.Exists(path) ? new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 64 * 1024, useAsync: true) : null;
    }

    /// <summary>The full path of a stored file; refuses paths that would leave the root.</summary>
    public string Resolve(string relativePath)
    {
        var full = Path.GetFullPath(Path.Combine(Root, relativePath));
        if (!full.StartsWith(Root + Path.DirectorySeparatorChar, StringComparison.Ordinal))
            throw new InvalidOperationException($"The stored path '{relativePath}' points outside the image store.");
        return full;
    }

    /// <summary>Deletes stored files; missing ones are ignored.</summary>
    public void Delete(params string?[] relativePaths)
    {
        foreach (var relative in relativePaths)
        {
            if (relative is null) continue;
            var path = Resolve(relative);
            if (File.Exists(path)) File.Delete(path);
        }
    }

    private static string ToStored(string relative) => relative.Replace(Path.DirectorySeparatorChar, '/');

    private void WriteAtomically(string relative, byte[] bytes)
    {
        var path = Resolve(relative);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        var temporary = path + ".tmp";
        File.WriteAllBytes(temporary, bytes);
        File.Move(temporary, path, overwrite: true);
    }
}
