using ILGPU;
using SmoothCache.Kernels;
using SmoothCache.Kernels.Gpu;
using static SmoothCache.Tests.TestSupport;
using static SmoothCache.Tests.Kernels.LinearTests;
using Half = ILGPU.Half;

namespace SmoothCache.Tests.Kernels.Gpu;

/// <summary>
/// What both Hopper GEMMs (<see cref="LinearWgmmaTests"/>, <see cref="LinearWgmmaTmaTests"/>) must compute on the
/// CPU accelerator, where wgmma reads its operands through the matrix descriptors the kernel builds
/// (LinearWgmma.Emulated): besides every fp16 GEMM's cases (<see cref="Fp16GemmTests"/>), the two-warpgroup
/// blocks and the refusal of a float32 weight.
/// </summary>
public abstract class HopperGemmTests : Fp16GemmTests
{
    /// <summary>y = epilogue(x W^T + b) by the kernel under test in blocks of <typeparamref name="TBlock"/>.</summary>
    protected abstract void Multiply<TEpilogue, TBlock>(ArrayView<Half> x, Tensor w, ArrayView<float> bias, OutputView y, int m, int splits)
        where TEpilogue : struct, IEpilogue where TBlock : struct, LinearWgmma.IBlock;

    protected override void Multiply<TEpilogue>(ArrayView<Half> x, Tensor w, ArrayView<float> bias, OutputView y, int m, int splits) =>
        Multiply<TEpilogue, LinearWgmma.OneWarpGroup>(x, w, bias, y, m, splits);

    [Theory]
    [InlineData(37, 136, 19, 1)]   // one 256-row block, most rows past M
    [InlineData(300, 72, 131, 2)]  // two blocks down (the second's warpgroups half inside), split-K
    public void TwoWarpGroupBlocksMatchFloat64Reference(int m, int k, int n, int splits) =>
        AssertMatchesReference<LinearWgmma.TwoWarpGroups>(m, k, n, splits);

    protected void AssertMatchesReference<TBlock>(int m, int k, int n, int splits) where TBlock : struct, LinearWgmma.IBlock
    {
        using var p = new GemmProblem(35, m, k, n, 0.3f);
        using var x = HalfConversion.ToHalf(p.Tx);
        using var w = HalfConversion.ToHalf(p.Tw);
        using var y = GpuShapedCpu.Arena.Rent(p.M, p.N);
        Multiply<GeluTanhEpilogue, TBlock>(x.HalfView, w, p.Tb.View, OutputView.Of(y), p.M, splits);
        double error = RelativeL2(y.ToArray(), p.ExpectedFromHalves(GeluTanh));
        Assert.True(error < 1e-6, $"{error:E2}");
    }

    [Fact]
    public void RejectsAFloat32Weight()
    {
        using var p = new GemmProblem(34, 4, 8, 4, 0.3f);
        using var x = HalfConversion.ToHalf(p.Tx);
        using var y = GpuShapedCpu.Arena.Rent(p.M, p.N);
        var e = Assert.Throws<ArgumentException>(() => Multiply<IdentityEpilogue>(x.HalfView, p.Tw, p.Tb.View, OutputView.Of(y), p.M, 0));
        Assert.Contains("not Float16", e.Message);
    }
}

/// <summary>
/// The Hopper GEMM with cp.async copies: the core-matrix layout of the staged tiles, the descriptors'
/// offsets, the stage ring, the accumulator layout and the shared epilogue are the CUDA kernel's own. Here
/// besides <see cref="HopperGemmTests"/>: the 48 KB blocks and the descriptor's encoding.
/// </summary>
public class LinearWgmmaTests : HopperGemmTests
{
    protected override void Multiply<TEpilogue, TBlock>(ArrayView<Half> x, Tensor w, ArrayView<float> bias, OutputView y, int m, int splits) =>
        LinearWgmma.Run<TEpilogue, TBlock>(GpuShapedCpu, x, w, bias, y, m, splits);

    [Theory]
    [InlineData(20, 232, 24, 1)]   // 8 K tiles: around the 3-stage ring more than twice
    [InlineData(20, 232, 24, 2)]   // split-K: 4 tiles each
    public void CompactBlocksMatchFloat64Reference(int m, int k, int n, int splits) =>
        AssertMatchesReference<LinearWgmma.OneWarpGroupCompact>(m, k, n, splits);

    [Fact]
    public void DescriptorEncodesAddressAndCoreMatrixStridesInSixteenByteUnits()
    {
        long d = LinearWgmma.Descriptor(0x1230);
        Assert.Equal(0x123, d & 0x3FFF);               // start address
        Assert.Equal(128 / 16, (d >> 16) & 0x3FFF);    // next core matrix along K
        Assert.Equal(512 / 16, (d >> 32) & 0x3FFF);    // next 8 rows
        Assert.Equal(0, d >> 46);                      // base offset 0, no swizzle
    }
}
