using SmoothCache.Kernels;
using static SmoothCache.Tests.TestSupport;

namespace SmoothCache.Tests.Kernels;

public class Conv2dTests
{
    /// <summary>Zero-padded "same" convolution in float64, then f, then + residual.</summary>
    public static double[] Reference(float[] x, float[] w, float[] bias, float[]? residual,
        int b, int cin, int cout, int h, int wd, int k, Func<double, double> f)
    {
        int pad = k / 2;
        var y = new double[b * cout * h * wd];
        for (int n = 0; n < b; n++)
            for (int co = 0; co < cout; co++)
                for (int i = 0; i < h; i++)
                    for (int j = 0; j < wd; j++)
                    {
                        double acc = bias[co];
                        for (int ci = 0; ci < cin; ci++)
                            for (int ky = 0; ky < k; ky++)
                                for (int kx = 0; kx < k; kx++)
                                {
                                    int yi = i + ky - pad, xj = j + kx - pad;
                                    if (yi < 0 || yi >= h || xj < 0 || xj >= wd) continue;
                                    acc += (double)x[((n * cin + ci) * h + yi) * wd + xj] * w[((co * cin + ci) * k + ky) * k + kx];
                                }
                        int o = ((n * cout + co) * h + i) * wd + j;
                        y[o] = f(acc) + (residual?[o] ?? 0);
                    }
        return y;
    }

    [Theory]
    [InlineData(2, 5, 6, 5, 7, 3)]   // odd image, channels not multiples of anything
    [InlineData(1, 3, 4, 1, 9, 3)]   // a single row: the window is clipped on both vertical sides
    [InlineData(2, 6, 3, 4, 4, 1)]   // 1x1: a per-pixel linear over channels
    [InlineData(1, 2, 2, 6, 5, 5)]   // a larger odd kernel pads by 2
    public void MatchesFloat64ReferenceWithBias(int b, int cin, int cout, int h, int w, int k)
    {
        var x = Random(41, b * cin * h * w, 2f);
        var wt = Random(42, cout * cin * k * k, 0.3f);
        var bias = Random(43, cout);
        using var tx = Cpu.Arena.Upload(x, b, cin, h, w);
        using var tw = Cpu.Arena.Upload(wt, cout, cin, k, k);
        using var tb = Cpu.Arena.Upload(bias, cout);
        using var y = Conv2d.Run(tx, tw, tb);
        Assert.Equal(new[] { b, cout, h, w }, y.Shape);
        Assert.True(RelativeL2(y.ToArray(), Reference(x, wt, bias, null, b, cin, cout, h, w, k, v => v)) < 1e-6);
    }

    [Fact]
    public void AppliesTheEpilogueThenAddsTheResidual()
    {
        int b = 2, cin = 5, cout = 6, h = 5, w = 7, k = 3;
        var x = Random(44, b * cin * h * w, 2f);
        var wt = Random(45, cout * cin * k * k, 0.3f);
        var bias = Random(46, cout);
        var residual = Random(47, b * cout * h * w, 3f);
        using var tx = Cpu.Arena.Upload(x, b, cin, h, w);
        using var tw = Cpu.Arena.Upload(wt, cout, cin, k, k);
        using var tb = Cpu.Arena.Upload(bias, cout);
        using var tr = Cpu.Arena.Upload(residual, b, cout, h, w);
        using var y = Conv2d.Run<SiluEpilogue>(tx, tw, tb, tr);
        var expected = Reference(x, wt, bias, residual, b, cin, cout, h, w, k, LinearTests.Silu);
        Assert.True(RelativeL2(y.ToArray(), expected) < 1e-6);
    }

    [Fact]
    public void RejectsMismatchedChannelsAndEvenKernels()
    {
        using var x = Cpu.Arena.Zeros(1, 4, 5, 5);
        using var wrongCin = Cpu.Arena.Zeros(2, 3, 3, 3);
        using var even = Cpu.Arena.Zeros(2, 4, 2, 2);
        Assert.Contains("[Cout,4,K,K]", Assert.Throws<ArgumentException>(() => Conv2d.Run(x, wrongCin, null)).Message);
        Assert.Contains("K odd", Assert.Throws<ArgumentException>(() => Conv2d.Run(x, even, null)).Message);
    }
}
