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
        LinearWgmmaTma.Run<TEpilogue, TBlock>(GpuShapedCpu, x, w, bias, y, m, splits);

    [Theory]
    [InlineData(64, 512, 2)]    // 8 rows of 64 bytes, swizzle mode 2
    [InlineData(128, 1024, 1)]  // 8 rows of 128 bytes, swizzle mode 1
    public void SwizzledDescriptorsNameTheSwizzleModeAndTheEightRowStride(int rowBytes, int strideBytes, int mode)
    {
        long d = rowBytes == 64 ? LinearWgmma.Swizzled64Descriptor(0x1220, strideBytes) : LinearWgmma.Swizzled128Descriptor(0x1220, strideBytes);
        Assert.Equal(0x122, d & 0x3FFF);                      // start address
        Assert.Equal(strideBytes / 16, (d >> 32) & 0x3FFF);   // next 8 rows
        Assert.Equal(mode, (d >> 62) & 3);
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

/// <summary>
/// The same kernel on 64-deep K tiles in the 128-byte swizzle (two calls of multiplies per tile, half as many tiles per
/// split), on the default ring: the shared cases, where K = 72 and 131 end in a partial tile, and the layout's own.
/// </summary>
public class LinearWgmmaTmaDeepTileTests : TmaRingTests<LinearWgmmaTma.Swizzled128, LinearWgmmaTma.BarrierRing>
{
    [Fact]
    public void Swizzled128LayoutPermutesChunksWithinEachEightRows()
    {
        var layout = default(LinearWgmmaTma.Swizzled128);
        // Row 0 keeps its chunk order, row 1 swaps neighbours, row 7 reverses it, row 8 starts the pattern over.
        Assert.Equal([0, 16, 32, 48, 64, 80, 96, 112], Enumerable.Range(0, 8).Select(c => layout.ChunkOffset(0, c, 128)));
        Assert.Equal([16, 0, 48, 32, 80, 64, 112, 96], Enumerable.Range(0, 8).Select(c => layout.ChunkOffset(1, c, 128) - 128));
        Assert.Equal([112, 96, 80, 64, 48, 32, 16, 0], Enumerable.Range(0, 8).Select(c => layout.ChunkOffset(7, c, 128) - 896));
        Assert.Equal(Enumerable.Range(0, 8).Select(c => layout.ChunkOffset(0, c, 128) + 1024), Enumerable.Range(0, 8).Select(c => layout.ChunkOffset(8, c, 128)));
    }

    [Fact]
    public void SplitsKInWhole64DeepTiles()
    {
        // K = 200: 4 tiles of 64 (the last 8 deep); 3 splits of 2 tiles leave the third empty, so 2 are launched (in
        // 32-deep tiles, 7 tiles: 3 splits of 3).
        GpuShapedCpu.GemmLog = new();
        try
        {
            AssertMatchesReference<LinearWgmma.OneWarpGroup>(20, 200, 24, 3);
            Assert.Equal(2, Assert.Single(GpuShapedCpu.GemmLog).Splits);
        }
        finally
        {
            GpuShapedCpu.GemmLog = null;
        }
    }
}

/// <summary>64-deep tiles on 3 stages released by the warps, 2 ahead (2 blocks a multiprocessor at 128 x 128).</summary>
public class LinearWgmmaTmaDeepTileShallowReleasedRingTests : TmaRingTests<LinearWgmmaTma.Swizzled128, LinearWgmmaTma.ShallowReleasedRing>
{
}

/// <summary>64-deep tiles on 3 stages, 1 ahead, a block barrier per tile.</summary>
public class LinearWgmmaTmaDeepTileShallowRingTests : TmaRingTests<LinearWgmmaTma.Swizzled128, LinearWgmmaTma.ShallowRing>
{
}

/// <summary>The TMA GEMM in <typeparamref name="TLayout"/> on <typeparamref name="TRing"/>'s stages: the shared cases of
/// <see cref="HopperGemmTests"/>, once per ring.</summary>
public abstract class TmaRingTests<TLayout, TRing> : HopperGemmTests where TLayout : struct, LinearWgmmaTma.ILayout where TRing : struct, LinearWgmmaTma.IRing
{
    protected override void Multiply<TEpilogue, TBlock>(ArrayView<Half> x, Tensor w, ArrayView<float> bias, OutputView y, int m, int splits) =>
        LinearWgmmaTma.Run<TEpilogue, TBlock, TLayout, TRing>(GpuShapedCpu, x, w, bias, y, m, splits);
}

/// <summary>The TMA GEMM in the 64-byte swizzle on <typeparamref name="TRing"/>'s stages: the shared cases of
/// <see cref="HopperGemmTests"/>, once per ring.</summary>
public abstract class TmaRingTests<TRing> : TmaRingTests<LinearWgmmaTma.Swizzled64, TRing> where TRing : struct, LinearWgmmaTma.IRing
{
}

/// <summary>The same kernel in the layout without swizzle (16-byte boxes).</summary>
public class LinearWgmmaTmaPlainTests : HopperGemmTests
{
    protected override void Multiply<TEpilogue, TBlock>(ArrayView<Half> x, Tensor w, ArrayView<float> bias, OutputView y, int m, int splits) =>
        LinearWgmmaTma.Run<TEpilogue, TBlock, LinearWgmmaTma.Plain>(GpuShapedCpu, x, w, bias, y, m, splits);
}

/// <summary>The same kernel on 7 stages loaded 6 tiles ahead, released by the warps (in the emulation a block barrier per
/// tile stands in for the releases: what runs is the stage arithmetic over 7 stages).</summary>
public class LinearWgmmaTmaDeepReleasedRingTests : TmaRingTests<LinearWgmmaTma.DeepReleasedRing>
{
}

/// <summary>The same kernel on 6 stages loaded 4 tiles ahead.</summary>
public class LinearWgmmaTmaDeepRingTests : TmaRingTests<LinearWgmmaTma.DeepBarrierRing>
{
}

/// <summary>
/// The same kernel on 4 stages loaded 3 ahead, stages freed by the warps' releases: the emulation checks the stage
/// and tile arithmetic (a block barrier stands in for the mbarriers); the protocol itself is checked here on a model.
/// </summary>
public class LinearWgmmaTmaReleasedRingTests : TmaRingTests<LinearWgmmaTma.ReleasedRing>
{

    /// <summary>
    /// The kernel's order of events on a model of the mbarriers, with warps arbitrarily far apart: warp w releases
    /// tile t - 1's stage at step t (on every block of its cluster), each block's loading thread then waits for the
    /// release phase <see cref="LinearWgmmaTma.ReleaseParity"/> names before refilling that stage with tile t + Ahead, and
    /// a tile can be multiplied once every block's loading thread has issued its part. A wait must find its phase
    /// completed without a later one (the parity would then be ambiguous), a stage must never be refilled while a warp
    /// of any block may still read it, and no schedule may leave every warp waiting.
    /// </summary>
    [Theory]
    [InlineData(typeof(LinearWgmmaTma.ReleasedRing), 1)]
    [InlineData(typeof(LinearWgmmaTma.ReleasedRing), 4)]
    [InlineData(typeof(LinearWgmmaTma.ReleasedRing), 13)]
    [InlineData(typeof(LinearWgmmaTma.MulticastRing), 1)]
    [InlineData(typeof(LinearWgmmaTma.MulticastRing), 4)]
    [InlineData(typeof(LinearWgmmaTma.MulticastRing), 13)]
    [InlineData(typeof(LinearWgmmaTma.DeepReleasedRing), 5)]
    [InlineData(typeof(LinearWgmmaTma.DeepReleasedRing), 8)]
    [InlineData(typeof(LinearWgmmaTma.DeepReleasedRing), 36)]
    public void ReleaseParityNamesThePhaseThatFreesEachStage(Type ringType, int tiles)
    {
        var ring = (LinearWgmmaTma.IRing)Activator.CreateInstance(ringType)!;
        Assert.True(ring.Releases());
        int stages = ring.Stages(), ahead = ring.Ahead(), cluster = ring.Cluster(), warps = 4 * cluster;
        var completed = new int[stages];     // release phases completed per stage (the same in every block)
        var arrivals = new int[stages];      // arrivals in the current phase
        var step = new int[warps];           // the tile each warp multiplies next (all before it are done)
        var issued = Enumerable.Repeat(Math.Min(ahead, tiles), cluster).ToArray(); // tiles each block's loader has issued
        var pending = Enumerable.Repeat(-1, cluster).ToArray();                   // the refill a loader waits to issue
        var rng = new Random(tiles * 10 + cluster + 100 * stages);
        bool IsLoader(int w) => w % 4 == 0;

        bool CanRun(int w)
        {
            if (IsLoader(w) && pending[w / 4] >= 0) return completed[pending[w / 4] % stages] > pending[w / 4] / stages - 1;
            return step[w] < tiles && step[w] < issued.Min();
        }

        void Run(int w)
        {
            int b = w / 4;
            if (IsLoader(w) && pending[b] >= 0)
            {
                int refill = pending[b], stage = refill % stages, phase = refill / stages - 1;
                Assert.Equal(phase & 1, LinearWgmmaTma.ReleaseParity(refill, stages));
                // Exactly that phase (not one later, which would share its parity), and every warp of every block past
                // the tile the stage held.
                Assert.Equal(phase + 1, completed[stage]);
                Assert.All(step, t => Assert.True(t > refill - stages));
                issued[b] = refill + 1;
                pending[b] = -1;
                return;
            }
            int t = step[w]++;
            if (t > 0)
            {
                int s = (t - 1) % stages;
                // An arrival belongs to the phase that is open: no warp releases a stage's next use early.
                Assert.Equal((t - 1) / stages, completed[s]);
                if (++arrivals[s] == warps) { arrivals[s] = 0; completed[s]++; }
            }
            int next = t + ahead;
            if (!IsLoader(w) || next >= tiles) return;
            if (next >= stages) pending[b] = next;
            else issued[b] = next + 1;
        }

        while (step.Any(t => t < tiles) || pending.Any(r => r >= 0))
        {
            var ready = Enumerable.Range(0, warps).Where(CanRun).ToArray();
            Assert.True(ready.Length > 0, $"every warp waits (steps {string.Join(",", step)}, refills {string.Join(",", pending)})");
            Run(ready[rng.Next(ready.Length)]);
        }
    }
}

/// <summary>
/// The released ring in clusters of 2 row blocks sharing W (multicast): the emulation loads all of W in each block,
/// so it checks the stage arithmetic and the grid padded to whole clusters (an odd number of row blocks); the
/// protocol across the blocks is checked on the model above; the instructions, in PtxGenerationTests.
/// </summary>
public class LinearWgmmaTmaMulticastRingTests : TmaRingTests<LinearWgmmaTma.MulticastRing>
{

    [Theory]
    [InlineData(1, 2)]    // one row block and its partner past M
    [InlineData(130, 2)]
    [InlineData(300, 4)]  // 3 row blocks: a fourth past M completes the last cluster
    public void PadsTheRowBlocksToWholeClusters(int m, int rowBlocks) =>
        Assert.Equal(rowBlocks, LinearWgmmaTma.Config<LinearWgmma.OneWarpGroup, LinearWgmmaTma.Swizzled64, LinearWgmmaTma.MulticastRing>(m, 200, 1).GridDim.Y);

    [Theory]
    [InlineData(300, 1)]  // 3 row blocks and one past M
    [InlineData(300, 2)]  // the same, split: the block past M takes part in the splits' arrivals
    public void OddRowBlockCountsMatchFloat64Reference(int m, int splits) =>
        AssertMatchesReference<LinearWgmma.OneWarpGroup>(m, 72, 40, splits);
}
