using SmoothCache.Kernels;
using static SmoothCache.Tests.TestSupport;

namespace SmoothCache.Tests.Kernels;

public class GatedResidualTests
{
    [Theory]
    [InlineData(8, 3 * 8)]   // float4s on the GPU path
    [InlineData(8, 3 * 8 + 2)] // a gate offset inside a float4: scalars
    [InlineData(6, 3 * 6)]   // D not a multiple of 4: scalars
    public void AddsEachSamplesGateTimesOutputExactlyOnBothPaths(int d, int gateOffset)
    {
        int b = 2, t = 3;
        var x = Random(41, b * t * d, 2f);
        var y = Random(42, b * t * d);
        var gate = Random(43, b * 6 * d);
        float[] Run(Backend backend)
        {
            using var tx = backend.Arena.Upload(x, b, t, d);
            using var ty = backend.Arena.Upload(y, b, t, d);
            using var tg = backend.Arena.Upload(gate, b, 6 * d);
            GatedResidual.Run(tx, tg, ty, gateOffset);
            return tx.ToArray();
        }
        var portable = Run(Cpu);
        Assert.Equal(portable, Run(CpuWithGpuKernels));
        // x + gate[sample] * y, every sample's own gate row at the offset.
        for (int i = 0; i < x.Length; i++)
            Assert.Equal(x[i] + gate[i / (t * d) * 6 * d + gateOffset + i % d] * y[i], portable[i]);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]  // float4s: x's and the residuals' as 8 bytes of float16 each
    public void Float16XAddsBothResidualsInFloat32AndRoundsOnce(bool gpuKernels)
    {
        var backend = gpuKernels ? CpuWithGpuKernels : Cpu;
        int b = 2, t = 3, d = 8;
        var gates = Random(49, b * 6 * d);
        using var gate = backend.Arena.Upload(gates, b, 6 * d);
        using var y1 = HalfAndWidened(backend, 50, b, t, d);
        using var y2 = HalfAndWidened(backend, 51, b, t, d);
        using var x = HalfAndWidened(backend, 48, b, t, d);
        using var updated = x.Half.Share();
        GatedResidual.Run(updated, gate, y1.Half, 5 * d, y2.Half, 2 * d);
        Assert.Equal(DType.Float16, updated.DType);
        float[] before = x.Wide.ToArray(), first = y1.Wide.ToArray(), second = y2.Wide.ToArray(), got = updated.ToArray();
        for (int i = 0; i < got.Length; i++)
        {
            int row = i / d / t * 6 * d, column = i % d;
            float sum = before[i] + gates[row + 5 * d + column] * first[i] + gates[row + 2 * d + column] * second[i];
            Assert.Equal((float)HalfConversion.Round(sum), got[i]);
        }
        Assert.NotEqual(before, got);
    }

    [Fact]
    public void Float16XGpuPathGivesThePortableResultExactly()
    {
        int b = 2, t = 3, d = 8;
        var gates = Random(52, b * 6 * d);
        float[] Run(Backend backend)
        {
            using var gate = backend.Arena.Upload(gates, b, 6 * d);
            using var y = HalfAndWidened(backend, 53, b, t, d);
            using var x = HalfAndWidened(backend, 54, b, t, d);
            using var updated = x.Half.Share();
            GatedResidual.Run(updated, gate, y.Half, 3 * d);
            return updated.ToArray();
        }
        Assert.Equal(Run(Cpu), Run(CpuWithGpuKernels));
    }

    [Fact]
    public void ResidualsOfAnotherTypeThanXAreRejected()
    {
        using var gate = Cpu.Arena.Zeros(1, 48);
        using var x = Cpu.Arena.Zeros(1, 2, 8);
        using var y = HalfAndWidened(Cpu, 55, 1, 2, 8);
        Assert.Contains("differ in type", Assert.Throws<ArgumentException>(() => GatedResidual.Run(x, gate, y.Half, 0)).Message);
        using var halfX = HalfConversion.ToHalf(x);
        Assert.Contains("differ in type", Assert.Throws<ArgumentException>(() => GatedResidual.Run(halfX, gate, y.Half, 0, y.Wide, 8)).Message);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void TwoResidualsInOneLaunchEqualTwoLaunchesBitForBit(bool gpuKernels)
    {
        var backend = gpuKernels ? CpuWithGpuKernels : Cpu;
        int b = 2, t = 3, d = 8;
        var x = Random(44, b * t * d, 2f);
        using var y1 = backend.Arena.Upload(Random(45, b * t * d), b, t, d);
        using var y2 = backend.Arena.Upload(Random(46, b * t * d), b, t, d);
        using var gate = backend.Arena.Upload(Random(47, b * 6 * d), b, 6 * d);
        using var oneX = backend.Arena.Upload(x, b, t, d);
        GatedResidual.Run(oneX, gate, y1, 5 * d, y2, 2 * d);
        using var twoX = backend.Arena.Upload(x, b, t, d);
        GatedResidual.Run(twoX, gate, y1, 5 * d);
        GatedResidual.Run(twoX, gate, y2, 2 * d);
        Assert.Equal(twoX.ToArray(), oneX.ToArray());
        Assert.NotEqual(x, oneX.ToArray());
    }
}
