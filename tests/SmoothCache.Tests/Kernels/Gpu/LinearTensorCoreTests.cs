using ILGPU;
using SmoothCache.Kernels;
using SmoothCache.Kernels.Gpu;
using static SmoothCache.Tests.TestSupport;
using static SmoothCache.Tests.Kernels.LinearTests;
using Half = ILGPU.Half;

namespace SmoothCache.Tests.Kernels.Gpu;

/// <summary>
/// The tensor-core GEMM on the CPU accelerator, where ldmatrix, mma.sync and cp.async are emulated
/// (TensorCore): its staging, swizzle, three-stage pipeline, fragment layout and epilogue are the
/// CUDA kernel's own; only the PTX spelling is not exercised here. The fp16 cases are
/// <see cref="Fp16GemmTests"/>; here the 3xTF32 (fp32) instance.
/// </summary>
public class LinearTensorCoreTests : Fp16GemmTests
{
    protected override void Multiply<TEpilogue>(ArrayView<Half> x, Tensor w, ArrayView<float> bias, OutputView y, int m, int splits) =>
        LinearTensorCore.Run<TEpilogue>(GpuShapedCpu, x, w, bias, y, m, splits);

    private static float[] RunTf32x3<TEpilogue>(GemmProblem p, int splits = 1) where TEpilogue : struct, IEpilogue
    {
        using var y = GpuShapedCpu.Arena.Rent(p.M, p.N);
        LinearTensorCore.RunTf32x3<TEpilogue>(GpuShapedCpu, p.Tx.View, p.Tw, p.Tb.View, OutputView.Of(y), p.M, splits);
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
