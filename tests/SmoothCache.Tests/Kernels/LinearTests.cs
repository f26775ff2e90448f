using SmoothCache.Kernels;
using static SmoothCache.Tests.TestSupport;

namespace SmoothCache.Tests.Kernels;

public class LinearTests
{
    public static double[] Reference(float[] x, float[] w, float[]? b, int m, int n, int k, Func<double, double> f)
    {
        var y = new double[m * n];
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
            {
                double acc = b?[j] ?? 0;
                for (int t = 0; t < k; t++) acc += (double)x[i * k + t] * w[j * k + t];
                y[i * n + j] = f(acc);
            }
        return y;
    }

    /// <summary>A GEMM problem: random x [M, K], W [N, K] (scaled by wScale) and bias [N], on the host
    /// and uploaded to the CPU backend, with the float64 reference.</summary>
    public sealed class GemmProblem : IDisposable
    {
        public int M { get; }
        public int K { get; }
        public int N { get; }
        public float[] X { get; }
        public float[] W { get; }
        public float[] B { get; }
        public Tensor Tx { get; }
        public Tensor Tw { get; }
        public Tensor Tb { get; }

        public GemmProblem(int seed, int m, int k, int n, float wScale = 0.1f)
        {
            (M, K, N) = (m, k, n);
            X = Random(seed, m * k);
            W = Random(seed + 1, n * k, wScale);
            B = Random(seed + 2, n);
            Tx = Cpu.Arena.Upload(X, m, k);
            Tw = Cpu.Arena.Upload(W, n, k);
            Tb = Cpu.Arena.Upload(B, n);
        }

        public double[] Expected(Func<double, double> epilogue) => Reference(X, W, B, M, N, K, epilogue);

        /// <summary>The reference for fp16 operands: the products of the fp16-rounded x and W, in float64.</summary>
        public double[] ExpectedFromHalves(Func<double, double> epilogue) => Reference(RoundedToHalf(X), RoundedToHalf(W), B, M, N, K, epilogue);

        private static float[] RoundedToHalf(float[] v) => v.Select(f => (float)(System.Half)f).ToArray();

        public void Dispose()
        {
            Tx.Dispose();
            Tw.Dispose();
            Tb.Dispose();
        }
    }

    public static double GeluTanh(double v) => 0.5 * v * (1 + Math.Tanh(Math.Sqrt(2 / Math.PI) * (v + 0.044715 * v * v * v)));
    public static double Silu(double v) => v / (1 + Math.Exp(-v));

    [Theory]
    [InlineData(7, 72, 5)]      // width 72 like dit-small
    [InlineData(33, 48, 192)]   // 1152 -> 4608 scaled down by 24, odd token count
    [InlineData(1, 256, 72)]    // the timestep MLP's first layer
    [InlineData(17, 288, 72)]   // the MLP's second layer of dit-small
    public void MatchesFloat64ReferenceWithBias(int m, int k, int n)
    {
        using var p = new GemmProblem(1, m, k, n);
        using var y = Linear.Run(p.Tx, p.Tw, p.Tb);
        Assert.Equal(new[] { m, n }, y.Shape);
        Assert.True(RelativeL2(y.ToArray(), p.Expected(v => v)) < 1e-6);
    }

    [Fact]
    public void AppliesEpiloguesAndWorksWithoutBias()
    {
        int m = 5, k = 40, n = 9;
        var x = Random(4, m * k, 3f);
        var w = Random(5, n * k, 0.2f);
        using var tx = Cpu.Arena.Upload(x, 1, m, k);
        using var tw = Cpu.Arena.Upload(w, n, k);
        using (var gelu = Linear.Run<GeluTanhEpilogue>(tx, tw, null))
        {
            Assert.Equal(new[] { 1, m, n }, gelu.Shape);
            Assert.True(RelativeL2(gelu.ToArray(), Reference(x, w, null, m, n, k, GeluTanh)) < 1e-6);
        }
        using var silu = Linear.Run<SiluEpilogue>(tx, tw, null);
        Assert.True(RelativeL2(silu.ToArray(), Reference(x, w, null, m, n, k, Silu)) < 1e-6);
    }

    [Theory]
    [InlineData(7, 72, 5)]
    [InlineData(33, 48, 192)]
    public void Fp16WeightMultipliesHalfRoundedOperandsInFloat32(int m, int k, int n)
    {
        var x = Random(6, m * k, 3f);
        var w = Random(7, n * k, 0.1f);
        var b = Random(8, n);
        float[] Round(float[] v) => v.Select(e => (float)(System.Half)e).ToArray();
        using var tx = Cpu.Arena.Upload(x, m, k);
        using var tw = Cpu.Arena.Upload(w, n, k);
        using var tb = Cpu.Arena.Upload(b, n);
        using var half = HalfConversion.PrepareWeight(tw, Precision.Fp16);
        using var y = Linear.Run<GeluTanhEpilogue>(tx, half, tb);
        var got = y.ToArray();
        // The fp16 products exactly (up to float32 summation), not the float32 ones.
        Assert.True(RelativeL2(got, Reference(Round(x), Round(w), b, m, n, k, GeluTanh)) < 1e-6);
        Assert.True(RelativeL2(got, Reference(x, w, b, m, n, k, GeluTanh)) > 1e-5);
    }

    [Fact]
    public void RejectsMismatchedInnerDimension()
    {
        using var tx = Cpu.Arena.Zeros(3, 8);
        using var tw = Cpu.Arena.Zeros(4, 9);
        var e = Assert.Throws<ArgumentException>(() => Linear.Run(tx, tw, null));
        Assert.Contains("K=9", e.Message);
    }
}
