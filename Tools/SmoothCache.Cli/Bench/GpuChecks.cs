using SmoothCache.Kernels;

namespace SmoothCache.Cli.Bench;

/// <summary>One correctness check of a fast kernel: its relative L2 error against a float64 host reference.</summary>
public sealed record CheckResult(string Name, int M, int N, int K, double RelativeError, double Tolerance)
{
    public bool Passed => RelativeError <= Tolerance;
}

/// <summary>
/// Correctness of the CUDA kernels, run on the device (the CPU tests cannot execute inline PTX):
/// Linear.Run on a CUDA backend dispatches to the tiled SGEMM (Float32 weight) or the tensor-core
/// kernel (Float16 weight); each is compared, on ragged shapes, with a float64 product computed on the
/// host — from the fp16-rounded inputs for the tensor-core kernel, so only accumulation order differs.
/// Tolerances: 1e-5 for plain products; 3e-3 with the GELU epilogue, whose tanh is PTX tanh.approx
/// (about 2^-11 relative).
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

    public static CheckResult[] Run(Backend backend, TextWriter log)
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
                results.Add(new("SGEMM bias", m, n, k, RelativeL2(y.ToArray(), Reference(x, w, b, m, n, k, false)), 1e-5));
            using (var y = Linear.Run<GeluTanhEpilogue>(tx, tw, null))
                results.Add(new("SGEMM gelu", m, n, k, RelativeL2(y.ToArray(), Reference(x, w, null, m, n, k, true)), 3e-3));
            using (var y = Linear.Run(tx, twHalf, tb))
                results.Add(new("tensor-core bias", m, n, k, RelativeL2(y.ToArray(), Reference(xh, wh, b, m, n, k, false)), 1e-5));
            using (var y = Linear.Run<GeluTanhEpilogue>(tx, twHalf, null))
                results.Add(new("tensor-core gelu", m, n, k, RelativeL2(y.ToArray(), Reference(xh, wh, null, m, n, k, true)), 3e-3));
        }
        foreach (var r in results)
            log.WriteLine($"{(r.Passed ? "PASS" : "FAIL")} {r.Name,-18} M={r.M,-5} N={r.N,-5} K={r.K,-5} rel.err {r.RelativeError:E2} (tolerance {r.Tolerance:E0})");
        return results.ToArray();
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
