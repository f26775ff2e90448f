using SmoothCache.Cli.Evaluation;

namespace SmoothCache.Tests.Evaluation;

public class ImageMetricsTests
{
    [Fact]
    public void Psnr_OfIdenticalImagesIsPositiveInfinityAndPrintsAsInf()
    {
        float[] image = [0.1f, 0.5f, 0.9f];

        double psnr = ImageMetrics.Psnr(image, image);

        Assert.Equal(double.PositiveInfinity, psnr);
        Assert.Equal("inf", EvalTable.Number(psnr));
    }

    [Fact]
    public void Psnr_OfAConstantOffsetFollowsFromItsMeanSquare()
    {
        float[] reference = [0f, 0.25f, 0.5f, 0.75f];
        float[] shifted = reference.Select(v => v + 0.25f).ToArray();

        // MSE = 0.25^2: 10 log10(1 / 0.0625) = 20 log10(4); with data range 2: 20 log10(8).
        Assert.Equal(12.041199826559248, ImageMetrics.Psnr(shifted, reference), 9);
        Assert.Equal(18.061799739838872, ImageMetrics.Psnr(shifted, reference, dataRange: 2), 9);
    }

    [Fact]
    public void RelativeL2_DividesByTheReferenceNorm()
    {
        float[] reference = [3f, 4f];
        float[] other = [6f, 8f];

        Assert.Equal(1.0, ImageMetrics.RelativeL2(other, reference), 12); // ||(3,4)|| / ||(3,4)||
        Assert.Equal(0.5, ImageMetrics.RelativeL2(reference, other), 12); // 5 / 10
        Assert.Equal(0.0, ImageMetrics.RelativeL2([0f, 0f], [0f, 0f]));
        Assert.Equal(double.PositiveInfinity, ImageMetrics.RelativeL2([1f, 0f], [0f, 0f]));
    }

    [Fact]
    public void Metrics_RejectDifferentLengths()
    {
        Assert.Throws<ArgumentException>(() => ImageMetrics.Psnr([1f, 2f], [1f]));
        Assert.Throws<ArgumentException>(() => ImageMetrics.RelativeL2([1f], [1f, 2f]));
    }
}
