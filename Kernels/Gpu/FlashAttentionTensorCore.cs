using ILGPU;
using ILGPU.Runtime;

namespace SmoothCache.Kernels.Gpu;

/// <summary>
/// Fused multi-head attention on tensor cores for the fp16 path: out = softmax(q k^T * Scale) v per head,
/// qkv fp16 [B, T, 3D] (q, k, v side by side in each token row, head h at columns h*HeadDim.. of each
/// third), out [B, T, D] fp32 or fp16. Head dims 64 and 72.
/// One group of 4 warps per (sample, head, tile of 64 queries); warp w owns queries 16w..16w + 15.
/// The group stages its queries once and then 64 keys and values at a time in shared memory (rows of
/// 16-byte chunks; q and k padded with zeros to a multiple of 16 columns, 11 chunks apart, v 9 apart:
/// conflict-free ldmatrix phases; the next tile's k and v are loaded into registers while this one is multiplied).
/// Per key tile a warp computes its 16 x 64 scores with mma.sync
/// (q fragments held in registers for the whole kernel, k fragments by ldmatrix), runs the online
/// softmax on them in registers (each lane holds 2 rows x 16 columns; row maxima and sums meet across
/// the 4 lanes of a row by shuffles), turns the probabilities into fp16 A fragments in place (the mma
/// accumulator layout is the A fragment layout) and multiplies them by v (fragments by ldmatrix.trans).
/// No score ever leaves registers. Probabilities are rounded to fp16 for that product, as in other
/// fp16 flash attentions; the result is within fp16 rounding of the exact softmax.
/// Shared memory: 31,744 bytes. The warp instructions come from <typeparamref name="TPath"/> (see
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

    public struct Args
    {
        /// <summary>qkv as groups of 8 halves.</summary>
        public ArrayView<U4> Qkv;
        public OutputView Out;
        public int T, Heads, HeadDim;
        public float Scale;
    }

    /// <summary>A warp's q fragments: 16 rows x up to 80 columns as 5 A fragments (16 deep each).</summary>
    public struct Queries16
    {
        public U4 S0, S1, S2, S3, S4;
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

    /// <summary>Where a thread is in a walk over rows of <c>Chunks</c> chunks, one element every <see cref="Threads"/>
    /// (row-major, so a warp's loads are neighbours): row R, chunk C, kept by additions instead of a division
    /// per element (a step is Rows whole rows and Rest chunks).</summary>
    private struct Walk
    {
        public int R, C, Chunks, Rows, Rest;

        public static Walk Start(int chunks)
        {
            int r = Group.IdxX / chunks, rows = Threads / chunks;
            return new Walk { R = r, C = Group.IdxX - r * chunks, Chunks = chunks, Rows = rows, Rest = Threads - rows * chunks };
        }

        /// <summary>The element <see cref="Threads"/> further on, the chunk's overflow carried into the row.</summary>
        public readonly Walk Next()
        {
            int c = C + Rest;
            int carry = c >= Chunks ? 1 : 0;
            return this with { R = R + Rows + carry, C = c - carry * Chunks };
        }
    }

    /// <summary>Copies the queries of tokens first..first + 63 of head h into shared memory (QWords, QkStride chunks
    /// per row), the first qkChunks chunks of each row: zeros past T and past the head (the padding to 16 columns).</summary>
    private static void StageQueries(Args a, ArrayView<uint> shared, int qkChunks, int sample, int head, int first)
    {
        var shared4 = shared.Cast<U4>();
        int headChunks = a.HeadDim >> 3;
        int rowChunks = 3 * a.Heads * headChunks;                    // one qkv token row
        for (var w = Walk.Start(qkChunks); w.R < 64; w = w.Next())
        {
            int token = first + w.R;
            bool valid = (token < a.T) & (w.C < headChunks);
            shared4[(QWords >> 2) + w.R * QkStride + w.C] = valid ? a.Qkv[(sample * a.T + token) * rowChunks + head * headChunks + w.C] : default;
        }
    }

    /// <summary>Up to 9 of a tile's chunks held by one thread: the walk over 128 rows of HeadDim / 8 chunks (k's 64
    /// rows, then v's) from this thread, every <see cref="Threads"/>th chunk (1,152 = 9 x 128 at head dim 72).</summary>
    public struct KeyValueChunks
    {
        public U4 C0, C1, C2, C3, C4, C5, C6, C7, C8;
    }

    /// <summary>Starts loading the tile of keys key0..: the kernel issues it before the current tile's arithmetic and
    /// stores it (<see cref="StageKeysAndValues"/>) after the next barrier, so the loads' latency hides behind the
    /// arithmetic even with one block per multiprocessor (DiT-XL/2 at batch 2: 128 blocks). 187 registers, 2 blocks per
    /// multiprocessor; loading and storing at once after the barrier (146 registers, 3 blocks) was 1.3-1.5x slower on
    /// an H200 at batch 2 and 16, and prefetching k alone (159 registers) 1.2x (BENCHMARKS.md, eleventh session).</summary>
    private static KeyValueChunks LoadKeysAndValues(Args a, int sample, int head, int key0)
    {
        var w = Walk.Start(a.HeadDim >> 3);
        KeyValueChunks c;
        c.C0 = LoadChunk(a, w, sample, head, key0); w = w.Next();
        c.C1 = LoadChunk(a, w, sample, head, key0); w = w.Next();
        c.C2 = LoadChunk(a, w, sample, head, key0); w = w.Next();
        c.C3 = LoadChunk(a, w, sample, head, key0); w = w.Next();
        c.C4 = LoadChunk(a, w, sample, head, key0); w = w.Next();
        c.C5 = LoadChunk(a, w, sample, head, key0); w = w.Next();
        c.C6 = LoadChunk(a, w, sample, head, key0); w = w.Next();
        c.C7 = LoadChunk(a, w, sample, head, key0); w = w.Next();
        c.C8 = LoadChunk(a, w, sample, head, key0);
        return c;
    }

    /// <summary>The loaded tile into shared memory (k padded with zero chunks to qkChunks), after the barrier that frees it.</summary>
    private static void StageKeysAndValues(Args a, ArrayView<uint> shared, KeyValueChunks loaded, int qkChunks)
    {
        var shared4 = shared.Cast<U4>();
        int chunks = a.HeadDim >> 3;
        var w = Walk.Start(chunks);
        StoreChunk(shared4, w, loaded.C0); w = w.Next();
        StoreChunk(shared4, w, loaded.C1); w = w.Next();
        StoreChunk(shared4, w, loaded.C2); w = w.Next();
        StoreChunk(shared4, w, loaded.C3); w = w.Next();
        StoreChunk(shared4, w, loaded.C4); w = w.Next();
        StoreChunk(shared4, w, loaded.C5); w = w.Next();
        StoreChunk(shared4, w, loaded.C6); w = w.Next();
        StoreChunk(shared4, w, loaded.C7); w = w.Next();
        StoreChunk(shared4, w, loaded.C8);
        // k's zero padding (head dim 72: chunk 9 of 10); the loads cover the head's chunks only.
        if (Group.IdxX < 64 && qkChunks > chunks) shared4[(KWords >> 2) + Group.IdxX * QkStride + chunks] = default;
    }

    /// <summary>Walk row R: k row R (R &lt; 64) or v row R - 64 of token key0 + R % 64; zeros past T and past the
    /// tile's 128 rows (head dim 64: 8 chunks per thread, the ninth past them).</summary>
    private static U4 LoadChunk(Args a, Walk w, int sample, int head, int key0)
    {
        int token = key0 + (w.R & 63);
        bool valid = (w.R < 128) & (token < a.T);
        int column = ((1 + (w.R >> 6)) * a.Heads + head) * w.Chunks + w.C;
        return valid ? a.Qkv[(sample * a.T + token) * 3 * a.Heads * w.Chunks + column] : default;
    }

    private static void StoreChunk(ArrayView<U4> shared4, Walk w, U4 value)
    {
        if (w.R >= 128) return;
        int at = w.R < 64 ? (KWords >> 2) + w.R * QkStride + w.C : (VWords >> 2) + (w.R - 64) * VStride + w.C;
        shared4[at] = value;
    }

    /// <summary>The word a lane passes to ldmatrix for an A-ordered x4 load (matrices: rows 0-7 | 8-15 by
    /// chunk c | c + 1) of 16 rows from row0, or, with swapped = true, a B-ordered one (rows 0-7 by chunk
    /// c | c + 1, then rows 8-15).</summary>
    private static int FragmentWord(int at, int stride, int row0, int chunk0, bool swapped)
    {
        int lane = Warp.LaneIdx;
        int matrix = lane >> 3;
        int rowHalf = swapped ? matrix >> 1 : matrix & 1, chunkStep = swapped ? matrix & 1 : matrix >> 1;
        return at + ((row0 + rowHalf * 8 + (lane & 7)) * stride + chunk0 + chunkStep) * 4;
    }

    /// <summary>c + a x the first B fragment of an x4 load (words X, Y); <see cref="MmaSecond{TPath}"/> takes Z, W.</summary>
    private static F4 MmaFirst<TPath>(F4 c, U4 a, U4 b) where TPath : struct, TensorCore.IWarpPath =>
        default(TPath).Mma(c, a, new U2 { X = b.X, Y = b.Y });

    private static F4 MmaSecond<TPath>(F4 c, U4 a, U4 b) where TPath : struct, TensorCore.IWarpPath =>
        default(TPath).Mma(c, a, new U2 { X = b.Z, Y = b.W });

    /// <summary>Scores += this warp's q (16-deep step s) x k^T of 64 keys: 4 ldmatrix, 8 mma.</summary>
    private static Scores ScoreStep<TPath>(Scores c, U4 q, ArrayView<uint> shared, uint sharedBase, int s)
        where TPath : struct, TensorCore.IWarpPath
    {
        var path = default(TPath);
        U4 k01 = path.LoadMatrices(shared, sharedBase, FragmentWord(KWords, QkStride, 0, 2 * s, true));
        U4 k23 = path.LoadMatrices(shared, sharedBase, FragmentWord(KWords, QkStride, 16, 2 * s, true));
        U4 k45 = path.LoadMatrices(shared, sharedBase, FragmentWord(KWords, QkStride, 32, 2 * s, true));
        U4 k67 = path.LoadMatrices(shared, sharedBase, FragmentWord(KWords, QkStride, 48, 2 * s, true));
        c.J0 = MmaFirst<TPath>(c.J0, q, k01); c.J1 = MmaSecond<TPath>(c.J1, q, k01);
        c.J2 = MmaFirst<TPath>(c.J2, q, k23); c.J3 = MmaSecond<TPath>(c.J3, q, k23);
        c.J4 = MmaFirst<TPath>(c.J4, q, k45); c.J5 = MmaSecond<TPath>(c.J5, q, k45);
        c.J6 = MmaFirst<TPath>(c.J6, q, k67); c.J7 = MmaSecond<TPath>(c.J7, q, k67);
        return c;
    }

    /// <summary>Outputs += probabilities of keys 16 kk.. (an A fragment) x v rows 16 kk..: 4 or 5 ldmatrix.trans, 8 or 9 mma.</summary>
    private static Outputs ValueStep<TPath>(Outputs o, U4 p, ArrayView<uint> shared, uint sharedBase, int kk, bool wide)
        where TPath : struct, TensorCore.IWarpPath
    {
        var path = default(TPath);
        // Matrices (keys 0-7 | 8-15) by (columns of tile n | n + 1): B fragments for tiles n and n + 1.
        U4 v01 = path.LoadMatricesTransposed(shared, sharedBase, FragmentWord(VWords, VStride, 16 * kk, 0, false));
        U4 v23 = path.LoadMatricesTransposed(shared, sharedBase, FragmentWord(VWords, VStride, 16 * kk, 2, false));
        U4 v45 = path.LoadMatricesTransposed(shared, sharedBase, FragmentWord(VWords, VStride, 16 * kk, 4, false));
        U4 v67 = path.LoadMatricesTransposed(shared, sharedBase, FragmentWord(VWords, VStride, 16 * kk, 6, false));
        o.N0 = MmaFirst<TPath>(o.N0, p, v01); o.N1 = MmaSecond<TPath>(o.N1, p, v01);
        o.N2 = MmaFirst<TPath>(o.N2, p, v23); o.N3 = MmaSecond<TPath>(o.N3, p, v23);
        o.N4 = MmaFirst<TPath>(o.N4, p, v45); o.N5 = MmaSecond<TPath>(o.N5, p, v45);
        o.N6 = MmaFirst<TPath>(o.N6, p, v67); o.N7 = MmaSecond<TPath>(o.N7, p, v67);
        if (wide)
        {
            // Lanes 0..15 address keys 0-15 of column tile 8 (the x2 load ignores lanes 16..31, which repeat them).
            int lane = Warp.LaneIdx;
            int row = 16 * kk + ((lane >> 3) & 1) * 8 + (lane & 7);
            U2 v8 = path.LoadTwoMatricesTransposed(shared, sharedBase, VWords + (row * VStride + 8) * 4);
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

    /// <summary>exp(s - max) for one mma tile's 4 scores (masked scores are -inf: 0).</summary>
    private static F4 Exp(F4 s, float max0, float max1) => new()
    {
        X = MathF.Exp(s.X - max0), Y = MathF.Exp(s.Y - max0), Z = MathF.Exp(s.Z - max1), W = MathF.Exp(s.W - max1),
    };

    /// <summary>One mma tile's scores times scale, -inf where the key (columns key, key + 1) is at or past T.</summary>
    private static F4 Masked(F4 s, float scale, int key, int t) => new()
    {
        X = key < t ? s.X * scale : float.NegativeInfinity,
        Y = key + 1 < t ? s.Y * scale : float.NegativeInfinity,
        Z = key < t ? s.Z * scale : float.NegativeInfinity,
        W = key + 1 < t ? s.W * scale : float.NegativeInfinity,
    };

    private static F4 Times(F4 v, float row0, float row1) => new() { X = v.X * row0, Y = v.Y * row0, Z = v.Z * row1, W = v.W * row1 };

    /// <summary>All 64 scores scaled and masked; tile j's columns are keys key + 8j and + 1.</summary>
    private static Scores ScaledAndMasked(Scores s, float scale, int key, int t)
    {
        s.J0 = Masked(s.J0, scale, key, t);
        s.J1 = Masked(s.J1, scale, key + 8, t);
        s.J2 = Masked(s.J2, scale, key + 16, t);
        s.J3 = Masked(s.J3, scale, key + 24, t);
        s.J4 = Masked(s.J4, scale, key + 32, t);
        s.J5 = Masked(s.J5, scale, key + 40, t);
        s.J6 = Masked(s.J6, scale, key + 48, t);
        s.J7 = Masked(s.J7, scale, key + 56, t);
        return s;
    }

    private static Scores Exponentials(Scores s, float max0, float max1)
    {
        s.J0 = Exp(s.J0, max0, max1);
        s.J1 = Exp(s.J1, max0, max1);
        s.J2 = Exp(s.J2, max0, max1);
        s.J3 = Exp(s.J3, max0, max1);
        s.J4 = Exp(s.J4, max0, max1);
        s.J5 = Exp(s.J5, max0, max1);
        s.J6 = Exp(s.J6, max0, max1);
        s.J7 = Exp(s.J7, max0, max1);
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

    /// <summary>One mma tile of the result, divided by the row sums: rows at (flat element index of row g,
    /// column 2t of the tile) and 8 rows below, each stored where its query is before T. Each row's two
    /// columns go in one store: the index is even and the output a whole tensor.</summary>
    private static void Store(Args a, long at, bool first, bool second, F4 o, float inverse0, float inverse1)
    {
        if (first) a.Out.StorePair(at, o.X * inverse0, o.Y * inverse0);
        if (second) a.Out.StorePair(at + 8L * a.Heads * a.HeadDim, o.Z * inverse1, o.W * inverse1);
    }

    public static void Kernel<TPath>(Args a) where TPath : struct, TensorCore.IWarpPath
    {
        var shared = SharedMemory.Allocate<U4>(SharedWords / 4).Cast<uint>();
        var path = default(TPath);
        uint sharedBase = path.SharedBase();
        int warp = Group.IdxX >> 5, lane = Warp.LaneIdx;
        int head = Grid.IdxY % a.Heads, sample = Grid.IdxY / a.Heads;
        int query0 = Grid.IdxX * Queries;
        bool wide = a.HeadDim > 64;
        int qkChunks = wide ? 10 : 8;

        // The first key tile's loads go out before the queries', so the two latencies overlap.
        var loaded = LoadKeysAndValues(a, sample, head, 0);
        StageQueries(a, shared, qkChunks, sample, head, query0);
        Group.Barrier();
        int qRow = warp * 16;
        Queries16 q;
        q.S0 = path.LoadMatrices(shared, sharedBase, FragmentWord(QWords, QkStride, qRow, 0, false));
        q.S1 = path.LoadMatrices(shared, sharedBase, FragmentWord(QWords, QkStride, qRow, 2, false));
        q.S2 = path.LoadMatrices(shared, sharedBase, FragmentWord(QWords, QkStride, qRow, 4, false));
        q.S3 = path.LoadMatrices(shared, sharedBase, FragmentWord(QWords, QkStride, qRow, 6, false));
        q.S4 = wide ? path.LoadMatrices(shared, sharedBase, FragmentWord(QWords, QkStride, qRow, 8, false)) : default;

        // Rows g and g + 8 of the warp's 16: running max (scaled scores) and this lane's share of the sum.
        float max0 = float.NegativeInfinity, max1 = float.NegativeInfinity, sum0 = 0f, sum1 = 0f;
        Outputs o = default;
        int g = lane >> 2, t = lane & 3;
        for (int key0 = 0; key0 < a.T; key0 += KeysPerTile)
        {
            Group.Barrier();
            StageKeysAndValues(a, shared, loaded, qkChunks);
            Group.Barrier();
            if (key0 + KeysPerTile < a.T) loaded = LoadKeysAndValues(a, sample, head, key0 + KeysPerTile);

            Scores s = default;
            s = ScoreStep<TPath>(s, q.S0, shared, sharedBase, 0);
            s = ScoreStep<TPath>(s, q.S1, shared, sharedBase, 1);
            s = ScoreStep<TPath>(s, q.S2, shared, sharedBase, 2);
            s = ScoreStep<TPath>(s, q.S3, shared, sharedBase, 3);
            if (wide) s = ScoreStep<TPath>(s, q.S4, shared, sharedBase, 4);

            // Scale, mask keys past T (tile j holds keys key0 + 8j + 2t and + 1), new row maxima.
            s = ScaledAndMasked(s, a.Scale, key0 + 2 * t, a.T);
            // Key key0 < T is in every tile the loop visits, so each row's new maximum is finite.
            float next0 = MathF.Max(max0, RowMax(TileMax(s, false))), next1 = MathF.Max(max1, RowMax(TileMax(s, true)));
            float correction0 = MathF.Exp(max0 - next0), correction1 = MathF.Exp(max1 - next1);
            max0 = next0;
            max1 = next1;

            s = Exponentials(s, max0, max1);
            sum0 = sum0 * correction0 + TileSum(s, false);
            sum1 = sum1 * correction1 + TileSum(s, true);
            o = Rescaled(o, correction0, correction1);
            o = ValueStep<TPath>(o, ProbabilityFragment<TPath>(s.J0, s.J1), shared, sharedBase, 0, wide);
            o = ValueStep<TPath>(o, ProbabilityFragment<TPath>(s.J2, s.J3), shared, sharedBase, 1, wide);
            o = ValueStep<TPath>(o, ProbabilityFragment<TPath>(s.J4, s.J5), shared, sharedBase, 2, wide);
            o = ValueStep<TPath>(o, ProbabilityFragment<TPath>(s.J6, s.J7), shared, sharedBase, 3, wide);
        }

        float inverse0 = 1f / RowSum(sum0), inverse1 = 1f / RowSum(sum1);
        int query = query0 + qRow + g;
        bool first = query < a.T, second = query + 8 < a.T;
        long at = ((long)sample * a.T + query) * a.Heads * a.HeadDim + head * a.HeadDim + 2 * t;
        Store(a, at, first, second, o.N0, inverse0, inverse1);
        Store(a, at + 8, first, second, o.N1, inverse0, inverse1);
        Store(a, at + 16, first, second, o.N2, inverse0, inverse1);
        Store(a, at + 24, first, second, o.N3, inverse0, inverse1);
        Store(a, at + 32, first, second, o.N4, inverse0, inverse1);
        Store(a, at + 40, first, second, o.N5, inverse0, inverse1);
        Store(a, at + 48, first, second, o.N6, inverse0, inverse1);
        Store(a, at + 56, first, second, o.N7, inverse0, inverse1);
        if (wide) Store(a, at + 64, first, second, o.N8, inverse0, inverse1);
    }

    public static bool SupportsHeadDim(int headDim) => headDim is 64 or 72;

    /// <summary>The launch shape: one group of 128 threads per (query tile, sample x head).</summary>
    public static KernelConfig Config(int b, int t, int heads) =>
        new(new Index2D((t + Queries - 1) / Queries, b * heads), new Index2D(Threads, 1));

    /// <param name="qkv">Float16 [B, T, 3 * heads * headDim]</param>
    /// <param name="output">[B, T, heads * headDim], Float32 or Float16</param>
    public static void Run(Backend backend, Tensor qkv, Tensor output, int b, int t, int heads, int headDim)
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
            Scale = 1f / MathF.Sqrt(headDim),
        };
        var kernel = backend.IsCuda
            ? backend.LoadGrouped<Args>(Kernel<TensorCore.PtxPath>)
            : backend.LoadGrouped<Args>(Kernel<TensorCore.EmulatedPath>);
        kernel(Config(b, t, heads), args);
    }
}
