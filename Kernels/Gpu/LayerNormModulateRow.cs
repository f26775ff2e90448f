using ILGPU;

namespace SmoothCache.Kernels.Gpu;

/// <summary>
/// <see cref="LayerNormModulate"/> shaped for a GPU: one warp per row (a token of [B, T, D]), lane l holding the
/// row's float4s l, l + 32, .., l + 256 in registers (up to 9: D up to 1152, DiT-XL/2's width), 4 rows per group.
/// A lane issues all its loads of x and of the residual terms at once, the sums are butterfly shuffles inside the
/// warp (no shared memory, no barrier), and the modulation is loaded for the stores. The earlier shape, a group per
/// row with a float4 per thread and the sums across its 9 warps through shared memory, took 20 µs a launch at
/// DiT-XL/2 batch 16 on an H200 where moving the bytes takes ~6: 9 warps and two barriers per row let few rows be in
/// flight on a multiprocessor (BENCHMARKS.md, eleventh session); a warp per row looping over the row one float4 at
/// a time paid a latency per float4 (36 µs at batch 2 on an H100). Same formula as the portable kernel (its
/// reference): mean, then the variance about it, then the optional gated residuals applied first and written back
/// (x += gate * r, then x += gate2 * r2, stored once: a float16 x rounded there); only the order of the sums differs.
/// Takes D a multiple of 4 up to 1152 with 16-byte-aligned views (<see cref="Supports"/>); other rows use the portable
/// kernel.
/// </summary>
public static class LayerNormModulateRow
{
    private const int Lanes = 32;
    private const int WarpsPerGroup = 4;
    /// <summary>Float4s a lane holds at most.</summary>
    private const int PerLane = 9;

    /// <summary>The views as float4s and the column offsets in float4s (all divided by 4). x and its residuals are
    /// <typeparamref name="TView"/>s: float32 ones, or float16 ones on the fp16 path. Cast to float4s on the host: a view
    /// cast inside the kernel is not known to be 16-byte aligned, and ILGPU then loads each float alone.</summary>
    public struct Args<TView> where TView : struct, IFloat4View<TView>
    {
        public TView X;
        /// <summary>The residual r, or empty for a plain adaLN; then r2, added after it, or empty.</summary>
        public TView Residual, Residual2;
        public ArrayView<F4> Mod;
        public OutputView Y;
        public int Rows, Chunks, TokensPerSample, ModStride, ShiftOffset, ScaleOffset, GateOffset, Gate2Offset;
        public float Eps;
    }

    /// <summary>A lane's float4s of its row: Cj is float4 lane + 32 j.</summary>
    public struct LaneChunks
    {
        public F4 C0, C1, C2, C3, C4, C5, C6, C7, C8;
    }

    /// <summary>y and a float16 x rounded to fp16 by <typeparamref name="TRound"/>: one instance for CUDA, one elsewhere,
    /// for each type of x.</summary>
    public static void Kernel<TRound, TView>(Args<TView> a) where TRound : struct, HalfConversion.IHalfRounding where TView : struct, IFloat4View<TView>
    {
        int row = Grid.IdxX * WarpsPerGroup + (Group.IdxX >> 5);
        if (row >= a.Rows) return;
        int lane = Warp.LaneIdx;
        int x = row * a.Chunks, m = row / a.TokensPerSample * a.ModStride;
        // Every load of x and of the residual terms is issued before any is used (no store in between that
        // could alias them): a row waits for memory once.
        var v = Load(a.X, x, lane, a.Chunks);
        if (!a.Residual.IsEmpty())
        {
            v = AddGated(v, Load(new Floats(a.Mod), m + a.GateOffset, lane, a.Chunks), Load(a.Residual, x, lane, a.Chunks));
            if (!a.Residual2.IsEmpty())
                v = AddGated(v, Load(new Floats(a.Mod), m + a.Gate2Offset, lane, a.Chunks), Load(a.Residual2, x, lane, a.Chunks));
            // Normalized as stored (a float16 x rounded).
            v = Store<TRound, TView>(a.X, x, lane, a.Chunks, v);
        }
        float d = 4 * a.Chunks;
        float mean = Vectors.WarpSum(Sum(v.C0) + Sum(v.C1) + Sum(v.C2) + Sum(v.C3) + Sum(v.C4) + Sum(v.C5) + Sum(v.C6) + Sum(v.C7) + Sum(v.C8)) / d;
        // Float4s past the row are zeros, which must not count in the variance.
        float squares = Squares(v.C0, mean, lane < a.Chunks) + Squares(v.C1, mean, lane + 32 < a.Chunks)
            + Squares(v.C2, mean, lane + 64 < a.Chunks) + Squares(v.C3, mean, lane + 96 < a.Chunks)
            + Squares(v.C4, mean, lane + 128 < a.Chunks) + Squares(v.C5, mean, lane + 160 < a.Chunks)
            + Squares(v.C6, mean, lane + 192 < a.Chunks) + Squares(v.C7, mean, lane + 224 < a.Chunks)
            + Squares(v.C8, mean, lane + 256 < a.Chunks);
        float inv = 1f / MathF.Sqrt(Vectors.WarpSum(squares) / d + a.Eps);
        var scale = Load(new Floats(a.Mod), m + a.ScaleOffset, lane, a.Chunks);
        var shift = Load(new Floats(a.Mod), m + a.ShiftOffset, lane, a.Chunks);
        // y from this lane's first float4 of the row (kept inside it for a lane past a short row, which stores
        // nothing): each float4's place a constant from there.
        var y = a.Y.From(4L * (x + Math.Min(lane, a.Chunks - 1)));
        Output<TRound>(y, 0, lane < a.Chunks, v.C0, scale.C0, shift.C0, mean, inv);
        Output<TRound>(y, 1, lane + 32 < a.Chunks, v.C1, scale.C1, shift.C1, mean, inv);
        Output<TRound>(y, 2, lane + 64 < a.Chunks, v.C2, scale.C2, shift.C2, mean, inv);
        Output<TRound>(y, 3, lane + 96 < a.Chunks, v.C3, scale.C3, shift.C3, mean, inv);
        Output<TRound>(y, 4, lane + 128 < a.Chunks, v.C4, scale.C4, shift.C4, mean, inv);
        Output<TRound>(y, 5, lane + 160 < a.Chunks, v.C5, scale.C5, shift.C5, mean, inv);
        Output<TRound>(y, 6, lane + 192 < a.Chunks, v.C6, scale.C6, shift.C6, mean, inv);
        Output<TRound>(y, 7, lane + 224 < a.Chunks, v.C7, scale.C7, shift.C7, mean, inv);
        Output<TRound>(y, 8, lane + 256 < a.Chunks, v.C8, scale.C8, shift.C8, mean, inv);
    }

    /// <summary>The lane's float4s of the row of <paramref name="chunks"/> float4s at <paramref name="start"/>.</summary>
    private static LaneChunks Load<TView>(TView view, int start, int lane, int chunks) where TView : struct, IFloat4View<TView>
    {
        // Rows of whole warps' float4s (D = 1152: 9 each) from the lane's first float4, at constant offsets.
        if (chunks % Lanes == 0) return LoadWhole(view.From(start + lane), chunks / Lanes);
        LaneChunks c;
        c.C0 = Chunk(view, start, lane, chunks);
        c.C1 = Chunk(view, start, lane + 32, chunks);
        c.C2 = Chunk(view, start, lane + 64, chunks);
        c.C3 = Chunk(view, start, lane + 96, chunks);
        c.C4 = Chunk(view, start, lane + 128, chunks);
        c.C5 = Chunk(view, start, lane + 160, chunks);
        c.C6 = Chunk(view, start, lane + 192, chunks);
        c.C7 = Chunk(view, start, lane + 224, chunks);
        c.C8 = Chunk(view, start, lane + 256, chunks);
        return c;
    }

    /// <summary>Float4s 0, 32, .. of <paramref name="lane"/> (the row from this lane's first float4): the first
    /// <paramref name="count"/> (the same for every lane), zeros after them. Constant offsets fold into the loads,
    /// where a clamped index needs its own address per load.</summary>
    private static LaneChunks LoadWhole<TView>(TView lane, int count) where TView : struct, IFloat4View<TView> => new()
    {
        C0 = lane.At(0),
        C1 = count > 1 ? lane.At(32) : default,
        C2 = count > 2 ? lane.At(64) : default,
        C3 = count > 3 ? lane.At(96) : default,
        C4 = count > 4 ? lane.At(128) : default,
        C5 = count > 5 ? lane.At(160) : default,
        C6 = count > 6 ? lane.At(192) : default,
        C7 = count > 7 ? lane.At(224) : default,
        C8 = count > 8 ? lane.At(256) : default,
    };

    /// <summary>Float4 <paramref name="c"/> of the row, zeros past it. The load itself stays inside the row, so it
    /// needs no branch and all of a lane's loads can be issued together.</summary>
    private static F4 Chunk<TView>(TView view, int start, int c, int chunks) where TView : struct, IFloat4View<TView>
    {
        F4 v = view.At(start + Math.Min(c, chunks - 1));
        bool inRow = c < chunks;
        return new F4 { X = inRow ? v.X : 0f, Y = inRow ? v.Y : 0f, Z = inRow ? v.Z : 0f, W = inRow ? v.W : 0f };
    }

    /// <summary>Stores the lane's float4s of the row; returns them as stored.</summary>
    private static LaneChunks Store<TRound, TView>(TView view, int start, int lane, int chunks, LaneChunks v)
        where TRound : struct, HalfConversion.IHalfRounding where TView : struct, IFloat4View<TView>
    {
        // A lane past a short row stores nothing; its start is kept inside the row.
        var row = view.From(start + Math.Min(lane, chunks - 1));
        if (lane < chunks) v.C0 = row.Stored<TRound>(0, v.C0);
        if (lane + 32 < chunks) v.C1 = row.Stored<TRound>(32, v.C1);
        if (lane + 64 < chunks) v.C2 = row.Stored<TRound>(64, v.C2);
        if (lane + 96 < chunks) v.C3 = row.Stored<TRound>(96, v.C3);
        if (lane + 128 < chunks) v.C4 = row.Stored<TRound>(128, v.C4);
        if (lane + 160 < chunks) v.C5 = row.Stored<TRound>(160, v.C5);
        if (lane + 192 < chunks) v.C6 = row.Stored<TRound>(192, v.C6);
        if (lane + 224 < chunks) v.C7 = row.Stored<TRound>(224, v.C7);
        if (lane + 256 < chunks) v.C8 = row.Stored<TRound>(256, v.C8);
        return v;
    }

    private static LaneChunks AddGated(LaneChunks v, LaneChunks gate, LaneChunks r)
    {
        v.C0 = AddGated(v.C0, gate.C0, r.C0);
        v.C1 = AddGated(v.C1, gate.C1, r.C1);
        v.C2 = AddGated(v.C2, gate.C2, r.C2);
        v.C3 = AddGated(v.C3, gate.C3, r.C3);
        v.C4 = AddGated(v.C4, gate.C4, r.C4);
        v.C5 = AddGated(v.C5, gate.C5, r.C5);
        v.C6 = AddGated(v.C6, gate.C6, r.C6);
        v.C7 = AddGated(v.C7, gate.C7, r.C7);
        v.C8 = AddGated(v.C8, gate.C8, r.C8);
        return v;
    }

    private static F4 AddGated(F4 v, F4 gate, F4 r) =>
        new() { X = v.X + gate.X * r.X, Y = v.Y + gate.Y * r.Y, Z = v.Z + gate.Z * r.Z, W = v.W + gate.W * r.W };

    private static float Sum(F4 v) => v.X + v.Y + v.Z + v.W;

    private static float Squares(F4 v, float mean, bool inRow)
    {
        float ex = v.X - mean, ey = v.Y - mean, ez = v.Z - mean, ew = v.W - mean;
        return inRow ? ex * ex + ey * ey + ez * ez + ew * ew : 0f;
    }

    /// <summary>The lane's float4 j of its row (float4 lane + 32 j) into y, which starts at the lane's first one, if
    /// it is inside the row.</summary>
    private static void Output<TRound>(OutputView y, int j, bool inRow, F4 v, F4 scale, F4 shift, float mean, float inv)
        where TRound : struct, HalfConversion.IHalfRounding
    {
        if (!inRow) return;
        y.StorePair<TRound>(128 * j, (v.X - mean) * inv * (1f + scale.X) + shift.X, (v.Y - mean) * inv * (1f + scale.Y) + shift.Y);
        y.StorePair<TRound>(128 * j + 2, (v.Z - mean) * inv * (1f + scale.Z) + shift.Z, (v.W - mean) * inv * (1f + scale.W) + shift.W);
    }

    /// <summary>Whether this kernel takes these arguments: D a multiple of 4 up to 1152, every view starting
    /// at a multiple of 4 elements (16-byte float4s) and y at an even one (paired stores).</summary>
    public static bool Supports(LayerNormModulate.Args a) =>
        a.D % 4 == 0 && a.D / 4 <= Lanes * PerLane && a.ModStride % 4 == 0
        && new[] { a.ShiftOffset, a.ScaleOffset, a.GateOffset, a.Gate2Offset }.All(o => o % 4 == 0)
        && Vectors.Float4Aligned(a.Mod) && a.X.AsInput.Float4Aligned && a.Residual.Float4Aligned && a.Residual2.Float4Aligned
        && a.Y.PairsAligned;

    /// <summary>Launches over rows = X.Length / D (any accelerator with 32-lane warps): a warp per row.</summary>
    public static void Run(Backend backend, LayerNormModulate.Args a)
    {
        if (!Supports(a))
            throw new ArgumentException($"LayerNormModulateRow: D={a.D}, mod stride {a.ModStride} or the views' offsets are not multiples of 4 (or D > {4 * Lanes * PerLane})");
        int rows = (int)(a.X.Length / a.D);
        if (rows == 0) return;
        var x = a.X.AsInput;
        bool halves = x.F16.Length > 0;
        if (new[] { a.Residual, a.Residual2 }.Any(r => !r.IsEmpty && r.F16.Length > 0 != halves))
            throw new ArgumentException($"LayerNormModulateRow: the residuals are not of x's type ({(halves ? "float16" : "float32")})");
        if (halves) Launch(backend, a, rows, x.AsHalves(), a.Residual.AsHalves(), a.Residual2.AsHalves());
        else Launch(backend, a, rows, x.AsFloats(), a.Residual.AsFloats(), a.Residual2.AsFloats());
    }

    private static void Launch<TView>(Backend backend, LayerNormModulate.Args a, int rows, TView x, TView residual, TView residual2)
        where TView : struct, IFloat4View<TView>
    {
        var args = new Args<TView>
        {
            X = x, Residual = residual, Residual2 = residual2, Mod = a.Mod.Cast<F4>(),
            Y = a.Y, Rows = rows, Chunks = a.D / 4, TokensPerSample = a.TokensPerSample, ModStride = a.ModStride / 4,
            ShiftOffset = a.ShiftOffset / 4, ScaleOffset = a.ScaleOffset / 4, GateOffset = a.GateOffset / 4,
            Gate2Offset = a.Gate2Offset / 4, Eps = a.Eps,
        };
        var kernel = backend.IsCuda ? backend.LoadGrouped<Args<TView>>(Kernel<HalfConversion.CudaRounding, TView>)
            : backend.LoadGrouped<Args<TView>>(Kernel<HalfConversion.PortableRounding, TView>);
        kernel(new KernelConfig((rows + WarpsPerGroup - 1) / WarpsPerGroup, WarpsPerGroup * Lanes), args);
    }
}
