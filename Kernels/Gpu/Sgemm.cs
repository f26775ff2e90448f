using ILGPU;

namespace SmoothCache.Kernels.Gpu;

/// <summary>
/// Tiled fp32 GEMM for GPUs, y = epilogue(x W^T + b) with x [M, K], W [N, K], y [M, N] row-major.
/// A group of 256 threads computes a 128 x 128 block of y; each thread an 8 x 8 register tile
/// (rows ty*4.. and 64+ty*4.., columns tx*4.. and 64+tx*4.., so shared reads are 16-byte and
/// conflict-free). K advances 8 at a time through two shared buffers: the next tile's global loads
/// are issued before the current tile is multiplied, and one barrier per tile suffices. Any M, N, K
/// (loads are guarded and zero-filled). Portable ILGPU (no inline PTX), so it also runs, slowly,
/// on the CPU accelerator, which is how the tests check it.
/// </summary>
public static class Sgemm
{
    public const int Tile = 128;
    public const int Depth = 8;
    public const int Threads = 256;
    /// <summary>Shared row length in floats: a k-row of 128 values plus 4 of padding (stays 16-byte aligned).</summary>
    private const int Stride = Tile + 4;
    private const int TileFloats = Depth * Stride;

    public struct Args
    {
        public ArrayView<float> X, W, Bias, Y;
        public int M, N, K;
        /// <summary>K tiles each z slice of the grid multiplies (all of them without split-K).</summary>
        public int TilesPerSplit;
        /// <summary>With split-K: where the blocks finish (Y then holds the raw partial sums, Bias is empty).</summary>
        public SplitK.Target Split;
    }

    /// <summary>Eight accumulators of one output row; a struct of scalars so they stay in registers.</summary>
    public struct Row8
    {
        public float C0, C1, C2, C3, C4, C5, C6, C7;
    }

    private static Row8 Fma(Row8 r, float a, F4 lo, F4 hi)
    {
        r.C0 += a * lo.X; r.C1 += a * lo.Y; r.C2 += a * lo.Z; r.C3 += a * lo.W;
        r.C4 += a * hi.X; r.C5 += a * hi.Y; r.C6 += a * hi.Z; r.C7 += a * hi.W;
        return r;
    }

    /// <summary>The 4 elements this thread stages of a 128 x 8 tile of a row-major [rows, K] matrix.</summary>
    private static F4 LoadTile(ArrayView<float> src, int rows, int k, int row0, int k0, int thread)
    {
        // Element e = thread + 256 i sits at tile row e / 8, column e % 8.
        return new F4
        {
            X = LoadGuarded(src, rows, k, row0 + (thread >> 3), k0 + (thread & 7)),
            Y = LoadGuarded(src, rows, k, row0 + 32 + (thread >> 3), k0 + (thread & 7)),
            Z = LoadGuarded(src, rows, k, row0 + 64 + (thread >> 3), k0 + (thread & 7)),
            W = LoadGuarded(src, rows, k, row0 + 96 + (thread >> 3), k0 + (thread & 7)),
        };
    }

    private static float LoadGuarded(ArrayView<float> src, int rows, int k, int row, int col) =>
        row < rows && col < k ? src[row * k + col] : 0f;

    /// <summary>Stores staged elements transposed (k-major) so the multiply reads rows of 4 along M or N.</summary>
    private static void StoreTile(ArrayView<float> shared, int offset, F4 v, int thread)
    {
        int at = offset + (thread & 7) * Stride + (thread >> 3);
        shared[at] = v.X;
        shared[at + 32] = v.Y;
        shared[at + 64] = v.Z;
        shared[at + 96] = v.W;
    }

    private static void StoreRow<TEpilogue>(Args a, int row, int col0, Row8 r) where TEpilogue : struct, IEpilogue
    {
        if (row >= a.M) return;
        Put<TEpilogue>(a, row, col0, r.C0);
        Put<TEpilogue>(a, row, col0 + 1, r.C1);
        Put<TEpilogue>(a, row, col0 + 2, r.C2);
        Put<TEpilogue>(a, row, col0 + 3, r.C3);
        Put<TEpilogue>(a, row, col0 + 64, r.C4);
        Put<TEpilogue>(a, row, col0 + 65, r.C5);
        Put<TEpilogue>(a, row, col0 + 66, r.C6);
        Put<TEpilogue>(a, row, col0 + 67, r.C7);
    }

    private static void Put<TEpilogue>(Args a, int row, int col, float v) where TEpilogue : struct, IEpilogue
    {
        if (col >= a.N) return;
        if (a.Bias.Length > 0) v += a.Bias[col];
        // Split z writes its own [M, N] slice (there is one slice without split-K), raw: its finish applies the epilogue.
        a.Y[Grid.IdxZ * a.M * a.N + row * a.N + col] = a.Split.Active ? v : default(TEpilogue).Apply(v);
    }

    public static void Kernel<TEpilogue>(Args a) where TEpilogue : struct, IEpilogue
    {
        // Layout: [A buffer 0][B buffer 0][A buffer 1][B buffer 1], each Depth x Stride floats.
        var shared = SharedMemory.Allocate<float>(4 * TileFloats);
        var shared4 = shared.Cast<F4>();
        int thread = Group.IdxX;
        int tx = thread & 15, ty = thread >> 4;
        int m0 = Grid.IdxY * Tile, n0 = Grid.IdxX * Tile;
        int tileBegin = Grid.IdxZ * a.TilesPerSplit;
        int tiles = Math.Min(a.TilesPerSplit, (a.K + Depth - 1) / Depth - tileBegin);
        int k0 = tileBegin * Depth;

        var nextA = LoadTile(a.X, a.M, a.K, m0, k0, thread);
        var nextB = LoadTile(a.W, a.N, a.K, n0, k0, thread);
        StoreTile(shared, 0, nextA, thread);
        StoreTile(shared, TileFloats, nextB, thread);
        Group.Barrier();

        Row8 r0 = default, r1 = default, r2 = default, r3 = default, r4 = default, r5 = default, r6 = default, r7 = default;
        for (int t = 0; t < tiles; t++)
        {
            int current = (t & 1) * 2 * TileFloats;
            bool more = t + 1 < tiles;
            if (more)
            {
                nextA = LoadTile(a.X, a.M, a.K, m0, k0 + (t + 1) * Depth, thread);
                nextB = LoadTile(a.W, a.N, a.K, n0, k0 + (t + 1) * Depth, thread);
            }
            for (int k = 0; k < Depth; k++)
            {
                int aRow = (current + k * Stride) >> 2;
                int bRow = (current + TileFloats + k * Stride) >> 2;
                F4 a0 = shared4[aRow + ty], a1 = shared4[aRow + 16 + ty];
                F4 b0 = shared4[bRow + tx], b1 = shared4[bRow + 16 + tx];
                r0 = Fma(r0, a0.X, b0, b1);
                r1 = Fma(r1, a0.Y, b0, b1);
                r2 = Fma(r2, a0.Z, b0, b1);
                r3 = Fma(r3, a0.W, b0, b1);
                r4 = Fma(r4, a1.X, b0, b1);
                r5 = Fma(r5, a1.Y, b0, b1);
                r6 = Fma(r6, a1.Z, b0, b1);
                r7 = Fma(r7, a1.W, b0, b1);
            }
            if (more)
            {
                int next = ((t + 1) & 1) * 2 * TileFloats;
                StoreTile(shared, next, nextA, thread);
                StoreTile(shared, next + TileFloats, nextB, thread);
            }
            Group.Barrier();
        }

        int row = m0 + ty * 4, col = n0 + tx * 4;
        StoreRow<TEpilogue>(a, row, col, r0);
        StoreRow<TEpilogue>(a, row + 1, col, r1);
        StoreRow<TEpilogue>(a, row + 2, col, r2);
        StoreRow<TEpilogue>(a, row + 3, col, r3);
        StoreRow<TEpilogue>(a, row + 64, col, r4);
        StoreRow<TEpilogue>(a, row + 65, col, r5);
        StoreRow<TEpilogue>(a, row + 66, col, r6);
        StoreRow<TEpilogue>(a, row + 67, col, r7);
        if (a.Split.Active) SplitK.Finish<TEpilogue, HalfConversion.RoundingOnAnyAccelerator>(a.Split, a.Y, a.M, a.N, m0, n0, Tile);
    }

    /// <summary>The launch shape: one group of 256 threads per 128 x 128 block of y and split of K.</summary>
    public static KernelConfig Config(int m, int n, int splits = 1) =>
        new(new Index3D((n + Tile - 1) / Tile, (m + Tile - 1) / Tile, splits), new Index3D(Threads, 1, 1));

    /// <summary>Whether every index of x [M,K], W [N,K] and y [M,N] (times the splits), rounded up to
    /// whole 128-row tiles, fits the kernels' 32-bit index arithmetic.</summary>
    internal static bool FitsInt32(int m, int n, int k, int splits = 1)
    {
        long mt = m + 127L, nt = n + 127L;
        return Math.Max(Math.Max(mt * k, nt * k), mt * nt * splits) <= int.MaxValue;
    }

    /// <param name="splits">ways to split K (<see cref="SplitK"/>); 0 chooses from the device's size</param>
    public static void Run<TEpilogue>(Backend backend, ArrayView<float> x, ArrayView<float> w, ArrayView<float> bias,
        ArrayView<float> y, int m, int n, int k, int splits = 0) where TEpilogue : struct, IEpilogue
    {
        if (m == 0 || n == 0) return;
        if (splits == 0) splits = SplitK.Choose(backend.Accelerator.NumMultiprocessors, m, n, k, Tile, Depth);
        var (perSplit, used) = SplitK.Partition(k, Depth, splits);
        if (!FitsInt32(m, n, k, used))
            throw new ArgumentException($"Sgemm: M={m}, N={n}, K={k} overflow 32-bit indexing");
        var args = new Args { X = x, W = w, Bias = bias, Y = y, M = m, N = n, K = k, TilesPerSplit = perSplit };
        if (used == 1)
        {
            backend.LoadGrouped<Args>(Kernel<TEpilogue>)(Config(m, n), args);
            return;
        }
        var launch = Config(m, n, used);
        SplitK.Run(backend, m, n, launch, bias, new OutputView { F32 = y }, (sums, target) =>
            backend.LoadGrouped<Args>(Kernel<TEpilogue>)(launch, args with { Bias = ArrayView<float>.Empty, Y = sums, Split = target }));
    }
}
