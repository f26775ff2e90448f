using System.Text.Json;

namespace SmoothCache.Cli.Bench;

/// <summary>Benchmark results as indented camelCase JSON, written atomically (temp file beside the target, then rename).</summary>
public static class BenchJson
{
    private static readonly JsonSerializerOptions Options =
        new() { WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.CamelCase };

    public static void Write(string path, object value)
    {
        string text = JsonSerializer.Serialize(value, Options);
        string full = Path.GetFullPath(path);
        Directory.CreateDirectory(Path.GetDirectoryName(full)!);
        string temp = full + ".tmp";
        File.WriteAllText(temp, text);
        File.Move(temp, full, overwrite: true);
    }
}
