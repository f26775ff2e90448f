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

    [Fact]
    public void MissingOutIsAnError()
    {
        var result = Run("calibrate", "--device", "cpu");
        Assert.Equal(2, result.ExitCode);
        Assert.Contains("--out", result.Error);
    }
}
