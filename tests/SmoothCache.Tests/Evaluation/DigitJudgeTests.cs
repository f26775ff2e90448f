using SmoothCache.Cli.Evaluation;

namespace SmoothCache.Tests.Evaluation;

public class DigitJudgeTests
{
    private static readonly DigitsDataset All = DigitsDataset.Load(DigitsDataset.DefaultPath);
    private static readonly Lazy<DigitJudge> Judge = new(() => DigitJudge.Train(All));

    /// <summary>Classifier input [-1, 1] back to pipeline images [0, 1].</summary>
    private static float[] ToUnit(ReadOnlySpan<float> input) => input.ToArray().Select(v => (v + 1f) / 2f).ToArray();

    [Fact]
    public void HeldOutDigitsAsPipelineImagesScoreTheHeldOutAccuracy()
    {
        var (_, test) = All.Split(DigitJudge.TrainFraction, seed: 0);

        Assert.Equal(test.Count, Judge.Value.HeldOutCount);
        Assert.True(Judge.Value.HeldOutAccuracy >= 0.95, $"held-out accuracy {Judge.Value.HeldOutAccuracy:P1}");
        Assert.Equal(Judge.Value.HeldOutAccuracy, Judge.Value.Accuracy(ToUnit(test.Images), test.Labels), 12);
    }

    [Fact]
    public void RealDigitsAreCloserToTheRealSetThanNoise()
    {
        var (_, test) = All.Split(DigitJudge.TrainFraction, seed: 0);
        var noise = TestSupport.Random(7, 100 * DigitsDataset.PixelsPerImage, 0.5f).Select(v => v + 0.5f).ToArray();

        double real = Judge.Value.FrechetToReal(ToUnit(test.Images[..(100 * DigitsDataset.PixelsPerImage)]));
        double random = Judge.Value.FrechetToReal(noise);

        Assert.True(real >= 0 && real * 5 < random, $"real digits {real:F2}, noise {random:F2}");
        Assert.Equal(real, Judge.Value.RealFloor(100), 9);
    }

    [Fact]
    public void OneImageHasNoFrechetDistance()
    {
        Assert.True(double.IsNaN(Judge.Value.FrechetToReal(new float[DigitsDataset.PixelsPerImage])));
    }

    [Fact]
    public void ImagesMustBeWhole16x16Digits()
    {
        var error = Assert.Throws<ArgumentException>(() => DigitJudge.ToClassifierInput(new float[300]));
        Assert.Contains("300", error.Message);
        Assert.Equal([-1f, 0f, 1f], DigitJudge.ToClassifierInput([0f, 0.5f, 1f, .. new float[253]])[..3]);
    }
}
