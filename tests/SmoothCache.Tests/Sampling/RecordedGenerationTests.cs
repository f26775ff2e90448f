using SmoothCache.Caching;
using SmoothCache.Sampling;

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
    public void ACalibrationCannotBeRecordedAndIsRefusedBeforeAnythingRuns()
    {
        var pipe = TinyCase.Pipeline;
        var expected = pipe.Generate(Options(4));
        using (var calibration = CalibrationHelper.Enable(pipe.Transformer, 2, ["attn1"]))
        {
            pipe.Generate(Options(4));
            var rows = calibration.ErrorRows;
            Assert.Contains("then record with the schedule", Assert.Throws<NotSupportedException>(() => pipe.Record(Options(4))).Message);
            // Refused up front: no generation ran, so the calibration's rows are still the last generation's.
            Assert.Equal(rows.Select(r => r.Value.Select(row => row.ToArray())), calibration.ErrorRows.Select(r => r.Value.Select(row => row.ToArray())));
        }
        Assert.Equal(expected.Latents, pipe.Generate(Options(4)).Latents);
    }

    [Fact]
    public void NoiseThatIsNotFiniteIsRefused()
    {
        using var recorded = TinyCase.Pipeline.Record(Options(2));
        var noise = (float[])Options(2).InitialNoise!.Clone();
        noise[5] = float.NaN;
        var e = Assert.Throws<ArgumentException>(() => recorded.Run(noise));
        Assert.Equal("initialNoise", e.ParamName);
        Assert.Contains("[5] is NaN", e.Message);
        var g = Assert.Throws<ArgumentException>(() => TinyCase.Pipeline.Generate(Options(2) with { InitialNoise = noise }));
        Assert.Equal("options", g.ParamName);
        Assert.Contains("InitialNoise[5] is NaN", g.Message);
    }

    [Fact]
    public void ARunFromInsideAGenerationIsRefused()
    {
        var pipe = TinyCase.Pipeline;
        using var recorded = pipe.Record(Options(2));
        var e = Assert.Throws<InvalidOperationException>(() => pipe.Generate(Options(2), _ => recorded.Run()));
        Assert.Contains("RecordedGeneration.Run: this pipeline is already running a generation", e.Message);
        Assert.Equal(pipe.Generate(Options(2)).Latents, recorded.Run().Latents);
    }

    [Fact]
    public void SchedulersThatDrawNoiseEveryStepCannotBeRecorded()
    {
        var e = Assert.Throws<NotSupportedException>(() => TinyCase.Pipeline.Record(Options(1) with { Scheduler = "ddpm" }));
        Assert.Contains("ddpm", e.Message);
    }
}
