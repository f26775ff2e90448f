using SmoothCache.Kernels;
using static SmoothCache.Tests.TestSupport;

namespace SmoothCache.Tests.Kernels;

public class UpsampleTests
{
    [Fact]
    public void RepeatsEachPixelIntoA2x2Block()
    {
        int b = 2, c = 3, h = 5, w = 7;
        var x = Random(61, b * c * h * w);
        using var tx = Cpu.Arena.Upload(x, b, c, h, w);
        using var y = Upsample.Run(tx);
        Assert.Equal(new[] { b, c, 2 * h, 2 * w }, y.Shape);
        var actual = y.ToArray();
        for (int p = 0; p < b * c; p++)
            for (int i = 0; i < 2 * h; i++)
                for (int j = 0; j < 2 * w; j++)
                    Assert.Equal(x[(p * h + i / 2) * w + j / 2], actual[(p * 2 * h + i) * 2 * w + j]);
    }
}
