using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;

namespace PromptFaces.Generation.Imaging;

/// <summary>
/// Reads the text chunks (tEXt, zTXt, iTXt) of a PNG by walking its chunk list, without decoding any pixels.
/// </summary>
/// <remarks>
/// Why not ImageSharp's <c>Image.Identify</c>: in 2.1.13 it inflates compressed text chunks with no size bound, so a
/// small upload could expand to gigabytes. Here each text chunk is capped at <see cref="MaxTextChunkBytes"/> both
/// compressed and inflated; larger ones are skipped (they are never ours: our prompts are short), image data is
/// skipped unread, and the header's dimensions are held to <see cref="ImageDecoding.MaxSide"/> like every other image
/// taken from outside. Chunks that are read are CRC-checked: a mismatch means a corrupt file, reported as such.
/// </remarks>
internal static class PngTextChunks
{
    /// <summary>Text chunks larger than this (compressed or inflated) are skipped.</summary>
    public const int MaxTextChunkBytes = 1 << 20;

    private static ReadOnlySpan<byte> Signature => [137, 80, 78, 71, 13, 10, 26, 10];

    /// <summary>All text chunks by keyword; a later chunk with the same keyword replaces an earlier one.</summary>
    /// <exception cref="InvalidDataException">Not a PNG, truncated, corrupt, or larger than the allowed size.</exception>
    public static Dictionary<string, string> Read(Stream stream)
    {
        Span<byte> header = stackalloc byte[8];
        ReadExactly(stream, header, "the PNG signature");
        if (!header.SequenceEqual(Signature))
            throw new InvalidDataException("Not a PNG file (the signature does not match).");

        Span<byte> crc = stackalloc byte[4];
        var text = new Dictionary<string, string>(StringComparer.Ordinal);
        bool first = true;
        while (true)
        {
            ReadExactly(stream, header, "a chunk header");
            uint length = BinaryPrimitives.ReadUInt32BigEndian(header);
            string type = Encoding.ASCII.GetString(header[4..]);
            if (length > int.MaxValue)
                throw new InvalidDataException($"PNG chunk {type} declares {length} bytes, more than the format allows.");
            if (first && (type != "IHDR" || length != 13))
                throw new InvalidDataException("Not a valid PNG: the first chunk is not a 13-byte IHDR.");
            first = false;
            if (type == "IEND")
                return text;

            bool wanted = type is "IHDR" or "tEXt" or "zTXt" or "iTXt" && length <= MaxTextChunkBytes;
            if (!wanted)
            {
                Skip(stream, length + 4L, type);
                continue;
            }

            var data = new byte[length];
            ReadExactly(stream, data, $"the {type} chunk");
            ReadExactly(stream, crc, $"the {type} chunk's CRC");
            if (BinaryPrimitives.ReadUInt32BigEndian(crc) != Crc32.Compute(header[4..], data))
                throw new InvalidDataException($"PNG chunk {type} is corrupt (its CRC does not match).");

            if (type == "IHDR")
            {
                ImageDecoding.CheckDimensions(BinaryPrimitives.ReadUInt32BigEndian(data), BinaryPrimitives.ReadUInt32BigEndian(data.AsSpan(4)));
                continue;
            }
            var entry = type switch
            {
                "tEXt" => ParseText(data),
                "zTXt" => ParseCompressedText(data),
                _ => ParseInternationalText(data),
            };
            if (entry is { } found)
                text[found.Keyword] = found.Value;
        }
    }

    /// <summary>tEXt: keyword, NUL, Latin-1 text.</summary>
    private static (string Keyword, string Value)? ParseText(ReadOnlySpan<byte> data)
    {
        if (!TrySplitKeyword(data, out var keyword, out var rest))
            return null;
        return (keyword, Encoding.Latin1.GetString(rest));
    }

    /// <summary>zTXt: keyword, NUL, method (0 = zlib), compressed Latin-1 text.</summary>
    private static (string Keyword, string Value)? ParseCompressedText(ReadOnlySpan<byte> data)
    {
        if (!TrySplitKeyword(data, out var keyword, out var rest) || rest.Length < 1 || rest[0] != 0)
            return null;
        var inflated = InflateBounded(rest[1..]);
        return inflated is null ? null : (keyword, Encoding.Latin1.GetString(inflated));
    }

    /// <summary>iTXt: keyword, NUL, compression flag, method, language tag, NUL, translated keyword, NUL, UTF-8 text.</summary>
    private static (string Keyword, string Value)? ParseInternationalText(ReadOnlySpan<byte> data)
    {
        if (!TrySplitKeyword(data, out var keyword, out var rest) || rest.Length < 2)
            return null;
        byte compressed = rest[0], method = rest[1];
        if (compressed > 1 || method != 0)
            return null;
        rest = rest[2..];
        for (int skip = 0; skip < 2; skip++) // language tag, translated keyword
        {
            int end = rest.IndexOf((byte)0);
            if (end < 0)
                return null;
            rest = rest[(end + 1)..];
        }
        if (compressed == 0)
            return (keyword, Encoding.UTF8.GetString(rest));
        var inflated = InflateBounded(rest);
        return inflated is null ? null : (keyword, Encoding.UTF8.GetString(inflated));
    }

    /// <summary>Keywords are 1-79 Latin-1 bytes followed by a NUL (PNG spec, 11.3.4).</summary>
    private static bool TrySplitKeyword(ReadOnlySpan<byte> data, out string keyword, out ReadOnlySpan<byte> rest)
    {
        int end = data.IndexOf((byte)0);
        if (end is < 1 or > 79)
        {
            keyword = "";
            rest = default;
            return false;
        }
        keyword = Encoding.Latin1.GetString(data[..end]);
        rest = data[(end + 1)..];
        return true;
    }

    /// <summary>Inflates zlib data, giving up (null) past <see cref="MaxTextChunkBytes"/> or on corrupt data.</summary>
    private static byte[]? InflateBounded(ReadOnlySpan<byte> compressed)
    {
        try
        {
            using var zlib = new ZLibStream(new MemoryStream(compressed.ToArray()), CompressionMode.Decompress);
            using var output = new MemoryStream();
            var buffer = new byte[16384];
            int read;
            while ((read = zlib.Read(buffer, 0, buffer.Length)) > 0)
            {
                if (output.Length + read > MaxTextChunkBytes)
                    return null;
                output.Write(buffer, 0, read);
            }
            return output.ToArray();
        }
        catch (InvalidDataException)
        {
            return null;
        }
    }

    private static void ReadExactly(Stream stream, Span<byte> buffer, string what)
    {
        try
        {
            stream.ReadExactly(buffer);
        }
        catch (EndOfStreamException e)
        {
            throw new InvalidDataException($"The PNG file is truncated: it ends inside {what}.", e);
        }
    }

    private static void Skip(Stream stream, long count, string type)
    {
        if (stream.CanSeek)
        {
            if (stream.Length - stream.Position < count)
                throw new InvalidDataException($"The PNG file is truncated: it ends inside the {type} chunk.");
            stream.Seek(count, SeekOrigin.Current);
            return;
        }
        var buffer = new byte[(int)Math.Min(count, 81920)];
        while (count > 0)
        {
            int read = stream.Read(buffer, 0, (int)Math.Min(count, buffer.Length));
            if (read == 0)
                throw new InvalidDataException($"The PNG file is truncated: it ends inside the {type} chunk.");
            count -= read;
        }
    }

    /// <summary>The CRC-32 of PNG chunks (ISO 3309, over the chunk type and data).</summary>
    private static class Crc32
    {
        private static readonly uint[] Table = CreateTable();

        public static uint Compute(ReadOnlySpan<byte> type, ReadOnlySpan<byte> data)
        {
            uint crc = 0xFFFFFFFFu;
            foreach (var b in type)
                crc = Table[(crc ^ b) & 0xFF] ^ (crc >> 8);
            foreach (var b in data)
                crc = Table[(crc ^ b) & 0xFF] ^ (crc >> 8);
            return crc ^ 0xFFFFFFFFu;
        }

        private static uint[] CreateTable()
        {
            var table = new uint[256];
            for (uint n = 0; n < 256; n++)
            {
                uint c = n;
                for (int k = 0; k < 8; k++)
                    c = (c & 1) != 0 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
                table[n] = c;
            }
            return table;
        }
    }
}
