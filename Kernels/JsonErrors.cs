using System.Text.Json;

namespace SmoothCache.Kernels;

/// <summary>A JSON parse error as a user reads it: "not valid JSON at line L, byte B: what", both counted from 1 (the byte
/// within the line: its column where the line is ASCII); System.Text.Json's message counts from 0 and names its own path
/// syntax.</summary>
public static class JsonErrors
{
    public static string Describe(JsonException e)
    {
        string what = e.Message;
        int cut = what.IndexOf(" Path:", StringComparison.Ordinal);
        if (cut < 0) cut = what.IndexOf(" LineNumber:", StringComparison.Ordinal);
        if (cut >= 0) what = what[..cut];
        string where = e.LineNumber is { } line ? $" at line {line + 1}, byte {(e.BytePositionInLine ?? 0) + 1}" : "";
        return $"not valid JSON{where}: {what.TrimEnd()}";
    }
}
