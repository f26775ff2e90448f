using System.Globalization;
using System.Text;

namespace SmoothCache.Caching;

/// <summary>Calls of one component type over all blocks; <see cref="MacsPerCall"/> when the caller supplied it.</summary>
/// <param name="Component">the canonical component name, "attn1" or "ff"</param>
/// <param name="Computed">calls that computed the component, over every block and step</param>
/// <param name="Reused">calls answered with a stored output instead</param>
/// <param name="MacsPerCall">multiply-adds of one computed call (the model's, at the generation's batch), or null where not known</param>
public sealed record ComponentCacheStats(string Component, long Computed, long Reused, long? MacsPerCall)
{
    /// <summary>All calls of this component type, over every block and step: computed plus reused.</summary>
    public long Calls => Computed + Reused;
    /// <summary>Computed / Calls in [0, 1]; 1 when there were no calls.</summary>
    public double ComputedFraction => Calls == 0 ? 1.0 : (double)Computed / Calls;
    /// <summary>Multiply-adds of the computed calls; null without <see cref="MacsPerCall"/>.</summary>
    public long? MacsComputed => Computed * MacsPerCall;
    /// <summary>Multiply-adds had every call been computed; null without <see cref="MacsPerCall"/>.</summary>
    public long? MacsWithoutCache => Calls * MacsPerCall;
    /// <summary>Multiply-adds the reused calls skipped; null without <see cref="MacsPerCall"/>.</summary>
    public long? MacsSaved => Reused * MacsPerCall;
}

/// <summary>What the cache helper computed and reused, per component type (for --stats).</summary>
/// <param name="Components">one entry per component type the helper saw, in the order blocks run them</param>
public sealed record CacheStats(IReadOnlyList<ComponentCacheStats> Components)
{
    /// <summary>Computed calls over all component types.</summary>
    public long Computed => Components.Sum(c => c.Computed);
    /// <summary>Calls answered from the cache over all component types.</summary>
    public long Reused => Components.Sum(c => c.Reused);
    /// <summary>Computed / (Computed + Reused) over all component types, in [0, 1]; 1 when there were no calls.</summary>
    public double ComputedFraction => Computed + Reused == 0 ? 1.0 : (double)Computed / (Computed + Reused);
    private bool HasMacs => Components.Count > 0 && Components.All(c => c.MacsPerCall is not null);
    /// <summary>Multiply-adds of the computed calls over all component types (null unless every component has MACs per call).</summary>
    public long? MacsComputed => HasMacs ? Components.Sum(c => c.MacsComputed!.Value) : null;
    /// <summary>Multiply-adds had every call been computed (null unless every component has MACs per call).</summary>
    public long? MacsWithoutCache => HasMacs ? Components.Sum(c => c.MacsWithoutCache!.Value) : null;
    /// <summary>Multiply-adds the reused calls skipped (null unless every component has MACs per call).</summary>
    public long? MacsSaved => HasMacs ? Components.Sum(c => c.MacsSaved!.Value) : null;

    /// <summary>A table: component, computed, reused, computed fraction (and MACs when known), plus a total row.</summary>
    public override string ToString()
    {
        var rows = new List<string[]> { HasMacs
            ? ["component", "computed", "reused", "fraction", "MACs done", "MACs without cache"]
            : ["component", "computed", "reused", "fraction"] };
        foreach (var c in Components)
            rows.Add(Row(c.Component, c.Computed, c.Reused, c.ComputedFraction, c.MacsComputed, c.MacsWithoutCache));
        rows.Add(Row("total", Computed, Reused, ComputedFraction, MacsComputed, MacsWithoutCache));

        var widths = Enumerable.Range(0, rows[0].Length).Select(col => rows.Max(r => r[col].Length)).ToArray();
        var sb = new StringBuilder();
        foreach (var row in rows)
        {
            sb.Append(row[0].PadRight(widths[0]));
            for (int col = 1; col < row.Length; col++) sb.Append("  ").Append(row[col].PadLeft(widths[col]));
            sb.Append('\n');
        }
        return sb.ToString();
    }

    private string[] Row(string name, long computed, long reused, double fraction, long? macsDone, long? macsWithout)
    {
        var inv = CultureInfo.InvariantCulture;
        var cells = new List<string>
        {
            name, computed.ToString(inv), reused.ToString(inv), (100 * fraction).ToString("0.0", inv) + "%",
        };
        if (HasMacs) cells.AddRange([macsDone!.Value.ToString("N0", inv), macsWithout!.Value.ToString("N0", inv)]);
        return cells.ToArray();
    }
}
