using System.Text.Json;
using SmoothCache.Model;

namespace SmoothCache.Cli.Bench;

/// <summary>Benchmark results as indented camelCase JSON, written atomically (temp file beside the target, then rename).</summary>
public static class BenchJson
{
    private static readonly JsonSerializerOptions Options =
        new() { WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.CamelCase };

    public static void Write(string path, object value) => AtomicFile.WriteAllText(path, JsonSerializer.Serialize(value, Options));
}
