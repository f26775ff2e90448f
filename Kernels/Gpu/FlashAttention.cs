using System.Runtime.CompilerServices;
using ILGPU;

namespace SmoothCache.Kernels.Gpu;

/// <summary>
/// Fused multi-head attention for CUDA, out = softmax(q k^T * Scale) v per head, with the layouts of
/// <see cref="Attention"/>: qkv [B, T, 3D] (q, k, v side by side in each token row, head h at columns
/// h*HeadDim.. of each third), out [B, T, D]. Head dims 16, 32, 64 and 72 (others use the portable kernel).
/// One group of 128 threads (4 warps) per (sample, head, tile of 32 queries): lane i of every warp owns
/// query i of the tile, and the 4 warps split the keys. Keys and values come through shared memory
/// 64 at a time (16 per warp; every lane of a warp reads the same key row, a broadcast). Each thread
/// keeps its scaled query and output accumulator in registers (up to 18 float4s each, unrolled by hand since
/// ILGPU does not unroll) and runs an online softmax one key at a time: running max m, running sum
/// l, accumulator rescaled by exp(m_old - m_new) only when the max grows (ever more rarely). One key
/// per step keeps the kernel at 231 registers without spills (four keys per step needed 255 and
/// spilled 1.4 KB per thread, ptxas says). At the end the 4 warps' partial (m, l, acc) meet in
/// shared memory and are merged. No T x T scores ever reach global memory.
/// fp32 throughout (the fp16 path rounds only the output); MathF.Exp becomes PTX ex2.approx (relative error about 2^-22 on the scaled argument),
/// so results match the portable kernel to about 1e-6 relative (the device check allows 1e-5).
/// Shared memory: 37,888 bytes (static), under the 48 KB limit.
/// </summary>
public static class FlashAttention
{
    /// <summary>Queries per group: one per lane.</summary>
    public const int Queries = 32;
    /// <summary>Warps per group, each taking a quarter of every key tile.</summary>
    public const int Warps = 4;
    public const int Threads = Queries * Warps;
    public const int KeysPerTile = 64;
    private const int KeysPerWarp = KeysPerTile / Warps;
    /// <summary>float4s per head row at the largest head dim (72).</summary>
    private const int MaxChunks = 18;
    private const int TileChunks = KeysPerTile * MaxChunks;
    /// <summary>Float offset of the merge statistics (m then l per thread), after the K and V tiles.</summary>
    private const int StatsOffset = 2 * TileChunks * 4;
    private const int SharedFloats = StatsOffset + 2 * Threads;

    public struct Args
    {
        /// <summary>A float32 qkv and out as float4s (empty when the float16 view is used instead).</summary>
        public ArrayView<F4> Qkv, Out;
        /// <summary>A float16 qkv, four halves per element, or empty.</summary>
        public ArrayView<U2> QkvHalf;
        /// <summary>A float16 out, four halves per element (rounded to nearest even), or empty.</summary>
        public ArrayView<U2> OutHalf;
        public int T, Heads;
        /// <summary>HeadDim / 4: 4, 8, 16 or 18 (the register rows' parts past it are skipped by uniform branches).</summary>
        public int Chunks;
        public float Scale;
    }

    /// <summary>A head row (up to 72 floats) held in registers: 18 float4s, of which the head dim uses the first 4, 8, 16 or 18.</summary>
    public struct Row
    {
        public F4 C0, C1, C2, C3, C4, C5, C6, C7, C8, C9, C10, C11, C12, C13, C14, C15, C16, C17;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float Dot(F4 a, F4 b) => a.X * b.X + a.Y * b.Y + a.Z * b.Z + a.W * b.W;

    private static ushort HalfBits(float v) => Interop.FloatAsInt(HalfConversion.Round(v));

    private static U2 ToHalves(F4 v) => new()
    {
        X = HalfBits(v.X) | ((uint)HalfBits(v.Y) << 16),
        Y = HalfBits(v.Z) | ((uint)HalfBits(v.W) << 16),
    };

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static F4 Scaled(F4 a, float s) => new F4 { X = a.X * s, Y = a.Y * s, Z = a.Z * s, W = a.W * s };

    /// <summary>acc + p v.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static F4 Accumulate(F4 acc, float p, F4 v) =>
        new F4 { X = acc.X + p * v.X, Y = acc.Y + p * v.Y, Z = acc.Z + p * v.Z, W = acc.W + p * v.W };

    /// <summary>Four consecutive qkv values (float4 <paramref name="at"/>), from whichever view is in use.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static F4 LoadQkv(Args a, int at)
    {
        if (a.QkvHalf.Length == 0) return a.Qkv[at];
        var w = a.QkvHalf[at];
        return new F4 { X = Vectors.LowHalf(w.X), Y = Vectors.HighHalf(w.X), Z = Vectors.LowHalf(w.Y), W = Vectors.HighHalf(w.Y) };
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Row LoadScaledQuery(Args a, int at, float s, int chunks)
    {
        Row h = default;
        h.C0 = Scaled(LoadQkv(a, at + 0), s);
        h.C1 = Scaled(LoadQkv(a, at + 1), s);
        h.C2 = Scaled(LoadQkv(a, at + 2), s);
        h.C3 = Scaled(LoadQkv(a, at + 3), s);
        if (chunks > 4)
        {
            h.C4 = Scaled(LoadQkv(a, at + 4), s);
            h.C5 = Scaled(LoadQkv(a, at + 5), s);
            h.C6 = Scaled(LoadQkv(a, at + 6), s);
            h.C7 = Scaled(LoadQkv(a, at + 7), s);
        }
        if (chunks > 8)
        {
            h.C8 = Scaled(LoadQkv(a, at + 8), s);
            h.C9 = Scaled(LoadQkv(a, at + 9), s);
            h.C10 = Scaled(LoadQkv(a, at + 10), s);
            h.C11 = Scaled(LoadQkv(a, at + 11), s);
            h.C12 = Scaled(LoadQkv(a, at + 12), s);
            h.C13 = Scaled(LoadQkv(a, at + 13), s);
            h.C14 = Scaled(LoadQkv(a, at + 14), s);
            h.C15 = Scaled(LoadQkv(a, at + 15), s);
        }
        if (chunks > 16)
        {
            h.C16 = Scaled(LoadQkv(a, at + 16), s);
            h.C17 = Scaled(LoadQkv(a, at + 17), s);
        }
        return h;
    }

    /// <summary>The dot product of a register row with the row of float4s at v[at].</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float DotRow(Row h, ArrayView<F4> v, int at, int chunks)
    {
        float s = Dot(h.C0, v[at]) + Dot(h.C1, v[at + 1]) + Dot(h.C2, v[at + 2]) + Dot(h.C3, v[at + 3]);
        if (chunks > 4) s += Dot(h.C4, v[at + 4]) + Dot(h.C5, v[at + 5]) + Dot(h.C6, v[at + 6]) + Dot(h.C7, v[at + 7]);
        if (chunks > 8)
        {
            s += Dot(h.C8, v[at + 8]) + Dot(h.C9, v[at + 9]) + Dot(h.C10, v[at + 10]) + Dot(h.C11, v[at + 11])
                + Dot(h.C12, v[at + 12]) + Dot(h.C13, v[at + 13]) + Dot(h.C14, v[at + 14]) + Dot(h.C15, v[at + 15]);
        }
        if (chunks > 16) s += Dot(h.C16, v[at + 16]) + Dot(h.C17, v[at + 17]);
        return s;
    }

    /// <summary>h + p times the value row at v[at].</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Row AccumulateRow(Row h, float p, ArrayView<F4> v, int at, int chunks)
    {
        h.C0 = Accumulate(h.C0, p, v[at + 0]);
        h.C1 = Accumulate(h.C1, p, v[at + 1]);
        h.C2 = Accumulate(h.C2, p, v[at + 2]);
        h.C3 = Accumulate(h.C3, p, v[at + 3]);
        if (chunks > 4)
        {
            h.C4 = Accumulate(h.C4, p, v[at + 4]);
            h.C5 = Accumulate(h.C5, p, v[at + 5]);
            h.C6 = Accumulate(h.C6, p, v[at + 6]);
            h.C7 = Accumulate(h.C7, p, v[at + 7]);
        }
        if (chunks > 8)
        {
            h.C8 = Accumulate(h.C8, p, v[at + 8]);
            h.C9 = Accumulate(h.C9, p, v[at + 9]);
            h.C10 = Accumulate(h.C10, p, v[at + 10]);
            h.C11 = Accumulate(h.C11, p, v[at + 11]);
            h.C12 = Accumulate(h.C12, p, v[at + 12]);
            h.C13 = Accumulate(h.C13, p, v[at + 13]);
            h.C14 = Accumulate(h.C14, p, v[at + 14]);
            h.C15 = Accumulate(h.C15, p, v[at + 15]);
        }
        if (chunks > 16)
        {
            h.C16 = Accumulate(h.C16, p, v[at + 16]);
            h.C17 = Accumulate(h.C17, p, v[at + 17]);
        }
        return h;
    }

    /// <summary>h s.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Row ScaledRow(Row h, float s, int chunks)
    {
        h.C0 = Scaled(h.C0, s);
        h.C1 = Scaled(h.C1, s);
        h.C2 = Scaled(h.C2, s);
        h.C3 = Scaled(h.C3, s);
        if (chunks > 4)
        {
            h.C4 = Scaled(h.C4, s);
            h.C5 = Scaled(h.C5, s);
            h.C6 = Scaled(h.C6, s);
            h.C7 = Scaled(h.C7, s);
        }
        if (chunks > 8)
        {
            h.C8 = Scaled(h.C8, s);
            h.C9 = Scaled(h.C9, s);
            h.C10 = Scaled(h.C10, s);
            h.C11 = Scaled(h.C11, s);
            h.C12 = Scaled(h.C12, s);
            h.C13 = Scaled(h.C13, s);
            h.C14 = Scaled(h.C14, s);
            h.C15 = Scaled(h.C15, s);
        }
        if (chunks > 16)
        {
            h.C16 = Scaled(h.C16, s);
            h.C17 = Scaled(h.C17, s);
        }
        return h;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void StoreRow(Row h, ArrayView<F4> v, int at, int chunks)
    {
        v[at + 0] = h.C0;
        v[at + 1] = h.C1;
        v[at + 2] = h.C2;
        v[at + 3] = h.C3;
        if (chunks > 4)
        {
            v[at + 4] = h.C4;
            v[at + 5] = h.C5;
            v[at + 6] = h.C6;
            v[at + 7] = h.C7;
        }
        if (chunks > 8)
        {
            v[at + 8] = h.C8;
            v[at + 9] = h.C9;
            v[at + 10] = h.C10;
            v[at + 11] = h.C11;
            v[at + 12] = h.C12;
            v[at + 13] = h.C13;
            v[at + 14] = h.C14;
            v[at + 15] = h.C15;
        }
        if (chunks > 16)
        {
            v[at + 16] = h.C16;
            v[at + 17] = h.C17;
        }
    }

    public static void Kernel(Args a)
    {
        var shared = SharedMemory.Allocate<float>(SharedFloats);
        var shared4 = shared.Cast<F4>();
        int thread = Group.IdxX;
        int lane = thread & 31, warp = thread >> 5;
        int h = Grid.IdxY % a.Heads, b = Grid.IdxY / a.Heads;
        int chunks = a.Chunks;
        int width = a.Heads * chunks;                 // D in float4s
        int tokenRow = 3 * width;                     // one qkv token row in float4s
        int head = h * chunks;
        int query = Grid.IdxX * Queries + lane;
        int sample = b * a.T;

        // Rows past T keep a zero query; their results are not stored.
        Row q = query < a.T ? LoadScaledQuery(a, (sample + query) * tokenRow + head, a.Scale, chunks) : default;
        Row acc = default;
        float m = float.NegativeInfinity, l = 0f;

        for (int t0 = 0; t0 < a.T; t0 += KeysPerTile)
        {
            Group.Barrier();
            // Stage keys t0.. and their values: K at tile row r, V at TileChunks + row r; zeros past T.
            for (int e = thread; e < KeysPerTile * chunks; e += Threads)
            {
                int r = e / chunks;
                int key = t0 + r;
                int at = (sample + key) * tokenRow + head + e - r * chunks;
                shared4[e] = key < a.T ? LoadQkv(a, at + width) : default;
                shared4[TileChunks + e] = key < a.T ? LoadQkv(a, at + 2 * width) : default;
            }
            Group.Barrier();

            int first = warp * KeysPerWarp;
            for (int j = first; j < first + KeysPerWarp; j++)
            {
                int key = t0 + j;
                if (key >= a.T) break; // the same for the whole warp
                int r = j * chunks;
                float score = DotRow(q, shared4, r, chunks);
                if (score > m)
                {
                    // A new running max rescales what came before (exp(-inf) = 0 at the first key); it
                    // gets rarer as keys go by, so most keys skip these 72 multiplications.
                    float corr = MathF.Exp(m - score);
                    l *= corr;
                    acc = ScaledRow(acc, corr, chunks);
                    m = score;
                }
                float p = MathF.Exp(score - m);
                l += p;
                acc = AccumulateRow(acc, p, shared4, TileChunks + r, chunks);
            }
        }

        // Merge the warps: each thread's (m, l, acc) goes to shared memory (over the tiles).
        Group.Barrier();
        StoreRow(acc, shared4, thread * chunks, chunks);
        shared[StatsOffset + thread] = m;
        shared[StatsOffset + Threads + thread] = l;
        Group.Barrier();

        for (int e = thread; e < Queries * chunks; e += Threads)
        {
            int i = e / chunks;
            int c = e - i * chunks;
            int row = Grid.IdxX * Queries + i;
            if (row >= a.T) continue;
            float m0 = shared[StatsOffset + i], m1 = shared[StatsOffset + Queries + i];
            float m2 = shared[StatsOffset + 2 * Queries + i], m3 = shared[StatsOffset + 3 * Queries + i];
            float max = MathF.Max(MathF.Max(m0, m1), MathF.Max(m2, m3));
            // Warp 0 always saw key 0, so max is finite; a warp that saw no key has m = -inf, weight 0.
            float f0 = MathF.Exp(m0 - max), f1 = MathF.Exp(m1 - max), f2 = MathF.Exp(m2 - max), f3 = MathF.Exp(m3 - max);
            int l0 = StatsOffset + Threads + i;
            float sum = f0 * shared[l0] + f1 * shared[l0 + Queries] + f2 * shared[l0 + 2 * Queries] + f3 * shared[l0 + 3 * Queries];
            // Warp w's row i sits at (w * Queries + i) * chunks.
            int at0 = i * chunks + c, stride = Queries * chunks;
            var o = Accumulate(Accumulate(Accumulate(Accumulate(default, f0, shared4[at0]), f1, shared4[at0 + stride]),
                f2, shared4[at0 + 2 * stride]), f3, shared4[at0 + 3 * stride]);
            var result = Scaled(o, 1f / sum);
            int at = (sample + row) * width + head + c;
            if (a.OutHalf.Length > 0) a.OutHalf[at] = ToHalves(result);
            else a.Out[at] = result;
        }
    }

    /// <summary>The head dims this kernel handles: its register rows use 4, 8, 16 or 18 float4s.</summary>
    public static bool SupportsHeadDim(int headDim) => headDim is 16 or 32 or 64 or 72;

    /// <summary>The launch shape: one group of 128 threads per (query tile, sample x head).</summary>
    public static KernelConfig Config(int b, int t, int heads) =>
        new(new Index2D((t + Queries - 1) / Queries, b * heads), new Index2D(Threads, 1));

    /// <param name="qkv">[B, T, 3 * heads * headDim], Float32 or Float16</param>
    /// <param name="output">[B, T, heads * headDim], Float32 or Float16</param>
    public static void Run(Backend backend, Tensor qkv, Tensor output, int b, int t, int heads, int headDim)
    {
        if (!SupportsHeadDim(headDim))
            throw new ArgumentException($"FlashAttention: head dim {headDim} is not 16, 32, 64 or 72");
        if ((long)b * t * 3 * heads * headDim > int.MaxValue)
            throw new ArgumentException($"FlashAttention: B={b}, T={t}, D={heads * headDim} overflow 32-bit indexing");
        if (b == 0 || t == 0) return;
        int d = heads * headDim;
        var args = new Args
        {
            Qkv = qkv.DType == DType.Float32 ? qkv.View.Cast<F4>() : ArrayView<F4>.Empty,
            QkvHalf = qkv.DType == DType.Float16 ? qkv.HalfView.Cast<U2>() : ArrayView<U2>.Empty,
            Out = output.DType == DType.Float32 ? output.View.Cast<F4>() : ArrayView<F4>.Empty,
            OutHalf = output.DType == DType.Float16 ? output.HalfView.Cast<U2>() : ArrayView<U2>.Empty,
            T = t, Heads = heads, Chunks = headDim / 4, Scale = 1f / MathF.Sqrt(headDim),
        };
        backend.LoadGrouped<Args>(Kernel)(Config(b, t, heads), args);
    }
}
