using ILGPU;
using ILGPU.Runtime;

namespace SmoothCache.Kernels.Gpu;

/// <summary>
/// y = epilogue(x W^T + b) for at most 16 rows of fp16 x and an fp16 W [N, K] on tensor cores, without shared memory:
/// the conditioning GEMMs (DiT-XL/2's stacked adaLN projection, [2 or 16, 1152] x [195840, 1152]: 446 MB of weights read
/// once), where the TMA GEMM's 128-row tiles reached ~2 TB/s and cuBLAS ~4 on an H200 (BENCHMARKS.md, seventeenth
/// session). A warp takes 32 columns (4 mma tiles of 8) over all of K, 32 deep at a time: lane (g = lane / 4,
/// t = lane % 4) loads 16 bytes, K 8t..8t + 7, of x rows g and g + 8 and of W rows n0 + 8j + g, and issues two
/// <c>mma.sync.m16n8k16</c> per tile with those registers as its fragments. That pairs K differently from the
/// instruction's own order (a lane's fragment pairs (2t, 2t + 1) and (2t + 8, 2t + 9) hold K 8t + 4s + 0..3 in step s),
/// but the same way in x and W, so each product still sums every K once: each 32-byte sector of W is read whole by
/// one load. Rows past M are zeros. K a multiple of 32, N even, y pairs aligned (<see cref="Supports"/>); the reference is
/// <see cref="LinearSkinny"/> (or the portable GEMM). On an H200 (DiT-XL/2's adaLN GEMM in a forward) 0.208 ms at 2 rows
/// and 0.219 at 16, against the TMA GEMM's 0.240 and 0.223: still ~2.1 TB/s, as the mma.sync GEMM's 0.203 / 0.210 in the
/// kernel bench; it is the default (<see cref="Backend.SkinnyOnTensorCores"/>).
/// </summary>
public static class LinearSkinnyTensorCore
{
    public const int MaxRows = 16;
    /// <summary>K per loop step: 4 lanes x 8 halves.</summary>
    public const int Depth = 32;
    private const int ColumnsPerWarp = 32;
    private const int WarpsPerGroup = 4;

    public struct Args
    {
        /// <summary>x [M, K] and W [N, K] as groups of 8 halves.</summary>
        public ArrayView<U4> X, W;
        public ArrayView<float> Bias;
        public OutputView Y;
        public int M, N, K;
    }

    /// <summary>The A fragment of step <paramref name="s"/> from a lane's 16 bytes of x rows g and g + 8.</summary>
    private static U4 A(U4 upper, U4 lower, int s) => s == 0
        ? new U4 { X = upper.X, Y = lower.X, Z = upper.Y, W = lower.Y }
        : new U4 { X = upper.Z, Y = lower.Z, Z = upper.W, W = lower.W };

    /// <summary>The B fragment of step <paramref name="s"/> from a lane's 16 bytes of a W row.</summary>
    private static U2 B(U4 w, int s) => s == 0 ? new U2 { X = w.X, Y = w.Y } : new U2 { X = w.Z, Y = w.W };

    /// <summary>c + the tile's two steps: x's 32 deep by this W row's.</summary>
    private static F4 Tile<TPath>(F4 c, U4 upper, U4 lower, U4 w) where TPath : struct, TensorCore.IWarpPath
    {
        var path = default(TPath);
        c = path.Mma(c, A(upper, lower, 0), B(w, 0));
        return path.Mma(c, A(upper, lower, 1), B(w, 1));
    }

    /// <summary>The warp's 16-byte group at K chunk <paramref name="chunk"/> of row <paramref name="row"/>, zeros for a row
    /// past <paramref name="rows"/> (loaded from row 0 so no load leaves the tensor).</summary>
    private static U4 Load(ArrayView<U4> view, int row, int rows, int chunksPerRow, int chunk)
    {
        U4 v = view[(row < rows ? row : 0) * chunksPerRow + chunk];
        return row < rows ? v : default;
    }

    /// <summary>Columns n and n + 1 of rows g and g + 8 from tile accumulators c (bias added, epilogue applied) where
    /// inside y.</summary>
    private static void Store<TEpilogue, TPath>(Args a, F4 c, int g, int n) where TEpilogue : struct, IEpilogue
        where TPath : struct, TensorCore.IWarpPath
    {
        if (n >= a.N) return;
        float b0 = a.Bias.Length > 0 ? a.Bias[n] : 0f, b1 = a.Bias.Length > 0 ? a.Bias[n + 1] : 0f;
        var epilogue = default(TEpilogue);
        if (g < a.M) a.Y.StorePair<TPath>((long)g * a.N + n, epilogue.Apply(c.X + b0), epilogue.Apply(c.Y + b1));
        if (g + 8 < a.M) a.Y.StorePair<TPath>((long)(g + 8) * a.N + n, epilogue.Apply(c.Z + b0), epilogue.Apply(c.W + b1));
    }

    public static void Kernel<TEpilogue, TPath>(Args a) where TEpilogue : struct, IEpilogue where TPath : struct, TensorCore.IWarpPath
    {
        int n0 = (Grid.IdxX * WarpsPerGroup + (Group.IdxX >> 5)) * ColumnsPerWarp;
        // Whole warps leave together: every mma below has all 32 lanes.
        if (n0 >= a.N) return;
        int lane = Warp.LaneIdx, g = lane >> 2, t = lane & 3;
        int chunks = a.K >> 3;
        // This lane's W rows, one per tile (a row past N reads row N - 1; its columns are not stored).
        int w0 = Math.Min(n0 + g, a.N - 1), w1 = Math.Min(n0 + 8 + g, a.N - 1);
        int w2 = Math.Min(n0 + 16 + g, a.N - 1), w3 = Math.Min(n0 + 24 + g, a.N - 1);
        F4 c0 = default, c1 = default, c2 = default, c3 = default;
        for (int chunk = t; chunk < chunks; chunk += 4)
        {
            // Every load of the step first: the warp waits for memory once per 32 deep.
            U4 upper = Load(a.X, g, a.M, chunks, chunk), lower = Load(a.X, g + 8, a.M, chunks, chunk);
            U4 v0 = a.W[w0 * chunks + chunk], v1 = a.W[w1 * chunks + chunk], v2 = a.W[w2 * chunks + chunk], v3 = a.W[w3 * chunks + chunk];
            c0 = Tile<TPath>(c0, upper, lower, v0);
            c1 = Tile<TPath>(c1, upper, lower, v1);
            c2 = Tile<TPath>(c2, upper, lower, v2);
            c3 = Tile<TPath>(c3, upper, lower, v3);
        }
        Store<TEpilogue, TPath>(a, c0, g, n0 + 2 * t);
        Store<TEpilogue, TPath>(a, c1, g, n0 + 8 + 2 * t);
        Store<TEpilogue, TPath>(a, c2, g, n0 + 16 + 2 * t);
        Store<TEpilogue, TPath>(a, c3, g, n0 + 24 + 2 * t);
    }

    /// <summary>Why these operands do not suit the kernel, or null: at most 16 rows, K a multiple of 32, N even, the views
    /// starting at whole 16-byte groups and y at an even element.</summary>
    public static string? Unsupported(int m, int n, int k, ArrayView<ILGPU.Half> x, OutputView y) =>
        m is <= 0 or > MaxRows ? $"M={m} is not 1 to {MaxRows}"
        : k % Depth != 0 ? $"K={k} is not a multiple of {Depth}"
        : n % 2 != 0 ? $"N={n} is odd"
        : (long)n * k > int.MaxValue ? $"N={n}, K={k} overflow 32-bit indexing"
        : ((IContiguousArrayView)x).Index % 8 != 0 ? "x does not start at a 16-byte group"
        : !y.PairsAligned ? "y does not start at an even element"
        : null;

    public static bool Supports(int m, int n, int k, ArrayView<ILGPU.Half> x, OutputView y) => Unsupported(m, n, k, x, y) is null;

    /// <summary>x fp16 [M, K] (M at most 16), w a Float16 tensor [N, K]; y written through an output view.</summary>
    public static void Run<TEpilogue>(Backend backend, ArrayView<ILGPU.Half> x, Tensor w, ArrayView<float> bias, OutputView y, int m)
        where TEpilogue : struct, IEpilogue
    {
        int n = w.Dim(0), k = w.Dim(1);
        if (w.DType != DType.Float16) throw new ArgumentException($"LinearSkinnyTensorCore: weight {w.ShapeText} is {w.DType}, not Float16");
        if (Unsupported(m, n, k, x, y) is { } why) throw new ArgumentException($"LinearSkinnyTensorCore: {why}");
        var args = new Args
        {
            X = x.SubView(0, (long)m * k).Cast<U4>(), W = w.HalfView.Cast<U4>(), Bias = bias, Y = y, M = m, N = n, K = k,
        };
        int warps = (n + ColumnsPerWarp - 1) / ColumnsPerWarp;
        var kernel = backend.IsCuda
            ? backend.LoadGrouped<Args>(Kernel<TEpilogue, TensorCore.PtxPath>)
            : backend.LoadGrouped<Args>(Kernel<TEpilogue, TensorCore.EmulatedPath>);
        kernel(new KernelConfig((warps + WarpsPerGroup - 1) / WarpsPerGroup, WarpsPerGroup * 32), args);
    }
}
