using SmoothCache.Cli.Commands;
using SmoothCache.Kernels;
using SmoothCache.Kernels.Gpu;
using SmoothCache.Model;
using SmoothCache.Model.Checkpoints;
using SmoothCache.Sampling;

namespace SmoothCache.Cli.Bench;

/// <summary>One correctness check: relative L2 error against its reference. M, N, K are the problem's sizes
/// (GEMM: M x N x K; attention: B*T, heads, head dim; element kernels: rows, width, 1; models: batch, tokens, width).</summary>
public sealed record CheckResult(string Name, int M, int N, int K, double RelativeError, double Tolerance)
{
    public bool Passed => RelativeError <= Tolerance;
}

/// <summary>
/// Correctness of the CUDA kernels, run on the device (the CPU tests cannot execute inline PTX):
/// Linear.Run on a CUDA backend dispatches to the tensor-core kernel, 3xTF32 for a Float32 weight (the
/// tiled SGEMM where K is not a multiple of 4) and fp16 for a Float16 weight; each, and the SGEMM and
/// 3xTF32 called directly with split-K, is compared on ragged shapes with a float64 product computed on
/// the host — from the fp16-rounded inputs for fp16, so only accumulation order differs.
/// Then every other CUDA path against the portable kernels run on a second, CPU backend from the same
/// host inputs: the fused attention (and the portable attention on CUDA for small head dims), the
/// element kernels, a small synthetic DiT forward (fp32 CUDA vs CPU, fp16 vs fp32), the synthetic
/// DiT-XL/2 forward in fp16 vs fp32, and the whole dit-digits DDIM-50 job (final latents, CUDA vs CPU).
/// Tolerances: 1e-5 for plain products, GELU (written with exp, which PTX computes to about 2^-22)
/// and attention (ex2.approx); 1e-4 for a whole fp32 forward; 1e-2 for fp16 against fp32; 1e-3 for
/// 50 DDIM steps, over which fp32 rounding differences grow.
/// </summary>
public static class GpuChecks
{
    /// <summary>(M, N, K): single rows, everything ragged, several blocks, the XL widths.</summary>
    public static readonly (int M, int N, int K)[] Shapes =
        [(1, 8, 8), (37, 19, 24), (130, 129, 40), (257, 300, 72), (77, 1152, 1152), (300, 200, 136)];

    public static float[] RandomData(int seed, long n, float scale)
    {
        var rng = new Random(seed);
        var a = new float[n];
        for (long i = 0; i < n; i++) a[i] = (float)((rng.NextDouble() * 2 - 1) * scale);
        return a;
    }

    public static double RelativeL2(float[] actual, float[] expected)
    {
        double num = 0, den = 0;
        for (int i = 0; i < actual.Length; i++)
        {
            double d = actual[i] - (double)expected[i];
            num += d * d;
            den += (double)expected[i] * expected[i];
        }
        return Math.Sqrt(num / den);
    }

    private static float RoundToHalf(float v) => (float)(System.Half)v;

    private static float GeluTanh(double v) =>
        (float)(0.5 * v * (1 + Math.Tanh(Math.Sqrt(2 / Math.PI) * (v + 0.044715 * v * v * v))));

    private static float[] Reference(float[] x, float[] w, float[]? bias, int m, int n, int k, bool gelu)
    {
        var y = new float[m * n];
        Parallel.For(0, m, i =>
        {
            for (int j = 0; j < n; j++)
            {
                double acc = bias?[j] ?? 0;
                for (int t = 0; t < k; t++) acc += (double)x[i * k + t] * w[j * k + t];
                y[i * n + j] = gelu ? GeluTanh(acc) : (float)acc;
            }
        });
        return y;
    }

    /// <summary>
    /// <see cref="LinearWgmmaTma"/> in <typeparamref name="TLayout"/> against float64 at <see cref="Shapes"/> (ragged
    /// edges: boxes past the matrix read zeros), with bias and GELU, whole and split three ways along K, in both
    /// block shapes and on each <see cref="LinearWgmmaTma.IRing"/>; with <paramref name="clusters"/> only on
    /// <see cref="LinearWgmmaTma.MulticastRing"/> (clusters of 2 row blocks), whole and split three ways.
    /// </summary>
    public static CheckResult[] TmaChecks<TLayout>(Backend backend, TextWriter log, bool clusters = false) where TLayout : struct, LinearWgmmaTma.ILayout
    {
        string name = $"TMA {typeof(TLayout).Name}";
        var results = new List<CheckResult>();
        foreach (var (m, n, k) in Shapes)
        {
            var x = RandomData(3, (long)m * k, 2f).Select(RoundToHalf).ToArray();
            var w = RandomData(4, (long)n * k, 1f / MathF.Sqrt(k)).Select(RoundToHalf).ToArray();
            var b = RandomData(5, n, 1f);
            var expected = Reference(x, w, b, m, n, k, true);
            using var tx = backend.Arena.Upload(x, m, k);
            using var tw = backend.Arena.Upload(w, n, k);
            using var tb = backend.Arena.Upload(b, n);
            using var txHalf = HalfConversion.ToHalf(tx);
            using var twHalf = HalfConversion.ToHalf(tw);
            void Check<TBlock, TRing>(string variant, int splits) where TBlock : struct, LinearWgmma.IBlock where TRing : struct, LinearWgmmaTma.IRing
            {
                // 64-deep stages on the longer rings do not fit in shared memory (no such variant).
                if (LinearWgmmaTma.SharedBytes<TBlock, TLayout, TRing>() > LinearWgmmaTma.MaxSharedBytes) return;
                using var y = backend.Arena.Rent(m, n);
                LinearWgmmaTma.Run<GeluTanhEpilogue, TBlock, TLayout, TRing>(backend, txHalf.HalfView, twHalf, tb.View, OutputView.Of(y), m, splits);
                results.Add(new($"{name} {variant}", m, n, k, RelativeL2(y.ToArray(), expected), 1e-5));
                Log(log, results[^1]);
            }
            if (clusters)
            {
                foreach (int splits in new[] { 1, 3 })
                    Check<LinearWgmma.OneWarpGroup, LinearWgmmaTma.MulticastRing>($"multicast split-K {splits}", splits);
                Check<LinearWgmma.TwoWarpGroups, LinearWgmmaTma.MulticastRing>("256x128 multicast", 1);
                continue;
            }
            foreach (int splits in new[] { 1, 3 })
                Check<LinearWgmma.OneWarpGroup, LinearWgmmaTma.BarrierRing>($"split-K {splits}", splits);
            Check<LinearWgmma.TwoWarpGroups, LinearWgmmaTma.BarrierRing>("256x128", 1);
            // The other rings (more tiles in flight), before the benchmark times them.
            Check<LinearWgmma.OneWarpGroup, LinearWgmmaTma.DeepBarrierRing>("6 stages", 1);
            Check<LinearWgmma.OneWarpGroup, LinearWgmmaTma.ReleasedRing>("released split-K 3", 3);
            Check<LinearWgmma.TwoWarpGroups, LinearWgmmaTma.ReleasedRing>("256x128 released", 1);
            Check<LinearWgmma.TwoWarpGroups, LinearWgmmaTma.DeepBarrierRing>("256x128 6 stages split-K 3", 3);
            Check<LinearWgmma.OneWarpGroup, LinearWgmmaTma.DeepReleasedRing>("7 stages released split-K 3", 3);
            Check<LinearWgmma.OneWarpGroup, LinearWgmmaTma.ShallowRing>("3 stages", 1);
            Check<LinearWgmma.OneWarpGroup, LinearWgmmaTma.ShallowReleasedRing>("3 stages released split-K 3", 3);
            Check<LinearWgmma.TwoWarpGroups, LinearWgmmaTma.ShallowReleasedRing>("256x128 3 stages released", 1);
        }
        return results.ToArray();
    }

    /// <param name="digitsFolder">the dit-digits pipeline folder; null looks for models/dit-digits here or beside the program</param>
    public static CheckResult[] Run(Backend backend, TextWriter log, string? digitsFolder = null)
    {
        if (!backend.IsCuda)
            throw new InvalidOperationException($"GPU checks need a CUDA device; backend is {backend.DeviceName}");
        var results = new List<CheckResult>();
        results.Add(CheckToHalf(backend));
        foreach (var (m, n, k) in Shapes)
        {
            var x = RandomData(3, (long)m * k, 2f);
            var w = RandomData(4, (long)n * k, 1f / MathF.Sqrt(k));
            var b = RandomData(5, n, 1f);
            var xh = x.Select(RoundToHalf).ToArray();
            var wh = w.Select(RoundToHalf).ToArray();
            using var tx = backend.Arena.Upload(x, m, k);
            using var tw = backend.Arena.Upload(w, n, k);
            using var tb = backend.Arena.Upload(b, n);
            using var twHalf = HalfConversion.ToHalf(tw);
            using (var y = Linear.Run(tx, tw, tb))
                results.Add(new("Linear fp32 bias", m, n, k, RelativeL2(y.ToArray(), Reference(x, w, b, m, n, k, false)), 1e-5));
            using (var y = Linear.Run<GeluTanhEpilogue>(tx, tw, null))
                results.Add(new("Linear fp32 gelu", m, n, k, RelativeL2(y.ToArray(), Reference(x, w, null, m, n, k, true)), 1e-5));
            // fp16 goes to a Hopper kernel under the wgmma kernel sets (SMOOTHCACHE_KERNELS=wgmma, wgmma-tma).
            string fp16 = backend.UsesTma ? "wgmma TMA" : backend.UsesWgmma ? "wgmma" : "tensor-core";
            using (var y = Linear.Run(tx, twHalf, tb))
                results.Add(new($"{fp16} bias", m, n, k, RelativeL2(y.ToArray(), Reference(xh, wh, b, m, n, k, false)), 1e-5));
            using (var y = Linear.Run<GeluTanhEpilogue>(tx, twHalf, null))
                results.Add(new($"{fp16} gelu", m, n, k, RelativeL2(y.ToArray(), Reference(xh, wh, null, m, n, k, true)), 1e-5));
            // fp16 out: the fp32 result rounded to nearest even, so within fp16 rounding (2^-11) of it.
            using (var y = Linear.Run<GeluTanhEpilogue>(tx, twHalf, tb, DType.Float16))
                results.Add(new($"{fp16} fp16 out", m, n, k, RelativeL2(y.ToArray(), Reference(xh, wh, b, m, n, k, true)), 1e-3));
            // Split-K forced three ways (the runs above split only where the device would idle).
            using (var txHalf = HalfConversion.ToHalf(tx))
            using (var y = backend.Arena.Rent(m, n))
            {
                if (backend.UsesTma) LinearWgmmaTma.Run<GeluTanhEpilogue, LinearWgmma.OneWarpGroup>(backend, txHalf.HalfView, twHalf, tb.View, OutputView.Of(y), m, splits: 3);
                else if (backend.UsesWgmma) LinearWgmma.Run<GeluTanhEpilogue>(backend, txHalf.HalfView, twHalf, tb.View, OutputView.Of(y), m, splits: 3);
                else LinearTensorCore.Run<GeluTanhEpilogue>(backend, txHalf.HalfView, twHalf, tb.View, OutputView.Of(y), m, splits: 3);
                results.Add(new($"{fp16} split-K 3", m, n, k, RelativeL2(y.ToArray(), Reference(xh, wh, b, m, n, k, true)), 1e-5));
            }
            using (var y = backend.Arena.Rent(m, n))
            {
                Sgemm.Run<GeluTanhEpilogue>(backend, tx.View, tw.View, tb.View, y.View, m, n, k, splits: 3);
                results.Add(new("SGEMM split-K 3", m, n, k, RelativeL2(y.ToArray(), Reference(x, w, b, m, n, k, true)), 1e-5));
            }
            // 3xTF32 (what Linear takes for fp32 on CUDA when K is a multiple of 4): fp32 accuracy.
            if (k % 4 == 0)
                foreach (int splits in new[] { 1, 3 })
                    using (var y = backend.Arena.Rent(m, n))
                    {
                        LinearTensorCore.RunTf32x3<GeluTanhEpilogue>(backend, tx.View, tw, tb.View, OutputView.Of(y), m, splits);
                        results.Add(new($"3xTF32 split-K {splits}", m, n, k, RelativeL2(y.ToArray(), Reference(x, w, b, m, n, k, true)), 1e-5));
                    }
        }
        foreach (var r in results) Log(log, r);
        // The reference: the portable kernels, whatever SMOOTHCACHE_KERNELS asks of the device under test.
        using var cpu = Backend.Create(DeviceKind.Cpu, KernelSet.Portable);
        // Each later check is logged as soon as it is done: a crash in one still shows the earlier ones.
        foreach (var check in KernelChecks(backend, cpu).Concat(ModelChecks(backend, cpu, digitsFolder)))
        {
            CheckResult r;
            try
            {
                r = check();
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                log.WriteLine($"FAIL (exception) {e.GetType().Name}: {e.Message}");
                r = new CheckResult($"exception: {e.GetType().Name}", 0, 0, 0, double.PositiveInfinity, 0);
            }
            Log(log, r);
            results.Add(r);
        }
        return results.ToArray();
    }

    private static void Log(TextWriter log, CheckResult r) =>
        log.WriteLine($"{(r.Passed ? "PASS" : "FAIL")} {r.Name,-26} M={r.M,-5} N={r.N,-5} K={r.K,-5} rel.err {r.RelativeError:E2} (tolerance {r.Tolerance:E0})");

    /// <summary>The same operation on the CUDA and the CPU backend, from the same host inputs.</summary>
    private static CheckResult Compare(string name, int m, int n, int k, double tolerance, Backend cuda, Backend cpu,
        Func<Backend, float[]> run) => new(name, m, n, k, RelativeL2(run(cuda), run(cpu)), tolerance);

    /// <summary>(B, T, heads, head dim): one token, ragged tiles, the XL shape; 16 runs the portable kernel on CUDA.</summary>
    public static readonly (int B, int T, int Heads, int HeadDim)[] AttentionShapes =
        [(1, 1, 1, 72), (2, 70, 3, 72), (3, 257, 2, 64), (2, 256, 16, 72), (2, 64, 4, 16)];

    /// <summary>
    /// Which operand elements the Hopper GEMM's wgmma actually multiplies, for one 128 x 128 x 32 block: with
    /// one-hot x rows (x[r][k] = 1 at k = r % 32) each y[r][n] is the W element paired with row r, and W holds
    /// its own coordinates (W[n][k] = 32 (n % 64) + k, exact in fp16), so a wrong descriptor or accumulator
    /// layout shows as the (n, k) that was read instead; then the same with the roles swapped. Logs the first
    /// mismatches decoded, then one check per operand. Public for the emulated run in the tests.
    /// </summary>
    public static IEnumerable<CheckResult> WgmmaLayoutProbe(Backend backend, TextWriter log) =>
        LayoutProbe(backend, log, "wgmma", (x, w, y, m) => LinearWgmma.Run<IdentityEpilogue>(backend, x, w, ILGPU.ArrayView<float>.Empty, y, m, splits: 1));

    /// <summary><see cref="WgmmaLayoutProbe"/> for <see cref="LinearWgmmaTma"/> in <typeparamref name="TLayout"/>: its
    /// own stage layout, descriptors and tensor maps.</summary>
    public static IEnumerable<CheckResult> TmaLayoutProbe<TLayout>(Backend backend, TextWriter log) where TLayout : struct, LinearWgmmaTma.ILayout =>
        LayoutProbe(backend, log, $"TMA {typeof(TLayout).Name}",
            (x, w, y, m) => LinearWgmmaTma.Run<IdentityEpilogue, LinearWgmma.OneWarpGroup, TLayout>(backend, x, w, ILGPU.ArrayView<float>.Empty, y, m, splits: 1));

    private static IEnumerable<CheckResult> LayoutProbe(Backend backend, TextWriter log, string kernel,
        Action<ILGPU.ArrayView<ILGPU.Half>, Tensor, OutputView, int> gemm)
    {
        const int size = 128, depth = 32;
        float Coordinates(int row, int k) => 32 * (row % 64) + k;
        float OneHot(int row, int k) => k == row % depth ? 1f : 0f;
        foreach (var (name, x, w, expected) in new (string, Func<int, int, float>, Func<int, int, float>, Func<int, int, float>)[]
        {
            ($"{kernel} probe: W read", OneHot, Coordinates, (r, n) => Coordinates(n, r % depth)),
            ($"{kernel} probe: x read", Coordinates, OneHot, (r, n) => Coordinates(r, n % depth)),
        })
        {
            using var tx = backend.Arena.Upload(Enumerable.Range(0, size * depth).Select(i => x(i / depth, i % depth)).ToArray(), size, depth);
            using var tw = backend.Arena.Upload(Enumerable.Range(0, size * depth).Select(i => w(i / depth, i % depth)).ToArray(), size, depth);
            using var txHalf = HalfConversion.ToHalf(tx);
            using var twHalf = HalfConversion.ToHalf(tw);
            using var y = backend.Arena.Rent(size, size);
            gemm(txHalf.HalfView, twHalf, OutputView.Of(y), size);
            var got = y.ToArray();
            var want = Enumerable.Range(0, size * size).Select(i => expected(i / size, i % size)).ToArray();
            var wrong = Enumerable.Range(0, got.Length).Where(i => got[i] != want[i]).ToList();
            foreach (int i in wrong.Take(6))
            {
                float v = got[i];
                string read = v == MathF.Round(v) && v >= 0 && v < 2048 ? $"= element ({(int)v / 32} mod 64, k {(int)v % 32})" : "(not one element)";
                log.WriteLine($"  {name}: y[{i / size}, {i % size}] = {v} {read}, expected {want[i]} (element ({(int)want[i] / 32} mod 64, k {(int)want[i] % 32}))");
            }
            if (wrong.Count > 0) log.WriteLine($"  {name}: {wrong.Count} of {got.Length} outputs wrong");
            var result = new CheckResult(name, size, size, depth, RelativeL2(got, want), 0);
            Log(log, result);
            yield return result;
        }
    }

    private static IEnumerable<Func<CheckResult>> KernelChecks(Backend cuda, Backend cpu)
    {
        foreach (var (b, t, heads, hd) in AttentionShapes)
        {
            var qkv = RandomData(11, (long)b * t * 3 * heads * hd, 2f);
            yield return () => Compare(FlashAttention.SupportsHeadDim(hd) ? "attention fused" : "attention portable",
                b * t, heads, hd, 1e-5, cuda, cpu, backend =>
                {
                    using var x = backend.Arena.Upload(qkv, b, t, 3 * heads * hd);
                    using var y = Attention.Run(x, heads, hd);
                    return y.ToArray();
                });
            if (!FlashAttentionTensorCore.SupportsHeadDim(hd)) continue;
            // fp16 qkv: the tensor-core kernel on CUDA vs the fused fp32 one on the CPU, from the same
            // rounded input; probabilities rounded to fp16 make ~1e-4 (the CPU emulation's tests).
            foreach (var staging in Enum.GetValues<FlashAttentionTensorCore.Staging>())
                yield return () => Compare($"attention tensor-core, {staging.ToString().ToLowerInvariant()} staging", b * t, heads, hd, 1e-3, cuda, cpu, backend =>
                {
                    using var x = backend.Arena.Upload(qkv, b, t, 3 * heads * hd);
                    using var half = HalfConversion.ToHalf(x);
                    using var y = Attention.Run(half, heads, hd, staging: staging);
                    return y.ToArray();
                });
        }
        const int rows = 37, samples = 3, width = 1152;
        var xs = RandomData(12, (long)samples * rows * width, 3f);
        var ys = RandomData(13, (long)samples * rows * width, 1f);
        var mod = RandomData(14, (long)samples * 6 * width, 1f);
        yield return () => Compare("LayerNormModulate", samples * rows, width, 1, 1e-5, cuda, cpu, backend =>
        {
            using var x = backend.Arena.Upload(xs, samples, rows, width);
            using var m = backend.Arena.Upload(mod, samples, 6 * width);
            using var y = LayerNormModulate.Run(x, m, 3 * width, 4 * width, 1e-6f);
            return y.ToArray();
        });
        // The form the block norms take after the first: a waiting gated residual added on the same pass (x and y both).
        yield return () => Compare("LayerNormModulate + res.", samples * rows, width, 1, 1e-5, cuda, cpu, backend =>
        {
            using var x = backend.Arena.Upload(xs, samples, rows, width);
            using var r = backend.Arena.Upload(ys, samples, rows, width);
            using var m = backend.Arena.Upload(mod, samples, 6 * width);
            using var y = LayerNormModulate.RunAfterResiduals(x, m, 3 * width, 4 * width, 1e-6f, r, 5 * width);
            return [.. x.ToArray(), .. y.ToArray()];
        });
        yield return () => Compare("GatedResidual", samples * rows, width, 1, 1e-6, cuda, cpu, backend =>
        {
            using var x = backend.Arena.Upload(xs, samples, rows, width);
            using var y = backend.Arena.Upload(ys, samples, rows, width);
            using var m = backend.Arena.Upload(mod, samples, 6 * width);
            GatedResidual.Run(x, m, y, 5 * width);
            return x.ToArray();
        });
        yield return () => Compare("Elementwise GELU", samples * rows, width, 1, 1e-5, cuda, cpu, backend =>
        {
            using var x = backend.Arena.Upload(xs, xs.Length);
            using var y = Elementwise.Run<GeluTanhEpilogue>(x);
            return y.ToArray();
        });
        yield return () => Compare("Elementwise SiLU", samples * rows, width, 1, 1e-5, cuda, cpu, backend =>
        {
            using var x = backend.Arena.Upload(xs, xs.Length);
            using var y = Elementwise.Run<SiluEpilogue>(x);
            return y.ToArray();
        });
    }

    /// <summary>A small DiT with the XL head dim (so the fused attention runs) and ragged token tiles (81 tokens).</summary>
    public static DiTConfig SmallConfig { get; } = new()
    {
        NumHeads = 2, HeadDim = 72, NumLayers = 2, InChannels = 4, OutChannels = 8, PatchSize = 2, SampleSize = 18, NumClasses = 10,
    };

    /// <summary>One forward at batch 2 of a synthetic DiT on the given backend and precision.</summary>
    private static float[] SyntheticForward(Backend backend, DiTConfig config, Precision precision)
    {
        using var weights = new SyntheticWeights(config, seed: 3);
        using var model = new DiTTransformer(backend, config, weights, precision);
        using var latents = backend.Arena.Upload(RandomData(15, 2L * config.InChannels * config.SampleSize * config.SampleSize, 1f),
            2, config.InChannels, config.SampleSize, config.SampleSize);
        using var y = model.Forward(latents, [999f, 301f], [1, config.NullClass]);
        return y.ToArray();
    }

    private static IEnumerable<Func<CheckResult>> ModelChecks(Backend cuda, Backend cpu, string? digitsFolder)
    {
        var small = SmallConfig;
        yield return () => Compare("dit-small forward fp32", 2, small.Tokens, small.Width, 1e-4, cuda, cpu,
            backend => SyntheticForward(backend, small, Precision.Fp32));
        yield return () => Compare("dit-small fp16 vs CPU fp16", 2, small.Tokens, small.Width, 1e-4, cuda, cpu,
            backend => SyntheticForward(backend, small, Precision.Fp16));
        yield return () => new("dit-small forward fp16", 2, small.Tokens, small.Width,
            RelativeL2(SyntheticForward(cuda, small, Precision.Fp16), SyntheticForward(cuda, small, Precision.Fp32)), 1e-2);
        var xl = SyntheticWeights.XL2_256;
        yield return () => new("XL forward fp16 vs fp32", 2, xl.Tokens, xl.Width,
            RelativeL2(SyntheticForward(cuda, xl, Precision.Fp16), SyntheticForward(cuda, xl, Precision.Fp32)), 1e-2);
        yield return () =>
        {
            string folder = digitsFolder ?? SamplingOptions.ResolveModel(SamplingOptions.DefaultModel);
            float[] Job(Backend backend)
            {
                using var pipeline = DiTPipeline.Load(folder, backend);
                var labels = Enumerable.Range(0, 10).ToArray();
                return pipeline.Generate(new GenerationOptions { Labels = labels, Steps = 50, Scheduler = "ddim", GuidanceScale = 4f }).Latents;
            }
            return new("dit-digits DDIM-50 latents", 10, 64, 64, RelativeL2(Job(cuda), Job(cpu)), 1e-3);
        };
    }

    /// <summary>ToHalf on the device agrees bit for bit with System.Half's round-to-nearest-even.</summary>
    private static CheckResult CheckToHalf(Backend backend)
    {
        var data = RandomData(6, 100_000, 70_000f);
        using var t = backend.Arena.Upload(data, data.Length);
        using var h = HalfConversion.ToHalf(t);
        var got = h.ToArray();
        int wrong = 0;
        for (int i = 0; i < data.Length; i++)
            if (got[i] != RoundToHalf(data[i]) && !(float.IsNaN(got[i]) && float.IsNaN(RoundToHalf(data[i])))) wrong++;
        return new("ToHalf mismatches", data.Length, 1, 1, wrong, 0);
    }
}
