using SmoothCache.Caching;
using SmoothCache.Kernels;
using SmoothCache.Model.Checkpoints;

namespace SmoothCache.Cli;

/// <summary>Which exceptions are the user's input being wrong (exit 2, one line) rather than a bug.</summary>
public static class UserErrors
{
    public static bool IsUserError(Exception e) => e is ArgumentException or CheckpointException
        or FileNotFoundException or DirectoryNotFoundException or InvalidDataException or UserInputException
        or CacheScheduleException or InsufficientMemoryException or DeviceUnavailableException
        // A file this user may not read or write (weights, a schedule, an output): the message names it.
        or UnauthorizedAccessException;

    public static string Describe(Exception e) => e switch
    {
        // Its message ends in "Actual value was X." on a line of its own where the value was given: one line for the user.
        ArgumentOutOfRangeException a => StripParameter(a.Message.Split('\n')[0].TrimEnd(), a.ParamName),
        ArgumentException a => StripParameter(a.Message, a.ParamName),
        // The library names the device asked for; on the command line that is --device's value.
        DeviceUnavailableException d => $"--device {d.Message}",
        _ => e.Message,
    };

    /// <summary>Parses an option's value with <paramref name="parse"/>; its <see cref="ArgumentException"/> becomes a
    /// <see cref="UserInputException"/> that names the option.</summary>
    public static T ParseOption<T>(string option, Func<T> parse)
    {
        try
        {
            return parse();
        }
        catch (ArgumentException e)
        {
            throw new UserInputException($"{option}: {Describe(e)}");
        }
    }

    /// <summary>Checks, before any work, a file an option names for writing: not an existing folder, no file on the way
    /// to it (<see cref="OutputFolder(string, string)"/>), a folder that takes new files (missing folders on the way are
    /// created when it is written), and with <paramref name="extension"/> (e.g. ".png", the format written) named so.</summary>
    public static string? OutputFile(string option, string? path, string? extension = null)
    {
        if (path is null) return null;
        if (path.Length == 0) throw new UserInputException($"{option}: expected a file name, got an empty one");
        if (Directory.Exists(path)) throw new UserInputException($"{option}: '{path}' is a folder: expected a file to write");
        int nameBytes = System.Text.Encoding.UTF8.GetByteCount(Path.GetFileName(path));
        if (nameBytes > MaxNameBytes)
            throw new UserInputException($"{option}: the file name is {nameBytes} bytes long; file systems take up to {MaxNameBytes}");
        if (Path.GetDirectoryName(Path.GetFullPath(path)) is { } folder) OutputFolder(option, folder, path);
        if (extension is not null && !path.EndsWith(extension, StringComparison.OrdinalIgnoreCase))
            throw new UserInputException($"{option}: '{path}' does not end in {extension}: the file written is " +
                                         (extension.ToLowerInvariant() switch { ".png" => "a PNG image", ".json" => "JSON", _ => extension.TrimStart('.') }));
        return path;
    }

    /// <summary>The longest file name, in UTF-8 bytes, that common file systems (ext4, XFS, APFS) take.</summary>
    private const int MaxNameBytes = 255;

    /// <summary>Checks that no two of a command's outputs name the same file (the last written would silently replace the
    /// other); unset ones (null) are skipped.</summary>
    public static void DistinctOutputs(params (string Option, string? Path)[] outputs)
    {
        var set = outputs.Where(o => o.Path is not null).ToArray();
        for (int i = 0; i < set.Length; i++)
            for (int j = 0; j < i; j++)
                if (Path.GetFullPath(set[i].Path!) == Path.GetFullPath(set[j].Path!))
                    throw new UserInputException($"{set[i].Option}: '{set[i].Path}' is also {set[j].Option}'s file: each output needs its own");
    }

    /// <summary>Throws unless the nearest existing folder on the way to <paramref name="folder"/> (itself, if it exists)
    /// takes a new file: one is created there and deleted at once.</summary>
    private static void Writable(string option, string folder)
    {
        string? existing = folder;
        while (existing is not null && !Directory.Exists(existing)) existing = Path.GetDirectoryName(existing);
        if (existing is null) return;
        string probe = Path.Combine(existing, $".smoothcache-probe-{Guid.NewGuid():N}");
        try
        {
            using var file = new FileStream(probe, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1, FileOptions.DeleteOnClose);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            string why = e is UnauthorizedAccessException ? "permission denied" : "the file system refused one (read-only?)";
            throw new UserInputException($"{option}: cannot create a file in '{existing}': {why}");
        }
    }

    /// <summary>Checks, before any work, a folder an option names for writing into: not an existing file, nor below one,
    /// and taking new files (missing folders on the way are created when it is written).</summary>
    public static string OutputFolder(string option, string path) => OutputFolder(option, path, path);

    /// <param name="named">what the option named: <paramref name="path"/> or a file in it</param>
    private static string OutputFolder(string option, string path, string named)
    {
        if (path.Length == 0) throw new UserInputException($"{option}: expected a folder name, got an empty one");
        for (string? at = Path.GetFullPath(path); at is not null; at = Path.GetDirectoryName(at))
            if (File.Exists(at))
                throw new UserInputException($"{option}: '{at}' is a file: expected a folder{(at == Path.GetFullPath(named) ? "" : $" on the way to '{named}'")}");
        Writable(option, Path.GetFullPath(path));
        return path;
    }

    // .NET appends " (Parameter 'x')" to argument messages; the user never named a parameter.
    private static string StripParameter(string message, string? name) =>
        name is null ? message : message.Replace($" (Parameter '{name}')", "");
}

/// <summary>A command-line value that is wrong; the message says which option and what was expected.</summary>
public sealed class UserInputException(string message) : Exception(message);
