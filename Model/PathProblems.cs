namespace SmoothCache.Model;

/// <summary>Why a path cannot be read as what it should be, in words for an error message (null: it can).
/// A folder where a file belongs, or the reverse, is said so rather than "not found", and so is a link to nothing.</summary>
public static class PathProblems
{
    public static string? ForFile(string path) =>
        Directory.Exists(path) ? "is a folder: expected a file"
        : DanglingLink(path) is { } target ? $"is a link to {target}, which does not exist"
        : File.Exists(path) ? null : "file not found";

    public static string? ForFolder(string path) =>
        Directory.Exists(path) ? null
        : DanglingLink(path) is { } target ? $"is a link to {target}, which does not exist"
        : File.Exists(path) ? "is a file: expected a folder" : "folder not found";

    /// <summary>The target of a symbolic link at <paramref name="path"/> that leads nowhere (null: no link, or one that resolves).</summary>
    private static string? DanglingLink(string path)
    {
        try
        {
            var info = new FileInfo(path);
            if (info.LinkTarget is not { } target) return null;
            var final = info.ResolveLinkTarget(returnFinalTarget: true);
            return final is null || !(File.Exists(final.FullName) || Directory.Exists(final.FullName)) ? target : null;
        }
        catch (IOException)
        {
            return null; // a loop of links: opening it names the problem
        }
    }
}
