using SmoothCache.Kernels;
using static SmoothCache.Tests.TestSupport;

namespace SmoothCache.Tests.Kernels;

public class GroupNormTests
{
    public static double[] Reference(float[] x, float[] gamma, float[] beta, int b, int c, int plane, int groups,
        double eps, Func<double, double> f)
    {
        int size = c / groups * plane;
        var y = new double[x.Length];
        for (int g = 0; g < b * groups; g++)
        {
            int x0 = g * size;
            double mean = 0, var = 0;
            for (int i = 0; i < size; i++) mean += x[x0 + i];
            mean /= size;
            for (int i = 0; i < size; i++) var += Math.Pow(x[x0 + i] - mean, 2);
            var /= size;
            for (int i = 0; i < size; i++)
            {
                int ch = (x0 + i) / plane % c;
                y[x0 + i] = f((x[x0 + i] - mean) / Math.Sqrt(var + eps) * gamma[ch] + beta[ch]);
            }
        }
        return y;
    }

    [Theory]
    [InlineData(2, 6, 3, 5, 7)]     // 3 groups of 2 channels on a 5x7 image
    [InlineData(1, 5, 5, 3, 3)]     // one channel per group
    [InlineData(3, 4, 1, 2, 9)]     // one group spanning all channels
    public void MatchesFloat64Reference(int b, int c, int groups, int h, int w)
    {
        var x = Random(51, b * c * h * w, 2f);
        for (int i = 0; i < x.Length; i++) x[i] += 0.7f; // a non-zero mean
        var gamma = Random(52, c);
        var beta = Random(53, c);
        using var tx = Cpu.Arena.Upload(x, b, c, h, w);
        using var tg = Cpu.Arena.Upload(gamma, c);
        using var tb = Cpu.Arena.Upload(beta, c);
        using (var y = GroupNorm.Run(tx, groups, tg, tb, 1e-6f))
        {
            Assert.Equal(new[] { b, c, h, w }, y.Shape);
            Assert.True(RelativeL2(y.ToArray(), Reference(x, gamma, beta, b, c, h * w, groups, 1e-6, v => v)) < 1e-6);
        }
        using var silu = GroupNorm.Run<SiluEpilogue>(tx, groups, tg, tb, 1e-6f);
        Assert.True(RelativeL2(silu.ToArray(), Reference(x, gamma, beta, b, c, h * w, groups, 1e-6, LinearTests.Silu)) < 1e-6);
    }

    [Fact]
    public void LargeGroupWithAnOffsetStaysAccurate()
    {
        // 40960 values around 50 with unit spread: a plain float32 running sum loses the mean to
        // about 1e-3, which the normalised output would show as a 1e-3 error.
        int c = 2, h = 128, w = 160;
        var x = Random(54, c * h * w);
        for (int i = 0; i < x.Length; i++) x[i] += 50f;
        float[] gamma = [1f, 1f], beta = [0f, 0f];
        using var tx = Cpu.Arena.Upload(x, 1, c, h, w);
        using var tg = Cpu.Arena.Upload(gamma, c);
        using var tb = Cpu.Arena.Upload(beta, c);
        using var y = GroupNorm.Run(tx, 1, tg, tb, 1e-6f);
        var expected = Reference(x, gamma, beta, 1, c, h * w, 1, 1e-6, v => v);
        Assert.True(MaxAbs(y.ToArray(), expected) < 2e-5);
    }

    [Fact]
    public void RejectsGroupsThatDoNotDivideTheChannels()
    {
        using var x = Cpu.Arena.Zeros(1, 6, 2, 2);
        using var p = Cpu.Arena.Zeros(6);
        var e = Assert.Throws<ArgumentException>(() => GroupNorm.Run(x, 4, p, p, 1e-6f));
        Assert.Contains("4 groups", e.Message);
    }
}
