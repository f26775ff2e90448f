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

/// <summary>The same kernel on 6 stages loaded 4 tiles ahead.</summary>
public class LinearWgmmaTmaDeepRingTests : HopperGemmTests
{
    protected override void Multiply<TEpilogue, TBlock>(ArrayView<Half> x, Tensor w, ArrayView<float> bias, OutputView y, int m, int splits) =>
        LinearWgmmaTma.Run<TEpilogue, TBlock, LinearWgmmaTma.Swizzled64, LinearWgmmaTma.DeepBarrierRing>(Cpu, x, w, bias, y, m, splits);
}

/// <summary>
/// The same kernel on 4 stages loaded 3 ahead, stages freed by the warps' releases: the emulation checks the stage
/// and tile arithmetic (a block barrier stands in for the mbarriers); the protocol itself is checked here on a model.
/// </summary>
public class LinearWgmmaTmaReleasedRingTests : HopperGemmTests
{
    protected override void Multiply<TEpilogue, TBlock>(ArrayView<Half> x, Tensor w, ArrayView<float> bias, OutputView y, int m, int splits) =>
        LinearWgmmaTma.Run<TEpilogue, TBlock, LinearWgmmaTma.Swizzled64, LinearWgmmaTma.ReleasedRing>(Cpu, x, w, bias, y, m, splits);

    /// <summary>
    /// The kernel's order of events on a model of the mbarriers, with warps arbitrarily far apart: warp w releases
    /// tile t - 1's stage at step t, the loading thread then waits for the release phase <see cref="LinearWgmmaTma.ReleaseParity"/>
    /// names before refilling that stage with tile t + 3. A wait must find its phase completed without a later one
    /// (the parity would then be ambiguous), and a stage must never be refilled while a warp may still read it.
    /// </summary>
    [Theory]
    [InlineData(1)]
    [InlineData(4)]
    [InlineData(13)]
    public void ReleaseParityNamesThePhaseThatFreesEachStage(int tiles)
    {
        var ring = default(LinearWgmmaTma.ReleasedRing);
        int stages = ring.Stages(), ahead = ring.Ahead(), warps = 4;
        var completed = new int[stages];    // release phases completed per stage
        var arrivals = new int[stages];     // arrivals in the current phase
        var step = new int[warps];          // the tile each warp multiplies next (all before it are done)
        int loaded = Math.Min(ahead, tiles); // tiles loaded so far
        var rng = new Random(tiles);

        // Warp w multiplies its next tile t (once loaded) and releases tile t - 1's stage.
        bool CanStep(int w) => step[w] < tiles && step[w] < loaded;
        void Step(int w)
        {
            int t = step[w]++;
            if (t == 0) return;
            int s = (t - 1) % stages;
            if (++arrivals[s] == warps) { arrivals[s] = 0; completed[s]++; }
        }

        while (step.Any(t => t < tiles))
        {
            var ready = Enumerable.Range(0, warps).Where(CanStep).ToArray();
            Assert.NotEmpty(ready);
            int w = ready[rng.Next(ready.Length)];
            Step(w);
            int refill = step[w] - 1 + ahead;
            // The loading thread (warp 0) refills after its own step.
            if (w != 0 || refill >= tiles) continue;
            int stage = refill % stages;
            if (refill >= stages)
            {
                int phase = refill / stages - 1;
                Assert.Equal(phase & 1, LinearWgmmaTma.ReleaseParity(refill, stages));
                // Warp 0 spins until the phase completes while the others move on.
                while (completed[stage] <= phase)
                {
                    var others = Enumerable.Range(1, warps - 1).Where(CanStep).ToArray();
                    Assert.True(others.Length > 0, $"tile {refill}: waiting for a release that cannot come");
                    Step(others[rng.Next(others.Length)]);
                }
                // Exactly that phase (not one later, which would share its parity), and every warp past the tile the
                // stage held.
                Assert.Equal(phase + 1, completed[stage]);
                Assert.All(step, t => Assert.True(t > refill - stages));
            }
            loaded = refill + 1;
        }
    }
}
