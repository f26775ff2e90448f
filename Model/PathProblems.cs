namespace SmoothCache.Model;

/// <summary>Why a path cannot be read as what it should be, in words for an error message (null: it can).
/// A folder where a file belongs, or the reverse, is said so rather than "not found".</summary>
public static class PathProblems
{
    public static string? ForFile(string path) =>
        File.Exists(path) ? null : Directory.Exists(path) ? "is a folder: expected a file" : "file not found";

    public static string? ForFolder(string path) =>
        Directory.Exists(path) ? null : File.Exists(path) ? "is a file: expected a folder" : "folder not found";
}
