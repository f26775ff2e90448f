using ILGPU;
using ILGPU.Runtime;

namespace SmoothCache.Kernels.Gpu;

/// <summary>
/// Split-K for the GPU GEMMs. An output with few 128 x 128 blocks (DiT-XL/2 at batch 2: the
/// out-projection and fc2 have 36) leaves most of a GPU idle however long K is. Then the K tiles are
/// shared among <c>splits</c> groups per block (the grid's z index): each writes its partial
/// x W^T to its own [M, N] slice of a workspace, and the last of an output block's splits to finish sums the
/// slices, adds the bias and applies the epilogue (<see cref="Target"/>) — 2 x splits x M x N floats of traffic.
/// </summary>
public static class SplitK
{
    /// <summary>Groups per multiprocessor to aim for: the GEMMs fit two or three (SGEMM 8 warps, the tensor-core
    /// GEMM 4), and two keep at least two warps on each of a multiprocessor's four schedulers.</summary>
    private const int GroupsPerMultiprocessor = 2;

    /// <summary>Fewest K tiles a split gets, so each still amortises its prologue and epilogue.</summary>
    private const int MinTilesPerSplit = 8;

    public const int MaxSplits = 8;

    /// <summary>How many ways to split K: none when the blocks already cover half the multiprocessors,
    /// else enough groups for one wave on the device, at most 8. Measured on an H100 (132 SMs, fp16
    /// tensor-core GEMM at M = 512, BENCHMARKS.md): with 36 blocks, 3 to 7 splits ran 1.4x (K = 1152)
    /// to 2.5x (K = 4608) faster than none; with 144 blocks any split was slower (2 ways: 0.053 ms
    /// against 0.045), the extra partial-sum traffic and reduction costing more than the idle SMs. (Measured with
    /// a reduction launch after the GEMM; the finish now runs in the GEMM's last split, so this may split too little.)</summary>
    public static int Choose(int multiprocessors, int m, int n, int k, int tile, int depth) =>
        Choose(multiprocessors, (long)((m + tile - 1) / tile) * ((n + tile - 1) / tile), k, depth);

    /// <summary><see cref="Choose(int, int, int, int, int, int)"/> for an output of <paramref name="blocks"/> blocks of
    /// whatever shape (256 x 128 ones: half as many as 128 x 128).</summary>
    public static int Choose(int multiprocessors, long blocks, int k, int depth)
    {
        if (2 * blocks > multiprocessors) return 1;
        int kTiles = (k + depth - 1) / depth;
        long wanted = GroupsPerMultiprocessor * (long)multiprocessors / Math.Max(1, blocks);
        return (int)Math.Max(1, Math.Min(Math.Min(wanted, MaxSplits), kTiles / MinTilesPerSplit));
    }

    /// <summary>K tiles per split for a requested split count; the split count actually used is
    /// ceil(kTiles / tilesPerSplit), so no split is empty.</summary>
    public static (int TilesPerSplit, int Splits) Partition(int k, int depth, int splits)
    {
        int kTiles = Math.Max(1, (k + depth - 1) / depth);
        int perSplit = (kTiles + splits - 1) / Math.Max(1, splits);
        return (perSplit, (kTiles + perSplit - 1) / perSplit);
    }

    /// <summary>
    /// Where a split launch's blocks finish: each block stores its raw partial sums in its z slice of the kernel's
    /// own output ([splits, M, N] floats, no bias, no epilogue), then counts itself on its output block's arrival
    /// counter; the block that arrives last sums the splits' slices for that output block, adds the bias, applies
    /// the epilogue and writes <see cref="Y"/> (<see cref="Finish{TEpilogue}"/>). No reduction launch: at DiT-XL/2
    /// batch 2 those were 57 of a forward's 267 launches (0.45 ms of 5.2, H200, eleventh session). Empty
    /// (<see cref="Active"/> false) without split-K.
    /// </summary>
    public struct Target
    {
        /// <summary>One counter per output block (grid x, y), zero before and after every launch.</summary>
        public ArrayView<int> Arrivals;
        public ArrayView<float> Bias;
        public OutputView Y;
        /// <summary>1 when the finish goes four outputs at a time: N a multiple of 4, the partial sums and the bias
        /// 16-byte aligned, y pairs aligned.</summary>
        public int Quads;

        public readonly bool Active => Arrivals.Length > 0;
    }

    /// <summary>
    /// Every thread of a split block, after storing its partial sums into <paramref name="sums"/> (slice z): the last
    /// of the output block's <c>Grid.DimZ</c> splits to arrive writes y over rows m0..m0 + rows - 1 and columns
    /// n0..n0 + 127 (within M x N): epilogue(sum over splits s in order of sums[s] + bias), the same sums in the same
    /// order whichever block is last. The fences pair up: a block's stores are visible device-wide before its
    /// arrival is counted, and the last block reads the slices only after seeing every arrival.
    /// </summary>
    internal static void Finish<TEpilogue>(Target target, ArrayView<float> sums, int m, int n, int m0, int n0, int rows)
        where TEpilogue : struct, IEpilogue
    {
        MemoryFence.DeviceLevel();
        Group.Barrier();
        int block = Grid.IdxY * Grid.DimX + Grid.IdxX;
        bool arrivedLast = Group.IdxX == 0 && Atomic.Add(ref target.Arrivals[block], 1) == Grid.DimZ - 1;
        if (!Group.BarrierOr(arrivedLast)) return;
        MemoryFence.DeviceLevel();
        if (Group.IdxX == 0) target.Arrivals[block] = 0;

        int splits = Grid.DimZ, threads = Group.DimX;
        int rowCount = Math.Min(rows, m - m0), columns = Math.Min(128, n - n0);
        long slice = (long)m * n;
        var epilogue = default(TEpilogue);
        if (target.Quads != 0)
        {
            var sums4 = sums.Cast<F4>();
            int quads = columns / 4;
            for (int e = Group.IdxX; e < rowCount * quads; e += threads)
            {
                int row = e / quads;
                long i = (long)(m0 + row) * n + n0 + 4 * (e - row * quads);
                float x = 0f, y = 0f, z = 0f, w = 0f;
                for (int s = 0; s < splits; s++)
                {
                    F4 p = sums4[(s * slice + i) / 4];
                    x += p.X; y += p.Y; z += p.Z; w += p.W;
                }
                if (target.Bias.Length > 0)
                {
                    F4 b = target.Bias.Cast<F4>()[(i % n) / 4];
                    x += b.X; y += b.Y; z += b.Z; w += b.W;
                }
                target.Y.StorePair(i, epilogue.Apply(x), epilogue.Apply(y));
                target.Y.StorePair(i + 2, epilogue.Apply(z), epilogue.Apply(w));
            }
            return;
        }
        for (int e = Group.IdxX; e < rowCount * columns; e += threads)
        {
            int row = e / columns, column = n0 + e - row * columns;
            long i = (long)(m0 + row) * n + column;
            float sum = 0f;
            for (int s = 0; s < splits; s++) sum += sums[s * slice + i];
            if (target.Bias.Length > 0) sum += target.Bias[column];
            target.Y.Store(i, epilogue.Apply(sum));
        }
    }

    /// <summary>
    /// Launches a GEMM in <paramref name="launch"/>'s grid (output blocks in x and y, the splits of K in z) whose
    /// blocks finish as <see cref="Target"/> says: <paramref name="gemm"/> gets the partial sums' workspace
    /// ([splits, M, N] floats) and the target to finish into (y with <paramref name="bias"/>).
    /// </summary>
    public static void Run(Backend backend, int m, int n, KernelConfig launch, ArrayView<float> bias, OutputView y,
        Action<ArrayView<float>, Target> gemm)
    {
        int splits = launch.GridDim.Z, blocks = launch.GridDim.X * launch.GridDim.Y;
        using var sums = backend.Arena.Rent(splits, m, n);
        var output = y.Take((long)m * n);
        gemm(sums.View, new Target
        {
            Arrivals = backend.SplitArrivals(blocks),
            Bias = bias, Y = output,
            Quads = n % 4 == 0 && output.PairsAligned && Vectors.Float4Aligned(sums.View, bias) ? 1 : 0,
        });
    }
}
