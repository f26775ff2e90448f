using ILGPU;
using ILGPU.Runtime;

namespace SmoothCache.Kernels.Gpu;

/// <summary>
/// <see cref="LayerNormModulate"/> shaped for a GPU: one warp per row instead of one thread. Lane l
/// reads elements l, l + 32, ... so each load instruction of the warp is one coalesced 128-byte
/// line, and the mean and variance are summed across the warp with butterfly shuffles. Same
/// arguments and the same two-pass formula as the portable kernel (which is its reference); only
/// the order of the sums differs (the optional gated residual included: each lane updates the x
/// elements it reads). A row of [B, T, D] is one token; 8 warps (rows) per group.
/// </summary>
public static class LayerNormModulateWarp
{
    public const int WarpsPerGroup = 8;
    private const int Lanes = 32;

    public static void Kernel(LayerNormModulate.Args a)
    {
        int row = Grid.IdxX * WarpsPerGroup + Group.IdxX / Lanes;
        int lane = Group.IdxX % Lanes;
        // Whole warps leave together, so every shuffle below has all 32 lanes.
        if (row * a.D >= a.X.Length) return;
        int x0 = row * a.D;
        int m0 = (row / a.TokensPerSample) * a.ModStride;
        float sum = 0f;
        for (int d = lane; d < a.D; d += Lanes)
        {
            if (a.Residual.Length > 0) a.X[x0 + d] += a.Mod[m0 + a.GateOffset + d] * a.Residual[x0 + d];
            sum += a.X[x0 + d];
        }
        float mean = Vectors.WarpSum(sum) / a.D;
        float squares = 0f;
        for (int d = lane; d < a.D; d += Lanes)
        {
            float c = a.X[x0 + d] - mean;
            squares += c * c;
        }
        float inv = 1f / MathF.Sqrt(Vectors.WarpSum(squares) / a.D + a.Eps);
        for (int d = lane; d < a.D; d += Lanes)
            a.Y.Store(x0 + d, (a.X[x0 + d] - mean) * inv * (1f + a.Mod[m0 + a.ScaleOffset + d]) + a.Mod[m0 + a.ShiftOffset + d]);
    }

    public static KernelConfig Config(int rows) =>
        new((rows + WarpsPerGroup - 1) / WarpsPerGroup, WarpsPerGroup * Lanes);

    /// <summary>Launches over rows = X.Length / D (any accelerator with 32-lane warps).</summary>
    public static void Run(Backend backend, LayerNormModulate.Args args)
    {
        int rows = (int)(args.X.Length / args.D);
        if (rows == 0) return;
        backend.LoadGrouped<LayerNormModulate.Args>(Kernel)(Config(rows), args);
    }
}
