using ILGPU;
using ILGPU.Runtime;
using SmoothCache.Kernels;
using static SmoothCache.Tests.TestSupport;

namespace SmoothCache.Tests.Kernels;

public class HalfConversionTests
{
    /// <summary>Values around every rounding case: ties, subnormals, the overflow threshold, NaN.</summary>
    private static float[] Probes()
    {
        var rng = new System.Random(21);
        var values = new List<float>
        {
            0f, -0f, 1f, -2.5f, 65504f, 65519.99f, 65520f, -70000f, float.PositiveInfinity, float.NaN,
            6.1035156e-05f, 3e-05f, 5.9604645e-08f, 2.9802322e-08f, 2.9802326e-08f, 1e-9f,
            1f + 1f / 2048, 1f + 3f / 2048, 1f + 1f / 2048 + 1e-7f, // ties to even, both directions
        };
        for (int i = 0; i < 2000; i++)
            values.Add((float)((rng.NextDouble() * 2 - 1) * Math.Pow(2, rng.Next(-26, 17))));
        return values.ToArray();
    }

    [Fact]
    public void ToHalfRoundsToNearestEvenLikeSystemHalf()
    {
        var data = Probes();
        using var x = Cpu.Arena.Upload(data, 1, data.Length);
        using var h = HalfConversion.ToHalf(x);
        Assert.Equal(DType.Float16, h.DType);
        Assert.Equal(x.Shape, h.Shape);
        var bits = h.HalfView.GetAsArray();
        for (int i = 0; i < data.Length; i++)
        {
            ushort expected = BitConverter.HalfToUInt16Bits((System.Half)data[i]);
            if (float.IsNaN(data[i])) Assert.True(System.Half.IsNaN(BitConverter.UInt16BitsToHalf(Interop.FloatAsInt(bits[i]))));
            else Assert.True(expected == Interop.FloatAsInt(bits[i]), $"element {i}: {data[i]:R} -> 0x{Interop.FloatAsInt(bits[i]):X4}, expected 0x{expected:X4}");
        }
    }

    [Fact]
    public void ToFloatGivesTheHalfValuesExactly()
    {
        var data = Probes().Where(float.IsFinite).ToArray();
        using var x = Cpu.Arena.Upload(data, data.Length);
        using var h = HalfConversion.ToHalf(x);
        using var back = HalfConversion.ToFloat(h);
        Assert.Equal(DType.Float32, back.DType);
        var r = back.ToArray();
        for (int i = 0; i < data.Length; i++) Assert.Equal((float)(System.Half)data[i], r[i]);
    }

    [Fact]
    public void PrepareWeightSharesForFp32AndConvertsForFp16()
    {
        var values = Random(22, 12);
        using var w = Cpu.Arena.Upload(values, 3, 4);
        using var half = HalfConversion.PrepareWeight(w, Precision.Fp16);
        Assert.Equal(DType.Float16, half.DType);
        Assert.Equal(values.Select(v => (float)(System.Half)v), half.ToArray());
        using var same = HalfConversion.PrepareWeight(w, Precision.Fp32);
        Assert.Equal(DType.Float32, same.DType);
        var changed = Random(23, 12);
        w.View.CopyFromCPU(changed); // the same storage: a write to the weight shows through
        Assert.Equal(changed, same.ToArray());
        Assert.Equal([3, 4], same.Shape);
        Assert.Throws<ArgumentException>(() => HalfConversion.ToFloat(w));
    }

    [Theory]
    [InlineData("fp32", Precision.Fp32)]
    [InlineData("FP16", Precision.Fp16)]
    [InlineData("half", Precision.Fp16)]
    public void ParsesPrecision(string text, Precision expected) => Assert.Equal(expected, HalfConversion.ParsePrecision(text));

    [Theory]
    [InlineData(Precision.Fp32, "fp32")]
    [InlineData(Precision.Fp16, "fp16")]
    public void NamesEachPrecisionAsItIsParsed(Precision precision, string name)
    {
        Assert.Equal(name, HalfConversion.PrecisionName(precision));
        Assert.Equal(precision, HalfConversion.ParsePrecision(name));
    }

    [Fact]
    public void RejectsUnknownPrecision() =>
        Assert.Contains("bf16", Assert.Throws<ArgumentException>(() => HalfConversion.ParsePrecision("bf16")).Message);
}
