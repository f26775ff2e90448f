using ILGPU;

namespace SmoothCache.Kernels.Gpu;

/// <summary>
/// Fused multi-head attention on tensor cores for the fp16 path: out = softmax(q k^T * Scale) v per head,
/// qkv fp16 [B, T, 3D] (q, k, v side by side in each token row, head h at columns h*HeadDim.. of each
/// third), out [B, T, D] fp32 or fp16. Head dims 64 and 72.
/// One group of 4 warps per (sample, head, tile of 64 queries); warp w owns queries 16w..16w + 15.
/// The group stages its queries once and then 64 keys and values at a time in shared memory (rows of
/// 16-byte chunks; q and k padded with zeros to a multiple of 16 columns, 11 chunks apart, v 9 apart:
/// conflict-free ldmatrix phases). Two stagings of the key tiles, the same arithmetic: <see cref="Kernel{TPath}"/> (the
/// default) has thread t load k row t or v row t - 64 of the next tile into registers while this one is multiplied and
/// store it after the next barrier; <see cref="AsyncKernel{TPath}"/> copies it with cp.async into the other of two
/// buffers (<see cref="Staging"/>). The numbers below are the register staging's.
/// Per key tile a warp computes its 16 x 64 scores with mma.sync
/// (q and k fragments by ldmatrix, q's again for every key tile), runs the online
/// softmax on them in registers (each lane holds 2 rows x 16 columns; row maxima and sums meet across
/// the 4 lanes of a row by shuffles), turns the probabilities into fp16 A fragments in place (the mma
/// accumulator layout is the A fragment layout) and multiplies them by v (fragments by ldmatrix.trans).
/// No score ever leaves registers. Probabilities are 2^(s c - max c) with c the scale times log2 e (a multiply-add
/// and an ex2 each), rounded to fp16 for that product, as in other fp16 flash attentions; the result is within fp16
/// rounding of the exact softmax. Per 64-key tile a warp issues about 460 instructions, 76 of them mma (SASS, sm_90;
/// 1,050 before the loads took a row per thread and the ldmatrix addresses were hoisted out of the loop); 165 registers,
/// 3 blocks per multiprocessor (q's 5 fragments held for the whole kernel took 20 more registers, and with them 2 blocks
/// fit: reloading them is 5 ldmatrix a tile).
/// Shared memory: 31,744 bytes. The warp instructions come from the kernels' TPath (see
/// <see cref="TensorCore.IWarpPath"/>): inline PTX on CUDA, emulated in tests.
/// </summary>
public static class FlashAttentionTensorCore
{
    public const int Queries = 64;
    public const int Warps = 4;
    public const int Threads = 32 * Warps;
    public const int KeysPerTile = 64;
    /// <summary>Chunks (8 halves) per shared q or k row: up to 10 used (72 columns padded to 80) plus 1 of spacing.</summary>
    private const int QkStride = 11;
    /// <summary>Chunks per shared v row: up to 9 used.</summary>
    private const int VStride = 9;
    private const int QWords = 0;
    private const int KWords = QWords + Queries * QkStride * 4;
    private const int VWords = KWords + KeysPerTile * QkStride * 4;
    private const int SharedWords = VWords + KeysPerTile * VStride * 4;
    /// <summary><see cref="AsyncKernel{TPath}"/>'s two buffers of a key tile (k rows, then v rows, as above); the queries
    /// are staged in buffer 1's k rows before the first key tile lands there.</summary>
    private const int BufferWords = (KeysPerTile * QkStride + KeysPerTile * VStride) * 4;
    private const int AsyncSharedWords = 2 * BufferWords;

    public struct Args
    {
        /// <summary>qkv as groups of 8 halves.</summary>
        public ArrayView<U4> Qkv;
        public OutputView Out;
        public int T, Heads, HeadDim;
        /// <summary>The softmax scale 1 / sqrt(HeadDim) times log2 e: probabilities are 2^((s - max) ExpScale).</summary>
        public float ExpScale;
        /// <summary>qkv's device address, for <see cref="AsyncKernel{TPath}"/>'s copies on CUDA.</summary>
        public long QkvAddress;
    }

    /// <summary>16 rows x 64 keys of fp32 scores (8 mma tiles of 8 keys).</summary>
    public struct Scores
    {
        public F4 J0, J1, J2, J3, J4, J5, J6, J7;
    }

    /// <summary>16 rows x up to 72 output columns (9 mma tiles of 8 columns).</summary>
    public struct Outputs
    {
        public F4 N0, N1, N2, N3, N4, N5, N6, N7, N8;
    }

    /// <summary>A lane's share of its warp's rows g and g + 8: outputs, running maxima (raw scores: the scale is positive)
    /// and its part of the running sums.</summary>
    public struct RowState
    {
        public Outputs O;
        public float Max0, Max1, Sum0, Sum1;

        public static RowState Empty => new() { Max0 = float.NegativeInfinity, Max1 = float.NegativeInfinity };
    }

    /// <summary>A warp's 16 queries as A fragments of the 16-deep steps 0..4 (step 4: head dim 72 only).</summary>
    public struct QueryFragments
    {
        public U4 S0, S1, S2, S3, S4;
    }

    /// <summary>Copies the queries of tokens first..first + 63 of head h into shared memory from word
    /// <paramref name="words"/> (QkStride chunks per row): thread t fills chunks 5 (t / 64).. + 4 of row t % 64, zeros
    /// past T and past the head (the padding to 16 columns).</summary>
    private static void StageQueries(Args a, ArrayView<uint> shared, int words, int sample, int head, int first)
    {
        var shared4 = shared.Cast<U4>();
        int headChunks = a.HeadDim >> 3, row = Group.IdxX & 63, chunk0 = 5 * (Group.IdxX >> 6);
        int token = first + row;
        int source = (sample * a.T + token) * 3 * a.Heads * headChunks + head * headChunks;
        int at = (words >> 2) + row * QkStride;
        for (int c = chunk0; c < chunk0 + 5; c++)
            shared4[at + c] = (token < a.T) & (c < headChunks) ? a.Qkv[source + c] : default;
    }

    /// <summary>One row of a key tile as this thread loads it: its 9 chunks of 8 halves (8 at head dim 64).</summary>
    public struct KeyValueRow
    {
        public U4 C0, C1, C2, C3, C4, C5, C6, C7, C8;
    }

    /// <summary>Starts loading this thread's row of a key tile, from chunk <paramref name="source"/> of qkv
    /// (<see cref="RowSource"/>). The kernel issues it before the current tile's arithmetic and stores it
    /// (<see cref="StageRow"/>) after the next barrier, so the loads' latency hides behind the arithmetic even with one
    /// block per multiprocessor (DiT-XL/2 at batch 2: 128 blocks). A row's chunks lie side by side in qkv: one address
    /// serves all of its loads (a walk over every 128th chunk of the tile, which this replaces, spent 450 instructions
    /// a tile on addresses, SASS).</summary>
    private static KeyValueRow LoadRow(Args a, int source, bool wide)
    {
        var row = a.Qkv.SubView(source);
        return new KeyValueRow
        {
            C0 = row[0], C1 = row[1], C2 = row[2], C3 = row[3], C4 = row[4], C5 = row[5], C6 = row[6], C7 = row[7],
            // Head dim 64 has 8 chunks: the ninth would be the next head's (or past the tensor).
            C8 = wide ? row[8] : default,
        };
    }

    /// <summary>Where thread t's row of the key tile from <paramref name="key0"/> starts in qkv (chunks): k row t (t &lt; 64)
    /// or v row t - 64, of token key0 + t % 64, or of token T - 1 past T: a key past T gets a score of -inf and a
    /// probability of 0 whatever its k and v, so a real token's stand in for it (no branch around the loads).</summary>
    private static int RowSource(Args a, int sample, int head, int key0)
    {
        int chunks = a.HeadDim >> 3, t = Group.IdxX;
        int token = Math.Min(key0 + (t & 63), a.T - 1);
        return (sample * a.T + token) * 3 * a.Heads * chunks + ((1 + (t >> 6)) * a.Heads + head) * chunks;
    }

    /// <summary>Where thread t's row goes in shared memory (16-byte chunks): k row t from word <paramref name="kWords"/>,
    /// or v row t - 64 from <paramref name="vWords"/>.</summary>
    private static int RowTarget(int kWords, int vWords) =>
        Group.IdxX < 64 ? (kWords >> 2) + Group.IdxX * QkStride : (vWords >> 2) + (Group.IdxX - 64) * VStride;

    /// <summary>Copies this thread's row (<see cref="RowSource"/>, <see cref="RowTarget"/>) chunk by chunk without
    /// passing it through registers (<see cref="TensorCore.IWarpPath.CopyAsync"/>).</summary>
    private static void CopyRow<TPath>(Args a, ArrayView<uint> shared, uint sharedBase, int source, int target, bool wide)
        where TPath : struct, TensorCore.IWarpPath
    {
        var path = default(TPath);
        for (int c = 0; c < 8; c++) path.CopyAsync(shared, sharedBase, target + c, a.Qkv, a.QkvAddress, source + c);
        // Head dim 64 has 8 chunks: the ninth would be the next head's (or past the tensor).
        if (wide) path.CopyAsync(shared, sharedBase, target + 8, a.Qkv, a.QkvAddress, source + 8);
    }

    /// <summary>The loaded row into shared memory, after the barrier that frees the tile.</summary>
    private static void StageRow(ArrayView<uint> shared, int at, KeyValueRow row, bool wide)
    {
        var target = shared.Cast<U4>().SubView(at);
        target[0] = row.C0;
        target[1] = row.C1;
        target[2] = row.C2;
        target[3] = row.C3;
        target[4] = row.C4;
        target[5] = row.C5;
        target[6] = row.C6;
        target[7] = row.C7;
        if (wide) target[8] = row.C8;
    }

    /// <summary>This lane's part of the word it passes to ldmatrix for an x4 load of 16 rows from row 0, chunk 0 of a
    /// region of <paramref name="stride"/> chunks per row: A-ordered (matrices: rows 0-7 | 8-15 by chunk c | c + 1), or
    /// with swapped = true B-ordered (rows 0-7 by chunk c | c + 1, then rows 8-15). The load at row r0, chunk c0 adds
    /// (r0 stride + c0) x 4, a constant in every use: the lane's part is computed once per kernel.</summary>
    private static int LaneWord(int stride, bool swapped)
    {
        int lane = Warp.LaneIdx;
        int matrix = lane >> 3;
        int rowHalf = swapped ? matrix >> 1 : matrix & 1, chunkStep = swapped ? matrix & 1 : matrix >> 1;
        return ((rowHalf * 8 + (lane & 7)) * stride + chunkStep) * 4;
    }

    /// <summary>c + a x the first B fragment of an x4 load (words X, Y); <see cref="MmaSecond{TPath}"/> takes Z, W.</summary>
    private static F4 MmaFirst<TPath>(F4 c, U4 a, U4 b) where TPath : struct, TensorCore.IWarpPath =>
        default(TPath).Mma(c, a, new U2 { X = b.X, Y = b.Y });

    private static F4 MmaSecond<TPath>(F4 c, U4 a, U4 b) where TPath : struct, TensorCore.IWarpPath =>
        default(TPath).Mma(c, a, new U2 { X = b.Z, Y = b.W });

    /// <summary>Scores += this warp's q (16-deep step s) x k^T of 64 keys: 4 ldmatrix, 8 mma. kLane: the lane's
    /// word in the k region (<see cref="LaneWord"/>).</summary>
    private static Scores ScoreStep<TPath>(Scores c, U4 q, ArrayView<uint> shared, uint sharedBase, int kLane, int s)
        where TPath : struct, TensorCore.IWarpPath
    {
        var path = default(TPath);
        U4 k01 = path.LoadMatrices(shared, sharedBase, kLane + 2 * s * 4);
        U4 k23 = path.LoadMatrices(shared, sharedBase, kLane + (16 * QkStride + 2 * s) * 4);
        U4 k45 = path.LoadMatrices(shared, sharedBase, kLane + (32 * QkStride + 2 * s) * 4);
        U4 k67 = path.LoadMatrices(shared, sharedBase, kLane + (48 * QkStride + 2 * s) * 4);
        c.J0 = MmaFirst<TPath>(c.J0, q, k01); c.J1 = MmaSecond<TPath>(c.J1, q, k01);
        c.J2 = MmaFirst<TPath>(c.J2, q, k23); c.J3 = MmaSecond<TPath>(c.J3, q, k23);
        c.J4 = MmaFirst<TPath>(c.J4, q, k45); c.J5 = MmaSecond<TPath>(c.J5, q, k45);
        c.J6 = MmaFirst<TPath>(c.J6, q, k67); c.J7 = MmaSecond<TPath>(c.J7, q, k67);
        return c;
    }

    /// <summary>Outputs += probabilities of keys 16 kk.. (an A fragment) x v rows 16 kk..: 4 or 5 ldmatrix.trans, 8 or 9
    /// mma. vLane: the lane's word in the v region (<see cref="LaneWord"/>, A-ordered).</summary>
    private static Outputs ValueStep<TPath>(Outputs o, U4 p, ArrayView<uint> shared, uint sharedBase, int vLane, int kk, bool wide)
        where TPath : struct, TensorCore.IWarpPath
    {
        var path = default(TPath);
        int rows = 16 * kk * VStride;
        // Matrices (keys 0-7 | 8-15) by (columns of tile n | n + 1): B fragments for tiles n and n + 1.
        U4 v01 = path.LoadMatricesTransposed(shared, sharedBase, vLane + rows * 4);
        U4 v23 = path.LoadMatricesTransposed(shared, sharedBase, vLane + (rows + 2) * 4);
        U4 v45 = path.LoadMatricesTransposed(shared, sharedBase, vLane + (rows + 4) * 4);
        U4 v67 = path.LoadMatricesTransposed(shared, sharedBase, vLane + (rows + 6) * 4);
        o.N0 = MmaFirst<TPath>(o.N0, p, v01); o.N1 = MmaSecond<TPath>(o.N1, p, v01);
        o.N2 = MmaFirst<TPath>(o.N2, p, v23); o.N3 = MmaSecond<TPath>(o.N3, p, v23);
        o.N4 = MmaFirst<TPath>(o.N4, p, v45); o.N5 = MmaSecond<TPath>(o.N5, p, v45);
        o.N6 = MmaFirst<TPath>(o.N6, p, v67); o.N7 = MmaSecond<TPath>(o.N7, p, v67);
        if (wide)
        {
            // Lanes 0..15 address keys 0-15 of column tile 8: their A-ordered words are the x2 load's rows (the x2
            // load ignores lanes 16..31).
            U2 v8 = path.LoadTwoMatricesTransposed(shared, sharedBase, vLane + (rows + 8) * 4);
            o.N8 = path.Mma(o.N8, p, v8);
        }
        return o;
    }

    /// <summary>A row's maximum over the 4 lanes that share it (lanes 4g..4g + 3).</summary>
    private static float RowMax(float v)
    {
        v = MathF.Max(v, Warp.ShuffleXor(v, 1));
        return MathF.Max(v, Warp.ShuffleXor(v, 2));
    }

    private static float RowSum(float v)
    {
        v += Warp.ShuffleXor(v, 1);
        return v + Warp.ShuffleXor(v, 2);
    }

    /// <summary>2^(s c - mc) for one mma tile's 4 scores, rows g (<paramref name="mc0"/>) and g + 8: with c the softmax
    /// scale times log2 e, exp((s - max) scale) as one multiply-add and one ex2 a score. Masked scores are -inf: 0.</summary>
    private static F4 Exp2<TPath>(F4 s, float c, float mc0, float mc1) where TPath : struct, TensorCore.IWarpPath
    {
        var path = default(TPath);
        return new F4 { X = path.Exp2(s.X * c - mc0), Y = path.Exp2(s.Y * c - mc0), Z = path.Exp2(s.Z * c - mc1), W = path.Exp2(s.W * c - mc1) };
    }

    /// <summary>One mma tile's scores, -inf where the key (columns key, key + 1) is at or past T.</summary>
    private static F4 Masked(F4 s, int key, int t) => new()
    {
        X = key < t ? s.X : float.NegativeInfinity,
        Y = key + 1 < t ? s.Y : float.NegativeInfinity,
        Z = key < t ? s.Z : float.NegativeInfinity,
        W = key + 1 < t ? s.W : float.NegativeInfinity,
    };

    private static F4 Times(F4 v, float row0, float row1) => new() { X = v.X * row0, Y = v.Y * row0, Z = v.Z * row1, W = v.W * row1 };

    /// <summary>All 64 scores masked; tile j's columns are keys key + 8j and + 1.</summary>
    private static Scores Masked(Scores s, int key, int t)
    {
        s.J0 = Masked(s.J0, key, t);
        s.J1 = Masked(s.J1, key + 8, t);
        s.J2 = Masked(s.J2, key + 16, t);
        s.J3 = Masked(s.J3, key + 24, t);
        s.J4 = Masked(s.J4, key + 32, t);
        s.J5 = Masked(s.J5, key + 40, t);
        s.J6 = Masked(s.J6, key + 48, t);
        s.J7 = Masked(s.J7, key + 56, t);
        return s;
    }

    private static Scores Exponentials<TPath>(Scores s, float c, float mc0, float mc1) where TPath : struct, TensorCore.IWarpPath
    {
        s.J0 = Exp2<TPath>(s.J0, c, mc0, mc1);
        s.J1 = Exp2<TPath>(s.J1, c, mc0, mc1);
        s.J2 = Exp2<TPath>(s.J2, c, mc0, mc1);
        s.J3 = Exp2<TPath>(s.J3, c, mc0, mc1);
        s.J4 = Exp2<TPath>(s.J4, c, mc0, mc1);
        s.J5 = Exp2<TPath>(s.J5, c, mc0, mc1);
        s.J6 = Exp2<TPath>(s.J6, c, mc0, mc1);
        s.J7 = Exp2<TPath>(s.J7, c, mc0, mc1);
        return s;
    }

    /// <summary>This lane's largest score of row g (upper: row g + 8).</summary>
    private static float TileMax(Scores s, bool upper) =>
        MathF.Max(MathF.Max(MathF.Max(Max2(s.J0, upper), Max2(s.J1, upper)), MathF.Max(Max2(s.J2, upper), Max2(s.J3, upper))),
            MathF.Max(MathF.Max(Max2(s.J4, upper), Max2(s.J5, upper)), MathF.Max(Max2(s.J6, upper), Max2(s.J7, upper))));

    /// <summary>This lane's sum of row g (upper: row g + 8).</summary>
    private static float TileSum(Scores s, bool upper) =>
        (Sum2(s.J0, upper) + Sum2(s.J1, upper) + Sum2(s.J2, upper) + Sum2(s.J3, upper))
        + (Sum2(s.J4, upper) + Sum2(s.J5, upper) + Sum2(s.J6, upper) + Sum2(s.J7, upper));

    private static float Max2(F4 v, bool upper) => upper ? MathF.Max(v.Z, v.W) : MathF.Max(v.X, v.Y);

    private static float Sum2(F4 v, bool upper) => upper ? v.Z + v.W : v.X + v.Y;

    /// <summary>The output rows g and g + 8 times their corrections.</summary>
    private static Outputs Rescaled(Outputs o, float row0, float row1)
    {
        o.N0 = Times(o.N0, row0, row1);
        o.N1 = Times(o.N1, row0, row1);
        o.N2 = Times(o.N2, row0, row1);
        o.N3 = Times(o.N3, row0, row1);
        o.N4 = Times(o.N4, row0, row1);
        o.N5 = Times(o.N5, row0, row1);
        o.N6 = Times(o.N6, row0, row1);
        o.N7 = Times(o.N7, row0, row1);
        o.N8 = Times(o.N8, row0, row1);
        return o;
    }

    /// <summary>Probabilities of key tiles j and j + 1 as the A fragment of a 16-key step.</summary>
    private static U4 ProbabilityFragment<TPath>(F4 j, F4 next) where TPath : struct, TensorCore.IWarpPath
    {
        var path = default(TPath);
        return new U4
        {
            X = path.PackHalves(j.X, j.Y), Y = path.PackHalves(j.Z, j.W),
            Z = path.PackHalves(next.X, next.Y), W = path.PackHalves(next.Z, next.W),
        };
    }

    /// <summary>Output tile j (columns 8 j + 2t, + 1) of rows g (in <paramref name="upper"/>, which starts at the row's
    /// first column of this lane) and g + 8 (<paramref name="lower"/>), divided by the row sums, each where its query is
    /// before T: the two columns in one store (the index is even and the output a whole tensor), at a constant offset.</summary>
    private static void Store<TPath>(OutputView upper, OutputView lower, int j, bool first, bool second, F4 o, float inverse0, float inverse1)
        where TPath : struct, TensorCore.IWarpPath
    {
        if (first) upper.StorePair<TPath>(8 * j, o.X * inverse0, o.Y * inverse0);
        if (second) lower.StorePair<TPath>(8 * j, o.Z * inverse1, o.W * inverse1);
    }

    /// <summary>The query fragments of this warp's rows for the 16-deep steps, from <paramref name="qLane"/> (<see cref="LaneWord"/>).</summary>
    private static QueryFragments LoadQueries<TPath>(ArrayView<uint> shared, uint sharedBase, int qLane, bool wide)
        where TPath : struct, TensorCore.IWarpPath
    {
        var path = default(TPath);
        return new QueryFragments
        {
            S0 = path.LoadMatrices(shared, sharedBase, qLane + 0 * 4),
            S1 = path.LoadMatrices(shared, sharedBase, qLane + 2 * 4),
            S2 = path.LoadMatrices(shared, sharedBase, qLane + 4 * 4),
            S3 = path.LoadMatrices(shared, sharedBase, qLane + 6 * 4),
            S4 = wide ? path.LoadMatrices(shared, sharedBase, qLane + 8 * 4) : default,
        };
    }

    /// <summary>One key tile from <paramref name="key0"/> into a warp's rows: its 16 x 64 scores, the online softmax
    /// (rescaling what came before to the new maxima) and the probabilities times v. kLane and vLane: the lane's words
    /// in the tile's k and v rows (<see cref="LaneWord"/>); t: the lane's column pair (lane % 4).</summary>
    private static RowState AttendTile<TPath>(Args a, RowState r, QueryFragments q, ArrayView<uint> shared, uint sharedBase,
        int kLane, int vLane, int key0, int t, bool wide) where TPath : struct, TensorCore.IWarpPath
    {
        var path = default(TPath);
        Scores s = default;
        s = ScoreStep<TPath>(s, q.S0, shared, sharedBase, kLane, 0);
        s = ScoreStep<TPath>(s, q.S1, shared, sharedBase, kLane, 1);
        s = ScoreStep<TPath>(s, q.S2, shared, sharedBase, kLane, 2);
        s = ScoreStep<TPath>(s, q.S3, shared, sharedBase, kLane, 3);
        if (wide) s = ScoreStep<TPath>(s, q.S4, shared, sharedBase, kLane, 4);

        // Keys past T (tile j holds keys key0 + 8j + 2t and + 1) are only in the last tile.
        if (key0 + KeysPerTile > a.T) s = Masked(s, key0 + 2 * t, a.T);
        // Key key0 < T is in every tile the loop visits, so each row's new maximum is finite.
        float next0 = MathF.Max(r.Max0, RowMax(TileMax(s, false))), next1 = MathF.Max(r.Max1, RowMax(TileMax(s, true)));
        float correction0 = path.Exp2((r.Max0 - next0) * a.ExpScale), correction1 = path.Exp2((r.Max1 - next1) * a.ExpScale);
        r.Max0 = next0;
        r.Max1 = next1;

        s = Exponentials<TPath>(s, a.ExpScale, r.Max0 * a.ExpScale, r.Max1 * a.ExpScale);
        r.Sum0 = r.Sum0 * correction0 + TileSum(s, false);
        r.Sum1 = r.Sum1 * correction1 + TileSum(s, true);
        var o = Rescaled(r.O, correction0, correction1);
        o = ValueStep<TPath>(o, ProbabilityFragment<TPath>(s.J0, s.J1), shared, sharedBase, vLane, 0, wide);
        o = ValueStep<TPath>(o, ProbabilityFragment<TPath>(s.J2, s.J3), shared, sharedBase, vLane, 1, wide);
        o = ValueStep<TPath>(o, ProbabilityFragment<TPath>(s.J4, s.J5), shared, sharedBase, vLane, 2, wide);
        o = ValueStep<TPath>(o, ProbabilityFragment<TPath>(s.J6, s.J7), shared, sharedBase, vLane, 3, wide);
        r.O = o;
        return r;
    }

    /// <summary>The warp's rows divided by their sums into the output, each where its query is before T.</summary>
    private static void StoreRows<TPath>(Args a, RowState r, int sample, int head, int query0, bool wide)
        where TPath : struct, TensorCore.IWarpPath
    {
        int lane = Warp.LaneIdx, g = lane >> 2, t = lane & 3;
        float inverse0 = 1f / RowSum(r.Sum0), inverse1 = 1f / RowSum(r.Sum1);
        int query = query0 + (Group.IdxX >> 5) * 16 + g;
        bool first = query < a.T, second = query + 8 < a.T;
        long at = ((long)sample * a.T + query) * a.Heads * a.HeadDim + head * a.HeadDim + 2 * t;
        // A row past T stores nothing; its view stays inside the output.
        var upper = a.Out.From(first ? at : 0);
        var lower = a.Out.From(second ? at + 8L * a.Heads * a.HeadDim : 0);
        var o = r.O;
        Store<TPath>(upper, lower, 0, first, second, o.N0, inverse0, inverse1);
        Store<TPath>(upper, lower, 1, first, second, o.N1, inverse0, inverse1);
        Store<TPath>(upper, lower, 2, first, second, o.N2, inverse0, inverse1);
        Store<TPath>(upper, lower, 3, first, second, o.N3, inverse0, inverse1);
        Store<TPath>(upper, lower, 4, first, second, o.N4, inverse0, inverse1);
        Store<TPath>(upper, lower, 5, first, second, o.N5, inverse0, inverse1);
        Store<TPath>(upper, lower, 6, first, second, o.N6, inverse0, inverse1);
        Store<TPath>(upper, lower, 7, first, second, o.N7, inverse0, inverse1);
        if (wide) Store<TPath>(upper, lower, 8, first, second, o.N8, inverse0, inverse1);
    }

    /// <summary>A thread's warp and its block's sample, head and first query; wide: head dim 72 (9 chunks a row, 5 steps).</summary>
    private struct BlockPlace
    {
        public int Warp, Sample, Head, Query0;
        public bool Wide;

        public static BlockPlace Of(Args a) => new()
        {
            Warp = Group.IdxX >> 5, Sample = Grid.IdxY / a.Heads, Head = Grid.IdxY % a.Heads, Query0 = Grid.IdxX * Queries, Wide = a.HeadDim > 64,
        };
    }

    /// <summary>Key tiles staged through registers: each thread loads its row of the next tile while this one is
    /// multiplied and stores it between two barriers; the query fragments are reloaded from shared memory every tile.</summary>
    public static void Kernel<TPath>(Args a) where TPath : struct, TensorCore.IWarpPath
    {
        var shared = SharedMemory.Allocate<U4>(SharedWords / 4).Cast<uint>();
        uint sharedBase = default(TPath).SharedBase();
        var place = BlockPlace.Of(a);
        int warp = place.Warp, sample = place.Sample, head = place.Head, query0 = place.Query0;
        bool wide = place.Wide;

        // The first key tile's loads go out before the queries', so the two latencies overlap.
        int target = RowTarget(KWords, VWords);
        var loaded = LoadRow(a, RowSource(a, sample, head, 0), wide);
        StageQueries(a, shared, QWords, sample, head, query0);
        // k's zero padding (head dim 72: chunk 9 of 10, which no load writes).
        if (wide && Group.IdxX < 64) shared.Cast<U4>()[target + 9] = default;
        Group.Barrier();
        int qLane = QWords + LaneWord(QkStride, false) + warp * 16 * QkStride * 4;
        int kLane = KWords + LaneWord(QkStride, true), vLane = VWords + LaneWord(VStride, false);

        var rows = RowState.Empty;
        for (int key0 = 0; key0 < a.T; key0 += KeysPerTile)
        {
            Group.Barrier();
            StageRow(shared, target, loaded, wide);
            Group.Barrier();
            if (key0 + KeysPerTile < a.T) loaded = LoadRow(a, RowSource(a, sample, head, key0 + KeysPerTile), wide);
            rows = AttendTile<TPath>(a, rows, LoadQueries<TPath>(shared, sharedBase, qLane, wide), shared, sharedBase,
                kLane, vLane, key0, Warp.LaneIdx & 3, wide);
        }
        StoreRows<TPath>(a, rows, sample, head, query0, wide);
    }

    /// <summary>Key tiles copied into two buffers without passing through registers (<c>cp.async</c>): the copy of the
    /// next tile goes out right after the one barrier per tile, into the buffer the tile before used; the query
    /// fragments stay in registers for the whole kernel. 40 KB of shared memory.</summary>
    [PromoteLocalScalars, BlocksPerMultiprocessor(Threads, 4)]
    public static void AsyncKernel<TPath>(Args a) where TPath : struct, TensorCore.IWarpPath
    {
        var shared = SharedMemory.Allocate<U4>(AsyncSharedWords / 4).Cast<uint>();
        var path = default(TPath);
        uint sharedBase = path.SharedBase();
        var place = BlockPlace.Of(a);
        int warp = place.Warp, sample = place.Sample, head = place.Head, query0 = place.Query0;
        bool wide = place.Wide;
        const int VOffset = KeysPerTile * QkStride * 4;

        // The first key tile's copies go out before the queries are loaded, into buffer 0; the queries go to buffer 1's
        // k rows (their zero padding is the k padding that buffer needs), which the second tile overwrites only after
        // the loop's first barrier, when every warp holds its query fragments.
        CopyRow<TPath>(a, shared, sharedBase, RowSource(a, sample, head, 0), RowTarget(0, VOffset), wide);
        path.CommitCopies();
        StageQueries(a, shared, BufferWords, sample, head, query0);
        // Buffer 0's k padding (head dim 72: chunk 9 of 10, which no copy writes).
        if (wide && Group.IdxX < 64) shared.Cast<U4>()[Group.IdxX * QkStride + 9] = default;
        Group.Barrier();
        var q = LoadQueries<TPath>(shared, sharedBase, BufferWords + LaneWord(QkStride, false) + warp * 16 * QkStride * 4, wide);
        int kLane = LaneWord(QkStride, true), vLane = VOffset + LaneWord(VStride, false);

        var rows = RowState.Empty;
        for (int key0 = 0, buffer = 0; key0 < a.T; key0 += KeysPerTile, buffer = BufferWords - buffer)
        {
            // This thread's copies of the tile have landed; after the barrier everyone's have, and every warp is done
            // with the other buffer (the tile before, or the queries).
            path.WaitAllCopies();
            Group.Barrier();
            if (key0 + KeysPerTile < a.T)
            {
                int next = BufferWords - buffer;
                CopyRow<TPath>(a, shared, sharedBase, RowSource(a, sample, head, key0 + KeysPerTile), RowTarget(next, next + VOffset), wide);
                path.CommitCopies();
            }
            rows = AttendTile<TPath>(a, rows, q, shared, sharedBase, kLane + buffer, vLane + buffer, key0, Warp.LaneIdx & 3, wide);
        }
        StoreRows<TPath>(a, rows, sample, head, query0, wide);
    }

    public static bool SupportsHeadDim(int headDim) => headDim is 64 or 72;

    /// <summary>The launch shape: one group of 128 threads per (query tile, sample x head).</summary>
    public static KernelConfig Config(int b, int t, int heads) =>
        new(new Index2D((t + Queries - 1) / Queries, b * heads), new Index2D(Threads, 1));

    /// <param name="qkv">Float16 [B, T, 3 * heads * headDim]</param>
    /// <param name="output">[B, T, heads * headDim], Float32 or Float16</param>
    /// <param name="staging">how key tiles reach shared memory (null: <see cref="Backend.AttentionStaging"/>)</param>
    public static void Run(Backend backend, Tensor qkv, Tensor output, int b, int t, int heads, int headDim, Staging? staging = null)
    {
        if (backend.IsCuda) Run<TensorCore.PtxPath>(backend, qkv, output, b, t, heads, headDim, staging);
        else Run<TensorCore.EmulatedPath>(backend, qkv, output, b, t, heads, headDim, staging);
    }

    /// <summary><see cref="Run(Backend, Tensor, Tensor, int, int, int, int, Staging?)"/> on the warp instructions of
    /// <typeparamref name="TPath"/> (the bench times paths that leave some out).</summary>
    public static void Run<TPath>(Backend backend, Tensor qkv, Tensor output, int b, int t, int heads, int headDim, Staging? staging = null)
        where TPath : struct, TensorCore.IWarpPath
    {
        if (!SupportsHeadDim(headDim))
            throw new ArgumentException($"FlashAttentionTensorCore: head dim {headDim} is not 64 or 72");
        if (qkv.DType != DType.Float16)
            throw new ArgumentException($"FlashAttentionTensorCore: qkv {qkv.ShapeText} is {qkv.DType}, not Float16");
        if ((long)b * t * 3 * heads * headDim > int.MaxValue)
            throw new ArgumentException($"FlashAttentionTensorCore: B={b}, T={t}, D={heads * headDim} overflow 32-bit indexing");
        if (b == 0 || t == 0) return;
        var args = new Args
        {
            Qkv = qkv.HalfView.Cast<U4>(), Out = OutputView.Of(output), T = t, Heads = heads, HeadDim = headDim,
            ExpScale = 1.442695f / MathF.Sqrt(headDim), QkvAddress = backend.IsCuda ? TensorCore.DeviceAddress(qkv.HalfView) : 0,
        };
        var kernel = (staging ?? backend.AttentionStaging) == Staging.Async
            ? backend.LoadGrouped<Args>(AsyncKernel<TPath>)
            : backend.LoadGrouped<Args>(Kernel<TPath>);
        kernel(Config(b, t, heads), args);
    }

    /// <summary>How key tiles reach shared memory: through registers (<see cref="Kernel{TPath}"/>) or by <c>cp.async</c>
    /// into two buffers (<see cref="AsyncKernel{TPath}"/>, the default: 48.6 µs against 58.1 at DiT-XL/2 batch 16 in a
    /// forward, 12.2 against 12.0 at batch 2, H200, BENCHMARKS.md seventeenth session).</summary>
    public enum Staging
    {
        Registers,
        Async,
    }

    /// <summary>Parses SMOOTHCACHE_ATTENTION's value: registers or async (null or empty: async).</summary>
    public static Staging ParseStaging(string? text) => text?.Trim().ToLowerInvariant() switch
    {
        "registers" => Staging.Registers,
        null or "" or "async" => Staging.Async,
        _ => throw new ArgumentException($"SMOOTHCACHE_ATTENTION='{text}': expected registers or async"),
    };
}
