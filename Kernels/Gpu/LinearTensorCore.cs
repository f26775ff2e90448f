using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;
using Half = ILGPU.Half;

namespace SmoothCache.Kernels.Gpu;

/// <summary>
/// Tensor-core GEMM for CUDA: y = epilogue(x W^T + b) with x fp16 [M, K], W fp16 [N, K], b fp32 [N],
/// y [M, N] fp32 or fp16 (rounded to nearest even), all row-major; products accumulate in fp32 through
/// inline PTX <c>mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32</c>.
/// A group of 8 warps computes a 128 x 128 block of y, each warp a 64 x 32 tile (4 x 4 mma tiles,
/// 64 fp32 accumulators per thread held in PTX registers acc0..acc63 declared once at function
/// scope). K advances 32 at a time through two shared buffers; the next tile's 16-byte global loads
/// (eight halves each, the same for x and W) are issued before the current tile is multiplied, so one
/// barrier per tile suffices. Shared rows are 32 halves plus 8 of padding, which makes the fragment
/// reads conflict-free. With split-K (<see cref="SplitK"/>) the grid's z slice takes a range of K tiles.
/// Requires K to be a multiple of 8 (whole 16-byte loads; the model's K are 16, 72, 256, 288, 1152, 4608);
/// M and N are free (loads are zero-filled and stores guarded past the edges). CUDA only.
/// </summary>
public static class LinearTensorCore
{
    public const int Tile = 128;
    public const int Depth = 32;
    public const int Threads = 256;
    /// <summary>Words per shared row: 32 halves as 16 half2 words plus 4 of padding.</summary>
    private const int RowWords = Depth / 2 + 4;
    private const int TileWords = Tile * RowWords;

    public struct Args
    {
        /// <summary>x and W as groups of 8 halves.</summary>
        public ArrayView<U4> X, W;
        public ArrayView<float> Bias;
        public OutputView Y;
        public int M, N, K;
        /// <summary>K tiles each z slice of the grid multiplies (all of them without split-K).</summary>
        public int TilesPerSplit;
    }

    /// <summary>Why a problem cannot run on this kernel, or null when it can.</summary>
    public static string? Unsupported(int m, int n, int k, long xOffset) =>
        k % 8 != 0 ? $"K={k} is not a multiple of 8"
        : !Sgemm.FitsInt32(m, n, k) ? $"M={m}, N={n}, K={k} overflow 32-bit indexing"
        : xOffset % 8 != 0 ? $"input view starts at element {xOffset}, not a multiple of 8 (16-byte loads)"
        : null;

    private const string ZeroAccumulators =
        "mov.f32 acc0, 0f00000000; mov.f32 acc1, 0f00000000; mov.f32 acc2, 0f00000000; mov.f32 acc3, 0f00000000; mov.f32 acc4, 0f00000000; mov.f32 acc5, 0f00000000; mov.f32 acc6, 0f00000000; mov.f32 acc7, 0f00000000;" +
        "mov.f32 acc8, 0f00000000; mov.f32 acc9, 0f00000000; mov.f32 acc10, 0f00000000; mov.f32 acc11, 0f00000000; mov.f32 acc12, 0f00000000; mov.f32 acc13, 0f00000000; mov.f32 acc14, 0f00000000; mov.f32 acc15, 0f00000000;" +
        "mov.f32 acc16, 0f00000000; mov.f32 acc17, 0f00000000; mov.f32 acc18, 0f00000000; mov.f32 acc19, 0f00000000; mov.f32 acc20, 0f00000000; mov.f32 acc21, 0f00000000; mov.f32 acc22, 0f00000000; mov.f32 acc23, 0f00000000;" +
        "mov.f32 acc24, 0f00000000; mov.f32 acc25, 0f00000000; mov.f32 acc26, 0f00000000; mov.f32 acc27, 0f00000000; mov.f32 acc28, 0f00000000; mov.f32 acc29, 0f00000000; mov.f32 acc30, 0f00000000; mov.f32 acc31, 0f00000000;" +
        "mov.f32 acc32, 0f00000000; mov.f32 acc33, 0f00000000; mov.f32 acc34, 0f00000000; mov.f32 acc35, 0f00000000; mov.f32 acc36, 0f00000000; mov.f32 acc37, 0f00000000; mov.f32 acc38, 0f00000000; mov.f32 acc39, 0f00000000;" +
        "mov.f32 acc40, 0f00000000; mov.f32 acc41, 0f00000000; mov.f32 acc42, 0f00000000; mov.f32 acc43, 0f00000000; mov.f32 acc44, 0f00000000; mov.f32 acc45, 0f00000000; mov.f32 acc46, 0f00000000; mov.f32 acc47, 0f00000000;" +
        "mov.f32 acc48, 0f00000000; mov.f32 acc49, 0f00000000; mov.f32 acc50, 0f00000000; mov.f32 acc51, 0f00000000; mov.f32 acc52, 0f00000000; mov.f32 acc53, 0f00000000; mov.f32 acc54, 0f00000000; mov.f32 acc55, 0f00000000;" +
        "mov.f32 acc56, 0f00000000; mov.f32 acc57, 0f00000000; mov.f32 acc58, 0f00000000; mov.f32 acc59, 0f00000000; mov.f32 acc60, 0f00000000; mov.f32 acc61, 0f00000000; mov.f32 acc62, 0f00000000; mov.f32 acc63, 0f00000000;";

    private static U4 LoadX(Args a, int row, int k) =>
        row < a.M && k < a.K ? a.X[(row * a.K + k) >> 3] : default;

    private static U4 LoadW(Args a, int row, int k) =>
        row < a.N && k < a.K ? a.W[(row * a.K + k) >> 3] : default;

    private static void StoreFragment<TEpilogue>(Args a, int row, int col, float c0, float c1, float c2, float c3)
        where TEpilogue : struct, IEpilogue
    {
        // mma accumulator layout: c0, c1 at (row, col), (row, col + 1); c2, c3 eight rows below.
        Put<TEpilogue>(a, row, col, c0);
        Put<TEpilogue>(a, row, col + 1, c1);
        Put<TEpilogue>(a, row + 8, col, c2);
        Put<TEpilogue>(a, row + 8, col + 1, c3);
    }

    private static void Put<TEpilogue>(Args a, int row, int col, float v) where TEpilogue : struct, IEpilogue
    {
        if (row >= a.M || col >= a.N) return;
        if (a.Bias.Length > 0) v += a.Bias[col];
        // Split z writes its own [M, N] slice (there is one slice without split-K).
        a.Y.Store(Grid.IdxZ * a.M * a.N + row * a.N + col, default(TEpilogue).Apply(v));
    }

    /// <summary>An A fragment (rows g and g + 8, k pairs t and t + 4 of a 16 x 16 tile) from shared words.</summary>
    private static U4 FragmentA(ArrayView<uint> shared, int at) => new()
    {
        X = shared[at], Y = shared[at + 8 * RowWords], Z = shared[at + 4], W = shared[at + 8 * RowWords + 4],
    };

    /// <summary>A B fragment (column g, k pairs t and t + 4 of a 16 x 8 tile): W rows are B's columns.</summary>
    private static U2 FragmentB(ArrayView<uint> shared, int at) => new() { X = shared[at], Y = shared[at + 4] };

    /// <summary>One 16-deep step of the warp's 64 x 32 tile: 16 mma on fragments read from shared memory.</summary>
    private static void MultiplyStep(ArrayView<uint> shared, int aAt, int bAt)
    {
        U4 a0 = FragmentA(shared, aAt), a1 = FragmentA(shared, aAt + 16 * RowWords),
           a2 = FragmentA(shared, aAt + 32 * RowWords), a3 = FragmentA(shared, aAt + 48 * RowWords);
        U2 b0 = FragmentB(shared, bAt), b1 = FragmentB(shared, bAt + 8 * RowWords),
           b2 = FragmentB(shared, bAt + 16 * RowWords), b3 = FragmentB(shared, bAt + 24 * RowWords);
        CudaAsm.Emit("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {acc0,acc1,acc2,acc3}, {%0,%1,%2,%3}, {%4,%5}, {acc0,acc1,acc2,acc3};", a0.X, a0.Y, a0.Z, a0.W, b0.X, b0.Y);
        CudaAsm.Emit("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {acc16,acc17,acc18,acc19}, {%0,%1,%2,%3}, {%4,%5}, {acc16,acc17,acc18,acc19};", a1.X, a1.Y, a1.Z, a1.W, b0.X, b0.Y);
        CudaAsm.Emit("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {acc32,acc33,acc34,acc35}, {%0,%1,%2,%3}, {%4,%5}, {acc32,acc33,acc34,acc35};", a2.X, a2.Y, a2.Z, a2.W, b0.X, b0.Y);
        CudaAsm.Emit("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {acc48,acc49,acc50,acc51}, {%0,%1,%2,%3}, {%4,%5}, {acc48,acc49,acc50,acc51};", a3.X, a3.Y, a3.Z, a3.W, b0.X, b0.Y);
        CudaAsm.Emit("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {acc4,acc5,acc6,acc7}, {%0,%1,%2,%3}, {%4,%5}, {acc4,acc5,acc6,acc7};", a0.X, a0.Y, a0.Z, a0.W, b1.X, b1.Y);
        CudaAsm.Emit("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {acc20,acc21,acc22,acc23}, {%0,%1,%2,%3}, {%4,%5}, {acc20,acc21,acc22,acc23};", a1.X, a1.Y, a1.Z, a1.W, b1.X, b1.Y);
        CudaAsm.Emit("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {acc36,acc37,acc38,acc39}, {%0,%1,%2,%3}, {%4,%5}, {acc36,acc37,acc38,acc39};", a2.X, a2.Y, a2.Z, a2.W, b1.X, b1.Y);
        CudaAsm.Emit("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {acc52,acc53,acc54,acc55}, {%0,%1,%2,%3}, {%4,%5}, {acc52,acc53,acc54,acc55};", a3.X, a3.Y, a3.Z, a3.W, b1.X, b1.Y);
        CudaAsm.Emit("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {acc8,acc9,acc10,acc11}, {%0,%1,%2,%3}, {%4,%5}, {acc8,acc9,acc10,acc11};", a0.X, a0.Y, a0.Z, a0.W, b2.X, b2.Y);
        CudaAsm.Emit("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {acc24,acc25,acc26,acc27}, {%0,%1,%2,%3}, {%4,%5}, {acc24,acc25,acc26,acc27};", a1.X, a1.Y, a1.Z, a1.W, b2.X, b2.Y);
        CudaAsm.Emit("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {acc40,acc41,acc42,acc43}, {%0,%1,%2,%3}, {%4,%5}, {acc40,acc41,acc42,acc43};", a2.X, a2.Y, a2.Z, a2.W, b2.X, b2.Y);
        CudaAsm.Emit("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {acc56,acc57,acc58,acc59}, {%0,%1,%2,%3}, {%4,%5}, {acc56,acc57,acc58,acc59};", a3.X, a3.Y, a3.Z, a3.W, b2.X, b2.Y);
        CudaAsm.Emit("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {acc12,acc13,acc14,acc15}, {%0,%1,%2,%3}, {%4,%5}, {acc12,acc13,acc14,acc15};", a0.X, a0.Y, a0.Z, a0.W, b3.X, b3.Y);
        CudaAsm.Emit("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {acc28,acc29,acc30,acc31}, {%0,%1,%2,%3}, {%4,%5}, {acc28,acc29,acc30,acc31};", a1.X, a1.Y, a1.Z, a1.W, b3.X, b3.Y);
        CudaAsm.Emit("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {acc44,acc45,acc46,acc47}, {%0,%1,%2,%3}, {%4,%5}, {acc44,acc45,acc46,acc47};", a2.X, a2.Y, a2.Z, a2.W, b3.X, b3.Y);
        CudaAsm.Emit("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {acc60,acc61,acc62,acc63}, {%0,%1,%2,%3}, {%4,%5}, {acc60,acc61,acc62,acc63};", a3.X, a3.Y, a3.Z, a3.W, b3.X, b3.Y);
    }

    public static void Kernel<TEpilogue>(Args a) where TEpilogue : struct, IEpilogue
    {
        // Layout in words: [x buffer 0][W buffer 0][x buffer 1][W buffer 1], each 128 rows of RowWords.
        var shared = SharedMemory.Allocate<uint>(4 * TileWords);
        var shared4 = shared.Cast<U4>();
        CudaAsm.Emit(".reg .f32 acc<64>;");
        CudaAsm.Emit(ZeroAccumulators);

        int thread = Group.IdxX;
        int lane = thread & 31, warp = thread >> 5;
        int g = lane >> 2, t = lane & 3;
        int warpRow = (warp >> 2) * 64, warpCol = (warp & 3) * 32;
        int m0 = Grid.IdxY * Tile, n0 = Grid.IdxX * Tile;
        // Staging: thread loads tile row thread / 2, k columns (thread % 2) * 16 .. + 16.
        int stageRow = thread >> 1, stageK = (thread & 1) * 16;
        int stageAt = (stageRow * RowWords + stageK / 2) >> 2;
        int tileBegin = Grid.IdxZ * a.TilesPerSplit;
        int tiles = Math.Min(a.TilesPerSplit, (a.K + Depth - 1) / Depth - tileBegin);
        int k0 = tileBegin * Depth + stageK;

        U4 x0 = LoadX(a, m0 + stageRow, k0), x1 = LoadX(a, m0 + stageRow, k0 + 8);
        U4 w0 = LoadW(a, n0 + stageRow, k0), w1 = LoadW(a, n0 + stageRow, k0 + 8);
        shared4[stageAt] = x0;
        shared4[stageAt + 1] = x1;
        shared4[(TileWords >> 2) + stageAt] = w0;
        shared4[(TileWords >> 2) + stageAt + 1] = w1;
        Group.Barrier();

        for (int tile = 0; tile < tiles; tile++)
        {
            int current = (tile & 1) * 2 * TileWords;
            bool more = tile + 1 < tiles;
            if (more)
            {
                int k = k0 + (tile + 1) * Depth;
                x0 = LoadX(a, m0 + stageRow, k);
                x1 = LoadX(a, m0 + stageRow, k + 8);
                w0 = LoadW(a, n0 + stageRow, k);
                w1 = LoadW(a, n0 + stageRow, k + 8);
            }
            int aAt = current + (warpRow + g) * RowWords + t;
            int bAt = current + TileWords + (warpCol + g) * RowWords + t;
            MultiplyStep(shared, aAt, bAt);
            MultiplyStep(shared, aAt + 8, bAt + 8);
            if (more)
            {
                int next = (((tile + 1) & 1) * 2 * TileWords) >> 2;
                shared4[next + stageAt] = x0;
                shared4[next + stageAt + 1] = x1;
                shared4[next + (TileWords >> 2) + stageAt] = w0;
                shared4[next + (TileWords >> 2) + stageAt + 1] = w1;
            }
            Group.Barrier();
        }

        int row = m0 + warpRow + g, col = n0 + warpCol + 2 * t;
        float c0, c1, c2, c3;
        CudaAsm.Emit("mov.f32 %0, acc0;", out c0); CudaAsm.Emit("mov.f32 %0, acc1;", out c1); CudaAsm.Emit("mov.f32 %0, acc2;", out c2); CudaAsm.Emit("mov.f32 %0, acc3;", out c3);
        StoreFragment<TEpilogue>(a, row + 0, col + 0, c0, c1, c2, c3);
        CudaAsm.Emit("mov.f32 %0, acc4;", out c0); CudaAsm.Emit("mov.f32 %0, acc5;", out c1); CudaAsm.Emit("mov.f32 %0, acc6;", out c2); CudaAsm.Emit("mov.f32 %0, acc7;", out c3);
        StoreFragment<TEpilogue>(a, row + 0, col + 8, c0, c1, c2, c3);
        CudaAsm.Emit("mov.f32 %0, acc8;", out c0); CudaAsm.Emit("mov.f32 %0, acc9;", out c1); CudaAsm.Emit("mov.f32 %0, acc10;", out c2); CudaAsm.Emit("mov.f32 %0, acc11;", out c3);
        StoreFragment<TEpilogue>(a, row + 0, col + 16, c0, c1, c2, c3);
        CudaAsm.Emit("mov.f32 %0, acc12;", out c0); CudaAsm.Emit("mov.f32 %0, acc13;", out c1); CudaAsm.Emit("mov.f32 %0, acc14;", out c2); CudaAsm.Emit("mov.f32 %0, acc15;", out c3);
        StoreFragment<TEpilogue>(a, row + 0, col + 24, c0, c1, c2, c3);
        CudaAsm.Emit("mov.f32 %0, acc16;", out c0); CudaAsm.Emit("mov.f32 %0, acc17;", out c1); CudaAsm.Emit("mov.f32 %0, acc18;", out c2); CudaAsm.Emit("mov.f32 %0, acc19;", out c3);
        StoreFragment<TEpilogue>(a, row + 16, col + 0, c0, c1, c2, c3);
        CudaAsm.Emit("mov.f32 %0, acc20;", out c0); CudaAsm.Emit("mov.f32 %0, acc21;", out c1); CudaAsm.Emit("mov.f32 %0, acc22;", out c2); CudaAsm.Emit("mov.f32 %0, acc23;", out c3);
        StoreFragment<TEpilogue>(a, row + 16, col + 8, c0, c1, c2, c3);
        CudaAsm.Emit("mov.f32 %0, acc24;", out c0); CudaAsm.Emit("mov.f32 %0, acc25;", out c1); CudaAsm.Emit("mov.f32 %0, acc26;", out c2); CudaAsm.Emit("mov.f32 %0, acc27;", out c3);
        StoreFragment<TEpilogue>(a, row + 16, col + 16, c0, c1, c2, c3);
        CudaAsm.Emit("mov.f32 %0, acc28;", out c0); CudaAsm.Emit("mov.f32 %0, acc29;", out c1); CudaAsm.Emit("mov.f32 %0, acc30;", out c2); CudaAsm.Emit("mov.f32 %0, acc31;", out c3);
        StoreFragment<TEpilogue>(a, row + 16, col + 24, c0, c1, c2, c3);
        CudaAsm.Emit("mov.f32 %0, acc32;", out c0); CudaAsm.Emit("mov.f32 %0, acc33;", out c1); CudaAsm.Emit("mov.f32 %0, acc34;", out c2); CudaAsm.Emit("mov.f32 %0, acc35;", out c3);
        StoreFragment<TEpilogue>(a, row + 32, col + 0, c0, c1, c2, c3);
        CudaAsm.Emit("mov.f32 %0, acc36;", out c0); CudaAsm.Emit("mov.f32 %0, acc37;", out c1); CudaAsm.Emit("mov.f32 %0, acc38;", out c2); CudaAsm.Emit("mov.f32 %0, acc39;", out c3);
        StoreFragment<TEpilogue>(a, row + 32, col + 8, c0, c1, c2, c3);
        CudaAsm.Emit("mov.f32 %0, acc40;", out c0); CudaAsm.Emit("mov.f32 %0, acc41;", out c1); CudaAsm.Emit("mov.f32 %0, acc42;", out c2); CudaAsm.Emit("mov.f32 %0, acc43;", out c3);
        StoreFragment<TEpilogue>(a, row + 32, col + 16, c0, c1, c2, c3);
        CudaAsm.Emit("mov.f32 %0, acc44;", out c0); CudaAsm.Emit("mov.f32 %0, acc45;", out c1); CudaAsm.Emit("mov.f32 %0, acc46;", out c2); CudaAsm.Emit("mov.f32 %0, acc47;", out c3);
        StoreFragment<TEpilogue>(a, row + 32, col + 24, c0, c1, c2, c3);
        CudaAsm.Emit("mov.f32 %0, acc48;", out c0); CudaAsm.Emit("mov.f32 %0, acc49;", out c1); CudaAsm.Emit("mov.f32 %0, acc50;", out c2); CudaAsm.Emit("mov.f32 %0, acc51;", out c3);
        StoreFragment<TEpilogue>(a, row + 48, col + 0, c0, c1, c2, c3);
        CudaAsm.Emit("mov.f32 %0, acc52;", out c0); CudaAsm.Emit("mov.f32 %0, acc53;", out c1); CudaAsm.Emit("mov.f32 %0, acc54;", out c2); CudaAsm.Emit("mov.f32 %0, acc55;", out c3);
        StoreFragment<TEpilogue>(a, row + 48, col + 8, c0, c1, c2, c3);
        CudaAsm.Emit("mov.f32 %0, acc56;", out c0); CudaAsm.Emit("mov.f32 %0, acc57;", out c1); CudaAsm.Emit("mov.f32 %0, acc58;", out c2); CudaAsm.Emit("mov.f32 %0, acc59;", out c3);
        StoreFragment<TEpilogue>(a, row + 48, col + 16, c0, c1, c2, c3);
        CudaAsm.Emit("mov.f32 %0, acc60;", out c0); CudaAsm.Emit("mov.f32 %0, acc61;", out c1); CudaAsm.Emit("mov.f32 %0, acc62;", out c2); CudaAsm.Emit("mov.f32 %0, acc63;", out c3);
        StoreFragment<TEpilogue>(a, row + 48, col + 24, c0, c1, c2, c3);
    }

    /// <summary>The launch shape: one group of 256 threads per 128 x 128 block of y.</summary>
    public static KernelConfig Config(int m, int n, int splits = 1) =>
        new(new Index3D((n + Tile - 1) / Tile, (m + Tile - 1) / Tile, splits), new Index3D(Threads, 1, 1));

    /// <summary>Runs on a CUDA backend; x holds M x K halves, w is a Float16 [N, K] tensor, y M x N values.</summary>
    /// <param name="splits">ways to split K (<see cref="SplitK"/>); 0 chooses from the device's size</param>
    public static void Run<TEpilogue>(Backend backend, ArrayView<Half> x, Tensor w, ArrayView<float> bias,
        OutputView y, int m, int splits = 0) where TEpilogue : struct, IEpilogue
    {
        int n = w.Dim(0), k = w.Dim(1);
        if (!backend.IsCuda)
            throw new InvalidOperationException($"LinearTensorCore needs a CUDA device (backend is {backend.DeviceName})");
        if (Unsupported(m, n, k, ((IContiguousArrayView)x).Index) is { } why)
            throw new ArgumentException($"LinearTensorCore: weight {w.ShapeText}: {why}");
        if (m == 0 || n == 0) return;
        if (splits == 0) splits = SplitK.Choose(backend.Accelerator.NumMultiprocessors, m, n, k, Tile, Depth);
        var (perSplit, used) = SplitK.Partition(k, Depth, splits);
        if (!Sgemm.FitsInt32(m, n, k, used))
            throw new ArgumentException($"LinearTensorCore: M={m}, N={n}, K={k} in {used} splits overflow 32-bit indexing");
        var args = new Args
        {
            X = x.SubView(0, (long)m * k).Cast<U4>(), W = w.HalfView.Cast<U4>(), Bias = bias, Y = y, M = m, N = n, K = k,
            TilesPerSplit = perSplit,
        };
        if (used == 1)
        {
            backend.LoadGrouped<Args>(Kernel<TEpilogue>)(Config(m, n), args);
            return;
        }
        SplitK.Run<TEpilogue>(backend, m, n, used, bias, y, partials =>
            backend.LoadGrouped<Args>(Kernel<IdentityEpilogue>)(Config(m, n, used),
                args with { Bias = ArrayView<float>.Empty, Y = new OutputView { F32 = partials } }));
    }
}
