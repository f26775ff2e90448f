using SmoothCache.Caching;
using SmoothCache.Model;
using SmoothCache.Sampling;

namespace SmoothCache.Cli.Commands;

/// <summary>Cache-related helpers shared by generate, calibrate and eval.</summary>
public static class CachingOptions
{
    /// <summary>A comma-separated option value's items (none for an empty value); a stray comma is refused, not dropped.</summary>
    public static string[] ListItems(string option, string list)
    {
        string[] items = list.Trim().Length == 0 ? [] : list.Split(',', StringSplitOptions.TrimEntries);
        if (Array.IndexOf(items, "") is var empty and >= 0)
            throw new UserInputException($"{option}: '{list}': entry {empty + 1} is empty (a stray comma?)");
        return items;
    }

    /// <summary>Parses a comma-separated component list (attn1, ff, or the aliases attn, mlp).</summary>
    public static string[] ParseComponents(string spec)
    {
        var names = ListItems("--components", spec);
        if (names.Length == 0) throw new UserInputException("--components: expected at least one of attn1, ff");
        return names.Select(n => ComponentNames.CanonicalOrNull(n)
            ?? throw new UserInputException($"--components: unknown component '{n}': expected {ComponentNames.Expected}")).Distinct().ToArray();
    }

    /// <summary>The warning calibrate and eval give where the lookahead reaches past the run (its later lags record nothing),
    /// or null where it does not.</summary>
    public static string? LookaheadWarning(int lookahead, int steps) => lookahead < steps ? null
        : $"warning: --lookahead {lookahead} compares outputs up to {lookahead} steps apart, but {steps} steps are at most " +
          $"{steps - 1} apart: lags past {steps - 1} record nothing";

    /// <summary>Multiply-adds of one call of a component at the pipeline's batch (CFG doubles it).</summary>
    public static Func<string, long> MacsPerCall(DiTTransformer transformer, int forwardBatch) => component =>
        component == Components.Attention
            ? DiTBlock.AttentionMacs(transformer.Config, forwardBatch)
            : DiTBlock.FeedForwardMacs(transformer.Config, forwardBatch);

    /// <summary>The --stats report: per component calls computed and reused, and MACs of the whole run.</summary>
    public static string StatsReport(CacheStats stats, DiTTransformer transformer, GenerationOptions generation)
    {
        int batch = generation.Labels.Length * (generation.GuidanceScale > 1 ? 2 : 1);
        long total = (long)generation.Steps * transformer.ForwardMacs(batch);
        long saved = stats.MacsSaved ?? 0;
        return (stats.Components.Count == 0 ? "no cache schedule: every component computed" : stats.ToString()) + Environment.NewLine +
            $"whole forwards (the components, plus the embeddings, conditioning and final layer every step computes): " +
            $"{(total - saved) / 1e9:F2} G MACs done of {total / 1e9:F2} G without cache ({100.0 * (total - saved) / total:F1}%)";
    }
}
