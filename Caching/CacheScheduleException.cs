namespace SmoothCache.Caching;

/// <summary>A cache schedule that cannot be used; the message names the file and, where one is at fault, the key.</summary>
public sealed class CacheScheduleException : Exception
{
    /// <summary>The schedule's file path, or the description it was given in place of one.</summary>
    public string File { get; }
    /// <summary>The key at fault as written, or null where the problem is the whole file.</summary>
    public string? Key { get; }

    /// <summary>The message is "{file}: key "{key}": {problem}", or "{file}: {problem}" without a key; <paramref name="inner"/>
    /// is the cause, if any (a read or JSON error).</summary>
    public CacheScheduleException(string file, string? key, string problem, Exception? inner = null)
        : base(key is null ? $"{file}: {problem}" : $"{file}: key \"{key}\": {problem}", inner)
    {
        File = file;
        Key = key;
    }
}
