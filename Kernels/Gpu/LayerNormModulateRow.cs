using ILGPU;
using ILGPU.Runtime;

namespace SmoothCache.Kernels.Gpu;

/// <summary>
/// <see cref="LayerNormModulate"/> shaped for a GPU: one group per row (a token of [B, T, D]), each
/// thread taking at most a few elements (elements t, t + G, ... for a group of G threads), so every
/// pass over the row costs each thread one or two memory latencies instead of D / 32 in a row, as a
/// warp per row did (DiT-XL/2's adaLN took 36 µs a launch at batch 2 that way on an H100).
/// Loads stay coalesced (consecutive threads, consecutive elements). The mean and the variance are
/// summed across each warp with butterfly shuffles, then across the group's warps through shared
/// memory. Same arguments and the same two-pass formula as the portable kernel (its reference);
/// only the order of the sums differs (the optional gated residual included: each thread updates
/// the x elements it reads).
/// </summary>
public static class LayerNormModulateRow
{
    private const int Lanes = 32;
    private const int MaxThreads = 1024;

    public static void Kernel(LayerNormModulate.Args a)
    {
        var warpSums = SharedMemory.Allocate<float>(MaxThreads / Lanes);
        int x0 = Grid.IdxX * a.D;
        int m0 = Grid.IdxX / a.TokensPerSample * a.ModStride;
        float sum = 0f;
        for (int d = Group.IdxX; d < a.D; d += Group.DimX)
        {
            if (a.Residual.Length > 0) a.X[x0 + d] += a.Mod[m0 + a.GateOffset + d] * a.Residual[x0 + d];
            sum += a.X[x0 + d];
        }
        float mean = GroupSum(sum, warpSums) / a.D;
        float squares = 0f;
        for (int d = Group.IdxX; d < a.D; d += Group.DimX)
        {
            float c = a.X[x0 + d] - mean;
            squares += c * c;
        }
        float inv = 1f / MathF.Sqrt(GroupSum(squares, warpSums) / a.D + a.Eps);
        for (int d = Group.IdxX; d < a.D; d += Group.DimX)
            a.Y.Store(x0 + d, (a.X[x0 + d] - mean) * inv * (1f + a.Mod[m0 + a.ScaleOffset + d]) + a.Mod[m0 + a.ShiftOffset + d]);
    }

    /// <summary>The sum of v over the group, in every thread (the group is whole warps).</summary>
    private static float GroupSum(float v, ArrayView<float> warpSums)
    {
        v = Vectors.WarpSum(v);
        if (Group.IdxX % Lanes == 0) warpSums[Group.IdxX / Lanes] = v;
        Group.Barrier();
        float total = 0f;
        for (int w = 0; w < Group.DimX / Lanes; w++) total += warpSums[w];
        // warpSums is written again by the next sum.
        Group.Barrier();
        return total;
    }

    /// <summary>Threads per row: whole warps, as few elements per thread as 1024 threads allow, and
    /// the same number for every thread (1152 -> 576 threads of 2).</summary>
    public static int Threads(int d)
    {
        int perThread = (d + MaxThreads - 1) / MaxThreads;
        int threads = (d + perThread - 1) / perThread;
        return (threads + Lanes - 1) / Lanes * Lanes;
    }

    /// <summary>Launches over rows = X.Length / D (any accelerator with 32-lane warps).</summary>
    public static void Run(Backend backend, LayerNormModulate.Args args)
    {
        int rows = (int)(args.X.Length / args.D);
        if (rows == 0) return;
        backend.LoadGrouped<LayerNormModulate.Args>(Kernel)(new KernelConfig(rows, Threads(args.D)), args);
    }
}
