using SmoothCache.Kernels;
using SmoothCache.Kernels.Gpu;
using static SmoothCache.Tests.TestSupport;
using static SmoothCache.Tests.Kernels.LinearTests;

namespace SmoothCache.Tests.Kernels.Gpu;

/// <summary>
/// The Hopper GEMM on the CPU accelerator, where wgmma reads its operands through the matrix descriptors
/// the kernel builds (LinearWgmma.Emulated): the core-matrix layout of the staged tiles, the descriptors'
/// offsets, the four-stage pipeline, the accumulator layout and the shared epilogue are the CUDA kernel's
/// own. Products of fp16-rounded inputs, so the reference multiplies the rounded values in float64.
/// </summary>
public class LinearWgmmaTests
{
    private static float[] Run<TEpilogue>(GemmProblem p, DType output = DType.Float32, int splits = 1, bool twoWarpGroups = false)
        where TEpilogue : struct, IEpilogue
    {
        using var x = HalfConversion.ToHalf(p.Tx);
        using var w = HalfConversion.ToHalf(p.Tw);
        using var y = Cpu.Arena.Rent(output, p.M, p.N);
        if (twoWarpGroups) LinearWgmma.Run<TEpilogue, LinearWgmma.TwoWarpGroups>(Cpu, x.HalfView, w, p.Tb.View, OutputView.Of(y), p.M, splits);
        else LinearWgmma.Run<TEpilogue>(Cpu, x.HalfView, w, p.Tb.View, OutputView.Of(y), p.M, splits);
        return y.ToArray();
    }

    [Theory]
    [InlineData(5, 8, 3)]       // one K chunk, far smaller than a 128 x 128 block
    [InlineData(37, 136, 19)]   // 5 K tiles: the 4 stages wrap around, the last tile a single chunk
    [InlineData(70, 288, 72)]   // 9 K tiles: every stage reused twice while a multiply is in flight
    [InlineData(130, 40, 131)]  // M and N past one block: rows and columns cut off at the edges
    [InlineData(130, 40, 130)]  // the same with N even: column pairs stored together
    public void MatchesFloat64ReferenceOnRaggedShapes(int m, int k, int n)
    {
        using var p = new GemmProblem(31, m, k, n, 0.3f);
        double error = RelativeL2(Run<IdentityEpilogue>(p), p.ExpectedFromHalves(v => v));
        Assert.True(error < 1e-6, $"{error:E2}");
    }

    [Theory]
    [InlineData(37, 136, 19, 1)]   // one 256-row block, most rows past M
    [InlineData(300, 72, 131, 2)]  // two blocks down (the second's warpgroups half inside), split-K
    public void TwoWarpGroupBlocksMatchFloat64Reference(int m, int k, int n, int splits)
    {
        using var p = new GemmProblem(35, m, k, n, 0.3f);
        double error = RelativeL2(Run<GeluTanhEpilogue>(p, splits: splits, twoWarpGroups: true), p.ExpectedFromHalves(GeluTanh));
        Assert.True(error < 1e-6, $"{error:E2}");
    }

    [Fact]
    public void WritesFloat16OutputRoundedFromTheFloat32Result()
    {
        using var p = new GemmProblem(32, 20, 64, 24, 0.3f);
        double error = RelativeL2(Run<GeluTanhEpilogue>(p, DType.Float16), p.ExpectedFromHalves(GeluTanh));
        Assert.InRange(error, 1e-5, 1e-3);
    }

    [Theory]
    [InlineData(2)]  // 5 K tiles as 3 + 2
    [InlineData(5)]  // one tile each: the prologue's second stage is empty
    public void SplitKGivesTheSameResultWithBiasAndEpilogue(int splits)
    {
        using var p = new GemmProblem(33, 19, 136, 21, 0.3f);
        double error = RelativeL2(Run<GeluTanhEpilogue>(p, splits: splits), p.ExpectedFromHalves(GeluTanh));
        Assert.True(error < 1e-6, $"{error:E2}");
    }

    [Fact]
    public void DescriptorEncodesAddressAndCoreMatrixStridesInSixteenByteUnits()
    {
        long d = LinearWgmma.Descriptor(0x1230);
        Assert.Equal(0x123, d & 0x3FFF);               // start address
        Assert.Equal(128 / 16, (d >> 16) & 0x3FFF);    // next core matrix along K
        Assert.Equal(512 / 16, (d >> 32) & 0x3FFF);    // next 8 rows
        Assert.Equal(0, d >> 46);                      // base offset 0, no swizzle
    }

    [Fact]
    public void RejectsAFloat32Weight()
    {
        using var p = new GemmProblem(34, 4, 8, 4, 0.3f);
        using var x = HalfConversion.ToHalf(p.Tx);
        using var y = Cpu.Arena.Rent(p.M, p.N);
        var e = Assert.Throws<ArgumentException>(() => LinearWgmma.Run<IdentityEpilogue>(Cpu, x.HalfView, p.Tw, p.Tb.View, OutputView.Of(y), p.M));
        Assert.Contains("not Float16", e.Message);
    }
}
