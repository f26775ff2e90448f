using SmoothCache.Caching;
using SmoothCache.Model;

namespace SmoothCache.Cli.Evaluation;

/// <summary>
/// Multiply-adds of a sampling run, from the model's own formulas (<see cref="DiTTransformer.ForwardMacs"/>,
/// <see cref="DiTBlock.AttentionMacs"/>, <see cref="DiTBlock.FeedForwardMacs"/>) at the batch the
/// transformer actually sees (2N samples with classifier-free guidance). Counted are the matrix
/// products: linear layers, the attention's QK^T and AV, patch embedding, conditioning and output head;
/// element-wise work (norms, gates, softmax, the scheduler) is not.
/// <para>
/// A forward is split into the part no hook can skip (<see cref="AlwaysComputedPerForward"/>: patch
/// embedding, timestep/class conditioning with every adaLN projection, output head) and the blocks'
/// attention and MLP calls. A cached run costs steps x AlwaysComputedPerForward plus the MACs of the
/// component calls the cache helper actually ran (its statistics' MacsComputed, which counts the calls
/// of components it does not cache as computed too).
/// </para>
/// </summary>
public sealed record MacBudget(long ForwardMacs, int Blocks, long AttentionMacsPerCall, long FeedForwardMacsPerCall)
{
    public static MacBudget For(DiTTransformer transformer, int batch) => new(
        transformer.ForwardMacs(batch), transformer.NumBlocks,
        DiTBlock.AttentionMacs(transformer.Config, batch), DiTBlock.FeedForwardMacs(transformer.Config, batch));

    /// <summary>The batch the transformer runs for <paramref name="samples"/> images: guidance above 1
    /// doubles it (conditional and unconditional halves), as <c>DiTPipeline.Generate</c> does.</summary>
    public static int ForwardBatch(int samples, float guidance) => guidance > 1 ? 2 * samples : samples;

    /// <summary>MACs of one call of a component ("attn1", "ff" or an alias) over all samples of the batch.</summary>
    public long PerCall(string component) => ComponentNames.Canonical(component) switch
    {
        Components.Attention => AttentionMacsPerCall,
        _ => FeedForwardMacsPerCall,
    };

    public long AlwaysComputedPerForward => ForwardMacs - Blocks * (AttentionMacsPerCall + FeedForwardMacsPerCall);

    /// <summary>A run of <paramref name="steps"/> forwards that computes everything.</summary>
    public long Uncached(int steps) => steps * ForwardMacs;

    /// <summary>A run of <paramref name="steps"/> forwards through a cache helper whose statistics
    /// (taken with <see cref="PerCall"/>) are <paramref name="stats"/>.</summary>
    /// <exception cref="InvalidOperationException">the statistics do not cover every component call of the run once</exception>
    public long Cached(int steps, CacheStats stats)
    {
        foreach (string component in Components.All)
        {
            var counted = stats.Components.FirstOrDefault(c => c.Component == component);
            long expected = (long)steps * Blocks;
            if (counted is null || counted.Calls != expected || counted.MacsPerCall != PerCall(component))
                throw new InvalidOperationException(
                    $"cache statistics for {component}: {counted?.Calls ?? 0} calls at {counted?.MacsPerCall?.ToString() ?? "unknown"} MACs each; " +
                    $"expected {expected} calls ({steps} steps x {Blocks} blocks) at {PerCall(component)} MACs each");
        }
        return steps * AlwaysComputedPerForward + stats.MacsComputed!.Value;
    }
}
