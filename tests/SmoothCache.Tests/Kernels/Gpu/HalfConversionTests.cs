using SmoothCache.Kernels;
using static SmoothCache.Tests.TestSupport;

namespace SmoothCache.Tests.Kernels.Gpu;

public class HalfConversionTests
{
    [Fact]
    public void ToHalfRoundsToNearestAndToFloatIsExact()
    {
        // Exactly representable values survive; others land within half a float16 ulp (2^-11 relative).
        float[] exact = [0f, 1f, -2.5f, 0.125f, 1024f, -65504f, 6.103515625e-05f];
        var data = exact.Concat(Random(21, 200, 10f)).ToArray();
        using var x = Cpu.Arena.Upload(data, 3, data.Length / 3);
        using var h = HalfConversion.ToHalf(x);
        Assert.Equal(DType.Float16, h.DType);
        Assert.Equal(x.Shape, h.Shape);
        using var back = HalfConversion.ToFloat(h);
        var r = back.ToArray();
        for (int i = 0; i < exact.Length; i++) Assert.Equal(exact[i], r[i]);
        for (int i = 0; i < data.Length; i++)
            Assert.True(Math.Abs(r[i] - data[i]) <= Math.Abs(data[i]) * Math.Pow(2, -11) + 1e-7, $"element {i}: {data[i]} -> {r[i]}");
        Assert.Equal(r, h.ToArray());
    }

    [Fact]
    public void PrepareWeightSharesForFp32AndConvertsForFp16()
    {
        using var w = Cpu.Arena.Upload(Random(22, 12), 3, 4);
        using var same = HalfConversion.PrepareWeight(w, Precision.Fp32);
        Assert.Equal(DType.Float32, same.DType);
        Assert.Equal(w.ToArray(), same.ToArray());
        using var half = HalfConversion.PrepareWeight(w, Precision.Fp16);
        Assert.Equal(DType.Float16, half.DType);
        Assert.Throws<ArgumentException>(() => HalfConversion.ToFloat(w));
    }

    [Theory]
    [InlineData("fp32", Precision.Fp32)]
    [InlineData("FP16", Precision.Fp16)]
    [InlineData("half", Precision.Fp16)]
    public void ParsesPrecision(string text, Precision expected) => Assert.Equal(expected, HalfConversion.ParsePrecision(text));

    [Fact]
    public void RejectsUnknownPrecision() =>
        Assert.Contains("bf16", Assert.Throws<ArgumentException>(() => HalfConversion.ParsePrecision("bf16")).Message);
}
