using SmoothCache.Kernels;
using static SmoothCache.Tests.TestSupport;

namespace SmoothCache.Tests.Kernels;

public class TransposeTests
{
    [Fact]
    public void SwapsTheLastTwoAxesOfEachSample()
    {
        int b = 2, r = 6, s = 35;  // NCHW [2, 6, 5, 7] as [B, C, HW]
        var x = Random(71, b * r * s);
        using var tx = Cpu.Arena.Upload(x, b, r, s);
        using var y = Transpose.Run(tx);
        Assert.Equal(new[] { b, s, r }, y.Shape);
        var actual = y.ToArray();
        for (int n = 0; n < b; n++)
            for (int i = 0; i < r; i++)
                for (int j = 0; j < s; j++)
                    Assert.Equal(x[(n * r + i) * s + j], actual[(n * s + j) * r + i]);
    }

    [Fact]
    public void AddsTheAddendInOutputLayout()
    {
        int b = 3, r = 7, s = 4;
        var x = Random(72, b * r * s);
        var addend = Random(73, b * s * r);
        using var tx = Cpu.Arena.Upload(x, b, r, s);
        using var ta = Cpu.Arena.Upload(addend, b, s, 1, r);
        using var y = Transpose.Run(tx, ta);
        var actual = y.ToArray();
        for (int n = 0; n < b; n++)
            for (int i = 0; i < r; i++)
                for (int j = 0; j < s; j++)
                {
                    int o = (n * s + j) * r + i;
                    Assert.Equal(x[(n * r + i) * s + j] + addend[o], actual[o]);
                }
    }
}
