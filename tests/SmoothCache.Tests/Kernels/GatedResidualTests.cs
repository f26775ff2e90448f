using SmoothCache.Kernels;
using static SmoothCache.Tests.TestSupport;

namespace SmoothCache.Tests.Kernels;

public class GatedResidualTests
{
    [Theory]
    [InlineData(8, 3 * 8)]   // float4s on the GPU path
    [InlineData(8, 3 * 8 + 2)] // a gate offset inside a float4: scalars
    [InlineData(6, 3 * 6)]   // D not a multiple of 4: scalars
    public void GpuPathGivesThePortableResultExactly(int d, int gateOffset)
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
            GatedResidual.Run(tx, ty, tg, gateOffset);
            return tx.ToArray();
        }
        var portable = Run(Cpu);
        Assert.Equal(portable, Run(CpuWithGpuKernels));
        // x + gate * y for sample 1, token 2, column d - 1.
        int i = (1 * t + 2) * d + d - 1;
        Assert.Equal(x[i] + gate[1 * 6 * d + gateOffset + d - 1] * y[i], portable[i]);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]  // float4s: the residuals' as 8 bytes of float16 each
    public void Float16ResidualsGiveWhatTheirWidenedValuesGiveBitForBit(bool gpuKernels)
    {
        var backend = gpuKernels ? CpuWithGpuKernels : Cpu;
        int b = 2, t = 3, d = 8;
        var x = Random(48, b * t * d, 2f);
        using var gate = backend.Arena.Upload(Random(49, b * 6 * d), b, 6 * d);
        using var y1 = HalfAndWidened(backend, 50, b, t, d);
        using var y2 = HalfAndWidened(backend, 51, b, t, d);
        float[] Run(Tensor first, Tensor second)
        {
            using var tx = backend.Arena.Upload(x, b, t, d);
            GatedResidual.Run(tx, first, 5 * d, second, 2 * d, gate);
            return tx.ToArray();
        }
        var half = Run(y1.Half, y2.Half);
        Assert.Equal(Run(y1.Wide, y2.Wide), half);
        Assert.NotEqual(x, half);
        var e = Assert.Throws<ArgumentException>(() => Run(y1.Half, y2.Wide));
        Assert.Contains("differ in type", e.Message);
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
        GatedResidual.Run(oneX, y1, 5 * d, y2, 2 * d, gate);
        using var twoX = backend.Arena.Upload(x, b, t, d);
        GatedResidual.Run(twoX, y1, gate, 5 * d);
        GatedResidual.Run(twoX, y2, gate, 2 * d);
        Assert.Equal(twoX.ToArray(), oneX.ToArray());
        Assert.NotEqual(x, oneX.ToArray());
    }
}
