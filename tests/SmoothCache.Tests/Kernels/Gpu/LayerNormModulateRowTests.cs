using SmoothCache.Kernels;
using SmoothCache.Kernels.Gpu;
using static SmoothCache.Tests.TestSupport;

namespace SmoothCache.Tests.Kernels.Gpu;

/// <summary>The group-per-row LayerNorm is portable ILGPU (warp shuffles and barriers included), so the CPU accelerator runs it.</summary>
public class LayerNormModulateRowTests
{
    [Theory]
    [InlineData(3, 5, 72)]    // 3 warps, the last one partly empty
    [InlineData(2, 9, 1152)]  // DiT-XL/2's width: 576 threads of 2 elements
    [InlineData(1, 3, 20)]    // narrower than a warp: some lanes hold nothing
    public void MatchesThePortableKernel(int b, int t, int d)
    {
        var x = Random(31, b * t * d, 2f);
        for (int i = 0; i < x.Length; i++) x[i] += 0.5f;
        var mod = Random(32, b * 6 * d);
        using var tx = Cpu.Arena.Upload(x, b, t, d);
        using var tm = Cpu.Arena.Upload(mod, b, 6 * d);
        using var portable = LayerNormModulate.Run(tx, tm, 3 * d, 4 * d, 1e-6f);
        using var row = Cpu.Arena.Rent(b, t, d);
        LayerNormModulateRow.Run(Cpu, new LayerNormModulate.Args
        {
            X = tx.View, Mod = tm.View, Y = OutputView.Of(row), D = d, TokensPerSample = t, ModStride = 6 * d,
            ShiftOffset = 3 * d, ScaleOffset = 4 * d, Eps = 1e-6f,
        });
        Assert.True(RelativeL2(row.ToArray(), portable.ToArray()) < 1e-6);
    }

    [Theory]
    [InlineData(1152, 576)]
    [InlineData(1024, 1024)]
    [InlineData(1025, 544)]
    [InlineData(20, 32)]
    public void GivesEveryThreadTheSameFewElements(int d, int threads) =>
        Assert.Equal(threads, LayerNormModulateRow.Threads(d));

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
        using var gpuX = CpuWithGpuKernels.Arena.Upload(x, b, t, d);
        using var gpuR = CpuWithGpuKernels.Arena.Upload(r, b, t, d);
        using var gpuM = CpuWithGpuKernels.Arena.Upload(mod, b, 6 * d);
        using var gpu = LayerNormModulate.RunAfterResidual(gpuX, gpuR, gpuM, 2 * d, 3 * d, 4 * d, 1e-6f);
        Assert.Equal(portableX.ToArray(), gpuX.ToArray());
        Assert.True(RelativeL2(gpu.ToArray(), portable.ToArray()) < 1e-6);
    }
}
