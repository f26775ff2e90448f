using ILGPU;
using SmoothCache.Kernels;
using SmoothCache.Kernels.Gpu;
using static SmoothCache.Tests.TestSupport;
using Half = ILGPU.Half;

namespace SmoothCache.Tests.Kernels.Gpu;

/// <summary>
/// The TMA-loaded Hopper GEMM on the CPU accelerator: one thread copies each box as the copy engine would
/// (zeros past the matrix) into the stage layout the kernel's descriptors name, and wgmma is emulated from
/// those descriptors, so the layout, the descriptors' strides, the stage ring and split-K are the CUDA
/// kernel's own. The tensor maps, mbarriers and the copy engine itself only a GPU checks.
/// </summary>
public class LinearWgmmaTmaTests : HopperGemmTests
{
    protected override void Multiply<TEpilogue, TBlock>(ArrayView<Half> x, Tensor w, ArrayView<float> bias, OutputView y, int m, int splits) =>
        LinearWgmmaTma.Run<TEpilogue, TBlock>(Cpu, x, w, bias, y, m, splits);

    [Fact]
    public void Swizzled64DescriptorNamesTheSwizzleModeAndTheEightRowStride()
    {
        long d = LinearWgmma.Swizzled64Descriptor(0x1220, 512);
        Assert.Equal(0x122, d & 0x3FFF);               // start address
        Assert.Equal(512 / 16, (d >> 32) & 0x3FFF);    // next 8 rows
        Assert.Equal(2, (d >> 62) & 3);                // 64-byte swizzle
    }

    [Fact]
    public void Swizzled64LayoutPermutesChunksWithinEachPairOfRows()
    {
        var layout = default(LinearWgmmaTma.Swizzled64);
        // Rows 0-1 keep their chunk order, rows 2-3 swap neighbours, rows 6-7 reverse it; every row stays 64 bytes.
        Assert.Equal([0, 16, 32, 48], Enumerable.Range(0, 4).Select(c => layout.ChunkOffset(1, c, 128) - 64));
        Assert.Equal([16, 0, 48, 32], Enumerable.Range(0, 4).Select(c => layout.ChunkOffset(2, c, 128) - 128));
        Assert.Equal([48, 32, 16, 0], Enumerable.Range(0, 4).Select(c => layout.ChunkOffset(7, c, 128) - 448));
    }
}

/// <summary>The same kernel in the layout without swizzle (16-byte boxes).</summary>
public class LinearWgmmaTmaPlainTests : HopperGemmTests
{
    protected override void Multiply<TEpilogue, TBlock>(ArrayView<Half> x, Tensor w, ArrayView<float> bias, OutputView y, int m, int splits) =>
        LinearWgmmaTma.Run<TEpilogue, TBlock, LinearWgmmaTma.Plain>(Cpu, x, w, bias, y, m, splits);
}
