using SmoothCache.Caching;
using SmoothCache.Sampling;
using static SmoothCache.Tests.TestSupport;

namespace SmoothCache.Tests.Sampling;

public class RecordedGenerationTests
{
    private static GenerationOptions Options(int seed) => new()
    {
        Labels = [3, 8],
        Steps = 4,
        Scheduler = "ddim",
        InitialNoise = GaussianNoise.Sample(seed, 0, SmoothCache.Kernels.Tensor.ElementCount(TinyCase.Pipeline.LatentShape(2))),
    };

    [Fact]
    public void ReplaysMatchOrdinaryGenerationsForEachNoise()
    {
        var pipe = TinyCase.Pipeline;
        using var recorded = pipe.Record(Options(1));
        Assert.True(recorded.Launches > 4);
        foreach (int seed in new[] { 2, 1 })
        {
            var expected = pipe.Generate(Options(seed));
            var replayed = recorded.Run(Options(seed).InitialNoise);
            Assert.Equal(expected.Latents, replayed.Latents);
            Assert.Equal(expected.Images, replayed.Images);
            Assert.Equal(expected.ImageShape, replayed.ImageShape);
        }
    }

    [Fact]
    public void ReplaysKeepTheirLabelsWhenLaterGenerationsUseOthers()
    {
        var pipe = TinyCase.Pipeline;
        using var recorded = pipe.Record(Options(5));
        var first = recorded.Run();
        pipe.Generate(Options(5) with { Labels = [1, 2] });
        Assert.Equal(first.Latents, recorded.Run().Latents);
        Assert.Equal(pipe.Generate(Options(5)).Latents, first.Latents);
    }

    [Fact]
    public void AGenerationWithAnEnabledCacheReplaysItsSchedule()
    {
        var pipe = TinyCase.Pipeline;
        var uncached = pipe.Generate(Options(7));
        var schedule = CacheSchedule.Parse("""{"attn1": [1, 0, 1, 0], "ff": [1, 1, 0, 0]}""", "test schedule");
        using var cache = SmoothCacheHelper.Enable(pipe.Transformer, schedule);
        var expected = pipe.Generate(Options(7));
        cache.Reset();
        using var recorded = pipe.Record(Options(7));
        var replayed = recorded.Run();
        Assert.Equal(expected.Latents, replayed.Latents);
        Assert.NotEqual(uncached.Latents, replayed.Latents);
        // The helper is left reset: the recording's stored outputs are not the helper's any more.
        Assert.Empty(cache.Stats().Components);
    }

    [Fact]
    public void EachResultHoldsShapesOfItsOwn()
    {
        using var recorded = TinyCase.Pipeline.Record(Options(3));
        var first = recorded.Run();
        first.ImageShape[0] = 99;
        first.LatentShape[0] = 99;
        var second = recorded.Run();
        Assert.Equal(2, second.ImageShape[0]);
        Assert.Equal(2, second.LatentShape[0]);
    }

    [Fact]
    public void ACalibrationCannotBeRecordedAndThePipelineStaysUsable()
    {
        var pipe = TinyCase.Pipeline;
        var expected = pipe.Generate(Options(4));
        using (CalibrationHelper.Enable(pipe.Transformer, 2, ["attn1"]))
            Assert.Contains("then record with the schedule", Assert.Throws<NotSupportedException>(() => pipe.Record(Options(4))).Message);
        Assert.Equal(expected.Latents, pipe.Generate(Options(4)).Latents);
    }

    [Fact]
    public void SchedulersThatDrawNoiseEveryStepCannotBeRecorded()
    {
        var e = Assert.Throws<NotSupportedException>(() => TinyCase.Pipeline.Record(Options(1) with { Scheduler = "ddpm" }));
        Assert.Contains("ddpm", e.Message);
    }
}
