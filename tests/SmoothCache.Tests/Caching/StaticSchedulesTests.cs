using SmoothCache.Caching;

namespace SmoothCache.Tests.Caching;

public class StaticSchedulesTests
{
    [Theory]
    [InlineData(30)]
    [InlineData(50)]
    [InlineData(70)]
    public void ForaTwoReproducesThePublishedSchedules(int steps)
    {
        var published = CacheSchedule.Load(Path.Combine(CachingFiles.DitXlSchedules, $"{steps}-N-2-fora.json"));
        var fora = StaticSchedules.Fora(2, steps, ["attn", "mlp"]);
        Assert.Equal(published["attn"], fora["attn"]);
        Assert.Equal(published["mlp"], fora["mlp"]);
    }

    [Fact]
    public void ForaComputesEveryNthStepAndTheLast()
    {
        Assert.Equal([true, false, false, true, false, false, true, false, false, true],
            StaticSchedules.Fora(3, 10, ["attn1"])["attn1"]);
        Assert.Equal([true, false, false, false, true, false, false, false, true, true],
            StaticSchedules.Fora(4, 10, ["ff"])["ff"]);
        Assert.All(StaticSchedules.Fora(1, 5, ["ff"])["ff"], Assert.True);
    }

    [Fact]
    public void NoCacheComputesEverything()
    {
        var schedule = StaticSchedules.NoCache(7, ["attn1", "ff"]);
        Assert.Equal(["attn1", "ff"], schedule.Keys);
        Assert.Equal(1.0, schedule.ComputedFraction(["attn1", "ff"], 6, 7));
    }

    [Fact]
    public void ForaRejectsBadArguments()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => StaticSchedules.Fora(0, 10, ["ff"]));
        Assert.Throws<ArgumentOutOfRangeException>(() => StaticSchedules.Fora(2, 0, ["ff"]));
        Assert.Contains("no components", Assert.Throws<ArgumentException>(() => StaticSchedules.Fora(2, 10, [])).Message);
        var e = Assert.Throws<CacheScheduleException>(() => StaticSchedules.Fora(2, 10, ["norm1"]));
        Assert.Equal("norm1", e.Key);
    }
}
