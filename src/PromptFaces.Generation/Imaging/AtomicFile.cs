namespace PromptFaces.Generation.Imaging;

/// <summary>
/// Writes a file so that readers see either the old content or the complete new one, never a half-written image (the
/// web app may serve a file while the generator is replacing it, and a crash must not leave a truncated PNG).
/// </summary>
internal static class AtomicFile
{
    /// <summary>Writes to a temporary file in the same folder (so the move is a rename), flushes it to disk, then
    /// moves it over <paramref name="path"/>. Creates the folder if needed.</summary>
    public static void Write(string path, ReadOnlySpan<byte> content)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        var full = Path.GetFullPath(path);
        var folder = Path.GetDirectoryName(full)!;
        Directory.CreateDirectory(folder);
        var temporary = Path.Combine(folder, $".{Path.GetFileName(full)}.{Guid.NewGuid():N}.tmp");
        try
        {
            using (var stream = new FileStream(temporary, FileMode.CreateNew, FileAccess.Write, FileShare.None))
            {
                stream.Write(content);
                stream.Flush(flushToDisk: true);
            }
            File.Move(temporary, full, overwrite: true);
        }
        catch
        {
            File.Delete(temporary);
            throw;
        }
    }
}
