using SmoothCache.Kernels;
using static SmoothCache.Tests.TestSupport;

namespace SmoothCache.Tests.Kernels;

/// <summary>Tokens back to an image.</summary>
public class UnpatchifyTests
{
    [Fact]
    public void UnpatchifyPlacesEachPatchChannelLast()
    {
        int b = 2, grid = 3, p = 2, c = 5;
        var y = Enumerable.Range(0, b * grid * grid * p * p * c).Select(v => (float)v).ToArray();
        using var ty = Cpu.Arena.Upload(y, b, grid * grid, p * p * c);
        using var o = Unpatchify.Run(ty, p, c);
        Assert.Equal(new[] { b, c, grid * p, grid * p }, o.Shape);
        var got = o.ToArray();
        int size = grid * p;
        for (int n = 0; n < b; n++)
            for (int ch = 0; ch < c; ch++)
                for (int hi = 0; hi < grid; hi++)
                    for (int pi = 0; pi < p; pi++)
                        for (int wi = 0; wi < grid; wi++)
                            for (int qi = 0; qi < p; qi++)
                                Assert.Equal(y[(n * grid * grid + hi * grid + wi) * p * p * c + (pi * p + qi) * c + ch],
                                    got[((n * c + ch) * size + hi * p + pi) * size + wi * p + qi]);
    }
}
