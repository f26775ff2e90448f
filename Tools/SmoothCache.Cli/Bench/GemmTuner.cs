using ILGPU;
using SmoothCache.Kernels;
using SmoothCache.Kernels.Gpu;
using SmoothCache.Model;

namespace SmoothCache.Cli.Bench;

/// <summary>One launch of a GEMM shape the tuner tried: variant (empty for a kernel without variants), split and head
/// rows (<see cref="SplitK.HeadRows"/>; 0: none), its error against float64 at sampled outputs, and its device time per
/// call (NaN where it failed).</summary>
public sealed record TunedCandidate(int M, int N, int K, string Variant, int Splits, bool BuiltIn, double RelativeError, double Milliseconds,
    int HeadRows = 0)
{
    public bool Passed => RelativeError <= GemmTuner.Tolerance;
}

/// <summary>A GEMM shape to tune as a forward runs it: M x N x K, its epilogue (GELU for fc1) and whether it writes fp16
/// (qkv and fc1 do, for the kernels after them).</summary>
public readonly record struct TunedShape(int M, int N, int K, Type Epilogue, bool Fp16Output)
{
    public override string ToString() => $"{M} x {N} x {K}";
}

/// <summary>What the tuner tries per shape: these TMA GEMM variants (ignored for other kernels) at these splits along K.</summary>
public sealed record GemmTunerSettings(IReadOnlyList<LinearWgmmaTma.Variant> Variants, IReadOnlyList<int> Splits, int Iterations);

/// <summary>
/// Chooses, per fp16 GEMM shape of a model's forward, the TMA GEMM variant and split along K that take the least
/// device time (<see cref="GemmTuning"/>, for <c>smoothcache tune</c>). Each candidate is first checked against float64
/// (fp16-rounded inputs, no epilogue, float32 output) at one output in every 128 x 128 tile and 256 more; one that fails
/// is never chosen. Then it is timed as a forward meets it: with the forward's epilogue, bias and output type, x as the
/// kernel before left it (in L2), W from device memory (each call takes the next of enough copies of W to pass any L2),
/// device time from events around each call with the device kept busy (the kernel profile). The built-in choice stays
/// unless a candidate is <see cref="MinGain"/> faster.
/// </summary>
public static class GemmTuner
{
    /// <summary>As the float64 GEMM checks (GpuChecks): fp16 inputs, float32 sums.</summary>
    public const double Tolerance = 1e-5;

    /// <summary>The least gain (a fraction of the built-in choice's time) that replaces it: below that, timing noise.</summary>
    public const double MinGain = 0.02;

    public static readonly int[] DefaultSplits = [1, 2, 3, 4, 6, 8];

    /// <summary>The variants tried unless told: every one that runs without clusters (those also with <paramref name="clusters"/>).</summary>
    public static IReadOnlyList<LinearWgmmaTma.Variant> DefaultVariants(bool clusters) =>
        LinearWgmmaTma.Variant.All.Where(v => clusters || !v.Clusters).ToArray();

    /// <summary>Bytes of weight copies a call cycles through: well past an H100's or H200's 50 MB of L2 (at most
    /// <see cref="MaxWeightCopies"/>: DiT-XL/2's smallest block weight, 1152 x 1152, takes 61).</summary>
    private const long ColdBytes = 160L << 20;

    private const int MaxWeightCopies = 64;

    /// <summary>The most 128 x 128 blocks per multiprocessor a split candidate may make (splits past it are not tried).</summary>
    private const int SplitBlocksPerMultiprocessor = 8;

    /// <summary>The fp16 tensor-core GEMMs one forward of <paramref name="model"/> at <paramref name="batch"/> launches
    /// with the built-in choices (no tuning table), each shape once with how often it ran, in order of first launch.</summary>
    public static IReadOnlyList<(TunedShape Shape, int Count)> Shapes(DiTTransformer model, int batch)
    {
        var backend = model.Backend;
        var table = backend.GemmTuning;
        var (latents, timesteps, labels) = ModelBench.ForwardInputs(model, batch);
        backend.GemmTuning = null;
        backend.GemmLog = new();
        try
        {
            using (latents) model.Forward(latents, timesteps, labels).Dispose();
            // A shape launched with more than one epilogue or output type (none in a DiT) is timed as first launched.
            return backend.GemmLog.GroupBy(g => (g.M, g.N, g.K))
                .Select(g => (new TunedShape(g.Key.M, g.Key.N, g.Key.K, g.First().Epilogue, g.First().Fp16Output), g.Count())).ToArray();
        }
        finally
        {
            backend.GemmLog = null;
            backend.GemmTuning = table;
        }
    }

    /// <summary>The candidate a shape takes: the built-in one unless a checked candidate is <see cref="MinGain"/> faster
    /// (then the fastest); null when none passed its check.</summary>
    public static TunedCandidate? Choose(IReadOnlyList<TunedCandidate> candidates)
    {
        var passed = candidates.Where(c => c.Passed && !double.IsNaN(c.Milliseconds)).ToArray();
        if (passed.Length == 0) return null;
        var best = passed.MinBy(c => c.Milliseconds)!;
        var builtIn = passed.FirstOrDefault(c => c.BuiltIn);
        return builtIn is not null && best.Milliseconds > builtIn.Milliseconds * (1 - MinGain) ? builtIn : best;
    }

    /// <summary>Tries every candidate at each of <paramref name="shapes"/> and returns the table of the chosen ones; every
    /// candidate tried is added to <paramref name="tried"/> and logged. <paramref name="tuned"/> is given the table so far
    /// after each shape (to save it: a run cut short still leaves the shapes it finished).</summary>
    public static GemmTuning Tune(Backend backend, IReadOnlyList<TunedShape> shapes, GemmTunerSettings settings, TextWriter log,
        List<TunedCandidate> tried, string measured, Action<GemmTuning>? tuned = null)
    {
        string kernel = Linear.Fp16Kernel(backend)
            ?? throw new InvalidOperationException($"GEMM tuning times the fp16 tensor-core GEMMs, which {backend.DeviceName} does not run here " +
                                                   "(it needs a CUDA GPU, or on the CPU accelerator SMOOTHCACHE_KERNELS=tensorcores, wgmma or wgmma-tma)");
        var table = backend.GemmTuning;
        backend.GemmTuning = null;
        try
        {
            var chosen = new List<GemmChoice>();
            foreach (var shape in shapes)
            {
                var (m, n, k) = (shape.M, shape.N, shape.K);
                var candidates = TuneShape(backend, shape, settings, log);
                tried.AddRange(candidates);
                if (Choose(candidates) is { } c)
                {
                    var builtIn = candidates.First(x => x.BuiltIn);
                    chosen.Add(new GemmChoice(m, n, k, c.Variant.Length > 0 ? LinearWgmmaTma.Variant.Parse(c.Variant) : null, c.Splits, c.Milliseconds,
                        builtIn.Milliseconds, c.HeadRows));
                    log.WriteLine($"  chosen: {Label(c)}, {c.Milliseconds:F4} ms against {builtIn.Milliseconds:F4} ({builtIn.Milliseconds / c.Milliseconds:F2}x)");
                }
                else log.WriteLine("  FAIL: no candidate passed its check; the shape keeps the built-in choice");
                tuned?.Invoke(new GemmTuning(backend.DeviceName, kernel, chosen, measured));
            }
            return new GemmTuning(backend.DeviceName, kernel, chosen, measured);
        }
        finally
        {
            backend.GemmTuning = table;
        }
    }

    private static string Label(TunedCandidate c) => (c.Variant.Length > 0 ? c.Variant + " " : "") +
        (c.HeadRows > 0 ? $"{c.HeadRows} rows, then split {c.Splits}" : $"split {c.Splits}") + (c.BuiltIn ? " (built-in)" : "");

    /// <summary><see cref="Linear.RunFp16Launch{TEpilogue}"/> for one epilogue.</summary>
    private delegate void Fp16Gemm(Backend backend, LinearWgmmaTma.Variant variant, int splits, int headRows, ArrayView<ILGPU.Half> x, Tensor w,
        ArrayView<float> bias, OutputView y, int m);

    private static Fp16Gemm WithEpilogue(Type epilogue) =>
        typeof(Linear).GetMethod(nameof(Linear.RunFp16Launch))!.MakeGenericMethod(epilogue).CreateDelegate<Fp16Gemm>();

    private static List<TunedCandidate> TuneShape(Backend backend, TunedShape shape, GemmTunerSettings settings, TextWriter log)
    {
        var (m, n, k) = (shape.M, shape.N, shape.K);
        var arena = backend.Arena;
        var x = HalfRounded(m * 7919 + k, (long)m * k, 1f);
        var w = HalfRounded(n * 7919 + k, (long)n * k, 1f / MathF.Sqrt(k));
        var samples = Samples(m, n);
        var expected = samples.Select(s => (float)Dot(x, w, s.Row, s.Column, k)).ToArray();
        using var xHalf = ToDevice(arena, x, m, k);
        var weights = new List<Tensor>();
        using var y = arena.Rent(m, n);
        // What the forward's launch writes, and its bias (any values: they do not change the time).
        using var forwardY = arena.Rent(shape.Fp16Output ? DType.Float16 : DType.Float32, m, n);
        using var bias = arena.Zeros(n);
        var forwardGemm = WithEpilogue(shape.Epilogue);
        try
        {
            // Only a GPU's L2 keeps W hot from one call to the next (the CPU accelerator takes one copy).
            do weights.Add(ToDevice(arena, w, n, k));
            while (backend.IsCuda && (long)weights.Count * n * k * 2 < ColdBytes && weights.Count < MaxWeightCopies);
            bool tma = backend.UsesTma;
            var builtInVariant = LinearWgmmaTma.Variant.Default;
            int call = 0;
            // Checked without epilogue into float32 y, timed as the forward runs it.
            Action Launch(LinearWgmmaTma.Variant variant, int splits, int headRows) => () =>
                Linear.RunFp16Launch<IdentityEpilogue>(backend, variant, splits, headRows, xHalf.HalfView, weights[call++ % weights.Count],
                    ArrayView<float>.Empty, OutputView.Of(y), m);
            Action AsInForward(LinearWgmmaTma.Variant variant, int splits, int headRows) => () =>
                forwardGemm(backend, variant, splits, headRows, xHalf.HalfView, weights[call++ % weights.Count], bias.View, OutputView.Of(forwardY), m);
            // The built-in choice first, its split as the launch resolves it; then each variant at each split count that
            // differs in effect (a split is rounded to whole K tiles per split).
            int builtInSplits;
            // Kernel load time so far: a candidate timed after a compile keeps the device busy first.
            double loaded = backend.KernelLoadMilliseconds;
            backend.GemmLog = new();
            try
            {
                Launch(builtInVariant, 0, 0)();
                builtInSplits = backend.GemmLog[^1].Splits;
            }
            finally
            {
                backend.GemmLog = null;
            }
            var plan = new List<(LinearWgmmaTma.Variant Variant, int Splits, int HeadRows, bool BuiltIn)> { (builtInVariant, builtInSplits, 0, true) };
            // Splits that leave the grid at most SplitBlocksPerMultiprocessor blocks per multiprocessor: DiT-XL/2's qkv and fc1 at
            // batch 16 fill the GPU many times over unsplit, its proj and fc2 (288 blocks, 2.2 per multiprocessor) may gain.
            long blocks = (long)((m + LinearTensorCore.Tile - 1) / LinearTensorCore.Tile) * ((n + LinearTensorCore.Tile - 1) / LinearTensorCore.Tile);
            var splitCounts = settings.Splits.Where(s => s == 1 || blocks * s <= SplitBlocksPerMultiprocessor * backend.Accelerator.NumMultiprocessors).ToArray();
            // A split count as the launch rounds it in the variant's K tiles (32 or 64 deep).
            foreach (var variant in tma ? settings.Variants : [builtInVariant])
                foreach (int splits in splitCounts.Select(s => SplitK.Partition(k, variant.Depth, s).Splits).Distinct())
                    if (!plan.Any(p => p.Variant == variant && p.Splits == splits)) plan.Add((variant, splits, 0, false));
            // A grid of 2 to 3 blocks a multiprocessor: its rows of 2 blocks each unsplit, then the rest split (the built-in
            // variant's 128-row blocks).
            int headRows = builtInVariant.TwoWarpGroups ? 0 : SplitK.HeadRows(backend.Accelerator.NumMultiprocessors, m, n, LinearTensorCore.Tile);
            if (headRows > 0)
                foreach (int splits in settings.Splits.Where(s => s is > 1 and <= 4).Select(s => SplitK.Partition(k, builtInVariant.Depth, s).Splits)
                             .Where(s => s > 1).Distinct())
                    plan.Add((builtInVariant, splits, headRows, false));

            log.WriteLine($"{shape}: {plan.Count} candidates, W from {weights.Count} copies, timed with {shape.Epilogue.Name} into " +
                          $"{(shape.Fp16Output ? "fp16" : "float32")}");
            var results = new List<TunedCandidate>();
            foreach (var (variant, splits, head, builtIn) in plan)
            {
                string name = tma ? variant.Name : "";
                double error, ms = double.NaN;
                try
                {
                    backend.Clear(y.View);
                    Launch(variant, splits, head)();
                    var actual = y.ToArray();
                    error = GpuChecks.RelativeL2(samples.Select(s => actual[(long)s.Row * n + s.Column]).ToArray(), expected);
                    if (error <= Tolerance)
                    {
                        var timed = AsInForward(variant, splits, head);
                        timed();
                        bool compiled = backend.KernelLoadMilliseconds > loaded;
                        ms = Time(backend, timed, settings.Iterations, weights.Count, compiled);
                    }
                    loaded = backend.KernelLoadMilliseconds;
                }
                catch (Exception e) when (e is ILGPU.Runtime.AcceleratorException or InvalidOperationException or ArgumentException)
                {
                    log.WriteLine($"  {name} split {splits} failed: {e.GetType().Name}: {e.Message}");
                    error = double.PositiveInfinity;
                }
                var r = new TunedCandidate(m, n, k, name, splits, builtIn, error, ms, head);
                results.Add(r);
                log.WriteLine($"  {(r.Passed ? "" : "FAIL ")}{Label(r),-40} {ms,9:F4} ms  rel.err {error:E1}");
            }
            return results;
        }
        finally
        {
            foreach (var t in weights) t.Dispose();
        }
    }

    /// <summary>Device time per call: <paramref name="iterations"/> calls with every launch's time recorded, after one
    /// untimed call per weight copy (each copy's first TMA call writes its tensor map, a launch of its own) and, after a
    /// compile, with the device kept busy first (a compile lets the clocks drop).</summary>
    private static double Time(Backend backend, Action launch, int iterations, int copies, bool compiled)
    {
        for (int i = 0; i < copies; i++) launch();
        if (compiled) BenchClock.KeepBusy(backend, launch);
        // A quarter of a forward's hold (~5 ms): enough for the host to queue the calls behind it.
        using var profile = backend.StartProfile(KernelProfile.HoldIterations / 4);
        for (int i = 0; i < iterations; i++) launch();
        return profile.Read().Sum(t => t.Milliseconds) / iterations;
    }

    /// <summary>One output in every 128 x 128 tile (the GEMMs' block; a wrong tile shows) and 256 more anywhere.</summary>
    private static (int Row, int Column)[] Samples(int m, int n)
    {
        var rng = new Random(m * 31 + n);
        var samples = new List<(int, int)>();
        for (int r = 0; r < m; r += LinearTensorCore.Tile)
            for (int c = 0; c < n; c += LinearTensorCore.Tile)
                samples.Add((r + rng.Next(Math.Min(LinearTensorCore.Tile, m - r)), c + rng.Next(Math.Min(LinearTensorCore.Tile, n - c))));
        for (int i = 0; i < 256; i++) samples.Add((rng.Next(m), rng.Next(n)));
        return samples.ToArray();
    }

    /// <summary><see cref="GpuChecks.RandomData"/> rounded to fp16 in place (the conditioning GEMM's W has 223 M values).</summary>
    private static float[] HalfRounded(int seed, long count, float scale)
    {
        var a = GpuChecks.RandomData(seed, count, scale);
        for (long i = 0; i < count; i++) a[i] = (float)(System.Half)a[i];
        return a;
    }

    private static Tensor ToDevice(TensorArena arena, float[] values, int rows, int cols)
    {
        using var wide = arena.Upload(values, rows, cols);
        return HalfConversion.ToHalf(wide);
    }

    private static double Dot(float[] x, float[] w, int row, int column, int k)
    {
        double sum = 0;
        for (int t = 0; t < k; t++) sum += (double)x[(long)row * k + t] * w[(long)column * k + t];
        return sum;
    }
}
