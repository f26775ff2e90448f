using static SmoothCache.Tests.Cli.CliRunner;

namespace SmoothCache.Tests.Cli;

public class CalibrateCommandTests
{
    [Theory]
    [InlineData("--lookahead", "0")]
    [InlineData("--threshold", "-0.1")]
    [InlineData("--target-compute", "1.5")]
    [InlineData("--components", "attn1,conv")]
    public void BadCalibrationSettingsExitWithTwo(string option, string value)
    {
        using var temp = new TempFolder();
        string output = temp.File("schedule.json");
        var result = Run("calibrate", "--device", "cpu", "--out", output, option, value);
        Assert.Equal(2, result.ExitCode);
        Assert.Contains(option, result.Error);
        Assert.Single(result.Error.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.False(File.Exists(output));
    }

    [Theory]
    [InlineData("--threshold", "0.2", "--threshold and --target-compute exclude each other")]
    [InlineData("--from-errors", "errors.json", "--target-compute and --from-errors exclude each other")]
    public void TargetComputeWithAnotherWayToSetTheThresholdIsAnError(string option, string value, string expected)
    {
        using var temp = new TempFolder();
        string output = temp.File("schedule.json");
        var result = Run("calibrate", "--device", "cpu", "--out", output, "--target-compute", "0.5", option, value);
        Assert.Equal(2, result.ExitCode);
        Assert.Contains(expected, Assert.Single(result.ErrorLines));
        Assert.False(File.Exists(output));
    }

    [Fact]
    public void ALookaheadPastTheRunIsWarnedAbout()
    {
        using var temp = new TempFolder();
        string output = temp.File("schedule.json");
        var result = Run("calibrate", "--device", "cpu", "--out", output, "--steps", "2", "--labels", "1", "--lookahead", "2");
        Assert.True(result.ExitCode == 0, result.Error);
        Assert.Equal("warning: --lookahead 2 compares outputs up to 2 steps apart, but 2 steps are at most 1 apart: lags past 1 record nothing",
            Assert.Single(result.ErrorLines));
    }

    [Fact]
    public void ATargetNoThresholdReachesIsWarnedAbout()
    {
        using var temp = new TempFolder();
        string output = temp.File("schedule.json");
        // Two steps: the first and the last always compute.
        var result = Run("calibrate", "--device", "cpu", "--out", output, "--target-compute", "0.1", "--steps", "2", "--labels", "1", "--lookahead", "1");
        Assert.True(result.ExitCode == 0, result.Error);
        var warning = Assert.Single(result.ErrorLines, l => l.StartsWith("warning"));
        Assert.Contains("no threshold computes at most 10.0% of the calls in 2 steps", warning);
        Assert.Contains("the schedule computes 100.0%", warning);
        Assert.True(File.Exists(output));
    }

    [Fact]
    public void MissingOutIsAnError()
    {
        var result = Run("calibrate", "--device", "cpu");
        Assert.Equal(2, result.ExitCode);
        Assert.Contains("--out", result.Error);
    }

    /// <summary>Rows a calibration of one run cannot have written are refused, naming the component and the row.</summary>
    [Theory]
    [InlineData("""{"attn1": [[0.1, 0.2, 0.3, 0.4], [0.1], [0.5, 0.5]]}""", "attn1: the lag-2 row has 1 errors; a 5-step run (its lag-1 row has 4) gives 3")]
    [InlineData("""{"attn1": [[0.1, -0.2]]}""", "attn1: the lag-1 row's error 1 is -0.2: expected a relative error >= 0")]
    [InlineData("""{"attn1": [[0.1, 0.2]], "ff": [[0.1]]}""", "its components' rows are of different runs (attn1: 3 steps, ff: 2 steps)")]
    [InlineData("""{"attn1": []}""", "attn1 has no rows")]
    public void AnErrorsFileWithRowsNoRunGivesIsRefused(string rows, string expected)
    {
        using var temp = new TempFolder();
        string errors = temp.File("errors.json"), schedule = temp.File("schedule.json");
        File.WriteAllText(errors, $$"""{"lookahead": 3, "avg_error_rows": {{rows}}}""");
        var result = Run("calibrate", "--from-errors", errors, "--out", schedule);
        Assert.Equal(2, result.ExitCode);
        Assert.Contains(expected, Assert.Single(result.ErrorLines));
        Assert.False(File.Exists(schedule));
    }

    /// <summary>A rescan takes the recorded run's steps from its rows (lag 1 holds one error per step after the first) and
    /// says which sampling options it does not use.</summary>
    [Fact]
    public void RescanningAnErrorsFileTakesItsStepsAndNamesTheOptionsItIgnores()
    {
        using var temp = new TempFolder();
        string errors = temp.File("errors.json"), schedule = temp.File("schedule.json");
        File.WriteAllText(errors, """
            {"lookahead": 2, "avg_error_rows": {"attn1": [[0.1, 0.1, 0.3, 0.1], [0.1, 0.4, 0.4]], "ff": [[0.5, 0.5, 0.5, 0.5], [0.5, 0.5, 0.5]]}}
            """);
        var result = Run("calibrate", "--from-errors", errors, "--out", schedule, "--threshold", "0.15", "--model", "no-such-model",
            "--labels", "1", "--device", "cpu");
        Assert.Equal(0, result.ExitCode);
        Assert.Equal("warning: --from-errors rescans recorded errors without sampling: --model, --labels, --device ignored",
            Assert.Single(result.ErrorLines));
        Assert.Contains("5 steps", result.Out);
        var written = SmoothCache.Caching.CacheSchedule.Load(schedule);
        // attn1: step 0 reuses for 2 steps (lag-2 error 0.1), step 3 for 1 (lag 1, 0.1), step 4 is the last.
        Assert.Equal(new[] { true, false, false, true, true }, written["attn1"]);
        Assert.All(written["ff"], Assert.True);
    }

    [Fact]
    public void TheErrorsFileCannotBeTheSchedule()
    {
        using var temp = new TempFolder();
        string path = temp.File("schedule.json");
        var result = Run("calibrate", "--device", "cpu", "--steps", "2", "--out", path, "--errors", path);
        Assert.Equal(2, result.ExitCode);
        Assert.Equal($"error: --errors: '{path}' is also --out's file: each output needs its own", Assert.Single(result.ErrorLines));
        Assert.False(File.Exists(path));
    }
}

public class TargetComputeTests
{
    [Theory]
    [InlineData(0.5)]
    [InlineData(0.35)]
    public void TheSearchedThresholdIsTheSmallestThatReachesTheTarget(double target)
    {
        var run = TinyCase.Get("tiny_ddim50_attn_ff");
        string[] components = ["attn1", "ff"];
        double Fraction(double alpha) => run.Calibration.Schedule(alpha, 50).ComputedFraction(components, 6, 50);

        double alpha = SmoothCache.Cli.Commands.CalibrateCommand.SearchThreshold(run.Calibration, target, 50, components, 6);
        Assert.True(Fraction(alpha) <= target, $"alpha {alpha} computes {Fraction(alpha):P1}");
        // Any smaller threshold (just below the chosen one) computes more than the target.
        Assert.True(Fraction(alpha * (1 - 1e-9)) > target);
    }
}
