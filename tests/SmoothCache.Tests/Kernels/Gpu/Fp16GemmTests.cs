using ILGPU;
using SmoothCache.Kernels;
using static SmoothCache.Tests.TestSupport;
using static SmoothCache.Tests.Kernels.LinearTests;
using Half = ILGPU.Half;

namespace SmoothCache.Tests.Kernels.Gpu;

/// <summary>
/// What both fp16 tensor-core GEMMs (<see cref="LinearTensorCoreTests"/>, <see cref="LinearWgmmaTests"/>) must
/// compute, run on the CPU accelerator with their warp instructions emulated: ragged shapes through their
/// pipelines, fp16 output, split-K with bias and epilogue. Products of fp16-rounded inputs, so the reference
/// multiplies the rounded values in float64.
/// </summary>
public abstract class Fp16GemmTests
{
    /// <summary>y = epilogue(x W^T + b) by the kernel under test.</summary>
    protected abstract void Multiply<TEpilogue>(ArrayView<Half> x, Tensor w, ArrayView<float> bias, OutputView y, int m, int splits)
        where TEpilogue : struct, IEpilogue;

    protected float[] Run<TEpilogue>(GemmProblem p, DType output = DType.Float32, int splits = 1) where TEpilogue : struct, IEpilogue
    {
        using var x = HalfConversion.ToHalf(p.Tx);
        using var w = HalfConversion.ToHalf(p.Tw);
        using var y = Cpu.Arena.Rent(output, p.M, p.N);
        Multiply<TEpilogue>(x.HalfView, w, p.Tb.View, OutputView.Of(y), p.M, splits);
        return y.ToArray();
    }

    [Theory]
    [InlineData(5, 8, 3)]       // one K chunk, far smaller than a 128 x 128 block
    [InlineData(37, 136, 19)]   // 5 K tiles through the pipeline, the last one a single chunk
    [InlineData(70, 288, 72)]   // 9 K tiles: every pipeline stage reused more than once
    [InlineData(130, 40, 131)]  // M and N past one block: rows and columns cut off at the edges
    [InlineData(130, 40, 130)]  // the same with N even: column pairs stored together, whole tiles unchecked
    public void MatchesFloat64ReferenceOnRaggedShapes(int m, int k, int n)
    {
        using var p = new GemmProblem(21, m, k, n, 0.3f);
        double error = RelativeL2(Run<IdentityEpilogue>(p), p.ExpectedFromHalves(v => v));
        Assert.True(error < 1e-6, $"{error:E2}");
    }

    [Theory]
    [InlineData(DType.Float32)]
    [InlineData(DType.Float16)]
    public void WholeTilesStoreBiasAndEpilogueWithoutChecks(DType output)
    {
        // 130 x 130: the first tiles lie wholly inside y (stored without a test per pair), the others cut off.
        using var p = new GemmProblem(24, 130, 40, 130, 0.3f);
        double error = RelativeL2(Run<GeluTanhEpilogue>(p, output), p.ExpectedFromHalves(GeluTanh));
        Assert.True(error < (output == DType.Float16 ? 1e-3 : 1e-6), $"{error:E2}");
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
    [InlineData(2, 21, DType.Float32)]  // 5 K tiles as 3 + 2: each split runs the pipeline on its own range
    [InlineData(5, 21, DType.Float32)]  // one tile each: the prologue's second stage is empty
    [InlineData(2, 24, DType.Float16)]  // N a multiple of 4: the last split finishes four outputs at a time, into fp16
    public void SplitKGivesTheSameResultWithBiasAndEpilogue(int splits, int n, DType output)
    {
        using var p = new GemmProblem(23, 19, 136, n, 0.3f);
        double error = RelativeL2(Run<GeluTanhEpilogue>(p, output, splits), p.ExpectedFromHalves(GeluTanh));
        Assert.True(error < (output == DType.Float16 ? 1e-3 : 1e-6), $"{error:E2}");
    }

    [Theory]
    [InlineData(DType.Float32)]
    [InlineData(DType.Float16)]
    public void SplitKStoresWholeTilesOfPartialSumsWithoutChecks(DType output)
    {
        // 130 x 130 in 2 splits of one K tile: the first tiles' partial sums lie wholly inside their split's slice
        // (stored without a test per pair, at the slice's offset), the others cut off.
        using var p = new GemmProblem(25, 130, 64, 130, 0.3f);
        double error = RelativeL2(Run<GeluTanhEpilogue>(p, output, 2), p.ExpectedFromHalves(GeluTanh));
        Assert.True(error < (output == DType.Float16 ? 1e-3 : 1e-6), $"{error:E2}");
    }
}
