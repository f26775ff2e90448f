using System.Text.Json;
using SmoothCache.Kernels;
using SmoothCache.Model.Checkpoints;

namespace SmoothCache.Model;

/// <summary>Reading diffusers config.json files: every bad value is a <see cref="ModelConfigException"/>
/// naming the file and the key; missing or null keys take the caller's default.</summary>
public static class ConfigJson
{
    public static T Load<T>(string path, Func<JsonElement, string, T> parse)
    {
        if (PathProblems.ForFile(path) is { } problem) throw new CheckpointNotFoundException(path, $"config {problem}");
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(File.ReadAllText(path));
        }
        catch (JsonException e)
        {
            throw new CorruptCheckpointException(path, null, JsonErrors.Describe(e), e);
        }
        catch (IOException e)
        {
            throw new CorruptCheckpointException(path, null, $"cannot be read: {e.Message}", e);
        }
        using (doc) return parse(doc.RootElement, path);
    }

    public static string? OptionalString(JsonElement root, string key, string path)
    {
        if (!root.TryGetProperty(key, out var v) || v.ValueKind == JsonValueKind.Null) return null;
        if (v.ValueKind != JsonValueKind.String) throw new ModelConfigException(path, key, "expected a string");
        return v.GetString();
    }

    public static int Int(JsonElement root, string key, int fallback, string path)
    {
        if (!root.TryGetProperty(key, out var v) || v.ValueKind == JsonValueKind.Null) return fallback;
        return PositiveInt(v, key, path);
    }

    public static int PositiveInt(JsonElement v, string key, string path)
    {
        if (v.ValueKind != JsonValueKind.Number || !v.TryGetInt32(out int value) || value < 1)
            throw new ModelConfigException(path, key, $"expected a positive integer, found {v.GetRawText()}");
        return value;
    }

    /// <summary>A positive number as float32: one that rounds to 0 or infinity there is refused too.</summary>
    public static float Float(JsonElement root, string key, float fallback, string path)
    {
        if (!root.TryGetProperty(key, out var v) || v.ValueKind == JsonValueKind.Null) return fallback;
        if (v.ValueKind != JsonValueKind.Number || !v.TryGetSingle(out float value) || !float.IsFinite(value) || !(value > 0))
            throw new ModelConfigException(path, key, $"expected a positive number within float32's range, found {v.GetRawText()}");
        return value;
    }

    /// <summary>Refuses a size past <paramref name="max"/> (computed in 64 bits by the caller): the kernels index in 32 bits,
    /// and a hostile config must not wrap a size into a small or negative one.</summary>
    public static void Limit(string path, string key, long value, long max, string what)
    {
        if (value > max) throw new ModelConfigException(path, key, $"{what} is {value}, more than the {max} supported");
    }

    public static bool Bool(JsonElement root, string key, bool fallback, string path)
    {
        if (!root.TryGetProperty(key, out var v) || v.ValueKind == JsonValueKind.Null) return fallback;
        return v.ValueKind switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            _ => throw new ModelConfigException(path, key, $"expected true or false, found {v.GetRawText()}"),
        };
    }

    public static int[]? IntArray(JsonElement root, string key, string path)
    {
        if (!root.TryGetProperty(key, out var v) || v.ValueKind == JsonValueKind.Null) return null;
        if (v.ValueKind != JsonValueKind.Array || v.GetArrayLength() == 0)
            throw new ModelConfigException(path, key, $"expected a non-empty array of positive integers, found {v.GetRawText()}");
        return v.EnumerateArray().Select(e => PositiveInt(e, key, path)).ToArray();
    }

    public static string[]? StringArray(JsonElement root, string key, string path)
    {
        if (!root.TryGetProperty(key, out var v) || v.ValueKind == JsonValueKind.Null) return null;
        if (v.ValueKind != JsonValueKind.Array || v.EnumerateArray().Any(e => e.ValueKind != JsonValueKind.String))
            throw new ModelConfigException(path, key, $"expected an array of strings, found {v.GetRawText()}");
        return v.EnumerateArray().Select(e => e.GetString()!).ToArray();
    }
}
