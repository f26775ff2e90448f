using ILGPU;
using SmoothCache.Kernels;
using SmoothCache.Kernels.Gpu;
using static SmoothCache.Tests.TestSupport;
using static SmoothCache.Tests.Kernels.LinearTests;
using Half = ILGPU.Half;

namespace SmoothCache.Tests.Kernels.Gpu;

/// <summary>
/// The TMA-loaded Hopper GEMM on the CPU accelerator: one thread copies each box as the copy engine would
/// (zeros past the matrix) into the stage layout the kernel's descriptors name, and wgmma is emulated from
/// those descriptors, so the layout, the descriptors' strides, the stage ring and split-K are the CUDA
/// kernel's own. The tensor maps, mbarriers and the copy engine itself only a GPU checks.
/// </summary>
public class LinearWgmmaTmaTests : Fp16GemmTests
{
    protected override void Multiply<TEpilogue>(ArrayView<Half> x, Tensor w, ArrayView<float> bias, OutputView y, int m, int splits) =>
        LinearWgmmaTma.Run<TEpilogue, LinearWgmma.OneWarpGroup>(Cpu, x, w, bias, y, m, splits);

    [Theory]
    [InlineData(37, 136, 19, 1)]   // one 256-row block, most rows past M
    [InlineData(300, 72, 131, 2)]  // two blocks down (the second's warpgroups half inside), split-K
    public void TwoWarpGroupBlocksMatchFloat64Reference(int m, int k, int n, int splits)
    {
        using var p = new GemmProblem(36, m, k, n, 0.3f);
        using var x = HalfConversion.ToHalf(p.Tx);
        using var w = HalfConversion.ToHalf(p.Tw);
        using var y = Cpu.Arena.Rent(p.M, p.N);
        LinearWgmmaTma.Run<GeluTanhEpilogue, LinearWgmma.TwoWarpGroups>(Cpu, x.HalfView, w, p.Tb.View, OutputView.Of(y), p.M, splits);
        double error = RelativeL2(y.ToArray(), p.ExpectedFromHalves(GeluTanh));
        Assert.True(error < 1e-6, $"{error:E2}");
    }

    [Fact]
    public void RejectsAFloat32Weight()
    {
        using var p = new GemmProblem(34, 4, 8, 4, 0.3f);
        using var x = HalfConversion.ToHalf(p.Tx);
        using var y = Cpu.Arena.Rent(p.M, p.N);
        var e = Assert.Throws<ArgumentException>(() =>
            LinearWgmmaTma.Run<IdentityEpilogue, LinearWgmma.OneWarpGroup>(Cpu, x.HalfView, p.Tw, p.Tb.View, OutputView.Of(y), p.M));
        Assert.Contains("not Float16", e.Message);
    }
}
