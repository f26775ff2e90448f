namespace SmoothCache.Caching;

/// <summary>A cache schedule that cannot be used; the message names the file and, where one is at fault, the key.</summary>
public sealed class CacheScheduleException : Exception
{
    public string File { get; }
    public string? Key { get; }

    public CacheScheduleException(string file, string? key, string problem, Exception? inner = null)
        : base(key is null ? $"{file}: {problem}" : $"{file}: key \"{key}\": {problem}", inner)
    {
        File = file;
        Key = key;
    }
}
