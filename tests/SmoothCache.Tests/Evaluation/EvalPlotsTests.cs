using SmoothCache.Cli.Evaluation;

namespace SmoothCache.Tests.Evaluation;

public class EvalPlotsTests
{
    private static readonly byte[] PngSignature = [0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A];

    private static void AssertPng(string path)
    {
        byte[] bytes = File.ReadAllBytes(path);
        Assert.True(bytes.Length > 1000, $"{path} has only {bytes.Length} bytes");
        Assert.Equal(PngSignature, bytes[..8]);
    }

    [Fact]
    public void EachPlotWritesAPngAndNoTempFile()
    {
        string folder = Path.Combine(Path.GetTempPath(), $"evalplots-{Guid.NewGuid():N}");
        try
        {
            double[][] rows = Enumerable.Range(1, 3)
                .Select(lag => Enumerable.Range(0, 50 - lag).Select(i => lag * 0.02 + 0.001 * i * i / 10).ToArray())
                .ToArray();
            rows[0][10] = double.NaN;
            EvalPlots.SaveErrorRows(Path.Combine(folder, "errors-attn1.png"), "attn1", rows, threshold: 0.15);

            int[] attn = Enumerable.Range(0, 50).Select(s => s % 4 == 0 || s == 49 ? 1 : 0).ToArray();
            int[] ff = Enumerable.Range(0, 50).Select(s => s % 2 == 0 || s == 49 ? 1 : 0).ToArray();
            EvalPlots.SaveScheduleHeatmap(Path.Combine(folder, "schedule.png"), [("attn1", attn), ("ff", ff)], "ddim-50, alpha 0.15");

            EvalPlots.SaveQualityVsCompute(Path.Combine(folder, "quality.png"),
                [new("no cache", 1.0, double.PositiveInfinity), new("alpha 0.08", 0.8, 38.5), new("alpha 0.15", 0.6, 31.2), new("alpha 0.3", 0.45, 24.0)],
                "computed fraction", "PSNR (dB)", "quality vs compute");

            AssertPng(Path.Combine(folder, "errors-attn1.png"));
            AssertPng(Path.Combine(folder, "schedule.png"));
            AssertPng(Path.Combine(folder, "quality.png"));
            Assert.Equal(3, Directory.GetFiles(folder).Length);
        }
        finally
        {
            if (Directory.Exists(folder)) Directory.Delete(folder, recursive: true);
        }
    }

    [Fact]
    public void SaveQualityVsCompute_WritesNothingWhenNoPointCanBePlaced()
    {
        string path = Path.Combine(Path.GetTempPath(), $"never-{Guid.NewGuid():N}.png");
        Assert.False(EvalPlots.SaveQualityVsCompute(path,
            [new("no cache", 1.0, double.PositiveInfinity), new("alpha 0.2", 1.0, double.PositiveInfinity)], "TMACs", "PSNR (dB)", "all computed"));
        Assert.False(File.Exists(path));
    }

    [Fact]
    public void SaveScheduleHeatmap_RejectsFlagsOtherThanZeroAndOne()
    {
        var error = Assert.Throws<ArgumentException>(() =>
            EvalPlots.SaveScheduleHeatmap(Path.Combine(Path.GetTempPath(), $"never-{Guid.NewGuid():N}.png"), [("ff", [1, 2, 1])], "bad"));
        Assert.Contains("ff[1] is 2", error.Message);
    }
}
