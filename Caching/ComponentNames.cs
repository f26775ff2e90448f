using SmoothCache.Model;

namespace SmoothCache.Caching;

/// <summary>
/// Component names of schedules and helpers: this model's "attn1" and "ff", and the original-DiT
/// aliases "attn" and "mlp" used by the published DiT-XL/2 schedules (DESIGN §3).
/// </summary>
public static class ComponentNames
{
    /// <summary>The accepted names, as error messages list them.</summary>
    public const string Expected = "attn1, ff (or the aliases attn, mlp)";

    /// <summary>"attn1" or "ff" for a known name or alias; null otherwise.</summary>
    public static string? CanonicalOrNull(string name) => name switch
    {
        Components.Attention or "attn" => Components.Attention,
        Components.FeedForward or "mlp" => Components.FeedForward,
        _ => null,
    };

    /// <summary>"attn1" or "ff" for a known name or alias (case-sensitive).</summary>
    /// <exception cref="ArgumentException"><paramref name="name"/> is neither a component name nor an alias</exception>
    public static string Canonical(string name) =>
        CanonicalOrNull(name) ?? throw new ArgumentException($"unknown component '{name}': expected {Expected}", nameof(name));

    /// <summary>Canonical names, duplicates removed, in first-seen order.</summary>
    public static IReadOnlyList<string> CanonicalSet(IEnumerable<string> names)
    {
        var result = new List<string>();
        foreach (var name in names)
        {
            var canonical = Canonical(name);
            if (!result.Contains(canonical)) result.Add(canonical);
        }
        return result;
    }
}

/// <summary>One wrapped component instance: component <see cref="Component"/> of block <see cref="Block"/>.</summary>
public readonly record struct ComponentBlock(string Component, int Block)
{
    /// <summary>The module path the published helpers use as the key of raw error rows.</summary>
    public string ModuleName => $"transformer_blocks.{Block}.{Component}";
}
