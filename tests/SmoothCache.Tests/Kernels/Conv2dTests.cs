using SmoothCache.Kernels;
using static SmoothCache.Tests.TestSupport;

namespace SmoothCache.Tests.Kernels;

public class Conv2dTests
{
    /// <summary>Zero-padded "same" convolution in float64, then f, then + residual.</summary>
    public static double[] Reference(float[] x, float[] w, float[] bias, float[]? residual,
        int b, int cin, int cout, int h, int wd, int k, Func<double, double> f)
    {
        int pad = k / 2;
        var y = new double[b * cout * h * wd];
        for (int n = 0; n < b; n++)
            for (int co = 0; co < cout; co++)
                for (int i = 0; i < h; i++)
                    for (int j = 0; j < wd; j++)
                    {
                        double acc = bias[co];
                        for (int ci = 0; ci < cin; ci++)
                            for (int ky = 0; ky < k; ky++)
                                for (int kx = 0; kx < k; kx++)
                                {
                                    int yi = i + ky - pad, xj = j + kx - pad;
                                    if (yi < 0 || yi >= h || xj < 0 || xj >= wd) continue;
                                    acc += (double)x[((n * cin + ci) * h + yi) * wd + xj] * w[((co * cin + ci) * k + ky) * k + kx];
                                }
                        int o = ((n * cout + co) * h + i) * wd + j;
                        y[o] = f(acc) + (residual?[o] ?? 0);
                    }
        return y;
    }

    /// <summary>The portable backend runs the direct convolution; GPU kernels run it as a GEMM (here on the SIMT SGEMM).</summary>
    private static Backend On(bool gpuKernels) => gpuKernels ? CpuWithGpuKernels : Cpu;

    [Theory]
    [InlineData(2, 5, 6, 5, 7, 3, false)]   // odd image, channels not multiples of anything
    [InlineData(2, 5, 6, 5, 7, 3, true)]
    [InlineData(1, 3, 4, 1, 9, 3, false)]   // a single row: the window is clipped on both vertical sides
    [InlineData(1, 3, 4, 1, 9, 3, true)]
    [InlineData(2, 6, 3, 4, 4, 1, false)]   // 1x1: a per-pixel linear over channels
    [InlineData(2, 6, 3, 4, 4, 1, true)]
    [InlineData(1, 2, 2, 6, 5, 5, false)]   // a larger odd kernel pads by 2
    [InlineData(1, 2, 2, 6, 5, 5, true)]
    public void MatchesFloat64ReferenceWithBias(int b, int cin, int cout, int h, int w, int k, bool gpuKernels)
    {
        var backend = On(gpuKernels);
        var x = Random(41, b * cin * h * w, 2f);
        var wt = Random(42, cout * cin * k * k, 0.3f);
        var bias = Random(43, cout);
        using var tx = backend.Arena.Upload(x, b, cin, h, w);
        using var tw = backend.Arena.Upload(wt, cout, cin, k, k);
        using var tb = backend.Arena.Upload(bias, cout);
        using var y = Conv2d.Run(tx, tw, tb);
        Assert.Equal(new[] { b, cout, h, w }, y.Shape);
        Assert.True(RelativeL2(y.ToArray(), Reference(x, wt, bias, null, b, cin, cout, h, w, k, v => v)) < 1e-6);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void AppliesTheEpilogueThenAddsTheResidual(bool gpuKernels)
    {
        var backend = On(gpuKernels);
        int b = 2, cin = 5, cout = 6, h = 5, w = 7, k = 3;
        var x = Random(44, b * cin * h * w, 2f);
        var wt = Random(45, cout * cin * k * k, 0.3f);
        var bias = Random(46, cout);
        var residual = Random(47, b * cout * h * w, 3f);
        using var tx = backend.Arena.Upload(x, b, cin, h, w);
        using var tw = backend.Arena.Upload(wt, cout, cin, k, k);
        using var tb = backend.Arena.Upload(bias, cout);
        using var tr = backend.Arena.Upload(residual, b, cout, h, w);
        using var y = Conv2d.Run<SiluEpilogue>(tx, tw, tb, tr);
        var expected = Reference(x, wt, bias, residual, b, cin, cout, h, w, k, LinearTests.Silu);
        Assert.True(RelativeL2(y.ToArray(), expected) < 1e-6);
    }

    [Theory]
    [InlineData(2 * 4 * 5 * 27)]   // two images of 4 x 5 pixels x 3 x 3 x 3 taps a chunk: chunks of 2, 2, 1
    [InlineData(1)]                // less than one image: one image a chunk
    public void AsAGemmTakesTheImagesAFewAtATimeWithTheSameResult(long maxUnfolded)
    {
        int b = 5, cin = 3, cout = 4, h = 4, w = 5, k = 3;
        var x = Random(48, b * cin * h * w, 2f);
        var wt = Random(49, cout * cin * k * k, 0.3f);
        var bias = Random(50, cout);
        var residual = Random(51, b * cout * h * w, 3f);
        var backend = CpuWithGpuKernels;
        using var tx = backend.Arena.Upload(x, b, cin, h, w);
        using var tw = backend.Arena.Upload(wt, cout, cin, k, k);
        using var tb = backend.Arena.Upload(bias, cout);
        using var tr = backend.Arena.Upload(residual, b, cout, h, w);
        using var y = Conv2d.RunAsGemm<SiluEpilogue>(tx, tw, tb, tr, maxUnfolded);
        using var whole = Conv2d.RunAsGemm<SiluEpilogue>(tx, tw, tb, tr);
        Assert.Equal(whole.ToArray(), y.ToArray());
        Assert.True(RelativeL2(y.ToArray(), Reference(x, wt, bias, residual, b, cin, cout, h, w, k, LinearTests.Silu)) < 1e-6);
    }

    /// <summary>A Float16 weight: the patches unfolded as float16, so the products are those of x and W rounded to
    /// float16, summed in float32; on the portable backend too (the fp16 path is the same numbers everywhere).</summary>
    [Theory]
    [InlineData(false, 1L << 28)]
    [InlineData(true, 1L << 28)]
    [InlineData(true, 1L)]   // one image a chunk
    public void AFloat16WeightMultipliesFloat16OperandsAsAGemm(bool gpuKernels, long maxUnfolded)
    {
        var backend = On(gpuKernels);
        int b = 2, cin = 8, cout = 3, h = 5, w = 6, k = 3;   // Cin K K = 72, N = 3 as a VAE's conv_out
        var x = Random(52, b * cin * h * w, 2f);
        var bias = Random(54, cout);
        var residual = Random(55, b * cout * h * w, 3f);
        using var weight = HalfAndWidened(backend, 53, cout, cin, k, k);
        using var tx = backend.Arena.Upload(x, b, cin, h, w);
        using var tb = backend.Arena.Upload(bias, cout);
        using var tr = backend.Arena.Upload(residual, b, cout, h, w);
        using var y = maxUnfolded == 1L << 28
            ? Conv2d.Run<SiluEpilogue>(tx, weight.Half, tb, tr)
            : Conv2d.RunAsGemm<SiluEpilogue>(tx, weight.Half, tb, tr, maxUnfolded);
        var wt = weight.Wide.ToArray();
        var rounded = x.Select(v => (float)(System.Half)v).ToArray();
        Assert.True(RelativeL2(y.ToArray(), Reference(rounded, wt, bias, residual, b, cin, cout, h, w, k, LinearTests.Silu)) < 1e-6);
        // Against x unrounded: fp16 rounding, well inside the fp16 path's 1e-2.
        double error = RelativeL2(y.ToArray(), Reference(x, wt, bias, residual, b, cin, cout, h, w, k, LinearTests.Silu));
        Assert.InRange(error, 1e-6, 1e-2);
    }

    [Fact]
    public void TheDirectConvolutionRejectsAFloat16Weight()
    {
        using var x = Cpu.Arena.Zeros(1, 8, 3, 3);
        using var weight = HalfAndWidened(Cpu, 56, 2, 8, 3, 3);
        Assert.Contains("Float32 weight", Assert.Throws<ArgumentException>(() => Conv2d.RunDirect<IdentityEpilogue>(x, weight.Half, null)).Message);
    }

    [Fact]
    public void RejectsMismatchedChannelsAndEvenKernels()
    {
        using var x = Cpu.Arena.Zeros(1, 4, 5, 5);
        using var wrongCin = Cpu.Arena.Zeros(2, 3, 3, 3);
        using var even = Cpu.Arena.Zeros(2, 4, 2, 2);
        Assert.Contains("[Cout,4,K,K]", Assert.Throws<ArgumentException>(() => Conv2d.Run(x, wrongCin, null)).Message);
        Assert.Contains("K odd", Assert.Throws<ArgumentException>(() => Conv2d.Run(x, even, null)).Message);
    }
}
