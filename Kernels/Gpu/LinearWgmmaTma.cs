using ILGPU;
using ILGPU.Runtime.Cuda;
using Half = ILGPU.Half;
using static SmoothCache.Kernels.Gpu.LinearTensorCore;

namespace SmoothCache.Kernels.Gpu;

/// <summary>
/// <see cref="LinearWgmma"/> with its tiles loaded by Hopper's Tensor Memory Accelerator instead of every thread's
/// cp.async copies: one thread asks for a K tile of x and of W and the copy engine reports the bytes landed on the
/// stage's mbarrier, which the threads wait on. On an H200 the cp.async copies, not the multiplies, hold LinearWgmma
/// at half the mma.sync kernel's speed (BENCHMARKS.md, ninth session); with TMA and the 64-byte swizzle it runs at
/// 53-81% of cuBLAS on an H200 (eleventh session), the fp16 GEMM <see cref="Linear"/> takes on compute capability 9.0
/// (<see cref="KernelSet.WgmmaTma"/>); checked and timed by <c>bench-gemm --tma</c>. The tensor maps lie in global memory (<see cref="Backend.TensorMap"/>); the kernel's
/// arguments carry their addresses (<see cref="Args.XMap"/>, <see cref="Args.WMap"/>).
/// A stage holds x's tile (R = 128 x warpgroups rows, 32 or 64 deep), then W's (128 rows), in one of three layouts
/// (<see cref="ILayout"/>); after the stages, one 8-byte mbarrier per stage that the copy engine completes (and with
/// <see cref="ReleasedRing"/> one per stage that the warps complete). How many stages and how far ahead tiles are
/// loaded is the <see cref="IRing"/>; one tile's multiplies stay in flight whatever the block shape.
/// </summary>
public static class LinearWgmmaTma
{
    /// <summary>How a block's shared-memory stages are refilled. A stage may be refilled once every warp's multiplies
    /// of the tile in it are done: known from a barrier over the block per tile, or from each warp's arrival on the
    /// stage's release mbarrier (<see cref="Releases"/>), which the loading thread waits for.</summary>
    public interface IRing
    {
        int Stages();
        /// <summary>Tiles loaded ahead of the one multiplied: at most Stages - 2 with a block barrier per tile (the
        /// tile before is still being multiplied while the next load is issued), Stages - 1 with releases.</summary>
        int Ahead();
        bool Releases();
        /// <summary>Blocks per cluster along M (1 or 2). With 2, neighbouring row blocks share W's tiles: each loads
        /// half of a tile's W rows and the copy engine multicasts it to both, so a block reads 12 KB from L2 per
        /// tile instead of 16; its stages are released by the warps of both (<see cref="Releases"/>).</summary>
        int Cluster();
    }

    // Rings tried on an H200 and dropped after the seventeenth session's tuning, where none of them was the fastest at any
    // of DiT-XL/2's shapes (BENCHMARKS.md): W fetched into L2 ahead of its loads or all at the start, 13 stages, and a
    // producer warp (the warp-specialised loop; 3-30% slower than the barrier ring), and multicast on 7 stages; git history
    // has them.

    /// <summary>4 stages (64 KB at 128 x 128), 2 tiles ahead, a block barrier per tile: 3 blocks and 6 tiles in
    /// flight per multiprocessor. The default, measured on an H200 (eleventh session).</summary>
    public readonly struct BarrierRing : IRing
    {
        public int Stages() => 4;
        public int Ahead() => 2;
        public bool Releases() => false;
        public int Cluster() => 1;
    }

    /// <summary>6 stages (96 KB), 4 ahead: 2 blocks but 8 tiles in flight per multiprocessor. The tuner's choice at every
    /// batch-2 shape of DiT-XL/2 on an H200 (seventeenth session).</summary>
    public readonly struct DeepBarrierRing : IRing
    {
        public int Stages() => 6;
        public int Ahead() => 4;
        public bool Releases() => false;
        public int Cluster() => 1;
    }

    /// <summary>4 stages, 3 ahead, no block barrier per tile: each warp releases a stage once its multiplies of the
    /// tile in it are done, and the loading thread waits for all of the releases before refilling it; 3 blocks and 9
    /// tiles in flight per multiprocessor; the tuner's choice for the conditioning GEMM's 16 rows on an H200. (Emulated, a block barrier per tile stands in for the
    /// mbarriers: what runs on the CPU is the stage and tile arithmetic.)</summary>
    public readonly struct ReleasedRing : IRing
    {
        public int Stages() => 4;
        public int Ahead() => 3;
        public bool Releases() => true;
        public int Cluster() => 1;
    }

    /// <summary>7 stages (112 KB), 6 ahead, released by the warps as in <see cref="ReleasedRing"/>: 2 blocks but 12 tiles in
    /// flight per multiprocessor (192 KB), the most shared memory holds. At 128 x 128 the kernel moves about what the tiles
    /// in flight divided by L2's latency under load allow (6 tiles in flight on the default ring, ~6 TB/s, eleventh
    /// session): twice the tiles, if latency is what limits it. Never the fastest in 32-deep tiles on an H200 (seventeenth
    /// session); a candidate in 64-deep ones.</summary>
    public readonly struct DeepReleasedRing : IRing
    {
        public int Stages() => 7;
        public int Ahead() => 6;
        public bool Releases() => true;
        public int Cluster() => 1;
    }

    /// <summary><see cref="ReleasedRing"/> in clusters of 2 row blocks that share W's tiles (<see cref="IRing.Cluster"/>):
    /// a stage is refilled once the 4 warps per warpgroup of both blocks have released it, each warp arriving on
    /// both blocks' release mbarriers. At M = 4096 the 128 x 128 kernel's loads alone move 6-8 TB/s from L2 (eleventh
    /// session), about what L2 delivers: a quarter less to read is the aim; the tuner's choice for fc1 at batch 16 on an
    /// H200 (seventeenth session). (Emulated, each
    /// block loads all of W itself: what runs on the CPU is the stage arithmetic and the padded grid.)</summary>
    public readonly struct MulticastRing : IRing
    {
        public int Stages() => 4;
        public int Ahead() => 3;
        public bool Releases() => true;
        public int Cluster() => 2;
    }

    /// <summary>3 stages, 1 ahead, a block barrier per tile: in 64-deep tiles (<see cref="Swizzled128"/>) 96 KB at 128 x 128,
    /// so 2 blocks a multiprocessor where the 4-stage rings leave room for one. Not yet timed.</summary>
    public readonly struct ShallowRing : IRing
    {
        public int Stages() => 3;
        public int Ahead() => 1;
        public bool Releases() => false;
        public int Cluster() => 1;
    }

    /// <summary><see cref="ShallowRing"/>'s 3 stages released by the warps, 2 tiles ahead (<see cref="ReleasedRing"/>): in 64-deep
    /// tiles 2 blocks and 8 tiles' worth of 32-deep loads in flight per multiprocessor. Not yet timed.</summary>
    public readonly struct ShallowReleasedRing : IRing
    {
        public int Stages() => 3;
        public int Ahead() => 2;
        public bool Releases() => true;
        public int Cluster() => 1;
    }

    /// <summary>The rings by name, for choosing one at run time (<see cref="Variant"/>).</summary>
    public enum RingKind
    {
        Barrier, Deep, Released, Multicast, DeepReleased, Shallow, ShallowReleased,
    }

    /// <summary>
    /// A block shape (128 x 128, or 256 x 128 with two warpgroups), a tile depth (32 in the 64-byte swizzle, 64 in the
    /// 128-byte one) and a ring, named so that one can be chosen at run time: <see cref="Linear"/> takes a tuning table's or <see cref="Default"/>
    /// choice for each GEMM, or the one SMOOTHCACHE_TMA_GEMM names (<see cref="Backend.TmaGemm"/>) for all of them, so that
    /// a whole forward can be timed on each variant in one device call. Names: "128x128-barrier", "256x128-deep",
    /// "128x128x64-shallowreleased", ... (<see cref="Name"/>; K is named when it is 64).
    /// </summary>
    public readonly record struct Variant(bool TwoWarpGroups, RingKind Ring, int Depth = LinearTensorCore.Depth)
    {
        public string Name => $"{(TwoWarpGroups ? "256x128" : "128x128")}{(Depth == 64 ? "x64" : "")}-{Ring.ToString().ToLowerInvariant()}";

        /// <summary>Whether it launches clusters of blocks that share W by multicast (<see cref="IRing.Cluster"/> 2).</summary>
        public bool Clusters => Ring is RingKind.Multicast;

        /// <summary>Its dynamic shared memory: stages and mbarriers.</summary>
        public int SharedBytes => LinearWgmmaTma.SharedBytes(TwoWarpGroups ? 2 : 1, Depth, Stages(Ring));

        /// <summary>Every block shape at both depths on every ring whose stages fit in shared memory (not 256 x 128 in 64-deep
        /// tiles on 6 or 7 stages).</summary>
        public static IEnumerable<Variant> All =>
            from depth in new[] { LinearTensorCore.Depth, 64 } from two in new[] { false, true } from ring in Enum.GetValues<RingKind>()
            let variant = new Variant(two, ring, depth) where variant.SharedBytes <= MaxSharedBytes
            select variant;

        /// <summary>The variant a GEMM takes where no tuning table names one: the 128 x 128 block on <see cref="BarrierRing"/>,
        /// the fastest of those timed on an H200 before the tuner (eleventh session); a tuning table picks per shape.</summary>
        public static Variant Default => new(false, RingKind.Barrier);

        /// <summary>The variant <paramref name="name"/> names (case-insensitive); throws with the names there are.</summary>
        public static Variant Parse(string name) =>
            All.Cast<Variant?>().FirstOrDefault(v => string.Equals(v!.Value.Name, name.Trim(), StringComparison.OrdinalIgnoreCase))
            ?? throw new ArgumentException($"'{name}' is not a TMA GEMM variant: expected one of {string.Join(", ", All.Select(v => v.Name))}");
    }

    /// <summary>What is done with the ring a <see cref="RingKind"/> names, as a type (<see cref="OnRing"/>).</summary>
    private interface IRingAction
    {
        void Run<TRing>() where TRing : struct, IRing;
    }

    /// <summary>Runs <paramref name="action"/> on the ring <paramref name="ring"/> names: the one place the names meet the types.</summary>
    private static void OnRing<TAction>(RingKind ring, ref TAction action) where TAction : struct, IRingAction
    {
        switch (ring)
        {
            case RingKind.Barrier: action.Run<BarrierRing>(); break;
            case RingKind.Deep: action.Run<DeepBarrierRing>(); break;
            case RingKind.Released: action.Run<ReleasedRing>(); break;
            case RingKind.DeepReleased: action.Run<DeepReleasedRing>(); break;
            case RingKind.Multicast: action.Run<MulticastRing>(); break;
            case RingKind.Shallow: action.Run<ShallowRing>(); break;
            case RingKind.ShallowReleased: action.Run<ShallowReleasedRing>(); break;
            default: throw new ArgumentOutOfRangeException(nameof(ring), ring, "unknown ring");
        }
    }

    private struct StagesOf : IRingAction
    {
        public int Stages;
        public void Run<TRing>() where TRing : struct, IRing => Stages = default(TRing).Stages();
    }

    /// <summary>Stages of the ring <paramref name="ring"/> names.</summary>
    private static int Stages(RingKind ring)
    {
        var stages = new StagesOf();
        OnRing(ring, ref stages);
        return stages.Stages;
    }

    /// <summary>A GEMM on the ring it is given and its variant's block and depth.</summary>
    private readonly struct Launch<TEpilogue>(Backend backend, Variant variant, ArrayView<Half> x, Tensor w, ArrayView<float> bias, OutputView y,
        int m, int splits) : IRingAction where TEpilogue : struct, IEpilogue
    {
        public void Run<TRing>() where TRing : struct, IRing => RunOnRing<TEpilogue, TRing>(backend, variant, x, w, bias, y, m, splits);
    }

    /// <summary><see cref="Run{TEpilogue, TBlock, TLayout, TRing}"/> on <paramref name="variant"/>'s block, ring and depth
    /// (<see cref="Swizzled64"/> or <see cref="Swizzled128"/>).</summary>
    public static void Run<TEpilogue>(Backend backend, Variant variant, ArrayView<Half> x, Tensor w, ArrayView<float> bias,
        OutputView y, int m, int splits = 0) where TEpilogue : struct, IEpilogue
    {
        if (variant.Depth is not (Depth or 64))
            throw new ArgumentException($"TMA GEMM variant {variant.Name}: K tiles are {Depth} or 64 deep, not {variant.Depth}", nameof(variant));
        if (variant.SharedBytes > MaxSharedBytes)
            throw new ArgumentException($"TMA GEMM variant {variant.Name} needs {variant.SharedBytes} bytes of shared memory, more than a block " +
                                        $"may have ({MaxSharedBytes})", nameof(variant));
        var launch = new Launch<TEpilogue>(backend, variant, x, w, bias, y, m, splits);
        OnRing(variant.Ring, ref launch);
    }

    private static void RunOnRing<TEpilogue, TRing>(Backend backend, Variant variant, ArrayView<Half> x, Tensor w, ArrayView<float> bias,
        OutputView y, int m, int splits) where TEpilogue : struct, IEpilogue where TRing : struct, IRing
    {
        if (variant.Depth == 64) RunInLayout<TEpilogue, TRing, Swizzled128>(backend, variant.TwoWarpGroups, x, w, bias, y, m, splits);
        else RunInLayout<TEpilogue, TRing, Swizzled64>(backend, variant.TwoWarpGroups, x, w, bias, y, m, splits);
    }

    private static void RunInLayout<TEpilogue, TRing, TLayout>(Backend backend, bool twoWarpGroups, ArrayView<Half> x, Tensor w,
        ArrayView<float> bias, OutputView y, int m, int splits) where TEpilogue : struct, IEpilogue where TRing : struct, IRing
        where TLayout : struct, ILayout
    {
        if (twoWarpGroups) Run<TEpilogue, LinearWgmma.TwoWarpGroups, TLayout, TRing>(backend, x, w, bias, y, m, splits);
        else Run<TEpilogue, LinearWgmma.OneWarpGroup, TLayout, TRing>(backend, x, w, bias, y, m, splits);
    }

    /// <summary>The parity of the phase of a stage's release mbarrier that frees it for tile <paramref name="tile"/>
    /// (tile &gt;= stages): the stage held tile - stages, its (tile / stages - 1)th use.</summary>
    public static int ReleaseParity(int tile, int stages) => (tile / stages - 1) & 1;

    /// <summary>Where a tile's elements lie in shared memory, how the copy engine is asked for them, and how wgmma
    /// finds them. Offsets count from an operand's start, which is 512-byte aligned.</summary>
    public interface ILayout
    {
        /// <summary>K of a tile: 32 halves (64-byte tile rows) or 64 (128-byte rows).</summary>
        int Depth();
        /// <summary>Columns (halves) of one box: 8 (a 16-byte chunk of every row) or the whole tile row.</summary>
        int BoxColumns();
        /// <summary>The tensor map's swizzle (CU_TENSOR_MAP_SWIZZLE_*): 0 none, 2 the 64-byte one, 3 the 128-byte one.</summary>
        int Swizzle();
        /// <summary>Byte of row <paramref name="row"/>'s 16-byte chunk <paramref name="chunk"/> in an operand of
        /// <paramref name="rows"/> rows.</summary>
        int ChunkOffset(int row, int chunk, int rows);
        /// <summary>The descriptor of 64 rows from <paramref name="row0"/> for the tile's K step <paramref name="step"/>
        /// (K 16 step .. 16 step + 15) of the operand of <paramref name="rows"/> rows at <paramref name="operand"/>.</summary>
        long Descriptor(uint operand, int rows, int row0, int step);
    }

    /// <summary>No swizzle, 16-byte boxes: chunk c of all R rows is one box, at byte 16 R c + 16 r. A core matrix
    /// (wgmma's 8 rows x 16 bytes) is 8 consecutive rows of a chunk: 16 R bytes apart along K, 128 along M or N.
    /// Each box row is a 16-byte read, half a 32-byte sector.</summary>
    public readonly struct Plain : ILayout
    {
        public int Depth() => 32;
        public int BoxColumns() => 8;
        public int Swizzle() => 0;
        public int ChunkOffset(int row, int chunk, int rows) => 16 * (chunk * rows + row);
        public long Descriptor(uint operand, int rows, int row0, int step) =>
            LinearWgmma.Descriptor(operand + (uint)(16 * row0 + step * 2 * 16 * rows), 16 * rows, 128);
    }

    /// <summary>The 64-byte swizzle, one box per operand: row r's 64 bytes at 64 r, its chunk c moved to chunk
    /// c ^ ((r / 2) % 4) (address bits 4-5 XOR bits 7-8), as the copy engine writes it and wgmma reads it
    /// (<see cref="LinearWgmma.Swizzled64Descriptor"/>: 512 bytes per 8 rows; K step 1 starts 32 bytes on).</summary>
    public readonly struct Swizzled64 : ILayout
    {
        public int Depth() => 32;
        public int BoxColumns() => 32;
        public int Swizzle() => 2;
        public int ChunkOffset(int row, int chunk, int rows) => 64 * row + 16 * (chunk ^ ((row >> 1) & 3));
        public long Descriptor(uint operand, int rows, int row0, int step) =>
            LinearWgmma.Swizzled64Descriptor(operand + (uint)(64 * row0 + 32 * step), 512);
    }

    /// <summary>64-deep tiles in the 128-byte swizzle, one box per operand: row r's 128 bytes at 128 r, its chunk c moved
    /// to chunk c ^ (r % 8) (address bits 4-6 XOR bits 7-9; <see cref="LinearWgmma.Swizzled128Descriptor"/>: 1024 bytes
    /// per 8 rows, K step s starts 32 s bytes on). Twice the multiplies per stage of the 32-deep layouts, so half the
    /// waits, barriers and copies per product, as Hopper GEMMs such as CUTLASS's tile K; a stage of 128 x 128 takes
    /// 32 KB.</summary>
    public readonly struct Swizzled128 : ILayout
    {
        public int Depth() => 64;
        public int BoxColumns() => 64;
        public int Swizzle() => 3;
        public int ChunkOffset(int row, int chunk, int rows) => 128 * row + 16 * (chunk ^ (row & 7));
        public long Descriptor(uint operand, int rows, int row0, int step) =>
            LinearWgmma.Swizzled128Descriptor(operand + (uint)(128 * row0 + 32 * step), 1024);
    }

    /// <summary>Bytes of a stage of a block of <paramref name="groups"/> warpgroups: x's rows and W's 128, <paramref name="depth"/> deep.</summary>
    private static int StageBytes(int groups, int depth) => (Tile * groups + Tile) * depth * 2;

    /// <summary>Dynamic shared memory of a <typeparamref name="TBlock"/> block in <typeparamref name="TLayout"/> on
    /// <typeparamref name="TRing"/>: its stages, then their mbarriers (copy completions, then releases).</summary>
    public static int SharedBytes<TBlock, TLayout, TRing>() where TBlock : struct, LinearWgmma.IBlock where TLayout : struct, ILayout
        where TRing : struct, IRing =>
        SharedBytes(default(TBlock).WarpGroups(), default(TLayout).Depth(), default(TRing).Stages());

    private static int SharedBytes(int groups, int depth, int stages) => stages * (StageBytes(groups, depth) + 16);

    /// <summary>The most dynamic shared memory a block may ask for on compute capability 9.0 (227 KB).</summary>
    public const int MaxSharedBytes = 227 << 10;

    /// <summary>How a kernel instance loads tiles: <see cref="Tma"/> on CUDA, <see cref="EmulatedTma"/> elsewhere.</summary>
    public interface ILoader
    {
        /// <summary>One thread: sets up the stages' mbarriers at <paramref name="barriers"/>, each completing a phase on one
        /// arrival and its tile's bytes, and with <paramref name="releasers"/> &gt; 0 the release mbarriers after them,
        /// each completing a phase on that many arrivals; and orders its reads of the tensor maps after the launch that
        /// wrote them.</summary>
        void Init(Args a, uint barriers, int stages, int releasers);
        /// <summary>False when loads complete before <see cref="Load"/> returns and the waits do nothing (the emulation):
        /// a block barrier per tile then makes each load visible.</summary>
        bool Asynchronous();
        /// <summary>One lane per warp: an arrival on the release mbarrier at <paramref name="barrier"/> of each of the
        /// <paramref name="cluster"/> blocks of its cluster.</summary>
        void Release(uint barrier, int cluster);
        /// <summary>One thread: starts loading K tile <paramref name="tile"/> (x rows m0.., W rows n0..) into the stage
        /// at byte <paramref name="stageAt"/>, through <paramref name="a"/>'s tensor maps; it lands on the mbarrier at
        /// <paramref name="barrier"/>. In a cluster of <paramref name="cluster"/> blocks this block loads the
        /// <paramref name="rank"/>th part of W's rows for all of them (the stage's whole W lands in each).</summary>
        void Load<TLayout>(Args a, ArrayView<uint> shared, uint stageAt, uint barrier, int tile, int m0, int n0, int xRows, int cluster, int rank)
            where TLayout : struct, ILayout;
        /// <summary>Waits until the mbarrier at <paramref name="barrier"/> has completed the phase of parity
        /// <paramref name="parity"/>.</summary>
        void Wait(uint barrier, int parity);
        /// <summary>Every thread, once its block's multiplies are issued: lets the grid after this one launch once every block
        /// has come this far (griddepcontrol.launch_dependents; a no-op unless that grid is a programmatic dependent). By then
        /// every block of this grid is resident or done, so the next grid's blocks take only what finishing blocks free.</summary>
        void LaunchDependents();
        /// <summary>Every thread of the cluster's blocks: a barrier across them all (a block barrier without clusters).</summary>
        void SyncCluster();
        /// <summary>This block's place in its cluster (0 without clusters).</summary>
        int ClusterRank();
    }

    public readonly struct Tma : ILoader
    {
        public bool Asynchronous() => true;

        public void Release(uint barrier, int cluster)
        {
            if (cluster == 1)
            {
                CudaAsm.Emit("{ .reg .b64 state; mbarrier.arrive.shared::cta.b64 state, [%0]; }", barrier);
                return;
            }
            // The same barrier in every block of the cluster, this one included, through its cluster address. No memory
            // ordering is asked for: what the arrival reports, that this warp's multiplies have read the stage, is
            // already done (wgmma.wait_group), and the refill is the copy engine's (a .release.cluster arrival would
            // put a GPU-wide fence in every warp's every tile).
            for (int r = 0; r < cluster; r++)
                CudaAsm.Emit("{ .reg .b32 remote; mapa.shared::cluster.u32 remote, %0, %1; mbarrier.arrive.shared::cluster.b64 _, [remote]; }",
                    barrier, (uint)r);
        }

        public void SyncCluster() => CudaAsm.Emit("barrier.cluster.arrive.aligned; barrier.cluster.wait.aligned;");

        public void LaunchDependents() => CudaAsm.Emit("griddepcontrol.launch_dependents;");

        public int ClusterRank()
        {
            CudaAsm.Emit("mov.u32 %0, %%cluster_ctarank;", out uint rank);
            return (int)rank;
        }

        public void Init(Args a, uint barriers, int stages, int releasers)
        {
            for (int s = 0; s < stages; s++)
                CudaAsm.Emit("mbarrier.init.shared::cta.b64 [%0], 1;", barriers + (uint)(8 * s));
            for (int s = 0; s < stages && releasers > 0; s++)
                CudaAsm.Emit("mbarrier.init.shared::cta.b64 [%0], %1;", barriers + (uint)(8 * (stages + s)), releasers);
            // Makes the initialised barriers visible to the copy engine (a barrier over the block follows).
            CudaAsm.Emit("fence.mbarrier_init.release.cluster;");
            // The maps were written through the generic proxy (a launch's stores); the copy engine reads them through
            // the tensor-map proxy, which this acquire orders after those writes.
            CudaAsm.Emit("fence.proxy.tensormap::generic.acquire.gpu [%0], 128; fence.proxy.tensormap::generic.acquire.gpu [%1], 128;",
                a.XMap, a.WMap);
        }

        public void Load<TLayout>(Args a, ArrayView<uint> shared, uint stageAt, uint barrier, int tile, int m0, int n0, int xRows, int cluster, int rank)
            where TLayout : struct, ILayout
        {
            // The whole stage lands here: x's rows from this block's load, W's from each block's share of it.
            int depth = default(TLayout).Depth();
            uint bytes = (uint)((xRows + Tile) * depth * 2);
            CudaAsm.Emit("{ .reg .b64 state; mbarrier.arrive.expect_tx.shared::cta.b64 state, [%0], %1; }", barrier, bytes);
            int k = tile * depth, box = default(TLayout).BoxColumns(), wRow0 = Tile / cluster * rank;
            uint w = stageAt + (uint)(xRows * depth * 2);
            for (int column = 0; column < depth; column += box)
            {
                CudaAsm.Emit("cp.async.bulk.tensor.2d.shared::cluster.global.tile.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3}], [%4];",
                    stageAt + (uint)default(TLayout).ChunkOffset(0, column / 8, xRows), a.XMap, k + column, m0, barrier);
                uint wAt = w + (uint)default(TLayout).ChunkOffset(wRow0, column / 8, Tile);
                if (cluster == 1)
                    CudaAsm.Emit("cp.async.bulk.tensor.2d.shared::cluster.global.tile.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3}], [%4];",
                        wAt, a.WMap, k + column, n0, barrier);
                else
                    // The same shared offsets in every block of the cluster (mask: all of them).
                    CudaAsm.Emit("cp.async.bulk.tensor.2d.shared::cluster.global.tile.mbarrier::complete_tx::bytes.multicast::cluster [%0], [%1, {%2, %3}], [%4], %5;",
                        wAt, a.WMap, k + column, n0 + wRow0, barrier, (ushort)((1 << cluster) - 1));
            }
        }

        // The loop inside the asm block (its labels are local to the braces): no asm output, which ILGPU would pass
        // through local memory on every try (this kernel's asynchronous copies keep ptxas from promoting it).
        public void Wait(uint barrier, int parity) =>
            CudaAsm.Emit("{ .reg .pred p; WAIT: mbarrier.try_wait.parity.shared::cta.b64 p, [%0], %1; @!p bra WAIT; }", barrier, (uint)parity);
    }

    /// <summary>The loads as plain copies by the one thread (shared memory's base address is 0 here); the block's
    /// barrier after each wait makes them visible. What it checks is the layout the descriptors read.</summary>
    public readonly struct EmulatedTma : ILoader
    {
        public void Init(Args a, uint barriers, int stages, int releasers) { }
        public bool Asynchronous() => false;
        public void Release(uint barrier, int cluster) { }
        public void Wait(uint barrier, int parity) { }
        public void SyncCluster() => Group.Barrier();
        public int ClusterRank() => 0;
        public void LaunchDependents() { }

        /// <summary>All of the stage's W too, whatever the cluster: the layout is the same.</summary>
        public void Load<TLayout>(Args a, ArrayView<uint> shared, uint stageAt, uint barrier, int tile, int m0, int n0, int xRows, int cluster, int rank)
            where TLayout : struct, ILayout
        {
            int w = (int)stageAt + xRows * default(TLayout).Depth() * 2;
            Operand<TLayout>(shared, (int)stageAt, a.X, a.M, a.K, m0, tile, xRows);
            Operand<TLayout>(shared, w, a.W, a.N, a.K, n0, tile, Tile);
        }

        /// <summary>K tile <paramref name="tile"/> of <paramref name="count"/> rows from <paramref name="row0"/>, zeros
        /// past the matrix, into the operand at byte <paramref name="at"/>.</summary>
        private static void Operand<TLayout>(ArrayView<uint> shared, int at, ArrayView<U4> matrix, int rows, int cols, int row0, int tile, int count)
            where TLayout : struct, ILayout
        {
            int chunks = cols / 8, depth = default(TLayout).Depth();
            for (int r = 0; r < count; r++)
                for (int c = 0; c < depth / 8; c++)
                {
                    int chunk = tile * depth / 8 + c, word = (at + default(TLayout).ChunkOffset(r, c, count)) / 4;
                    U4 v = row0 + r < rows && chunk < chunks ? matrix[(long)(row0 + r) * chunks + chunk] : default;
                    shared[word] = v.X; shared[word + 1] = v.Y; shared[word + 2] = v.Z; shared[word + 3] = v.W;
                }
        }
    }

    [PromoteLocalScalars]
    public static void Kernel<TEpilogue, TPath, TLoader, TLayout, TBlock, TRing>(Args a)
        where TEpilogue : struct, IEpilogue where TPath : struct, LinearWgmma.IPath where TLoader : struct, ILoader
        where TLayout : struct, ILayout where TBlock : struct, LinearWgmma.IBlock where TRing : struct, IRing
    {
        var shared = SharedMemory.GetDynamic<U4>().Cast<uint>();
        default(TPath).Begin();
        uint sharedBase = default(TPath).SharedBase();
        var ring = default(TRing);
        int stages = ring.Stages(), ahead = ring.Ahead();
        int groups = default(TBlock).WarpGroups(), group = Group.IdxX >> 7, xRows = Tile * groups;
        int depth = default(TLayout).Depth(), stageBytes = StageBytes(groups, depth);
        uint loaded = sharedBase + (uint)(stages * stageBytes), released = loaded + (uint)(8 * stages);
        int m0 = Grid.IdxY * xRows, n0 = Grid.IdxX * Tile;
        int tileBegin = Grid.IdxZ * a.TilesPerSplit;
        int tiles = Math.Min(a.TilesPerSplit, (a.K + depth - 1) / depth - tileBegin);
        bool loader = Group.IdxX == 0;
        // Without asynchronous loads (the emulation) a block barrier per tile makes them visible, releases or not.
        bool blockBarrier = !ring.Releases() || !default(TLoader).Asynchronous();
        int cluster = ring.Cluster(), rank = cluster > 1 ? default(TLoader).ClusterRank() : 0;

        // With a cluster, each stage is released by every warp of its blocks, and no block may load into the
        // others' stages or arrive on their mbarriers before they are initialised.
        if (loader) default(TLoader).Init(a, loaded, stages, ring.Releases() ? 4 * groups * cluster : 0);
        if (cluster > 1) default(TLoader).SyncCluster();
        else Group.Barrier();
        if (loader)
            for (int s = 0; s < ahead && s < tiles; s++)
                default(TLoader).Load<TLayout>(a, shared, sharedBase + (uint)(s * stageBytes), loaded + (uint)(8 * s), tileBegin + s, m0, n0, xRows, cluster, rank);
        Accumulators c = default;
        int stage = 0, parity = 0;
        for (int tile = 0; tile < tiles; tile++)
        {
            default(TLoader).Wait(loaded + (uint)(8 * stage), parity);
            // With the barrier, every warp is past the multiplies of tile - 2 (waited for at the end of the last
            // step), whose stage the load below reuses (Ahead = Stages - 2).
            if (blockBarrier) Group.Barrier();
            uint x = sharedBase + (uint)(stage * stageBytes), w = x + (uint)(xRows * depth * 2);
            int rows0 = Tile * group;
            var layout = default(TLayout);
            // Two K steps (32 deep) a call, each a group of multiplies: a tile's groups stay in flight below.
            for (int step = 0; step < depth / 16; step += 2)
                c = default(TPath).Multiply(c, shared,
                    layout.Descriptor(x, xRows, rows0, step), layout.Descriptor(x, xRows, rows0 + 64, step),
                    layout.Descriptor(x, xRows, rows0, step + 1), layout.Descriptor(x, xRows, rows0 + 64, step + 1),
                    layout.Descriptor(w, Tile, 0, step), layout.Descriptor(w, Tile, 0, step + 1));
            int next = stage + ahead < stages ? stage + ahead : stage + ahead - stages, refill = tile + ahead;
            if (ring.Releases())
            {
                // This warp's multiplies of tile - 1 are done: its stage (the one refilled next, Ahead = Stages - 1)
                // is released; the loading thread refills it once all warps have.
                default(TPath).WaitForMultiplies(depth / 32);
                if (tile > 0 && Warp.LaneIdx == 0) default(TLoader).Release(released + (uint)(8 * (stage > 0 ? stage - 1 : stages - 1)), cluster);
                if (loader && refill < tiles)
                {
                    if (refill >= stages) default(TLoader).Wait(released + (uint)(8 * next), ReleaseParity(refill, stages));
                    default(TLoader).Load<TLayout>(a, shared, sharedBase + (uint)(next * stageBytes), loaded + (uint)(8 * next), tileBegin + refill, m0, n0, xRows, cluster, rank);
                }
            }
            else
            {
                if (loader && refill < tiles)
                    default(TLoader).Load<TLayout>(a, shared, sharedBase + (uint)(next * stageBytes), loaded + (uint)(8 * next), tileBegin + refill, m0, n0, xRows, cluster, rank);
                default(TPath).WaitForMultiplies(depth / 32);
            }
            if (++stage == stages)
            {
                stage = 0;
                parity ^= 1;
            }
        }

        // Every W this block multicast has landed in the others (they waited for it), but their warps' last releases may
        // still be on their way to this block's mbarriers: no block leaves before all have arrived.
        if (cluster > 1) default(TLoader).SyncCluster();
        default(TLoader).LaunchDependents();
        LinearWgmma.Store<TEpilogue, TPath>(a, c, m0, n0, group, groups);
    }

    /// <summary>What <see cref="LinearWgmma.Run{TEpilogue, TBlock}"/> computes, loading tiles with TMA on CUDA (a compute-capability
    /// 9.0 GPU) and emulating it elsewhere, in the 64-byte swizzle.</summary>
    public static void Run<TEpilogue, TBlock>(Backend backend, ArrayView<Half> x, Tensor w, ArrayView<float> bias,
        OutputView y, int m, int splits = 0) where TEpilogue : struct, IEpilogue where TBlock : struct, LinearWgmma.IBlock =>
        Run<TEpilogue, TBlock, Swizzled64>(backend, x, w, bias, y, m, splits);

    /// <summary><see cref="Run{TEpilogue, TBlock}"/> in <typeparamref name="TLayout"/>.</summary>
    public static void Run<TEpilogue, TBlock, TLayout>(Backend backend, ArrayView<Half> x, Tensor w, ArrayView<float> bias,
        OutputView y, int m, int splits = 0) where TEpilogue : struct, IEpilogue where TBlock : struct, LinearWgmma.IBlock
        where TLayout : struct, ILayout =>
        Run<TEpilogue, TBlock, TLayout, BarrierRing>(backend, x, w, bias, y, m, splits);

    /// <summary><see cref="Run{TEpilogue, TBlock, TLayout}"/> on <typeparamref name="TRing"/>'s stages.</summary>
    public static void Run<TEpilogue, TBlock, TLayout, TRing>(Backend backend, ArrayView<Half> x, Tensor w, ArrayView<float> bias,
        OutputView y, int m, int splits = 0) where TEpilogue : struct, IEpilogue where TBlock : struct, LinearWgmma.IBlock
        where TLayout : struct, ILayout where TRing : struct, IRing
    {
        if (backend.IsCuda) RunOn<TEpilogue, TBlock, TLayout, TRing, LinearWgmma.Ptx, Tma>(backend, x, w, bias, y, m, splits);
        else RunOn<TEpilogue, TBlock, TLayout, TRing, LinearWgmma.Emulated, EmulatedTma>(backend, x, w, bias, y, m, splits);
    }

    /// <summary><see cref="Run{TEpilogue, TBlock, TLayout, TRing}"/> on <typeparamref name="TPath"/>'s multiplies and
    /// <typeparamref name="TLoader"/>'s loads; the benchmark also passes ones that leave out either, to time each alone.</summary>
    internal static void RunOn<TEpilogue, TBlock, TLayout, TRing, TPath, TLoader>(Backend backend, ArrayView<Half> x, Tensor w, ArrayView<float> bias,
        OutputView y, int m, int splits) where TEpilogue : struct, IEpilogue where TBlock : struct, LinearWgmma.IBlock
        where TLayout : struct, ILayout where TRing : struct, IRing where TPath : struct, LinearWgmma.IPath where TLoader : struct, ILoader
    {
        if (w.DType != DType.Float16)
            throw new ArgumentException($"LinearWgmmaTma: weight {w.ShapeText} is {w.DType}, not Float16");
        LinearTensorCore.Launch<TEpilogue, Half>(backend, "LinearWgmmaTma", x, w.HalfView, w, bias, y, m, splits, 8, default(TLayout).Depth(),
            () =>
            {
                // Here the shapes and alignments are checked and the GEMM is not empty: the maps can be made.
                var kernel = Load<TEpilogue, TBlock, TLayout, TRing, TPath, TLoader>(backend);
                if (!backend.IsCuda) return kernel;
                int n = w.Dim(0), k = w.Dim(1);
                var layout = default(TLayout);
                var xMap = backend.TensorMap(x.SubView(0, (long)m * k), m, k, Tile * default(TBlock).WarpGroups(), layout.BoxColumns(), layout.Swizzle());
                // In a cluster each block loads its share of W's rows.
                var wMap = backend.TensorMap(w.HalfView, n, k, Tile / default(TRing).Cluster(), layout.BoxColumns(), layout.Swizzle());
                return (config, args) => kernel(config, args with { XMap = xMap, WMap = wMap });
            },
            (rows, columns, splitCount) => Config<TBlock, TLayout, TRing>(rows, columns, splitCount));
    }

    /// <summary><see cref="LinearWgmma.Config{TBlock}(int, int, int)"/> with <typeparamref name="TLayout"/>'s stages on <typeparamref name="TRing"/>
    /// in shared memory, the row blocks padded to whole clusters (a block past M loads zeros for x, its
    /// share of W for the others, and stores nothing).</summary>
    public static KernelConfig Config<TBlock, TLayout, TRing>(int m, int n, int splits) where TBlock : struct, LinearWgmma.IBlock
        where TLayout : struct, ILayout where TRing : struct, IRing
    {
        var config = LinearWgmma.Config<TBlock>(m, n, splits, SharedBytes<TBlock, TLayout, TRing>());
        int cluster = default(TRing).Cluster(), rows = (config.GridDim.Y + cluster - 1) / cluster * cluster;
        return new KernelConfig(new Index3D(config.GridDim.X, rows, config.GridDim.Z), config.GroupDim, config.SharedMemoryConfig);
    }

    private static Action<KernelConfig, Args> Load<TEpilogue, TBlock, TLayout, TRing, TPath, TLoader>(Backend backend)
        where TEpilogue : struct, IEpilogue where TBlock : struct, LinearWgmma.IBlock where TLayout : struct, ILayout
        where TRing : struct, IRing where TPath : struct, LinearWgmma.IPath where TLoader : struct, ILoader =>
        backend.IsCuda
            ? backend.LoadGrouped<Args>(Kernel<TEpilogue, TPath, TLoader, TLayout, TBlock, TRing>, SharedBytes<TBlock, TLayout, TRing>(), PtxTarget.Hopper,
                default(TRing).Cluster())
            : backend.LoadGrouped<Args>(Kernel<TEpilogue, TPath, TLoader, TLayout, TBlock, TRing>);
}
