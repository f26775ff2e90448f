using SmoothCache.Kernels;
using static SmoothCache.Tests.TestSupport;

namespace SmoothCache.Tests.Kernels;

public class AttentionTests
{
    public static double[] Reference(float[] qkv, int b, int t, int heads, int hd)
    {
        int d = heads * hd;
        var output = new double[b * t * d];
        for (int s = 0; s < b; s++)
            for (int h = 0; h < heads; h++)
                for (int i = 0; i < t; i++)
                {
                    var scores = new double[t];
                    for (int j = 0; j < t; j++)
                    {
                        double dot = 0;
                        for (int c = 0; c < hd; c++)
                            dot += (double)qkv[(s * t + i) * 3 * d + h * hd + c] * qkv[(s * t + j) * 3 * d + d + h * hd + c];
                        scores[j] = dot / Math.Sqrt(hd);
                    }
                    double max = scores.Max(), sum = scores.Sum(v => Math.Exp(v - max));
                    for (int c = 0; c < hd; c++)
                    {
                        double acc = 0;
                        for (int j = 0; j < t; j++)
                            acc += Math.Exp(scores[j] - max) / sum * qkv[(s * t + j) * 3 * d + 2 * d + h * hd + c];
                        output[(s * t + i) * d + h * hd + c] = acc;
                    }
                }
        return output;
    }

    [Theory]
    [InlineData(2, 17, 3, 24)]   // odd token count, head dim 24 (dit-small)
    [InlineData(3, 16, 4, 16)]   // dit-digits' heads
    [InlineData(1, 9, 2, 72)]    // DiT-XL's head dim
    public void MatchesFloat64Softmax(int b, int t, int heads, int hd)
    {
        var qkv = Random(31, b * t * 3 * heads * hd, 2f);
        using var tq = Cpu.Arena.Upload(qkv, b, t, 3 * heads * hd);
        AssertMatchesReference(tq, qkv, heads, hd).Dispose();
    }

    /// <summary>Attention.Run on qkv (uploaded from <paramref name="values"/>) within 1e-6 of <see cref="Reference"/>; the
    /// output is the caller's.</summary>
    private static Tensor AssertMatchesReference(Tensor qkv, float[] values, int heads, int hd)
    {
        int b = qkv.Dim(0), t = qkv.Dim(1);
        var o = Attention.Run(qkv, heads, hd);
        Assert.Equal(new[] { b, t, heads * hd }, o.Shape);
        Assert.True(RelativeL2(o.ToArray(), Reference(values, b, t, heads, hd)) < 1e-6);
        return o;
    }

    [Theory]
    [InlineData(2, 17, 3, 24)]   // head dims the fused kernels lack: two GEMMs per sample and head
    [InlineData(1, 40, 1, 12)]   // one head, as the VAE's mid-block attention
    public void OnGpuKernelsOtherHeadDimsRunAsGemmsAndMatchFloat64Softmax(int b, int t, int heads, int hd)
    {
        var qkv = Random(32, b * t * 3 * heads * hd, 2f);
        using var tq = CpuWithGpuKernels.Arena.Upload(qkv, b, t, 3 * heads * hd);
        using var o = AssertMatchesReference(tq, qkv, heads, hd);
        using var direct = AttentionAsGemms.Run(tq, heads, hd);
        Assert.Equal(o.ToArray(), direct.ToArray());
        // An fp16 qkv is widened first and the output rounded.
        using var half = SmoothCache.Kernels.HalfConversion.ToHalf(tq);
        using var o16 = Attention.Run(half, heads, hd, DType.Float16);
        Assert.Equal(DType.Float16, o16.DType);
        // Against the float32 qkv's softmax: qkv rounded to float16 and the output too (measured 3.8e-4 and 4.6e-4).
        Assert.True(RelativeL2(o16.ToArray(), Reference(qkv, b, t, heads, hd)) < 2e-3);
    }
}
