using ILGPU;

namespace SmoothCache.Kernels.Gpu;

/// <summary>
/// y = epilogue(x W^T + b) for at most 16 rows of x — the conditioning GEMMs, one row per sample, where
/// a 128-row tile would multiply 8 to 64 times the useful products. One warp per output column n: lane
/// l reads W[n, k..k+7] for k = 8l, 8l + 256, ... (16-byte loads for fp16 W, two for fp32; each warp
/// load is one coalesced stretch of the row), multiplies them with the same 8 values of every x row
/// (x is small and stays in cache) and keeps one partial dot product per row; a 16-shuffle butterfly
/// then leaves row r's sum in lanes 2r and 2r + 1, and 16 lanes store the column. W is read exactly
/// once, which bounds it.
/// x and W are fp32 or fp16 (fp16 multiplies exactly as the tensor-core kernel does, in fp32); K must
/// be a multiple of 8. Portable ILGPU, so the CPU accelerator runs it in tests.
/// </summary>
public static class LinearSkinny
{
    public const int MaxRows = 16;
    public const int WarpsPerGroup = 8;
    private const int Lanes = 32;

    public struct Args
    {
        /// <summary>x [M, K] and W [N, K], each through exactly one of its views (8 halves or 4 floats per element).</summary>
        public ArrayView<F4> X32, W32;
        public ArrayView<U4> X16, W16;
        public ArrayView<float> Bias;
        public OutputView Y;
        public int M, N, K;
    }

    public struct Eight
    {
        public float V0, V1, V2, V3, V4, V5, V6, V7;
    }

    private static Eight Widen(U4 w) => new()
    {
        V0 = Vectors.LowHalf(w.X), V1 = Vectors.HighHalf(w.X), V2 = Vectors.LowHalf(w.Y), V3 = Vectors.HighHalf(w.Y),
        V4 = Vectors.LowHalf(w.Z), V5 = Vectors.HighHalf(w.Z), V6 = Vectors.LowHalf(w.W), V7 = Vectors.HighHalf(w.W),
    };

    private static Eight Join(F4 lo, F4 hi) => new() { V0 = lo.X, V1 = lo.Y, V2 = lo.Z, V3 = lo.W, V4 = hi.X, V5 = hi.Y, V6 = hi.Z, V7 = hi.W };

    /// <summary>Eight consecutive values from element <paramref name="at"/> (a multiple of 8) of one of two views.</summary>
    private static Eight Load(ArrayView<F4> f32, ArrayView<U4> f16, int at) =>
        f16.Length > 0 ? Widen(f16[at >> 3]) : Join(f32[at >> 2], f32[(at >> 2) + 1]);

    private static float Dot(Eight a, Eight b) =>
        a.V0 * b.V0 + a.V1 * b.V1 + a.V2 * b.V2 + a.V3 * b.V3 + a.V4 * b.V4 + a.V5 * b.V5 + a.V6 * b.V6 + a.V7 * b.V7;

    private static float Row(Args a, int m, int k, Eight w) => m < a.M ? Dot(Load(a.X32, a.X16, m * a.K + k), w) : 0f;

    private static void Put<TEpilogue>(Args a, int m, int n, float sum) where TEpilogue : struct, IEpilogue
    {
        if (m >= a.M) return;
        if (a.Bias.Length > 0) sum += a.Bias[n];
        a.Y.Store(m * a.N + n, default(TEpilogue).Apply(sum));
    }

    public static void Kernel<TEpilogue>(Args a) where TEpilogue : struct, IEpilogue
    {
        int n = Grid.IdxX * WarpsPerGroup + Group.IdxX / Lanes;
        int lane = Group.IdxX % Lanes;
        // Whole warps leave together, so every shuffle below has all 32 lanes.
        if (n >= a.N) return;
        float s0 = 0f, s1 = 0f, s2 = 0f, s3 = 0f, s4 = 0f, s5 = 0f, s6 = 0f, s7 = 0f;
        float s8 = 0f, s9 = 0f, s10 = 0f, s11 = 0f, s12 = 0f, s13 = 0f, s14 = 0f, s15 = 0f;
        for (int k = lane * 8; k < a.K; k += Lanes * 8)
        {
            var w = Load(a.W32, a.W16, n * a.K + k);
            s0 += Row(a, 0, k, w); s1 += Row(a, 1, k, w); s2 += Row(a, 2, k, w); s3 += Row(a, 3, k, w);
            s4 += Row(a, 4, k, w); s5 += Row(a, 5, k, w); s6 += Row(a, 6, k, w); s7 += Row(a, 7, k, w);
            s8 += Row(a, 8, k, w); s9 += Row(a, 9, k, w); s10 += Row(a, 10, k, w); s11 += Row(a, 11, k, w);
            s12 += Row(a, 12, k, w); s13 += Row(a, 13, k, w); s14 += Row(a, 14, k, w); s15 += Row(a, 15, k, w);
        }
        // Sum each row's 32 partials with 16 shuffles instead of 16 x 5: at every butterfly step a lane
        // keeps half of its rows (chosen by its lane bit) and swaps the other half with its partner.
        bool h16 = (lane & 16) != 0, h8 = (lane & 8) != 0, h4 = (lane & 4) != 0, h2 = (lane & 2) != 0;
        float t0 = Pair(s0, s8, h16, 16), t1 = Pair(s1, s9, h16, 16), t2 = Pair(s2, s10, h16, 16), t3 = Pair(s3, s11, h16, 16);
        float t4 = Pair(s4, s12, h16, 16), t5 = Pair(s5, s13, h16, 16), t6 = Pair(s6, s14, h16, 16), t7 = Pair(s7, s15, h16, 16);
        float u0 = Pair(t0, t4, h8, 8), u1 = Pair(t1, t5, h8, 8), u2 = Pair(t2, t6, h8, 8), u3 = Pair(t3, t7, h8, 8);
        float v0 = Pair(u0, u2, h4, 4), v1 = Pair(u1, u3, h4, 4);
        float sum = Pair(v0, v1, h2, 2);
        sum += Warp.ShuffleXor(sum, 1);
        // Lanes 2r and 2r + 1 now hold row r's sum (r = lane bits 1..4).
        if ((lane & 1) == 0) Put<TEpilogue>(a, lane >> 1, n, sum);
    }

    /// <summary>One butterfly step: keep a (or b when <paramref name="high"/>) and add the partner's copy of it.</summary>
    private static float Pair(float a, float b, bool high, int mask)
    {
        float keep = high ? b : a, send = high ? a : b;
        return keep + Warp.ShuffleXor(send, mask);
    }

    /// <summary>Whether a problem suits this kernel: few rows, whole 8-value groups along K.</summary>
    public static bool Suits(int m, int k) => m is > 0 and <= MaxRows && k % 8 == 0;

    /// <summary>x and w are Float32 or Float16 tensors ([M, K] and [N, K]); y is written through an output view.</summary>
    public static void Run<TEpilogue>(Backend backend, Tensor x, Tensor w, ArrayView<float> bias, OutputView y, int m)
        where TEpilogue : struct, IEpilogue
    {
        int n = w.Dim(0), k = w.Dim(1);
        if (!Suits(m, k)) throw new ArgumentException($"LinearSkinny: M={m} rows (at most {MaxRows}) and K={k} (a multiple of 8) do not suit it");
        if ((long)n * k > int.MaxValue) throw new ArgumentException($"LinearSkinny: N={n}, K={k} overflow 32-bit indexing");
        if (n == 0) return;
        var args = new Args
        {
            X32 = x.DType == DType.Float32 ? x.View.SubView(0, (long)m * k).Cast<F4>() : ArrayView<F4>.Empty,
            X16 = x.DType == DType.Float16 ? x.HalfView.SubView(0, (long)m * k).Cast<U4>() : ArrayView<U4>.Empty,
            W32 = w.DType == DType.Float32 ? w.View.Cast<F4>() : ArrayView<F4>.Empty,
            W16 = w.DType == DType.Float16 ? w.HalfView.Cast<U4>() : ArrayView<U4>.Empty,
            Bias = bias, Y = y, M = m, N = n, K = k,
        };
        backend.LoadGrouped<Args>(Kernel<TEpilogue>)(new KernelConfig((n + WarpsPerGroup - 1) / WarpsPerGroup, WarpsPerGroup * Lanes), args);
    }
}
