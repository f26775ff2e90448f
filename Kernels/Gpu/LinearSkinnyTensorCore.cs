using ILGPU;

namespace SmoothCache.Kernels.Gpu;

/// <summary>
/// y = epilogue(x W^T + b) for at most 16 rows of fp16 x and an fp16 W [N, K] on tensor cores, without shared memory:
/// the conditioning GEMMs (DiT-XL/2's stacked adaLN projection, [2 or 16, 1152] x [195840, 1152]: 446 MB of weights read
/// once), where the TMA GEMM's 128-row tiles reached ~2 TB/s and cuBLAS ~4 on an H200 (BENCHMARKS.md, seventeenth
/// session). A warp takes 8, 16 or 32 columns (1, 2 or 4 mma tiles of 8; <see cref="IWarpShape"/>) over all of K, 128,
/// 64 or 32 deep at a time (4 loads of W a step whatever the shape): lane (g = lane / 4, t = lane % 4) loads 16 bytes,
/// K 8t..8t + 7 of each 32 deep, of x rows g and g + 8 and of W rows n0 + 8j + g, and issues two
/// <c>mma.sync.m16n8k16</c> per tile and 32 deep with those registers as its fragments. That pairs K differently from the
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
    /// <summary>K per load of a W row: 4 lanes x 8 halves.</summary>
    public const int Depth = 32;
    private const int WarpsPerGroup = 4;

    /// <summary>
    /// How a warp walks W: <see cref="Tiles"/> tiles of 8 columns, <see cref="Steps"/> x 32 deep per loop step, 4 loads of
    /// W a step either way. Every W-reading kernel of ours ran near 2.1 TB/s on the 446 MB conditioning weight, cuBLAS
    /// near 4 (seventeenth session), and all of them read each W row 64 bytes at a time, 2,304 bytes apart; with fewer
    /// columns and more depth a warp reads 128 or 256 contiguous bytes of each of its rows per step. Which reads DRAM
    /// faster is for the device to say (<c>bench --suite kernels</c> times each; <see cref="Backend.SkinnyColumns"/>).
    /// </summary>
    public interface IWarpShape
    {
        int Tiles();
        int Steps();
    }

    /// <summary>32 columns, 32 deep a step (the shape timed on an H200 in the seventeenth session).</summary>
    public readonly struct Columns32 : IWarpShape { public int Tiles() => 4; public int Steps() => 1; }
    /// <summary>16 columns, 64 deep a step.</summary>
    public readonly struct Columns16 : IWarpShape { public int Tiles() => 2; public int Steps() => 2; }
    /// <summary>8 columns, 128 deep a step.</summary>
    public readonly struct Columns8 : IWarpShape { public int Tiles() => 1; public int Steps() => 4; }

    /// <summary>The columns per warp a shape type has (8, 16 or 32).</summary>
    public static int ColumnsOf<TShape>() where TShape : struct, IWarpShape => 8 * default(TShape).Tiles();

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

    /// <summary>A lane's 16 bytes of x rows g (upper) and g + 8 (lower) for each 32 deep of a loop step (up to 4).</summary>
    private struct XSteps
    {
        public U4 Upper0, Lower0, Upper1, Lower1, Upper2, Lower2, Upper3, Lower3;
    }

    private static XSteps LoadX(Args a, int g, int chunks, int chunk, int steps) => new()
    {
        Upper0 = Load(a.X, g, a.M, chunks, chunk), Lower0 = Load(a.X, g + 8, a.M, chunks, chunk),
        Upper1 = steps > 1 ? Load(a.X, g, a.M, chunks, chunk + 4) : default, Lower1 = steps > 1 ? Load(a.X, g + 8, a.M, chunks, chunk + 4) : default,
        Upper2 = steps > 2 ? Load(a.X, g, a.M, chunks, chunk + 8) : default, Lower2 = steps > 2 ? Load(a.X, g + 8, a.M, chunks, chunk + 8) : default,
        Upper3 = steps > 3 ? Load(a.X, g, a.M, chunks, chunk + 12) : default, Lower3 = steps > 3 ? Load(a.X, g + 8, a.M, chunks, chunk + 12) : default,
    };

    /// <summary>c + the products of load <paramref name="i"/>'s W row with x, when that load is of tile <paramref name="tile"/>
    /// (load i of a step reads tile i / steps, 32 deep at (i % steps) x 32 into the step).</summary>
    private static F4 TileOfLoad<TPath>(F4 c, int tile, int i, int steps, U4 w, XSteps x) where TPath : struct, TensorCore.IWarpPath
    {
        if (i / steps != tile) return c;
        return (i % steps) switch
        {
            0 => Tile<TPath>(c, x.Upper0, x.Lower0, w),
            1 => Tile<TPath>(c, x.Upper1, x.Lower1, w),
            2 => Tile<TPath>(c, x.Upper2, x.Lower2, w),
            _ => Tile<TPath>(c, x.Upper3, x.Lower3, w),
        };
    }

    public static void Kernel<TEpilogue, TPath, TShape>(Args a) where TEpilogue : struct, IEpilogue where TPath : struct, TensorCore.IWarpPath
        where TShape : struct, IWarpShape
    {
        int tiles = default(TShape).Tiles(), steps = default(TShape).Steps();
        int n0 = (Grid.IdxX * WarpsPerGroup + (Group.IdxX >> 5)) * 8 * tiles;
        // Whole warps leave together: every mma below has all 32 lanes.
        if (n0 >= a.N) return;
        int lane = Warp.LaneIdx, g = lane >> 2, t = lane & 3;
        int chunks = a.K >> 3;
        // Load i of a step: its W row (a row past N reads row N - 1; its columns are not stored) and its K offset in
        // 16-byte chunks.
        int r0 = Math.Min(n0 + 8 * (0 / steps) + g, a.N - 1) * chunks + 4 * (0 % steps);
        int r1 = Math.Min(n0 + 8 * (1 / steps) + g, a.N - 1) * chunks + 4 * (1 % steps);
        int r2 = Math.Min(n0 + 8 * (2 / steps) + g, a.N - 1) * chunks + 4 * (2 % steps);
        int r3 = Math.Min(n0 + 8 * (3 / steps) + g, a.N - 1) * chunks + 4 * (3 % steps);
        F4 c0 = default, c1 = default, c2 = default, c3 = default;
        for (int chunk = t; chunk < chunks; chunk += 4 * steps)
        {
            // Every load of the step first: the warp waits for memory once per step.
            var x = LoadX(a, g, chunks, chunk, steps);
            U4 v0 = a.W[r0 + chunk], v1 = a.W[r1 + chunk], v2 = a.W[r2 + chunk], v3 = a.W[r3 + chunk];
            // Load i may be of tile 0 .. i (tile i when a step is 32 deep, tile 0 when it is 128).
            c0 = TileOfLoad<TPath>(c0, 0, 0, steps, v0, x);
            c0 = TileOfLoad<TPath>(c0, 0, 1, steps, v1, x);
            c1 = TileOfLoad<TPath>(c1, 1, 1, steps, v1, x);
            c0 = TileOfLoad<TPath>(c0, 0, 2, steps, v2, x);
            c1 = TileOfLoad<TPath>(c1, 1, 2, steps, v2, x);
            c2 = TileOfLoad<TPath>(c2, 2, 2, steps, v2, x);
            c0 = TileOfLoad<TPath>(c0, 0, 3, steps, v3, x);
            c1 = TileOfLoad<TPath>(c1, 1, 3, steps, v3, x);
            c3 = TileOfLoad<TPath>(c3, 3, 3, steps, v3, x);
        }
        Store<TEpilogue, TPath>(a, c0, g, n0 + 2 * t);
        if (tiles > 1) Store<TEpilogue, TPath>(a, c1, g, n0 + 8 + 2 * t);
        if (tiles > 2) Store<TEpilogue, TPath>(a, c2, g, n0 + 16 + 2 * t);
        if (tiles > 3) Store<TEpilogue, TPath>(a, c3, g, n0 + 24 + 2 * t);
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

    /// <summary>The columns per warp a GEMM of depth <paramref name="k"/> takes when <paramref name="columns"/> (8, 16 or 32)
    /// are asked for: those, if K is a whole number of their steps (128 or 64 deep for 8 or 16), else 32.</summary>
    public static int ColumnsFor(int columns, int k) => columns is 8 or 16 && k % (Depth * 32 / columns) == 0 ? columns : 32;

    /// <summary>x fp16 [M, K] (M at most 16), w a Float16 tensor [N, K]; y written through an output view; each warp takes
    /// <see cref="ColumnsFor"/> the backend's <see cref="Backend.SkinnyColumns"/>.</summary>
    public static void Run<TEpilogue>(Backend backend, ArrayView<ILGPU.Half> x, Tensor w, ArrayView<float> bias, OutputView y, int m)
        where TEpilogue : struct, IEpilogue
    {
        switch (ColumnsFor(backend.SkinnyColumns, w.Dim(1)))
        {
            case 8: Run<TEpilogue, Columns8>(backend, x, w, bias, y, m); break;
            case 16: Run<TEpilogue, Columns16>(backend, x, w, bias, y, m); break;
            default: Run<TEpilogue, Columns32>(backend, x, w, bias, y, m); break;
        }
    }

    /// <summary><see cref="Run{TEpilogue}"/> in warps of <typeparamref name="TShape"/> (K a whole number of its steps).</summary>
    public static void Run<TEpilogue, TShape>(Backend backend, ArrayView<ILGPU.Half> x, Tensor w, ArrayView<float> bias, OutputView y, int m)
        where TEpilogue : struct, IEpilogue where TShape : struct, IWarpShape
    {
        int n = w.Dim(0), k = w.Dim(1), columns = ColumnsOf<TShape>();
        if (w.DType != DType.Float16) throw new ArgumentException($"LinearSkinnyTensorCore: weight {w.ShapeText} is {w.DType}, not Float16");
        if (Unsupported(m, n, k, x, y) is { } why) throw new ArgumentException($"LinearSkinnyTensorCore: {why}");
        if (ColumnsFor(columns, k) != columns)
            throw new ArgumentException($"LinearSkinnyTensorCore: K={k} is not a multiple of {Depth * default(TShape).Steps()} ({columns} columns a warp)");
        var args = new Args
        {
            X = x.SubView(0, (long)m * k).Cast<U4>(), W = w.HalfView.Cast<U4>(), Bias = bias, Y = y, M = m, N = n, K = k,
        };
        int warps = (n + columns - 1) / columns;
        var kernel = backend.IsCuda
            ? backend.LoadGrouped<Args>(Kernel<TEpilogue, TensorCore.PtxPath, TShape>)
            : backend.LoadGrouped<Args>(Kernel<TEpilogue, TensorCore.EmulatedPath, TShape>);
        kernel(new KernelConfig((warps + WarpsPerGroup - 1) / WarpsPerGroup, WarpsPerGroup * 32), args);
    }
}
