using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;
using Half = ILGPU.Half;
using static SmoothCache.Kernels.Gpu.LinearTensorCore;

namespace SmoothCache.Kernels.Gpu;

/// <summary>
/// <see cref="LinearWgmma"/> with its tiles loaded by Hopper's Tensor Memory Accelerator instead of every thread's
/// cp.async copies: one thread asks for a K tile of x and of W (4 boxes each: 8 columns, one 16-byte chunk, of all
/// the block's rows) and the copy engine reports the bytes landed on the stage's mbarrier, which the threads wait on.
/// On an H200 the cp.async copies, not the multiplies, hold LinearWgmma at half the mma.sync kernel's speed
/// (BENCHMARKS.md, ninth session); this is the loader cuBLAS-class kernels use. Not yet run on a GPU: checked and
/// timed by <c>bench-gemm --tma</c>, taken by <see cref="Linear"/> only under <see cref="KernelSet.WgmmaTma"/>.
/// The tensor maps travel in the kernel's arguments (<see cref="Args.XMap"/>, <see cref="Args.WMap"/>), whose
/// address the kernel takes (<see cref="PtxTarget.ArgumentsSymbol"/>).
/// Layout of a stage: x's chunk c (K 8c..8c+7 of the tile) for all R = 128 x warpgroups rows, 16 bytes a row,
/// at byte 16 R c + 16 r; then W's 4 chunks of 128 rows the same way; after the stages, one 8-byte mbarrier per
/// stage. In wgmma's terms (K-major, no swizzle) a core matrix is 8 consecutive rows of a chunk, so the matrix
/// descriptors step 16 R bytes along K (x; 2048 for W) and 128 bytes along M or N.
/// </summary>
public static class LinearWgmmaTma
{
    private const int Stages = 4, Ahead = 2;
    /// <summary>Bytes of one 8-column chunk of a row, and of 8 rows of it (one core matrix).</summary>
    private const int RowChunkBytes = 16, CoreMatrixBytes = 128;

    /// <summary>Bytes of a stage of a block of <paramref name="groups"/> warpgroups: x's rows and W's 128, 32 deep.</summary>
    private static int StageBytes(int groups) => (Tile * groups + Tile) * Depth * 2;

    /// <summary>Dynamic shared memory of a <typeparamref name="TBlock"/> block: its stages, then their mbarriers.</summary>
    public static int SharedBytes<TBlock>() where TBlock : struct, LinearWgmma.IBlock =>
        Stages * StageBytes(default(TBlock).WarpGroups()) + Stages * 8;

    /// <summary>How a kernel instance loads tiles: <see cref="Tma"/> on CUDA, <see cref="EmulatedTma"/> elsewhere.</summary>
    public interface ILoader
    {
        /// <summary>One thread: sets up the stages' mbarriers, each completing a phase on one arrival and its tile's bytes.</summary>
        void Init(uint barriers);
        /// <summary>The generic address of the kernel's <see cref="Args"/>, where x's tensor map lies (W's 128 bytes on).</summary>
        long MapsAddress();
        /// <summary>One thread: starts loading K tile <paramref name="tile"/> (x rows m0.., W rows n0..) into the stage
        /// at byte <paramref name="stageAt"/>, through the tensor maps at <paramref name="maps"/>; it lands on the
        /// mbarrier at <paramref name="barrier"/>.</summary>
        void Load(Args a, ArrayView<uint> shared, long maps, uint stageAt, uint barrier, int tile, int m0, int n0, int xRows);
        /// <summary>Every thread: waits until the mbarrier at <paramref name="barrier"/> has completed the phase of
        /// parity <paramref name="parity"/>.</summary>
        void Wait(uint barrier, int parity);
    }

    public readonly struct Tma : ILoader
    {
        public void Init(uint barriers)
        {
            for (int s = 0; s < Stages; s++)
                CudaAsm.Emit("mbarrier.init.shared::cta.b64 [%0], 1;", barriers + (uint)(8 * s));
            // Makes the initialised barriers visible to the copy engine (a barrier over the block follows).
            CudaAsm.Emit("fence.mbarrier_init.release.cluster;");
        }

        public long MapsAddress()
        {
            // The kernel's one parameter, in the parameter space, as a generic address (PTX ISA 7.7).
            CudaAsm.Emit("mov.b64 %0, " + PtxTarget.ArgumentsSymbol + "; cvta.param.u64 %0, %0;", out long address);
            return address;
        }

        public void Load(Args a, ArrayView<uint> shared, long maps, uint stageAt, uint barrier, int tile, int m0, int n0, int xRows)
        {
            uint bytes = (uint)(xRows + Tile) * Depth * 2;
            CudaAsm.Emit("{ .reg .b64 state; mbarrier.arrive.expect_tx.shared::cta.b64 state, [%0], %1; }", barrier, bytes);
            int k = tile * Depth;
            uint w = stageAt + (uint)(Depth / 8 * xRows * RowChunkBytes);
            for (int c = 0; c < Depth / 8; c++)
            {
                CudaAsm.Emit("cp.async.bulk.tensor.2d.shared::cluster.global.tile.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3}], [%4];",
                    stageAt + (uint)(c * xRows * RowChunkBytes), maps, k + 8 * c, m0, barrier);
                CudaAsm.Emit("cp.async.bulk.tensor.2d.shared::cluster.global.tile.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3}], [%4];",
                    w + (uint)(c * Tile * RowChunkBytes), maps + TensorMapArg.Bytes, k + 8 * c, n0, barrier);
            }
        }

        public void Wait(uint barrier, int parity)
        {
            uint done;
            do
            {
                CudaAsm.Emit("{ .reg .pred p; mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2; selp.u32 %0, 1, 0, p; }",
                    out done, barrier, (uint)parity);
            }
            while (done == 0);
        }
    }

    /// <summary>The loads as plain copies by the one thread (shared memory's base address is 0 here); the block's
    /// barrier after each wait makes them visible. What it checks is the layout the descriptors read.</summary>
    public readonly struct EmulatedTma : ILoader
    {
        public void Init(uint barriers) { }
        public long MapsAddress() => 0;
        public void Wait(uint barrier, int parity) { }

        public void Load(Args a, ArrayView<uint> shared, long maps, uint stageAt, uint barrier, int tile, int m0, int n0, int xRows)
        {
            int w = (int)stageAt / 4 + Depth / 8 * xRows * RowChunkBytes / 4;
            for (int c = 0; c < Depth / 8; c++)
            {
                Box(shared, (int)stageAt / 4 + c * xRows * RowChunkBytes / 4, a.X, a.M, a.K, m0, tile * Depth / 8 + c, xRows);
                Box(shared, w + c * Tile * RowChunkBytes / 4, a.W, a.N, a.K, n0, tile * Depth / 8 + c, Tile);
            }
        }

        /// <summary>Chunk <paramref name="chunk"/> of <paramref name="count"/> rows from <paramref name="row0"/>, zeros past the matrix.</summary>
        private static void Box(ArrayView<uint> shared, int word, ArrayView<U4> matrix, int rows, int cols, int row0, int chunk, int count)
        {
            int chunks = cols / 8;
            for (int r = 0; r < count; r++)
            {
                U4 v = row0 + r < rows && chunk < chunks ? matrix[(long)(row0 + r) * chunks + chunk] : default;
                shared[word + 4 * r] = v.X; shared[word + 4 * r + 1] = v.Y; shared[word + 4 * r + 2] = v.Z; shared[word + 4 * r + 3] = v.W;
            }
        }
    }

    public static void Kernel<TEpilogue, TPath, TLoader, TBlock>(Args a)
        where TEpilogue : struct, IEpilogue where TPath : struct, LinearWgmma.IPath where TLoader : struct, ILoader
        where TBlock : struct, LinearWgmma.IBlock
    {
        var shared = SharedMemory.GetDynamic<U4>().Cast<uint>();
        default(TPath).Begin();
        uint sharedBase = default(TPath).SharedBase();
        int groups = default(TBlock).WarpGroups(), group = Group.IdxX >> 7, xRows = Tile * groups;
        int stageBytes = StageBytes(groups);
        uint barriers = sharedBase + (uint)(Stages * stageBytes);
        int m0 = Grid.IdxY * xRows, n0 = Grid.IdxX * Tile;
        int tileBegin = Grid.IdxZ * a.TilesPerSplit;
        int tiles = Math.Min(a.TilesPerSplit, (a.K + Depth - 1) / Depth - tileBegin);
        bool loader = Group.IdxX == 0;
        long maps = default(TLoader).MapsAddress();

        if (loader) default(TLoader).Init(barriers);
        Group.Barrier();
        if (loader)
            for (int s = 0; s < Ahead && s < tiles; s++)
                default(TLoader).Load(a, shared, maps, sharedBase + (uint)(s * stageBytes), barriers + (uint)(8 * s), tileBegin + s, m0, n0, xRows);
        Accumulators c = default;
        int stage = 0, parity = 0;
        for (int tile = 0; tile < tiles; tile++)
        {
            default(TLoader).Wait(barriers + (uint)(8 * stage), parity);
            // Every warp is past the multiplies of tile - 2 (waited for at the end of the last step), whose stage
            // the load below reuses.
            Group.Barrier();
            uint stageAt = sharedBase + (uint)(stage * stageBytes);
            uint x = stageAt + (uint)(group * Tile * RowChunkBytes), w = stageAt + (uint)(Depth / 8 * xRows * RowChunkBytes);
            int xLeading = xRows * RowChunkBytes, wLeading = Tile * RowChunkBytes;
            const uint rows64 = 64 * RowChunkBytes;
            uint xK16 = (uint)(2 * xLeading), wK16 = (uint)(2 * wLeading);
            c = default(TPath).Multiply(c, shared,
                LinearWgmma.Descriptor(x, xLeading, CoreMatrixBytes), LinearWgmma.Descriptor(x + rows64, xLeading, CoreMatrixBytes),
                LinearWgmma.Descriptor(x + xK16, xLeading, CoreMatrixBytes), LinearWgmma.Descriptor(x + rows64 + xK16, xLeading, CoreMatrixBytes),
                LinearWgmma.Descriptor(w, wLeading, CoreMatrixBytes), LinearWgmma.Descriptor(w + wK16, wLeading, CoreMatrixBytes));
            int next = stage + Ahead < Stages ? stage + Ahead : stage + Ahead - Stages;
            if (loader && tile + Ahead < tiles)
                default(TLoader).Load(a, shared, maps, sharedBase + (uint)(next * stageBytes), barriers + (uint)(8 * next), tileBegin + tile + Ahead, m0, n0, xRows);
            default(TPath).WaitForMultiplies(1);
            if (++stage == Stages)
            {
                stage = 0;
                parity ^= 1;
            }
        }

        c = default(TPath).Finish(c);
        int lane = Warp.LaneIdx;
        int row = m0 + Tile * group + 16 * ((Group.IdxX >> 5) & 3) + (lane >> 2), col = n0 + 2 * (lane & 3);
        bool inside = m0 + xRows <= a.M && n0 + Tile <= a.N;
        StoreTile<TEpilogue>(a, c, row, row, row + 64, row + 64, col, col + 64, col, col + 64, inside);
    }

    /// <summary>What <see cref="LinearWgmma.Run{TEpilogue, TBlock}"/> computes, loading tiles with TMA on CUDA (a compute-capability
    /// 9.0 GPU) and emulating it elsewhere.</summary>
    public static void Run<TEpilogue, TBlock>(Backend backend, ArrayView<Half> x, Tensor w, ArrayView<float> bias,
        OutputView y, int m, int splits = 0) where TEpilogue : struct, IEpilogue where TBlock : struct, LinearWgmma.IBlock
    {
        if (w.DType != DType.Float16)
            throw new ArgumentException($"LinearWgmmaTma: weight {w.ShapeText} is {w.DType}, not Float16");
        int n = w.Dim(0), k = w.Dim(1);
        TensorMapArg xMap = default, wMap = default;
        if (backend.IsCuda && m > 0 && n > 0 && k % 8 == 0)
        {
            xMap = backend.TensorMap(x.SubView(0, (long)m * k), m, k, Tile * default(TBlock).WarpGroups());
            wMap = backend.TensorMap(w.HalfView, n, k, Tile);
        }
        LinearTensorCore.Launch<TEpilogue, Half>(backend, "LinearWgmmaTma", x, w.HalfView, w, bias, y, m, splits, 8,
            epilogue =>
            {
                var kernel = epilogue ? Load<TEpilogue, TBlock>(backend) : Load<IdentityEpilogue, TBlock>(backend);
                return (config, args) => kernel(config, args with { XMap = xMap, WMap = wMap });
            },
            (rows, columns, splitCount) => LinearWgmma.Config<TBlock>(rows, columns, splitCount, SharedBytes<TBlock>()));
    }

    private static Action<KernelConfig, Args> Load<TEpilogue, TBlock>(Backend backend)
        where TEpilogue : struct, IEpilogue where TBlock : struct, LinearWgmma.IBlock =>
        backend.IsCuda
            ? backend.LoadGrouped<Args>(Kernel<TEpilogue, LinearWgmma.Ptx, Tma, TBlock>, SharedBytes<TBlock>(), PtxTarget.Hopper)
            : backend.LoadGrouped<Args>(Kernel<TEpilogue, LinearWgmma.Emulated, EmulatedTma, TBlock>);
}
