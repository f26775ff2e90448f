using SmoothCache.Kernels;
using SmoothCache.Kernels.Gpu;
using static SmoothCache.Tests.TestSupport;

namespace SmoothCache.Tests.Kernels.Gpu;

/// <summary>The GPU-shaped GroupNorm statistics (a group of threads per sample and group) are portable ILGPU, barriers
/// included, so the CPU accelerator runs them; the portable one-thread kernel is their reference.</summary>
public class GroupNormStatsTests
{
    [Theory]
    [InlineData(2, 6, 3, 5, 7)]      // groups of 70: most threads hold nothing
    [InlineData(1, 4, 2, 16, 20)]    // 640: not a multiple of the 256 threads
    [InlineData(2, 4, 1, 32, 40)]    // 5120 around a mean of 50 (compensated sums)
    public void MatchTheOneThreadKernel(int b, int c, int groups, int h, int w)
    {
        var x = Random(61, b * c * h * w, 2f);
        for (int i = 0; i < x.Length; i++) x[i] += c == 4 && groups == 1 ? 50f : 0.7f;
        int size = c / groups * h * w;
        float[] Stats(Backend backend, bool grouped)
        {
            using var tx = backend.Arena.Upload(x, b, c, h, w);
            using var stats = backend.Arena.Rent(b * groups, 2);
            var args = new GroupNorm.StatsArgs { X = tx.View, Stats = stats.View, GroupSize = size, Eps = 1e-6f };
            if (grouped) GroupNormStats.Run(backend, args, b * groups);
            else backend.Load<GroupNorm.StatsArgs>(GroupNorm.StatsKernel)(b * groups, args);
            return stats.ToArray();
        }
        var expected = Stats(Cpu, grouped: false);
        var got = Stats(GpuShapedCpu, grouped: true);
        Assert.True(RelativeL2(got, expected) < 1e-6, $"stats {string.Join(", ", got)} vs {string.Join(", ", expected)}");
    }

    [Fact]
    public void GroupNormRunsThemOnGpuKernels()
    {
        var x = Random(62, 2 * 8 * 12 * 12, 2f);
        var gamma = Random(63, 8);
        var beta = Random(64, 8);
        float[] Normed(Backend backend)
        {
            using var tx = backend.Arena.Upload(x, 2, 8, 12, 12);
            using var tg = backend.Arena.Upload(gamma, 8);
            using var tb = backend.Arena.Upload(beta, 8);
            using var y = GroupNorm.Run<SiluEpilogue>(tx, 4, tg, tb, 1e-6f);
            return y.ToArray();
        }
        Assert.True(RelativeL2(Normed(CpuWithGpuKernels), Normed(Cpu)) < 1e-6);
    }
}
