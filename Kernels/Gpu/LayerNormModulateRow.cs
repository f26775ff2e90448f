using ILGPU;
using ILGPU.Runtime;

namespace SmoothCache.Kernels.Gpu;

/// <summary>
/// <see cref="LayerNormModulate"/> shaped for a GPU: one group per row (a token of [B, T, D]), thread c
/// holding the row's float4 c in registers. Every thread issues all its loads (x, the residual and the
/// modulation) at once, so a row costs one memory latency, two group sums of one barrier each and the
/// stores (the modulation loaded after the sums and a second barrier per sum: 20 µs a launch at DiT-XL/2
/// batch 16 on an H200, where moving the bytes takes ~6; a warp per row looping over D / 32 elements paid a
/// latency per element: 36 µs a launch for DiT-XL/2 at batch 2 on an H100; a group per row re-reading
/// x in each pass, 63 µs at batch 16). The sums go across each warp by butterfly shuffles, then across
/// the group's warps through shared memory. Same formula as the portable kernel (its reference): mean,
/// then the variance about it, then the optional gated residuals applied first and written back
/// (x += gate * r, then x += gate2 * r2); only the order of the sums differs. Takes D a multiple of 4 up to 4096 with
/// 16-byte-aligned views (<see cref="Supports"/>); other rows use the portable kernel.
/// </summary>
public static class LayerNormModulateRow
{
    private const int Lanes = 32;
    private const int MaxThreads = 1024;

    /// <summary>The views as float4s and the column offsets in float4s (all divided by 4).</summary>
    public struct Args
    {
        public ArrayView<F4> X, Mod;
        /// <summary>The residual r, or empty for a plain adaLN; then r2, added after it, or empty.</summary>
        public ArrayView<F4> Residual, Residual2;
        public OutputView Y;
        public int Chunks, TokensPerSample, ModStride, ShiftOffset, ScaleOffset, GateOffset, Gate2Offset;
        public float Eps;
    }

    public static void Kernel(Args a)
    {
        // Two slots per warp: each of the two sums has its own, so neither needs a barrier after its reads.
        var warpSums = SharedMemory.Allocate<float>(2 * MaxThreads / Lanes);
        int c = Group.IdxX;
        bool mine = c < a.Chunks;
        int x = Grid.IdxX * a.Chunks + c;
        int m = Grid.IdxX / a.TokensPerSample * a.ModStride + c;
        float d = 4 * a.Chunks;
        // Every load is issued before the first sum, the modulation's too: a row then waits for memory once.
        F4 v = default, scale = default, shift = default;
        if (mine)
        {
            v = a.X[x];
            scale = a.Mod[m + a.ScaleOffset];
            shift = a.Mod[m + a.ShiftOffset];
            if (a.Residual.Length > 0)
            {
                v = AddGated(v, a.Mod[m + a.GateOffset], a.Residual[x]);
                if (a.Residual2.Length > 0) v = AddGated(v, a.Mod[m + a.Gate2Offset], a.Residual2[x]);
                a.X[x] = v;
            }
        }
        float mean = GroupSum(v.X + v.Y + v.Z + v.W, warpSums, 0) / d;
        // Threads past the row hold zeros, which must not count in the variance.
        var e = mine ? new F4 { X = v.X - mean, Y = v.Y - mean, Z = v.Z - mean, W = v.W - mean } : default;
        float inv = 1f / MathF.Sqrt(GroupSum(e.X * e.X + e.Y * e.Y + e.Z * e.Z + e.W * e.W, warpSums, MaxThreads / Lanes) / d + a.Eps);
        if (!mine) return;
        a.Y.StorePair(4 * x, e.X * inv * (1f + scale.X) + shift.X, e.Y * inv * (1f + scale.Y) + shift.Y);
        a.Y.StorePair(4 * x + 2, e.Z * inv * (1f + scale.Z) + shift.Z, e.W * inv * (1f + scale.W) + shift.W);
    }

    private static F4 AddGated(F4 v, F4 gate, F4 r) =>
        new() { X = v.X + gate.X * r.X, Y = v.Y + gate.Y * r.Y, Z = v.Z + gate.Z * r.Z, W = v.W + gate.W * r.W };

    /// <summary>The sum of v over the group, in every thread (the group is whole warps), through the
    /// warps' slots from <paramref name="slot0"/> on.</summary>
    private static float GroupSum(float v, ArrayView<float> warpSums, int slot0)
    {
        v = Vectors.WarpSum(v);
        if (Group.IdxX % Lanes == 0) warpSums[slot0 + Group.IdxX / Lanes] = v;
        Group.Barrier();
        float total = 0f;
        for (int w = 0; w < Group.DimX / Lanes; w++) total += warpSums[slot0 + w];
        return total;
    }

    /// <summary>Whether this kernel takes these arguments: D a multiple of 4 up to 4096, every view starting
    /// at a multiple of 4 elements (16-byte float4s) and y at an even one (paired stores).</summary>
    public static bool Supports(LayerNormModulate.Args a) =>
        a.D % 4 == 0 && a.D / 4 <= MaxThreads && a.ModStride % 4 == 0
        && new[] { a.ShiftOffset, a.ScaleOffset, a.GateOffset, a.Gate2Offset }.All(o => o % 4 == 0)
        && Vectors.Float4Aligned(a.X, a.Mod, a.Residual, a.Residual2) && a.Y.PairsAligned;

    /// <summary>Threads per row: whole warps, one per float4 of the row.</summary>
    public static int Threads(int d) => (d / 4 + Lanes - 1) / Lanes * Lanes;

    /// <summary>Launches over rows = X.Length / D (any accelerator with 32-lane warps).</summary>
    public static void Run(Backend backend, LayerNormModulate.Args a)
    {
        if (!Supports(a))
            throw new ArgumentException($"LayerNormModulateRow: D={a.D}, mod stride {a.ModStride} or the views' offsets are not multiples of 4 (or D > {4 * MaxThreads})");
        int rows = (int)(a.X.Length / a.D);
        if (rows == 0) return;
        var args = new Args
        {
            X = a.X.Cast<F4>(), Mod = a.Mod.Cast<F4>(), Residual = a.Residual.Length > 0 ? a.Residual.Cast<F4>() : ArrayView<F4>.Empty,
            Residual2 = a.Residual2.Length > 0 ? a.Residual2.Cast<F4>() : ArrayView<F4>.Empty,
            Y = a.Y, Chunks = a.D / 4, TokensPerSample = a.TokensPerSample, ModStride = a.ModStride / 4,
            ShiftOffset = a.ShiftOffset / 4, ScaleOffset = a.ScaleOffset / 4, GateOffset = a.GateOffset / 4,
            Gate2Offset = a.Gate2Offset / 4, Eps = a.Eps,
        };
        backend.LoadGrouped<Args>(Kernel)(new KernelConfig(rows, Threads(a.D)), args);
    }
}
