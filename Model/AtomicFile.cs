namespace SmoothCache.Model;

/// <summary>
/// Writes files so that readers never see a half-written one: everything goes to a temporary file
/// in the same folder (same file system, so the rename is atomic), which is then renamed over the
/// target; on failure the temporary file is removed and the target is untouched.
/// </summary>
public static class AtomicFile
{
    /// <summary>Calls <paramref name="writeTemporary"/> with the temporary file's path, then renames it.</summary>
    public static void Write(string path, Action<string> writeTemporary)
    {
        // A link is written through, to the file it names (replacing the link itself would cut it off from that file).
        var file = new FileInfo(path);
        string fullPath = file.LinkTarget is null ? file.FullName : file.ResolveLinkTarget(returnFinalTarget: true)!.FullName;
        Directory.CreateDirectory(Path.GetDirectoryName(fullPath)!);
        string temporary = TemporaryBeside(fullPath);
        try
        {
            writeTemporary(temporary);
            File.Move(temporary, fullPath, overwrite: true);
        }
        finally
        {
            if (File.Exists(temporary)) File.Delete(temporary);
        }
    }

    /// <summary>A new hidden name in <paramref name="path"/>'s folder (the same file system, so a rename onto the path is
    /// atomic): the target's name cut short, since a name near the file system's 255 bytes is legal and the same name plus a
    /// suffix is not.</summary>
    public static string TemporaryBeside(string path)
    {
        string full = Path.GetFullPath(path).TrimEnd(Path.DirectorySeparatorChar);
        string name = Path.GetFileName(full);
        return Path.Combine(Path.GetDirectoryName(full)!, $".{name[..Math.Min(name.Length, 40)]}.{Guid.NewGuid():N}.tmp");
    }

    /// <summary>Writes through a stream on the temporary file, flushed to disk before the rename.</summary>
    public static void WriteStream(string path, Action<FileStream> write) => Write(path, temporary =>
    {
        using var stream = new FileStream(temporary, FileMode.CreateNew, FileAccess.Write, FileShare.None);
        write(stream);
        stream.Flush(flushToDisk: true);
    });

    /// <summary>Writes bytes made in memory (an encoded image: an encoder writing to the file itself may fail inside native
    /// code, where a full disk cannot be caught), flushed to disk before the rename.</summary>
    public static void WriteAllBytes(string path, byte[] bytes) => WriteStream(path, stream => stream.Write(bytes));

    /// <summary>Writes UTF-8 text (no byte-order mark), flushed to disk before the rename.</summary>
    public static void WriteAllText(string path, string text) => WriteStream(path, stream =>
    {
        using var writer = new StreamWriter(stream, new System.Text.UTF8Encoding(false), leaveOpen: true);
        writer.Write(text);
    });
}
