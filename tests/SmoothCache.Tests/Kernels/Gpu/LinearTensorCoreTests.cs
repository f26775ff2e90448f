using SmoothCache.Kernels;
using SmoothCache.Kernels.Gpu;
using static SmoothCache.Tests.TestSupport;
using static SmoothCache.Tests.Kernels.LinearTests;

namespace SmoothCache.Tests.Kernels.Gpu;

/// <summary>
/// The tensor-core GEMM on the CPU accelerator, where ldmatrix, mma.sync and cp.async are emulated
/// (TensorCore): its staging, swizzle, three-stage pipeline, fragment layout and epilogue are the
/// CUDA kernel's own; only the PTX spelling is not exercised here. Products of fp16-rounded inputs,
/// so the reference multiplies the rounded values in float64.
/// </summary>
public class LinearTensorCoreTests
{
    private static float[] Run<TEpilogue>(GemmProblem p, DType output = DType.Float32, int splits = 1) where TEpilogue : struct, IEpilogue
    {
        using var x = HalfConversion.ToHalf(p.Tx);
        using var w = HalfConversion.ToHalf(p.Tw);
        using var y = Cpu.Arena.Rent(output, p.M, p.N);
        LinearTensorCore.Run<TEpilogue>(Cpu, x.HalfView, w, p.Tb.View, OutputView.Of(y), p.M, splits);
        return y.ToArray();
    }

    [Theory]
    [InlineData(5, 8, 3)]       // one K chunk, far smaller than a 128 x 128 block
    [InlineData(37, 136, 19)]   // 5 K tiles through the 3-stage pipeline, the last one a single chunk
    [InlineData(130, 40, 131)]  // M and N past one block: 4 blocks, rows and columns cut off at the edges
    [InlineData(130, 40, 130)]  // the same with N even: column pairs stored together, whole warp tiles unchecked
    public void MatchesFloat64ReferenceOnRaggedShapes(int m, int k, int n)
    {
        using var p = new GemmProblem(21, m, k, n, 0.3f);
        double error = RelativeL2(Run<IdentityEpilogue>(p), p.ExpectedFromHalves(v => v));
        Assert.True(error < 1e-6, $"{error:E2}");
    }

    [Fact]
    public void WritesFloat16OutputRoundedFromTheFloat32Result()
    {
        using var p = new GemmProblem(22, 20, 64, 24, 0.3f);
        double error = RelativeL2(Run<GeluTanhEpilogue>(p, DType.Float16), p.ExpectedFromHalves(GeluTanh));
        // Within fp16 rounding (2^-11 relative) of the exact result, and not exact.
        Assert.InRange(error, 1e-5, 1e-3);
    }

    [Theory]
    [InlineData(2)]  // 5 K tiles as 3 + 2: each split runs the pipeline on its own range
    [InlineData(5)]  // one tile each: the prologue's second stage is empty
    public void SplitKGivesTheSameResultWithBiasAndEpilogue(int splits)
    {
        using var p = new GemmProblem(23, 19, 136, 21, 0.3f);
        double error = RelativeL2(Run<GeluTanhEpilogue>(p, splits: splits), p.ExpectedFromHalves(GeluTanh));
        Assert.True(error < 1e-6, $"{error:E2}");
    }

    private static float[] RunTf32x3<TEpilogue>(GemmProblem p, int splits = 1) where TEpilogue : struct, IEpilogue
    {
        using var y = Cpu.Arena.Rent(p.M, p.N);
        LinearTensorCore.RunTf32x3<TEpilogue>(Cpu, p.Tx.View, p.Tw, p.Tb.View, OutputView.Of(y), p.M, splits);
        return y.ToArray();
    }

    [Theory]
    [InlineData(5, 4, 3)]      // one 4-float chunk
    [InlineData(37, 20, 19)]   // 2 K tiles of 16 floats, the second a single chunk
    [InlineData(130, 12, 131)] // 4 blocks with cut-off rows and columns
    public void Tf32x3IsAsAccurateAsFloat32(int m, int k, int n)
    {
        // One tf32 product alone would be off by ~1e-4 (10 mantissa bits); the three-term split is not.
        using var p = new GemmProblem(24, m, k, n, 0.3f);
        double error = RelativeL2(RunTf32x3<IdentityEpilogue>(p), p.Expected(v => v));
        Assert.True(error < 1e-6, $"{error:E2}");
    }

    [Fact]
    public void Tf32x3SplitKWithBiasAndEpilogue()
    {
        using var p = new GemmProblem(25, 19, 68, 21, 0.3f); // 5 K tiles as 2 + 2 + 1
        double error = RelativeL2(RunTf32x3<GeluTanhEpilogue>(p, splits: 3), p.Expected(GeluTanh));
        Assert.True(error < 1e-6, $"{error:E2}");
    }

    [Fact]
    public void Tf32RoundsToTenMantissaBitsWithTiesAwayFromZero()
    {
        Assert.Equal(1f, TensorCore.Tf32(1f + 0.0004f));                      // below half an ulp (2^-11)
        Assert.Equal(1f + 1f / 1024, TensorCore.Tf32(1f + 1f / 2048));         // a tie goes away from zero
        Assert.Equal(-(1f + 1f / 1024), TensorCore.Tf32(-(1f + 1f / 2048)));
        Assert.Equal(2f, TensorCore.Tf32(2f - 1f / 4096));                     // carries into the exponent
        Assert.Equal(float.PositiveInfinity, TensorCore.Tf32(float.PositiveInfinity));
    }
}
