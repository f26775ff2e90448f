using SmoothCache.Kernels;
using SmoothCache.Kernels.Gpu;
using static SmoothCache.Tests.TestSupport;
using static SmoothCache.Tests.Kernels.LinearTests;

namespace SmoothCache.Tests.Kernels.Gpu;

/// <summary>The tiled SGEMM is portable ILGPU, so the CPU accelerator runs it (slowly: small shapes).</summary>
public class SgemmTests
{
    [Theory]
    [InlineData(5, 7, 3)]       // smaller than one tile in every dimension
    [InlineData(37, 19, 130)]   // ragged K over several depth-8 tiles, N past one 128 block
    [InlineData(129, 9, 17)]    // M past one 128 block
    public void MatchesFloat64ReferenceOnRaggedShapes(int m, int k, int n)
    {
        using var p = new GemmProblem(11, m, k, n, 0.3f);
        using var y = GpuShapedCpu.Arena.Rent(m, n);
        Sgemm.Run<IdentityEpilogue>(GpuShapedCpu, p.Tx.View, p.Tw.View, p.Tb.View, y.View, m, n, k);
        Assert.True(RelativeL2(y.ToArray(), p.Expected(v => v)) < 1e-6);
    }

    [Fact]
    public void AppliesEpilogueWithoutBias()
    {
        int m = 9, k = 24, n = 11;
        var x = Random(14, m * k, 2f);
        var w = Random(15, n * k, 0.3f);
        using var tx = GpuShapedCpu.Arena.Upload(x, m, k);
        using var tw = GpuShapedCpu.Arena.Upload(w, n, k);
        using var y = GpuShapedCpu.Arena.Rent(m, n);
        Sgemm.Run<GeluTanhEpilogue>(GpuShapedCpu, tx.View, tw.View, ILGPU.ArrayView<float>.Empty, y.View, m, n, k);
        Assert.True(RelativeL2(y.ToArray(), Reference(x, w, null, m, n, k, GeluTanh)) < 1e-6);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(3)]   // 17 K tiles as 6 + 6 + 5
    [InlineData(17)]  // one tile each
    public void SplitKGivesTheSameResultWithBiasAndEpilogue(int splits)
    {
        int m = 37, k = 130, n = 19;
        using var p = new GemmProblem(16, m, k, n, 0.3f);
        using var y = GpuShapedCpu.Arena.Rent(m, n);
        Sgemm.Run<GeluTanhEpilogue>(GpuShapedCpu, p.Tx.View, p.Tw.View, p.Tb.View, y.View, m, n, k, splits);
        Assert.True(RelativeL2(y.ToArray(), p.Expected(GeluTanh)) < 1e-6);
    }
}
