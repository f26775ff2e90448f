using SmoothCache.Caching;
using SmoothCache.Kernels;
using SmoothCache.Sampling;
using static SmoothCache.Tests.TestSupport;

namespace SmoothCache.Tests.Caching;

/// <summary>The cache helper on the real model: what a schedule computes and reuses.</summary>
public class CachedSamplingTests
{
    private static GenerationOptions Options(int steps) => new() { Labels = [2, 7], Steps = steps, Seed = 11 };

    [Fact]
    public void AnAllOnesScheduleEqualsNoCacheBitForBit()
    {
        var pipe = TinyCase.Pipeline;
        var plain = pipe.Generate(Options(6)).Latents;
        using var cache = SmoothCacheHelper.Enable(pipe.Transformer, StaticSchedules.NoCache(6, ["attn1", "ff"]));
        var cached = pipe.Generate(Options(6)).Latents;
        Assert.Equal(plain, cached);
        Assert.Equal(0, cache.Stats().Reused);
    }

    [Fact]
    public void Fp16ReusesItsFloat16OutputsAndStaysNearTheFp32Run()
    {
        // The fp16 path keeps Float16 component outputs: an all-ones schedule changes nothing, and a schedule that
        // reuses them lands near the fp32 run with the same schedule (fp16 rounding apart).
        using var fp16 = DiTPipeline.Load(RepoFile("models", "dit-digits"), Cpu, Precision.Fp16);
        var plain = fp16.Generate(Options(6)).Latents;
        using (SmoothCacheHelper.Enable(fp16.Transformer, StaticSchedules.NoCache(6, ["attn1", "ff"])))
            Assert.Equal(plain, fp16.Generate(Options(6)).Latents);
        var schedule = CacheSchedule.Parse("{\"attn1\": [1, 0, 1, 0, 1, 1], \"ff\": [1, 1, 0, 1, 0, 1]}", "reusing schedule");
        float[] Cached(DiTPipeline pipe)
        {
            using var cache = SmoothCacheHelper.Enable(pipe.Transformer, schedule);
            var latents = pipe.Generate(Options(6)).Latents;
            Assert.All(cache.Stats().Components, c => Assert.Equal(2L * pipe.Transformer.NumBlocks, c.Reused));
            return latents;
        }
        var cached16 = Cached(fp16);
        Assert.NotEqual(plain, cached16);
        Assert.InRange(RelativeL2(cached16, Cached(TinyCase.Pipeline)), 1e-6, 1e-2);
    }

    /// <summary>A helper enabled around two generations: the second starts its steps over (before, it carried on at step
    /// 6, computing everything, or, with a longer schedule, reusing the first run's last outputs at its first steps).</summary>
    [Fact]
    public void EachGenerationStartsTheScheduleOver()
    {
        var pipe = TinyCase.Pipeline;
        var schedule = CacheSchedule.Parse("{\"attn1\": [1, 0, 1, 0, 1, 1, 0, 0], \"ff\": [1, 1, 0, 1, 0, 1, 0, 0]}", "longer schedule");
        using var cache = SmoothCacheHelper.Enable(pipe.Transformer, schedule);
        var first = pipe.Generate(Options(6)).Latents;
        var firstStats = cache.Stats();
        var second = pipe.Generate(Options(6)).Latents;
        Assert.Equal(first, second);
        Assert.Equal(firstStats.Reused, cache.Stats().Reused);
        Assert.All(cache.Stats().Components, c => Assert.Equal(2L * pipe.Transformer.NumBlocks, c.Reused));
    }

    /// <summary>A sampling loop of one's own over planned forwards (README), with CFG, run with a helper enabled after a
    /// shorter Generate and then again: each run follows the schedule from its start, as Generate does (before, the helper
    /// carried on at the earlier run's step count, reusing that run's outputs, and a second loop ran uncached).</summary>
    [Fact]
    public void ASamplingLoopOfOnesOwnFollowsTheScheduleFromItsStart()
    {
        var pipe = TinyCase.Pipeline;
        var schedule = CacheSchedule.Parse("{\"attn1\": [1, 0, 1, 0, 1, 1], \"ff\": [1, 1, 0, 1, 0, 1]}", "reusing schedule");
        using var cache = SmoothCacheHelper.Enable(pipe.Transformer, schedule);
        var options = Options(6) with { Scheduler = "ddim" };
        var expected = pipe.Generate(options).Latents;
        var expectedStats = cache.Stats();
        pipe.Generate(options with { Steps = 5 });
        float[] OwnLoop()
        {
            var scheduler = NoiseScheduler.Create("ddim", pipe.SchedulerConfig, options.Steps);
            var shape = pipe.LatentShape(options.Labels.Length);
            int nullClass = pipe.Transformer.Config.NullClass;
            using var x = pipe.Backend.Arena.Upload(GaussianNoise.Sample(options.Seed, 0, Tensor.ElementCount(shape)), shape);
            using var dataPrediction = pipe.Backend.Arena.Zeros(shape);
            using var plan = pipe.Transformer.PlanModulation(scheduler.Timesteps.Select(t => (float)t).ToArray(),
                [.. options.Labels, .. options.Labels.Select(_ => nullClass)]);
            for (int i = 0; i < scheduler.Steps; i++)
            {
                using var doubled = RepeatBatch.Run(x, 2);
                using var output = pipe.Transformer.Forward(doubled, plan, i);
                using var eps = Guidance.Run(output, pipe.Transformer.Config.InChannels, options.GuidanceScale);
                SchedulerStep.Apply(pipe.Backend, scheduler.Step(i), x, eps, dataPrediction, null);
            }
            return x.ToArray();
        }
        Assert.Equal(expected, OwnLoop());
        Assert.Equal(expectedStats.Reused, cache.Stats().Reused);
        Assert.Equal(expected, OwnLoop());
        Assert.Equal(expectedStats.Reused, cache.Stats().Reused);
    }

    [Fact]
    public void AScheduleForBlocksTheModelLacksIsRefusedWhenEnabled()
    {
        var pipe = TinyCase.Pipeline;
        var schedule = CacheSchedule.Parse($"{{\"attn1-{pipe.Transformer.NumBlocks}\": [1, 0]}}", "other-model.json");
        var e = Assert.Throws<CacheScheduleException>(() => SmoothCacheHelper.Enable(pipe.Transformer, schedule));
        Assert.Contains($"block {pipe.Transformer.NumBlocks} does not exist", e.Message);
        Assert.Null(pipe.Transformer.Hook);
    }

    [Fact]
    public void AScheduleShorterThanTheRunComputesTheRemainingSteps()
    {
        var pipe = TinyCase.Pipeline;
        // Reuse at steps 1 and 2 only; steps 3..5 lie beyond the list and must be computed.
        var schedule = CacheSchedule.Parse("{\"attn1\": [1, 0, 0], \"ff\": [1, 0, 0]}", "short schedule");
        Assert.Contains(schedule.Validate(pipe.Transformer.NumBlocks, 6), w => w.Contains("attn1"));
        using var cache = SmoothCacheHelper.Enable(pipe.Transformer, schedule);
        pipe.Generate(Options(6));
        foreach (var component in cache.Stats().Components)
        {
            Assert.Equal(2L * pipe.Transformer.NumBlocks, component.Reused);
            Assert.Equal(4L * pipe.Transformer.NumBlocks, component.Computed);
        }
    }
}
