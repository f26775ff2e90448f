using SmoothCache.Kernels;
using static SmoothCache.Tests.TestSupport;

namespace SmoothCache.Tests.Kernels;

/// <summary>The timestep sinusoid and its double-accurate exp and cos/sin.</summary>
public class TimestepEmbeddingTests
{
    [Fact]
    public void TimestepSinusoidIsCosineThenSineOfScaledTimesteps()
    {
        float[] t = [999, 500, 1, 0];
        using var e = TimestepEmbedding.Run(Cpu, t);
        var got = e.ToArray();
        var expected = new double[4 * 256];
        for (int b = 0; b < 4; b++)
            for (int i = 0; i < 128; i++)
            {
                double a = t[b] * Math.Exp(-Math.Log(10000) * i / 127);
                expected[b * 256 + i] = Math.Cos(a);
                expected[b * 256 + 128 + i] = Math.Sin(a);
            }
        // float32 frequencies (as the reference computes them) move angles near 999 by ~1e-4.
        Assert.True(MaxAbs(got, expected) < 2e-4);
        Assert.Equal(1f, got[3 * 256]);           // t = 0: cos 0
        Assert.Equal(0f, got[3 * 256 + 128]);     // sin 0
    }

    [Fact]
    public void KernelExpAndCosSinAreDoubleAccurateWithoutLibraryCalls()
    {
        // The kernel's own series (immune to fast math on CUDA) against .NET's math, over the ranges it sees.
        for (double x = -9.3; x <= 3; x += 0.0137)
            Assert.True(Math.Abs(TimestepEmbedding.Exp(x) / Math.Exp(x) - 1) < 1e-15, $"exp({x})");
        for (double x = -1000; x <= 1000; x += 0.3779)
        {
            var (cos, sin) = TimestepEmbedding.CosSin(x);
            Assert.True(Math.Abs(cos - Math.Cos(x)) < 1e-14 && Math.Abs(sin - Math.Sin(x)) < 1e-14, $"cos/sin({x})");
        }
    }

    [Fact]
    public void ASharedTimestepTravelsInTheKernelArgumentsWithoutAnUpload()
    {
        long before = Cpu.Uploads;
        using var shared = TimestepEmbedding.Run(Cpu, [321f, 321f, 321f]);
        Assert.Equal(before, Cpu.Uploads);
        using var mixed = TimestepEmbedding.Run(Cpu, [321f, 321f, 5f]);
        Assert.Equal(before + 1, Cpu.Uploads);
        var a = shared.ToArray();
        var m = mixed.ToArray();
        Assert.Equal(a[..512], m[..512]);     // the first two samples agree either way
        Assert.NotEqual(a[512..], m[512..]);
    }

    [Fact]
    public void FillWritesOneTimestepIntoRowsOfALargerTensorAndNothingElse()
    {
        using var all = Cpu.Arena.Upload(Enumerable.Repeat(7f, 4 * 256).ToArray(), 4, 256);
        using (var middle = all.Rows(1, 2)) TimestepEmbedding.Fill(middle, 321f);
        using var reference = TimestepEmbedding.Run(Cpu, [321f, 321f]);
        var got = all.ToArray();
        Assert.Equal(reference.ToArray(), got[256..768]);
        Assert.All(got[..256].Concat(got[768..]), v => Assert.Equal(7f, v));
        using var wrong = Cpu.Arena.Zeros(2, 128);
        Assert.Contains("[R, 256]", Assert.Throws<ArgumentException>(() => TimestepEmbedding.Fill(wrong, 1f)).Message);
    }
}
