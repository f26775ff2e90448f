using SmoothCache.Kernels;
using static SmoothCache.Tests.TestSupport;

namespace SmoothCache.Tests.Kernels;

/// <summary>The patch embedding: a strided convolution plus positions.</summary>
public class PatchEmbedTests
{
    [Theory]
    [InlineData(2, 3, 6, 2, 10)]   // 3 x 3 patches: one group of 8, five past the row
    [InlineData(1, 4, 34, 2, 7)]   // 17 patches a row: groups of 8, 8 and 1
    [InlineData(2, 2, 16, 4, 5)]   // 4 x 4 patches of 4 x 4
    public void PatchEmbedIsAStridedConvolutionPlusPositions(int b, int c, int s, int p, int d)
    {
        int grid = s / p;
        var x = Random(51, b * c * s * s);
        var w = Random(52, d * c * p * p, 0.5f);
        var bias = Random(53, d);
        var pos = Random(54, grid * grid * d);
        using var tx = Cpu.Arena.Upload(x, b, c, s, s);
        using var tw = Cpu.Arena.Upload(w, d, c, p, p);
        using var tb = Cpu.Arena.Upload(bias, d);
        using var tp = Cpu.Arena.Upload(pos, grid * grid, d);
        using var o = PatchEmbed.Run(tx, tw, tb, tp);
        var expected = new double[b * grid * grid * d];
        // The kernel's own float sums: the bias, the products over (channel, row, column) in order, then the position.
        var sameOrder = new float[expected.Length];
        for (int n = 0; n < b; n++)
            for (int i = 0; i < grid; i++)
                for (int j = 0; j < grid; j++)
                    for (int o2 = 0; o2 < d; o2++)
                    {
                        double acc = bias[o2] + pos[(i * grid + j) * d + o2];
                        float sum = bias[o2];
                        for (int ci = 0; ci < c; ci++)
                            for (int kh = 0; kh < p; kh++)
                                for (int kw = 0; kw < p; kw++)
                                {
                                    float xv = x[((n * c + ci) * s + i * p + kh) * s + j * p + kw], wv = w[((o2 * c + ci) * p + kh) * p + kw];
                                    acc += (double)xv * wv;
                                    sum += xv * wv;
                                }
                        int at = ((n * grid + i) * grid + j) * d + o2;
                        expected[at] = acc;
                        sameOrder[at] = sum + pos[(i * grid + j) * d + o2];
                    }
        Assert.Equal(new[] { b, grid * grid, d }, o.Shape);
        var got = o.ToArray();
        Assert.True(RelativeL2(got, expected) < 1e-6);
        Assert.Equal(sameOrder, got);
    }
}
