using ILGPU;

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
    /// a reduction launch after the GEMM; the finish now runs in the GEMM's last split, so this may split too little:
    /// <c>smoothcache tune</c> measures every split per shape, <see cref="GemmTuning"/>.)</summary>
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

    /// <summary>
    /// Rows of whole <paramref name="tile"/>-row blocks that give every multiprocessor 2 blocks, for an output of between
    /// 2 and 3 blocks a multiprocessor (DiT-XL/2's out-projection and fc2 at batch 16: 288 blocks on 132); 0 elsewhere.
    /// Such a grid is resident at once, 3 blocks on some multiprocessors and 2 on the rest, and takes the 3 blocks' time
    /// for 2.2 blocks' work; its first rows unsplit and the rest split along K (two launches, <see cref="Linear.RunFp16Launch"/>)
    /// may take less. A candidate the tuner times (<see cref="GemmTuning"/>), not a built-in choice.
    /// </summary>
    public static int HeadRows(int multiprocessors, int m, int n, int tile)
    {
        long columns = (n + tile - 1) / tile, blocks = (m + tile - 1) / tile * columns;
        if (blocks <= 2L * multiprocessors || blocks > 3L * multiprocessors) return 0;
        int head = (int)(2L * multiprocessors / columns) * tile;
        return head < m ? head : 0;
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
    /// the epilogue and writes <see cref="Y"/> (<see cref="Finish{TEpilogue, TRound}"/>). No reduction launch: at DiT-XL/2
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
    internal static void Finish<TEpilogue, TRound>(Target target, ArrayView<float> sums, int m, int n, int m0, int n0, int rows)
        where TEpilogue : struct, IEpilogue where TRound : struct, HalfConversion.IHalfRounding
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
            // Thread t takes column quad t % quads of rows t / quads, + step, ...: four rows at a time, every split's
            // partial sums of all four loaded before any is added, so a thread waits out one load latency per four
            // rows rather than one per split and row (a block finishes 128 x 128 outputs alone).
            var sums4 = sums.Cast<F4>();
            int quads = columns / 4, step = threads / quads, quad = Group.IdxX % quads;
            if (Group.IdxX >= step * quads) return;
            int column = n0 + 4 * quad;
            long rowQuads = (long)step * n >> 2;
            var offsets = SplitOffsets.Of(slice >> 2, splits);
            for (int row = Group.IdxX / quads; row < rowCount; row += 4 * step)
            {
                long at = ((long)(m0 + row) * n + column) >> 2;
                int left = rowCount - 1 - row;
                // A row past the block reads the one before it again and is not stored.
                bool has1 = step <= left, has2 = 2 * step <= left, has3 = 3 * step <= left;
                long at1 = has1 ? at + rowQuads : at, at2 = has2 ? at1 + rowQuads : at1, at3 = has3 ? at2 + rowQuads : at2;
                F4 s0 = SumSplits(sums4, at, offsets), s1 = SumSplits(sums4, at1, offsets),
                    s2 = SumSplits(sums4, at2, offsets), s3 = SumSplits(sums4, at3, offsets);
                FinishQuad<TEpilogue, TRound>(target, epilogue, 4 * at, column, s0);
                if (has1) FinishQuad<TEpilogue, TRound>(target, epilogue, 4 * at1, column, s1);
                if (has2) FinishQuad<TEpilogue, TRound>(target, epilogue, 4 * at2, column, s2);
                if (has3) FinishQuad<TEpilogue, TRound>(target, epilogue, 4 * at3, column, s3);
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
            target.Y.Store<TRound>(i, epilogue.Apply(sum));
        }
    }

    /// <summary>Where splits 1..7's partial sums of a quad lie from split 0's (in quads): a split past the last
    /// repeats the last one's place (loaded, not added). Computed once per finishing thread.</summary>
    private struct SplitOffsets
    {
        public long O1, O2, O3, O4, O5, O6, O7, Slice;
        public int Splits;

        public static SplitOffsets Of(long sliceQuads, int splits)
        {
            int last = splits - 1;
            return new SplitOffsets
            {
                O1 = Math.Min(1, last) * sliceQuads, O2 = Math.Min(2, last) * sliceQuads, O3 = Math.Min(3, last) * sliceQuads,
                O4 = Math.Min(4, last) * sliceQuads, O5 = Math.Min(5, last) * sliceQuads, O6 = Math.Min(6, last) * sliceQuads,
                O7 = Math.Min(7, last) * sliceQuads, Slice = sliceQuads, Splits = splits,
            };
        }
    }

    /// <summary>0 + the partial sums of quad <paramref name="at"/> of splits 0, 1, .. in order, the first 8 splits' loads
    /// issued before the first addition.</summary>
    private static F4 SumSplits(ArrayView<F4> sums4, long at, SplitOffsets o)
    {
        F4 p0 = sums4[at], p1 = sums4[at + o.O1], p2 = sums4[at + o.O2], p3 = sums4[at + o.O3],
            p4 = sums4[at + o.O4], p5 = sums4[at + o.O5], p6 = sums4[at + o.O6], p7 = sums4[at + o.O7];
        int splits = o.Splits;
        var sum = Add(new F4(), p0, true);
        sum = Add(sum, p1, 1 < splits);
        sum = Add(sum, p2, 2 < splits);
        sum = Add(sum, p3, 3 < splits);
        sum = Add(sum, p4, 4 < splits);
        sum = Add(sum, p5, 5 < splits);
        sum = Add(sum, p6, 6 < splits);
        sum = Add(sum, p7, 7 < splits);
        // More splits than the chooser asks for (a caller's explicit count): the rest one at a time.
        for (int s = 8; s < splits; s++) sum = Add(sum, sums4[at + s * o.Slice], true);
        return sum;
    }

    private static F4 Add(F4 sum, F4 p, bool add) => add ? new F4 { X = sum.X + p.X, Y = sum.Y + p.Y, Z = sum.Z + p.Z, W = sum.W + p.W } : sum;

    /// <summary>Outputs i..i + 3 (columns column..): the sums plus the bias, through the epilogue.</summary>
    private static void FinishQuad<TEpilogue, TRound>(Target target, TEpilogue epilogue, long i, int column, F4 sum)
        where TEpilogue : struct, IEpilogue where TRound : struct, HalfConversion.IHalfRounding
    {
        if (target.Bias.Length > 0) sum = Add(sum, target.Bias.Cast<F4>()[column / 4], true);
        target.Y.StorePair<TRound>(i, epilogue.Apply(sum.X), epilogue.Apply(sum.Y));
        target.Y.StorePair<TRound>(i + 2, epilogue.Apply(sum.Z), epilogue.Apply(sum.W));
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
