using Snapshooter;
using Snapshooter.Xunit;
using SmoothCache.Caching;
using SmoothCache.Sampling;
using SmoothCache.Tests.Cli;

namespace SmoothCache.Tests.Caching;

/// <summary>Golden outputs of cached runs on the CPU backend (see README, "Snapshot tests").</summary>
public class CachingSnapshotTests
{
    [Theory]
    [InlineData("tiny_ddim50_attn_ff")]
    [InlineData("tiny_dpm20_attn")]
    public void CachedFinalLatents(string name)
    {
        var run = TinyCase.Get(name);
        Snapshot.Match(SnapshotFormat.Images(run.FinalCached, 10, 16, 16, -1f, 1f), new SnapshotNameExtension(name));
    }

    [Fact]
    public void CachedDdpmFinalLatents()
    {
        var pipe = TinyCase.Pipeline;
        var schedule = StaticSchedules.Fora(2, 20, ["attn1", "ff"]);
        using (SmoothCacheHelper.Enable(pipe.Transformer, schedule))
        {
            var result = pipe.Generate(new GenerationOptions { Labels = [1, 4], Steps = 20, Scheduler = "ddpm", Seed = 3 });
            Snapshot.Match(SnapshotFormat.Images(result.Latents, 2, 16, 16, -1f, 1f));
        }
    }

    [Fact]
    public void CalibratedSchedule()
    {
        var run = TinyCase.Get("tiny_ddim50_attn_ff");
        Snapshot.Match(run.Calibration.Schedule(0.15, 50).ToJson());
    }

    [Fact]
    public void StatsReport()
    {
        using var temp = new CliRunner.TempFolder();
        string schedule = temp.File("fora3.json");
        StaticSchedules.Fora(3, 10, ["attn1", "ff"]).Save(schedule);
        var result = CliRunner.Run("generate", "--device", "cpu", "--labels", "0,1", "--steps", "10", "--schedule", schedule,
            "--stats", "--out", temp.File("x.png"));
        Assert.Equal(0, result.ExitCode);
        // The last line has the wall time; everything before it is deterministic.
        var lines = result.Out.TrimEnd().Split('\n');
        Assert.StartsWith("wrote ", lines[^1]);
        Snapshot.Match(string.Join("\n", lines[..^1]));
    }
}
