using SmoothCache.Kernels;
using SmoothCache.Kernels.Gpu;
using static SmoothCache.Tests.TestSupport;

namespace SmoothCache.Tests.Kernels.Gpu;

/// <summary>The warp-per-row LayerNorm is portable ILGPU (warp shuffles included), so the CPU accelerator runs it.</summary>
public class LayerNormModulateWarpTests
{
    [Theory]
    [InlineData(3, 5, 72)]    // 15 rows: the last group of 8 warps is partly empty
    [InlineData(2, 9, 1152)]  // DiT-XL/2's width: 36 elements per lane
    [InlineData(1, 3, 20)]    // narrower than a warp: some lanes hold nothing
    public void MatchesThePortableKernel(int b, int t, int d)
    {
        var x = Random(31, b * t * d, 2f);
        for (int i = 0; i < x.Length; i++) x[i] += 0.5f;
        var mod = Random(32, b * 6 * d);
        using var tx = Cpu.Arena.Upload(x, b, t, d);
        using var tm = Cpu.Arena.Upload(mod, b, 6 * d);
        using var portable = LayerNormModulate.Run(tx, tm, 3 * d, 4 * d, 1e-6f);
        using var warp = Cpu.Arena.Rent(b, t, d);
        LayerNormModulateWarp.Run(Cpu, new LayerNormModulate.Args
        {
            X = tx.View, Mod = tm.View, Y = OutputView.Of(warp), D = d, TokensPerSample = t, ModStride = 6 * d,
            ShiftOffset = 3 * d, ScaleOffset = 4 * d, Eps = 1e-6f,
        });
        Assert.True(RelativeL2(warp.ToArray(), portable.ToArray()) < 1e-6);
    }

    [Fact]
    public void AppliesTheGatedResidualLikeThePortableKernel()
    {
        int b = 2, t = 5, d = 100;
        var x = Random(33, b * t * d, 2f);
        var r = Random(34, b * t * d);
        var mod = Random(35, b * 6 * d);
        using var tm = Cpu.Arena.Upload(mod, b, 6 * d);
        using var tr = Cpu.Arena.Upload(r, b, t, d);
        using var portableX = Cpu.Arena.Upload(x, b, t, d);
        using var portable = LayerNormModulate.RunAfterResidual(portableX, tr, tm, 2 * d, 3 * d, 4 * d, 1e-6f);
        using var warpX = CpuWithGpuKernels.Arena.Upload(x, b, t, d);
        using var warpR = CpuWithGpuKernels.Arena.Upload(r, b, t, d);
        using var warpM = CpuWithGpuKernels.Arena.Upload(mod, b, 6 * d);
        using var warp = LayerNormModulate.RunAfterResidual(warpX, warpR, warpM, 2 * d, 3 * d, 4 * d, 1e-6f);
        Assert.Equal(portableX.ToArray(), warpX.ToArray());
        Assert.True(RelativeL2(warp.ToArray(), portable.ToArray()) < 1e-6);
    }
}
