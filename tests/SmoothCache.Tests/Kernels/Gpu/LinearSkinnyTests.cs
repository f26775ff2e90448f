using SmoothCache.Kernels;
using SmoothCache.Kernels.Gpu;
using static SmoothCache.Tests.TestSupport;
using static SmoothCache.Tests.Kernels.LinearTests;

namespace SmoothCache.Tests.Kernels.Gpu;

/// <summary>The few-rows GEMM is portable ILGPU (warp shuffles included): the CPU accelerator runs it.</summary>
public class LinearSkinnyTests
{
    private static float[] Round(float[] v) => v.Select(e => (float)(System.Half)e).ToArray();

    [Theory]
    [InlineData(1, 8, 5)]      // one row, one 8-value group per column
    [InlineData(2, 264, 37)]   // a lane's second pass over K is partial
    [InlineData(16, 256, 19)]  // every accumulator in use (the timestep MLP's K)
    [InlineData(7, 1152, 9)]   // DiT-XL/2's width
    public void MatchesFloat64ReferenceInFp32(int m, int k, int n)
    {
        using var p = new GemmProblem(61, m, k, n);
        using var y = GpuShapedCpu.Arena.Rent(m, n);
        LinearSkinny.Run<GeluTanhEpilogue>(GpuShapedCpu, p.Tx, p.Tw, p.Tb.View, OutputView.Of(y), m);
        Assert.True(RelativeL2(y.ToArray(), p.Expected(GeluTanh)) < 1e-6);
    }

    [Fact]
    public void Fp16MultipliesTheHalfValuesAndCanWriteHalves()
    {
        int m = 5, k = 72, n = 11;
        var x = Random(64, m * k, 2f);
        var w = Random(65, n * k, 0.1f);
        using var tx32 = GpuShapedCpu.Arena.Upload(x, m, k);
        using var tw32 = GpuShapedCpu.Arena.Upload(w, n, k);
        using var tx = HalfConversion.ToHalf(tx32);
        using var tw = HalfConversion.ToHalf(tw32);
        var expected = Reference(Round(x), Round(w), null, m, n, k, v => v);
        using var y = GpuShapedCpu.Arena.Rent(m, n);
        LinearSkinny.Run<IdentityEpilogue>(GpuShapedCpu, tx, tw, ILGPU.ArrayView<float>.Empty, OutputView.Of(y), m);
        Assert.True(RelativeL2(y.ToArray(), expected) < 1e-6);
        using var yHalf = GpuShapedCpu.Arena.Rent(DType.Float16, m, n);
        LinearSkinny.Run<IdentityEpilogue>(GpuShapedCpu, tx, tw, ILGPU.ArrayView<float>.Empty, OutputView.Of(yHalf), m);
        Assert.Equal(y.ToArray().Select(v => (float)(System.Half)v), yHalf.ToArray());
    }

    [Fact]
    public void LinearTakesItForFewRowsWithGpuKernels()
    {
        var backend = CpuWithGpuKernels;
        using var x = backend.Arena.Upload(Random(66, 3 * 16), 3, 16);
        using var w = backend.Arena.Upload(Random(67, 40 * 16), 40, 16);
        using var many = backend.Arena.Upload(Random(68, 17 * 16), 17, 16);
        IReadOnlyList<KernelTime> kernels;
        using (var profile = backend.StartProfile())
        {
            Linear.Run(x, w, null).Dispose();
            Linear.Run(many, w, null).Dispose();
            kernels = profile.Read();
        }
        Assert.Equal(["LinearSkinny<IdentityEpilogue>", "Sgemm<IdentityEpilogue>"], kernels.Select(k => k.Kernel).Order());
        Assert.False(LinearSkinny.Suits(3, 12));   // K not a multiple of 8
        Assert.False(LinearSkinny.Suits(17, 16));  // more rows than accumulators
    }
}
