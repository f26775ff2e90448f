using SmoothCache.Caching;
using SmoothCache.Cli.Evaluation;
using SmoothCache.Sampling;

namespace SmoothCache.Tests.Evaluation;

public class MacBudgetTests
{
    private static readonly MacBudget Synthetic = new(ForwardMacs: 1000, Blocks: 2, AttentionMacsPerCall: 100, FeedForwardMacsPerCall: 200);

    private static CacheStats Stats(long attnComputed, long attnReused, long ffComputed, long ffReused, MacBudget budget) => new([
        new ComponentCacheStats("attn1", attnComputed, attnReused, budget.AttentionMacsPerCall),
        new ComponentCacheStats("ff", ffComputed, ffReused, budget.FeedForwardMacsPerCall),
    ]);

    [Fact]
    public void CachedRunCostsTheUncachedRunMinusTheReusedCalls()
    {
        // 3 steps x 2 blocks = 6 calls per component; 2 attention calls reused.
        long cached = Synthetic.Cached(3, Stats(4, 2, 6, 0, Synthetic));

        Assert.Equal(400, Synthetic.AlwaysComputedPerForward);
        Assert.Equal(3000, Synthetic.Uncached(3));
        Assert.Equal(3000 - 2 * 100, cached);
    }

    [Fact]
    public void EverythingComputedCostsTheSameAsNoCache()
    {
        Assert.Equal(Synthetic.Uncached(5), Synthetic.Cached(5, Stats(10, 0, 10, 0, Synthetic)));
    }

    [Fact]
    public void StatisticsThatDoNotCoverTheRunAreRejected()
    {
        Assert.Throws<InvalidOperationException>(() => Synthetic.Cached(3, Stats(4, 1, 6, 0, Synthetic)));
        Assert.Throws<InvalidOperationException>(() => Synthetic.Cached(3, new CacheStats([new ComponentCacheStats("attn1", 6, 0, 100)])));
        var wrongMacs = new CacheStats([new ComponentCacheStats("attn1", 6, 0, 99), new ComponentCacheStats("ff", 6, 0, 200)]);
        Assert.Throws<InvalidOperationException>(() => Synthetic.Cached(3, wrongMacs));
    }

    [Fact]
    public void PerCallAcceptsAliases()
    {
        Assert.Equal(100, Synthetic.PerCall("attn"));
        Assert.Equal(200, Synthetic.PerCall("mlp"));
        Assert.Throws<ArgumentException>(() => Synthetic.PerCall("attn2"));
    }

    [Fact]
    public void GuidanceDoublesTheTransformerBatch()
    {
        Assert.Equal(20, MacBudget.ForwardBatch(10, 4f));
        Assert.Equal(10, MacBudget.ForwardBatch(10, 1f));
    }

    [Fact]
    public void DitDigitsCostsMatchAHandCount()
    {
        using var pipeline = DiTPipeline.Load(TestSupport.RepoFile("models", "dit-digits"), TestSupport.Cpu);
        var budget = MacBudget.For(pipeline.Transformer, 4);

        // Width 64, 64 tokens (16x16 / 2x2 patches), 6 blocks, batch 4:
        // attention 4*64*(4*64*64 + 2*64*64), MLP 4*64*8*64*64, plus patch embedding 4*64*64*4,
        // conditioning 4*(256*64 + 64*64 + 38*64*64) and head 4*64*64*4*2.
        Assert.Equal(6_291_456, budget.AttentionMacsPerCall);
        Assert.Equal(8_388_608, budget.FeedForwardMacsPerCall);
        Assert.Equal(65_536 + 704_512 + 131_072 + 6 * (6_291_456 + 8_388_608), budget.ForwardMacs);
    }
}
