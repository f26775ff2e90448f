using SmoothCache.Kernels;
using SmoothCache.Kernels.Gpu;
using static SmoothCache.Tests.TestSupport;

namespace SmoothCache.Tests.Kernels.Gpu;

/// <summary>
/// The tensor-core attention on the CPU accelerator with its warp instructions emulated: staging,
/// fragment layouts, the online softmax across lanes and the masking are the CUDA kernel's own. The
/// reference is the float64 softmax of the fp16-rounded qkv; the kernel rounds the probabilities to
/// fp16 for the product with v (2^-11 relative each): errors of about 1.3e-4, bound 1e-3.
/// </summary>
public class FlashAttentionTensorCoreTests
{
    private static (float[] Got, double[] Expected) Run(int seed, int b, int t, int heads, int hd, float scale, DType output = DType.Float32,
        FlashAttentionTensorCore.Staging staging = FlashAttentionTensorCore.Staging.Registers)
    {
        var qkv = Random(seed, b * t * 3 * heads * hd, scale).Select(v => (float)(System.Half)v).ToArray();
        using var full = GpuShapedCpu.Arena.Upload(qkv, b, t, 3 * heads * hd);
        using var half = HalfConversion.ToHalf(full);
        using var y = GpuShapedCpu.Arena.Rent(output, b, t, heads * hd);
        FlashAttentionTensorCore.Run(GpuShapedCpu, half, y, b, t, heads, hd, staging);
        return (y.ToArray(), AttentionTests.Reference(qkv, b, t, heads, hd));
    }

    [Theory]
    [InlineData(1, 70, 1, 72)]   // two key tiles, the second ragged; 6 query rows in the second tile
    [InlineData(2, 33, 1, 64)]   // head dim 64: 4-deep steps, 8 column tiles; half the query tile empty
    [InlineData(1, 1, 1, 72)]    // a single token: 63 masked keys (loaded from token 0), 15 empty rows in warp 0
    public void MatchesFloat64SoftmaxWithinFp16Rounding(int b, int t, int heads, int hd)
    {
        var (got, expected) = Run(51, b, t, heads, hd, 2f);
        double error = RelativeL2(got, expected);
        Assert.True(error < 1e-3, $"{error:E2}");
    }

    [Theory]
    [InlineData(2, 200, 2, 72, FlashAttentionTensorCore.Staging.Registers)]  // four key tiles, the last ragged: each tile's rows loaded while the one before is multiplied
    [InlineData(1, 130, 3, 64, FlashAttentionTensorCore.Staging.Registers)]  // head dim 64: 8 chunks a row, the ninth (the next head's) not loaded
    [InlineData(2, 128, 1, 72, FlashAttentionTensorCore.Staging.Registers)]  // whole tiles only: no tile masked, no key past T loaded
    [InlineData(1, 200, 1, 72, FlashAttentionTensorCore.Staging.Async)]      // both buffers used twice; the queries staged in buffer 1 first
    [InlineData(1, 130, 1, 64, FlashAttentionTensorCore.Staging.Async)]      // three tiles: buffer 0 refilled after the tile in buffer 1
    [InlineData(1, 1, 1, 72, FlashAttentionTensorCore.Staging.Async)]        // one tile: buffer 1 never holds keys, only the queries
    public void PrefetchesEachKeyTileAcrossManyTiles(int b, int t, int heads, int hd, FlashAttentionTensorCore.Staging staging)
    {
        var (got, expected) = Run(54, b, t, heads, hd, 2f, staging: staging);
        double error = RelativeL2(got, expected);
        Assert.True(error < 1e-3, $"{error:E2}");
    }

    [Fact]
    public void BothStagingsComputeTheSameBits()
    {
        // The same arithmetic on the same tiles in the same order: only where the tiles wait differs.
        var (registers, _) = Run(55, 1, 130, 1, 72, 2f, DType.Float16, FlashAttentionTensorCore.Staging.Registers);
        var (async, _) = Run(55, 1, 130, 1, 72, 2f, DType.Float16, FlashAttentionTensorCore.Staging.Async);
        Assert.Equal(registers, async);
    }

    [Fact]
    public void SmoothcacheAttentionNamesTheStaging()
    {
        Assert.Equal(FlashAttentionTensorCore.Staging.Async, FlashAttentionTensorCore.ParseStaging(null));
        Assert.Equal(FlashAttentionTensorCore.Staging.Async, FlashAttentionTensorCore.ParseStaging(" Async "));
        Assert.Equal(FlashAttentionTensorCore.Staging.Registers, FlashAttentionTensorCore.ParseStaging("registers"));
        var e = Assert.Throws<ArgumentException>(() => FlashAttentionTensorCore.ParseStaging("tma"));
        Assert.Equal("SMOOTHCACHE_ATTENTION='tma': expected registers or async", e.Message);
    }

    [Fact]
    public void LargeScoresDoNotOverflow()
    {
        // Scores of several hundred: exp without the running max would overflow to infinity.
        var (got, expected) = Run(52, 1, 40, 1, 64, 12f);
        Assert.All(got, v => Assert.True(float.IsFinite(v)));
        Assert.True(RelativeL2(got, expected) < 1e-3);
    }

    [Fact]
    public void WritesFloat16Output()
    {
        var (got, expected) = Run(53, 1, 20, 1, 72, 2f, DType.Float16);
        // The output's own rounding (2^-12 relative at most) on top of the probabilities': measured 2.5e-4.
        Assert.True(RelativeL2(got, expected) < 1e-3);
    }

    [Fact]
    public void RejectsFloat32InputAndOtherHeadDims()
    {
        using var qkv = GpuShapedCpu.Arena.Zeros(1, 4, 3 * 64);
        using var y = GpuShapedCpu.Arena.Rent(1, 4, 64);
        Assert.Contains("not Float16", Assert.Throws<ArgumentException>(() => FlashAttentionTensorCore.Run(GpuShapedCpu, qkv, y, 1, 4, 1, 64)).Message);
        using var half = HalfConversion.ToHalf(qkv);
        Assert.Contains("head dim 24", Assert.Throws<ArgumentException>(() => FlashAttentionTensorCore.Run(GpuShapedCpu, half, y, 1, 2, 4, 24)).Message);
    }
}
