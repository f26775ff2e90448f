using SmoothCache.Kernels;
using static SmoothCache.Tests.TestSupport;

namespace SmoothCache.Tests.Kernels;

/// <summary>Classifier-free guidance on the doubled batch, and without it.</summary>
public class GuidanceTests
{
    [Fact]
    public void GuidanceCombinesTheHalvesOnTheFirstChannels()
    {
        int half = 2, cout = 4, c = 2, px = 3;
        var m = Random(71, 2 * half * cout * px);
        using var tm = Cpu.Arena.Upload(m, 2 * half, cout, px, 1);
        using var e = Guidance.Run(tm, c, 4f);
        Assert.Equal(new[] { half, c, px, 1 }, e.Shape);
        var got = e.ToArray();
        for (int n = 0; n < half; n++)
            for (int ch = 0; ch < c; ch++)
                for (int p = 0; p < px; p++)
                {
                    float cond = m[(n * cout + ch) * px + p], uncond = m[((n + half) * cout + ch) * px + p];
                    float want = uncond + 4f * (cond - uncond);
                    Assert.Equal(want, got[(n * c + ch) * px + p], 5);
                }
    }

    [Fact]
    public void WithoutGuidanceEpsIsTheFirstChannels()
    {
        var m = Random(72, 3 * 4 * 5);
        using var tm = Cpu.Arena.Upload(m, 3, 4, 5, 1);
        using var e = Guidance.Run(tm, 2, 4f, doubled: false);
        var got = e.ToArray();
        for (int n = 0; n < 3; n++)
            for (int i = 0; i < 2 * 5; i++)
                Assert.Equal(m[n * 20 + i], got[n * 10 + i]);
    }
}
