using ILGPU;
using ILGPU.Runtime.Cuda;
using Half = ILGPU.Half;
using static SmoothCache.Kernels.Gpu.LinearTensorCore;

namespace SmoothCache.Kernels.Gpu;

/// <summary>
/// fp16 GEMM on Hopper's warpgroup tensor-core instructions: y = epilogue(x W^T + b), x [M, K] and W [N, K]
/// fp16, b fp32 [N], y fp32 or fp16, products accumulated in fp32 — what <see cref="LinearTensorCore.Run{TEpilogue}"/>
/// computes, with the same 128-column blocks, 32-deep K tiles, copies, split-K and epilogue. The difference is
/// the multiply: a warpgroup (4 warps) issues <c>wgmma.mma_async.m64n128k16</c> for its 128 rows, which reads
/// both operands straight from shared memory (no ldmatrix, no fragment registers) and runs asynchronously, so
/// the next tile's copies and the barrier overlap the tensor cores' work. A block is one warpgroup (128 x 128)
/// or two (<see cref="TwoWarpGroups"/>, 256 x 128: each W tile copied serves twice the rows, a third less
/// traffic per product, at one block per multiprocessor instead of three). cuBLAS reaches ~680 TFLOP/s on an H200
/// this way where <c>mma.sync</c> tops out near 300 (BENCHMARKS.md).
/// Shared memory: 4 stages (a tile is copied two ahead while one multiply is in flight) x (x tile + W tile),
/// 8 KB per 128 rows: 64 KB or 96 KB, dynamic (48 KB for <see cref="OneWarpGroupCompact"/>). Tiles are in wgmma's canonical K-major layout without
/// swizzle: 8 x 8 "core matrices" of 128 contiguous bytes; the 16-byte chunk c (K 8c..8c+7) of tile row r lies at byte
/// (r / 8) 512 + 128 c + 16 (r % 8). A matrix descriptor names an operand as start address, the step to the
/// next core matrix along K (leading byte offset, 128) and along M or N (stride byte offset, 512).
/// The thread's accumulators: lane l of warp w (of its warpgroup) holds, of the m64n128 product for the
/// warpgroup's rows 64 h.., rows 64 h + 16 w + l / 4 (+ 8) and columns 8 j + 2 (l % 4) (+ 1) in registers
/// acc[64 h + 4 j ..], the order of <see cref="Accumulators"/> C{2h + j / 8}{j % 8}.
/// Needs a compute-capability 9.0 GPU: the module is assembled for sm_90a (<see cref="PtxTarget"/>).
/// Other accelerators emulate the instructions from the descriptors (tests). On an H200 it is exact, and its
/// multiplies alone run at 83% of cuBLAS, but its copies make it half as fast as <see cref="LinearTensorCore"/>
/// (BENCHMARKS.md): opt-in (<see cref="KernelSet.Wgmma"/>) until that is found.
/// </summary>
public static class LinearWgmma
{
    /// <summary>Tiles copied ahead of the one multiplied. (Three ahead, in one more stage, was slower on an H200.)</summary>
    private const int Ahead = 2;
    /// <summary>Bytes of 128 rows of a 32-deep fp16 tile.</summary>
    private const int TileBytes = Tile * Depth * 2;
    /// <summary>Core matrices: 128 bytes apart along K, 512 bytes (8 rows of 4 chunks) along M or N.</summary>
    private const int LeadingBytes = 128, StrideBytes = 512;

    /// <summary>A block's shape: how many warpgroups it has (each multiplies 128 rows of x by the block's 128
    /// columns of W), and how many tiles' multiplies (0 or 1) stay in flight past the end of their K step.
    /// A stage is rewritten once its multiplies are known to be done, so a block holds Ahead + 1 + that stages.</summary>
    public interface IBlock { int WarpGroups(); int MultipliesInFlight(); }
    public readonly struct OneWarpGroup : IBlock { public int WarpGroups() => 1; public int MultipliesInFlight() => 1; }
    public readonly struct TwoWarpGroups : IBlock { public int WarpGroups() => 2; public int MultipliesInFlight() => 1; }
    /// <summary>One warpgroup in 48 KB, like <see cref="LinearTensorCore"/>: three stages, each tile's multiplies
    /// waited for within its step. (Its copies take half the time of the 64 KB kernel's on an H200 — whether the
    /// shared memory's size is why is what this shape is timed for.)</summary>
    public readonly struct OneWarpGroupCompact : IBlock { public int WarpGroups() => 1; public int MultipliesInFlight() => 0; }

    private static int Stages<TBlock>() where TBlock : struct, IBlock => Ahead + 1 + default(TBlock).MultipliesInFlight();

    /// <summary>Dynamic shared memory of a <typeparamref name="TBlock"/> block: its stages of x and W tiles.</summary>
    public static int SharedBytes<TBlock>() where TBlock : struct, IBlock => Stages<TBlock>() * (default(TBlock).WarpGroups() + 1) * TileBytes;

    /// <summary>The word of the 16-byte chunk <paramref name="chunk"/> of tile row <paramref name="row"/>.</summary>
    private static int CoreMatrixWord(int row, int chunk) => (row >> 3) * (StrideBytes / 4) + chunk * (LeadingBytes / 4) + (row & 7) * 4;

    /// <summary>A shared-memory matrix descriptor without swizzle: start address, leading and stride byte
    /// offsets, each in 16-byte units, in bits 0-13, 16-29 and 32-45.</summary>
    public static long Descriptor(uint byteAddress) => Descriptor(byteAddress, LeadingBytes, StrideBytes);

    /// <summary>The same for core matrices <paramref name="leadingBytes"/> apart along K and <paramref name="strideBytes"/>
    /// apart along M or N (multiples of 16 below 256 KB).</summary>
    public static long Descriptor(uint byteAddress, int leadingBytes, int strideBytes) =>
        ((byteAddress & 0x3FFFF) >> 4) | ((long)(leadingBytes >> 4) << 16) | ((long)(strideBytes >> 4) << 32);

    /// <summary>A descriptor of a K-major operand in wgmma's 64-byte swizzle: rows of 64 bytes whose 16-byte chunks
    /// are permuted by XOR-ing address bits 4-5 with bits 7-8 (in 512-byte atoms of 8 rows, 512-byte aligned),
    /// <paramref name="strideBytes"/> from one 8 rows to the next; a K step within the row moves the start address.
    /// The leading byte offset is unused in this layout (1 by convention); the swizzle mode is 2 in bits 62-63.</summary>
    public static long Swizzled64Descriptor(uint byteAddress, int strideBytes) => SwizzledDescriptor(byteAddress, strideBytes, 2);

    /// <summary>The same in the 128-byte swizzle: rows of 128 bytes whose chunks are permuted by XOR-ing address bits 4-6
    /// with bits 7-9 (1024-byte atoms of 8 rows, 1024-byte aligned); swizzle mode 1.</summary>
    public static long Swizzled128Descriptor(uint byteAddress, int strideBytes) => SwizzledDescriptor(byteAddress, strideBytes, 1);

    private static long SwizzledDescriptor(uint byteAddress, int strideBytes, long mode) =>
        ((byteAddress & 0x3FFFF) >> 4) | (1L << 16) | ((long)(strideBytes >> 4) << 32) | (mode << 62);

    /// <summary>How a kernel instance runs the warpgroup instructions: <see cref="Ptx"/> on CUDA, <see cref="Emulated"/> elsewhere.</summary>
    public interface IPath : IStagePath
    {
        /// <summary>Waits for this thread's copies of the oldest tile in flight (a barrier must follow before
        /// the tensor cores read other threads' copies).</summary>
        void WaitForTile();
        /// <summary>Issues the tile's four m64n128k16 multiplies, x rows 0-63 and 64-127 for K 0-15 and 16-31:
        /// a0, a1 are the x descriptors of the first K step (rows 0-63, 64-127), a2, a3 the second, b0, b1 W's.</summary>
        Accumulators Multiply(Accumulators c, ArrayView<uint> shared, long a0, long a1, long a2, long a3, long b0, long b1);
        /// <summary>Waits until at most <paramref name="inFlight"/> (0-2) calls' multiplies of <see cref="Multiply"/> are in flight.</summary>
        void WaitForMultiplies(int inFlight);
        /// <summary>Once, after the K loop: waits for the last multiplies; the accumulators as C# values.</summary>
        Accumulators Finish(Accumulators c);
    }

    public readonly struct Ptx : IPath
    {
        private const string MultiplyTile =
            "wgmma.fence.sync.aligned;" +
            "wgmma.mma_async.sync.aligned.m64n128k16.f32.f16.f16 {acc0,acc1,acc2,acc3,acc4,acc5,acc6,acc7,acc8,acc9,acc10,acc11,acc12,acc13,acc14,acc15,acc16,acc17,acc18,acc19,acc20,acc21,acc22,acc23,acc24,acc25,acc26,acc27,acc28,acc29,acc30,acc31,acc32,acc33,acc34,acc35,acc36,acc37,acc38,acc39,acc40,acc41,acc42,acc43,acc44,acc45,acc46,acc47,acc48,acc49,acc50,acc51,acc52,acc53,acc54,acc55,acc56,acc57,acc58,acc59,acc60,acc61,acc62,acc63}, %0, %4, 1, 1, 1, 0, 0;" +
            "wgmma.mma_async.sync.aligned.m64n128k16.f32.f16.f16 {acc64,acc65,acc66,acc67,acc68,acc69,acc70,acc71,acc72,acc73,acc74,acc75,acc76,acc77,acc78,acc79,acc80,acc81,acc82,acc83,acc84,acc85,acc86,acc87,acc88,acc89,acc90,acc91,acc92,acc93,acc94,acc95,acc96,acc97,acc98,acc99,acc100,acc101,acc102,acc103,acc104,acc105,acc106,acc107,acc108,acc109,acc110,acc111,acc112,acc113,acc114,acc115,acc116,acc117,acc118,acc119,acc120,acc121,acc122,acc123,acc124,acc125,acc126,acc127}, %1, %4, 1, 1, 1, 0, 0;" +
            "wgmma.mma_async.sync.aligned.m64n128k16.f32.f16.f16 {acc0,acc1,acc2,acc3,acc4,acc5,acc6,acc7,acc8,acc9,acc10,acc11,acc12,acc13,acc14,acc15,acc16,acc17,acc18,acc19,acc20,acc21,acc22,acc23,acc24,acc25,acc26,acc27,acc28,acc29,acc30,acc31,acc32,acc33,acc34,acc35,acc36,acc37,acc38,acc39,acc40,acc41,acc42,acc43,acc44,acc45,acc46,acc47,acc48,acc49,acc50,acc51,acc52,acc53,acc54,acc55,acc56,acc57,acc58,acc59,acc60,acc61,acc62,acc63}, %2, %5, 1, 1, 1, 0, 0;" +
            "wgmma.mma_async.sync.aligned.m64n128k16.f32.f16.f16 {acc64,acc65,acc66,acc67,acc68,acc69,acc70,acc71,acc72,acc73,acc74,acc75,acc76,acc77,acc78,acc79,acc80,acc81,acc82,acc83,acc84,acc85,acc86,acc87,acc88,acc89,acc90,acc91,acc92,acc93,acc94,acc95,acc96,acc97,acc98,acc99,acc100,acc101,acc102,acc103,acc104,acc105,acc106,acc107,acc108,acc109,acc110,acc111,acc112,acc113,acc114,acc115,acc116,acc117,acc118,acc119,acc120,acc121,acc122,acc123,acc124,acc125,acc126,acc127}, %3, %5, 1, 1, 1, 0, 0;" +
            "wgmma.commit_group.sync.aligned;";

        public int ChunkElements() => 8;
        public Half Round(float value) => default(HalfConversion.CudaRounding).Round(value);
        public void Begin() => default(LinearTensorCore.Ptx).Begin();
        public uint SharedBase() => TensorCore.DynamicSharedBase();
        public void CopyAsync(ArrayView<uint> shared, uint sharedBase, int word, ArrayView<U4> global, long globalAddress, int index, bool valid) =>
            default(LinearTensorCore.Ptx).CopyAsync(shared, sharedBase, word, global, globalAddress, index, valid);
        public void CommitCopies() => TensorCore.CommitCopies();

        // No async-proxy fence between the copies (cp.async, generic proxy) and wgmma's reads (async proxy),
        // as in CUTLASS's cp.async wgmma mainloop: on an H200 results were exact without one, and with one
        // (fence.proxy.async.shared::cta after the wait) no faster or slower (BENCHMARKS.md).
        public void WaitForTile() => TensorCore.WaitAllButNewestCopies();

        public Accumulators Multiply(Accumulators c, ArrayView<uint> shared, long a0, long a1, long a2, long a3, long b0, long b1)
        {
            CudaAsm.Emit(MultiplyTile, a0, a1, a2, a3, b0, b1);
            return c;
        }

        public void WaitForMultiplies(int inFlight)
        {
            // wait_group takes a constant; inFlight is a block shape's or a layout's, constant in every kernel instance.
            if (inFlight == 2) CudaAsm.Emit("wgmma.wait_group.sync.aligned 2;");
            else if (inFlight == 1) CudaAsm.Emit("wgmma.wait_group.sync.aligned 1;");
            else CudaAsm.Emit("wgmma.wait_group.sync.aligned 0;");
        }

        public Accumulators Finish(Accumulators c)
        {
            CudaAsm.Emit("wgmma.wait_group.sync.aligned 0;");
            return default(LinearTensorCore.Ptx).Finish(c);
        }
    }

    /// <summary>The same on C# values: each thread computes its own accumulators from the operands the
    /// descriptors name (the shared allocation's words; its base address is 0 here).</summary>
    public readonly struct Emulated : IPath
    {
        public int ChunkElements() => 8;
        public Half Round(float value) => default(HalfConversion.PortableRounding).Round(value);
        public void Begin() { }
        public uint SharedBase() => 0;
        public void CopyAsync(ArrayView<uint> shared, uint sharedBase, int word, ArrayView<U4> global, long globalAddress, int index, bool valid) =>
            default(LinearTensorCore.Emulated).CopyAsync(shared, sharedBase, word, global, globalAddress, index, valid);
        public void CommitCopies() { }
        public void WaitForTile() { }
        public void WaitForMultiplies(int inFlight) { }
        public Accumulators Finish(Accumulators c) => c;

        public Accumulators Multiply(Accumulators c, ArrayView<uint> shared, long a0, long a1, long a2, long a3, long b0, long b1)
        {
            c = Product(c, shared, a0, a1, b0);
            return Product(c, shared, a2, a3, b1);
        }

        /// <summary>One K step: rows 0-63 (descriptor top) into C0x and C1x, rows 64-127 (bottom) into C2x and C3x.</summary>
        private static Accumulators Product(Accumulators c, ArrayView<uint> shared, long top, long bottom, long b)
        {
            c.C00 = Tile(c.C00, shared, top, b, 0); c.C01 = Tile(c.C01, shared, top, b, 1); c.C02 = Tile(c.C02, shared, top, b, 2); c.C03 = Tile(c.C03, shared, top, b, 3);
            c.C04 = Tile(c.C04, shared, top, b, 4); c.C05 = Tile(c.C05, shared, top, b, 5); c.C06 = Tile(c.C06, shared, top, b, 6); c.C07 = Tile(c.C07, shared, top, b, 7);
            c.C10 = Tile(c.C10, shared, top, b, 8); c.C11 = Tile(c.C11, shared, top, b, 9); c.C12 = Tile(c.C12, shared, top, b, 10); c.C13 = Tile(c.C13, shared, top, b, 11);
            c.C14 = Tile(c.C14, shared, top, b, 12); c.C15 = Tile(c.C15, shared, top, b, 13); c.C16 = Tile(c.C16, shared, top, b, 14); c.C17 = Tile(c.C17, shared, top, b, 15);
            c.C20 = Tile(c.C20, shared, bottom, b, 0); c.C21 = Tile(c.C21, shared, bottom, b, 1); c.C22 = Tile(c.C22, shared, bottom, b, 2); c.C23 = Tile(c.C23, shared, bottom, b, 3);
            c.C24 = Tile(c.C24, shared, bottom, b, 4); c.C25 = Tile(c.C25, shared, bottom, b, 5); c.C26 = Tile(c.C26, shared, bottom, b, 6); c.C27 = Tile(c.C27, shared, bottom, b, 7);
            c.C30 = Tile(c.C30, shared, bottom, b, 8); c.C31 = Tile(c.C31, shared, bottom, b, 9); c.C32 = Tile(c.C32, shared, bottom, b, 10); c.C33 = Tile(c.C33, shared, bottom, b, 11);
            c.C34 = Tile(c.C34, shared, bottom, b, 12); c.C35 = Tile(c.C35, shared, bottom, b, 13); c.C36 = Tile(c.C36, shared, bottom, b, 14); c.C37 = Tile(c.C37, shared, bottom, b, 15);
            return c;
        }

        /// <summary>The thread's four accumulators of column block <paramref name="n8"/> of an m64n128k16 product.</summary>
        private static F4 Tile(F4 c, ArrayView<uint> shared, long a, long b, int n8)
        {
            int lane = Warp.LaneIdx;
            // The warp's 16 rows of its warpgroup's 64 (the descriptor starts at the warpgroup's rows).
            int row = 16 * ((Group.IdxX >> 5) & 3) + (lane >> 2), col = 8 * n8 + 2 * (lane & 3);
            for (int k = 0; k < 16; k++)
            {
                float x0 = Element(shared, a, row, k), x1 = Element(shared, a, row + 8, k);
                float w0 = Element(shared, b, col, k), w1 = Element(shared, b, col + 1, k);
                c.X += x0 * w0; c.Y += x0 * w1; c.Z += x1 * w0; c.W += x1 * w1;
            }
            return c;
        }

        /// <summary>Element (row, k) of the K-major operand a descriptor names: without swizzle, or in the 64- or
        /// 128-byte swizzle (<see cref="Swizzled64Descriptor"/>, <see cref="Swizzled128Descriptor"/>).</summary>
        private static float Element(ArrayView<uint> shared, long descriptor, int row, int k)
        {
            int start = (int)(descriptor & 0x3FFF) << 4;
            int leading = (int)((descriptor >> 16) & 0x3FFF) << 4, stride = (int)((descriptor >> 32) & 0x3FFF) << 4;
            int mode = (int)((descriptor >> 62) & 3), offset;
            if (mode == 1 || mode == 2)
            {
                // Rows of 128 or 64 bytes; the row within the atom (address bits 7-9 or 7-8) permutes the chunks.
                int rowBytes = mode == 1 ? 128 : 64;
                offset = start + (row >> 3) * stride + (row & 7) * rowBytes + k * 2;
                offset ^= ((offset >> 7) & (rowBytes / 16 - 1)) << 4;
            }
            else offset = start + (row >> 3) * stride + (k >> 3) * leading + (row & 7) * 16 + (k & 7) * 2;
            uint word = shared[offset >> 2];
            return (offset & 2) == 0 ? Vectors.LowHalf(word) : Vectors.HighHalf(word);
        }
    }

    [PromoteLocalScalars]
    public static void Kernel<TEpilogue, TPath, TBlock>(Args a)
        where TEpilogue : struct, IEpilogue where TPath : struct, IPath where TBlock : struct, IBlock
    {
        var shared = SharedMemory.GetDynamic<U4>().Cast<uint>();
        default(TPath).Begin();
        uint sharedBase = default(TPath).SharedBase();
        int groups = default(TBlock).WarpGroups(), group = Group.IdxX >> 7;
        // A stage: the x tile (128 rows per warpgroup), then the W tile.
        int stageBytes = (groups + 1) * TileBytes, stages = Stages<TBlock>();
        int m0 = Grid.IdxY * Tile * groups, n0 = Grid.IdxX * Tile;
        int tileBegin = Grid.IdxZ * a.TilesPerSplit;
        int tiles = Math.Min(a.TilesPerSplit, (a.K + Depth - 1) / Depth - tileBegin);
        // Copies: a warp's lanes 8 q .. 8 q + 7 take chunk q of its 8 rows, so each quarter warp writes one
        // core matrix, 128 contiguous bytes: no bank conflicts (4 chunks of a row would all hit the same banks).
        // A pass of rows is 8 per warp; the W tile follows the block's x rows, 128 W rows in 4 / groups passes.
        int thread = Group.IdxX;
        int copyChunk = (thread >> 3) & 3, copyRow = (thread & 7) + 8 * (thread >> 5);
        var place = Place<TPath>(a, m0, n0, 0, 0, copyChunk, copyRow);
        place.Word = CoreMatrixWord(copyRow, copyChunk);
        int wWord = groups * TileBytes / 4, passRows = 32 * groups, wPasses = 4 / groups;

        for (int s = 0; s < Ahead; s++)
        {
            if (s < tiles) StageTile<TPath>(a, shared, sharedBase, tileBegin + s, m0, n0, place, s * stageBytes / 4, wWord, passRows, wPasses);
            default(TPath).CommitCopies();
        }
        Accumulators c = default;
        int stage = 0;
        for (int tile = 0; tile < tiles; tile++)
        {
            // Tile `tile` has landed in every thread's copies.
            default(TPath).WaitForTile();
            Group.Barrier();
            // Its multiplies go first, queued behind those of tile - 1, so the tensor cores have work while
            // the copies below are issued.
            uint stageAt = sharedBase + (uint)(stage * stageBytes);
            uint x = stageAt + (uint)(group * TileBytes), w = stageAt + (uint)(groups * TileBytes);
            const uint rows64 = 64 / 8 * StrideBytes, k16 = 2 * LeadingBytes;
            c = default(TPath).Multiply(c, shared, Descriptor(x), Descriptor(x + rows64), Descriptor(x + k16), Descriptor(x + rows64 + k16),
                Descriptor(w), Descriptor(w + k16));
            // The stage two ahead held tile - 2 (tile - 1 without a multiply in flight), whose multiplies
            // every warp saw done before the barrier.
            int next = stage + Ahead < stages ? stage + Ahead : stage + Ahead - stages;
            if (tile + Ahead < tiles)
                StageTile<TPath>(a, shared, sharedBase, tileBegin + tile + Ahead, m0, n0, place, next * stageBytes / 4, wWord, passRows, wPasses);
            // An empty group keeps the count of groups in flight the same on the last tiles.
            default(TPath).CommitCopies();
            default(TPath).WaitForMultiplies(default(TBlock).MultipliesInFlight());
            stage = stage == stages - 1 ? 0 : stage + 1;
        }

        Store<TEpilogue, TPath>(a, c, m0, n0, group, groups);
    }

    /// <summary>After the K loop of a block of <paramref name="groups"/> warpgroups at (m0, n0): waits for the last
    /// multiplies and stores the thread's accumulators (their layout: this class's summary). Shared with
    /// <see cref="LinearWgmmaTma"/>.</summary>
    internal static void Store<TEpilogue, TPath>(Args a, Accumulators c, int m0, int n0, int group, int groups)
        where TEpilogue : struct, IEpilogue where TPath : struct, IPath
    {
        c = default(TPath).Finish(c);
        int lane = Warp.LaneIdx;
        int row = m0 + Tile * group + 16 * ((Group.IdxX >> 5) & 3) + (lane >> 2), col = n0 + 2 * (lane & 3);
        bool inside = m0 + Tile * groups <= a.M && n0 + Tile <= a.N;
        StoreTile<TEpilogue, TPath>(a, c, row, row, row + 64, row + 64, col, col + 64, col, col + 64, inside);
        if (a.Split.Active) SplitK.Finish<TEpilogue, TPath>(a.Split, a.Y.F32, a.M, a.N, m0, n0, Tile * groups);
    }

    /// <summary>One block of <typeparamref name="TBlock"/>'s warpgroups per 128 columns of y and 128 rows per warpgroup.</summary>
    public static KernelConfig Config<TBlock>(int m, int n, int splits = 1) where TBlock : struct, IBlock =>
        Config<TBlock>(m, n, splits, SharedBytes<TBlock>());

    /// <summary>The same launch shape with <paramref name="sharedBytes"/> of dynamic shared memory (<see cref="LinearWgmmaTma"/>'s).</summary>
    internal static KernelConfig Config<TBlock>(int m, int n, int splits, int sharedBytes) where TBlock : struct, IBlock
    {
        int groups = default(TBlock).WarpGroups();
        return new(new Index3D((n + Tile - 1) / Tile, (m + Tile * groups - 1) / (Tile * groups), splits), new Index3D(Threads * groups, 1, 1),
            SharedMemoryConfig.RequestDynamic<U4>(sharedBytes / 16));
    }

    /// <summary>x holds M x K halves, w is a Float16 [N, K] tensor, y M x N values, in 128 x 128 blocks. Meant for a
    /// compute-capability 9.0 GPU; other accelerators emulate the instructions (slowly: for tests).</summary>
    /// <param name="splits">ways to split K (<see cref="SplitK"/>); 0 chooses from the device's size</param>
    public static void Run<TEpilogue>(Backend backend, ArrayView<Half> x, Tensor w, ArrayView<float> bias,
        OutputView y, int m, int splits = 0) where TEpilogue : struct, IEpilogue =>
        Run<TEpilogue, OneWarpGroup>(backend, x, w, bias, y, m, splits);

    /// <summary><see cref="Run{TEpilogue}"/> in blocks of <typeparamref name="TBlock"/>.</summary>
    public static void Run<TEpilogue, TBlock>(Backend backend, ArrayView<Half> x, Tensor w, ArrayView<float> bias,
        OutputView y, int m, int splits = 0) where TEpilogue : struct, IEpilogue where TBlock : struct, IBlock
    {
        if (backend.IsCuda) RunOn<TEpilogue, TBlock, Ptx>(backend, x, w, bias, y, m, splits);
        else RunOn<TEpilogue, TBlock, Emulated>(backend, x, w, bias, y, m, splits);
    }

    /// <summary><see cref="Run{TEpilogue, TBlock}"/> on the instructions of <typeparamref name="TPath"/>; the
    /// benchmark also passes paths that leave out the copies or the multiplies, to time each part alone.</summary>
    internal static void RunOn<TEpilogue, TBlock, TPath>(Backend backend, ArrayView<Half> x, Tensor w, ArrayView<float> bias,
        OutputView y, int m, int splits) where TEpilogue : struct, IEpilogue where TBlock : struct, IBlock where TPath : struct, IPath
    {
        if (w.DType != DType.Float16)
            throw new ArgumentException($"LinearWgmma: weight {w.ShapeText} is {w.DType}, not Float16");
        LinearTensorCore.Launch<TEpilogue, Half>(backend, "LinearWgmma", x, w.HalfView, w, bias, y, m, splits, 8, Depth,
            () => Load<TEpilogue, TBlock, TPath>(backend), Config<TBlock>);
    }

    private static Action<KernelConfig, Args> Load<TEpilogue, TBlock, TPath>(Backend backend)
        where TEpilogue : struct, IEpilogue where TBlock : struct, IBlock where TPath : struct, IPath =>
        backend.IsCuda
            ? backend.LoadGrouped<Args>(Kernel<TEpilogue, TPath, TBlock>, SharedBytes<TBlock>(), PtxTarget.Hopper)
            : backend.LoadGrouped<Args>(Kernel<TEpilogue, TPath, TBlock>);
}
