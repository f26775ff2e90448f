using System.Reflection;
using SmoothCache.Cli.Bench;
using SmoothCache.Kernels;
using SmoothCache.Kernels.Gpu;
using static SmoothCache.Tests.TestSupport;

namespace SmoothCache.Tests.Kernels.Gpu;

/// <summary>The fused attention kernel is portable ILGPU: it runs (slowly) on the CPU accelerator here.</summary>
public class FlashAttentionTests
{
    [Theory]
    [InlineData(1, 70, 2, 72)]   // two key tiles, the second ragged; a ragged query tile
    [InlineData(2, 33, 1, 64)]   // one query past a tile; three warps see no key in the last tile
    [InlineData(1, 1, 1, 72)]    // a single token: warps 1..3 never see a key
    [InlineData(2, 64, 4, 16)]   // dit-digits' heads: register rows of 4 float4s
    [InlineData(1, 37, 2, 32)]   // 8 float4s, a ragged tile
    public void MatchesFloat64Softmax(int b, int t, int heads, int hd)
    {
        var qkv = Random(41, b * t * 3 * heads * hd, 2f);
        using var tq = GpuShapedCpu.Arena.Upload(qkv, b, t, 3 * heads * hd);
        using var output = GpuShapedCpu.Arena.Rent(b, t, heads * hd);
        FlashAttention.Run(GpuShapedCpu, tq, output, b, t, heads, hd);
        Assert.True(RelativeL2(output.ToArray(), AttentionTests.Reference(qkv, b, t, heads, hd)) < 1e-6);
    }

    [Fact]
    public void Fp16OutputIsTheFloat32ResultRoundedToNearestEven()
    {
        var qkv = Random(43, 2 * 37 * 3 * 2 * 72, 2f);
        using var tq = GpuShapedCpu.Arena.Upload(qkv, 2, 37, 3 * 2 * 72);
        using var full = GpuShapedCpu.Arena.Rent(2, 37, 2 * 72);
        using var half = GpuShapedCpu.Arena.Rent(DType.Float16, 2, 37, 2 * 72);
        FlashAttention.Run(GpuShapedCpu, tq, full, 2, 37, 2, 72);
        FlashAttention.Run(GpuShapedCpu, tq, half, 2, 37, 2, 72);
        Assert.Equal(full.ToArray().Select(v => (float)(System.Half)v), half.ToArray());
    }

    [Fact]
    public void Fp16InputGivesTheFloat32ResultOfTheRoundedInput()
    {
        var qkv = Random(44, 1 * 70 * 3 * 64, 2f);
        var rounded = qkv.Select(v => (float)(System.Half)v).ToArray();
        using var full = GpuShapedCpu.Arena.Upload(rounded, 1, 70, 3 * 64);
        using var fromFull = GpuShapedCpu.Arena.Rent(1, 70, 64);
        FlashAttention.Run(GpuShapedCpu, full, fromFull, 1, 70, 1, 64);
        using var tq = GpuShapedCpu.Arena.Upload(qkv, 1, 70, 3 * 64);
        using var half = HalfConversion.ToHalf(tq);
        using var fromHalf = GpuShapedCpu.Arena.Rent(1, 70, 64);
        FlashAttention.Run(GpuShapedCpu, half, fromHalf, 1, 70, 1, 64);
        Assert.Equal(fromFull.ToArray(), fromHalf.ToArray());
    }

    [Fact]
    public void LargeScoresDoNotOverflow()
    {
        // Scores of several hundred: exp without the running max would overflow to infinity.
        var qkv = Random(42, 40 * 3 * 64, 12f);
        using var tq = GpuShapedCpu.Arena.Upload(qkv, 1, 40, 3 * 64);
        using var output = GpuShapedCpu.Arena.Rent(1, 40, 64);
        FlashAttention.Run(GpuShapedCpu, tq, output, 1, 40, 1, 64);
        var got = output.ToArray();
        Assert.All(got, v => Assert.True(float.IsFinite(v)));
        Assert.True(RelativeL2(got, AttentionTests.Reference(qkv, 1, 40, 1, 64)) < 1e-5);
    }

    [Fact]
    public void RejectsOtherHeadDims()
    {
        using var tq = GpuShapedCpu.Arena.Zeros(1, 4, 3 * 24);
        using var output = GpuShapedCpu.Arena.Rent(1, 4, 24);
        var e = Assert.Throws<ArgumentException>(() => FlashAttention.Run(GpuShapedCpu, tq, output, 1, 4, 1, 24));
        Assert.Contains("head dim 24", e.Message);
        Assert.False(FlashAttention.SupportsHeadDim(48));
        Assert.True(FlashAttention.SupportsHeadDim(16));
        Assert.True(FlashAttention.SupportsHeadDim(72));
    }

    [Fact]
    public void TranslatesToPtxWithRegisterRowsAndNoLocalMemory()
    {
        using var compiler = new PtxCompiler();
        var ptx = compiler.Compile(typeof(FlashAttention).GetMethod(nameof(FlashAttention.Kernel), BindingFlags.Public | BindingFlags.Static)!);
        // The head rows stay in registers (no local arrays, no calls passing them), keys come as 16-byte shared loads.
        Assert.DoesNotContain(".local", ptx);
        Assert.DoesNotContain("call", ptx);
        Assert.Contains("ld.shared.v4.f32", ptx);
        Assert.Contains("ld.global.v4", ptx);
        Assert.Contains("bar.sync", ptx);
        Assert.Contains("ex2.approx", ptx);
        // 37,888 bytes of static shared memory, under the 48 KB a group may declare.
        Assert.Contains("[37888]", ptx);
    }
}
