using SmoothCache.Kernels;
using static SmoothCache.Tests.TestSupport;

namespace SmoothCache.Tests.Kernels;

public class LayerNormModulateTests
{
    [Theory]
    [InlineData(3, 5, 72, 1e-6)]
    [InlineData(2, 17, 48, 1e-5)]
    public void NormalisesEachTokenAndAppliesItsSamplesShiftAndScale(int b, int t, int d, double eps)
    {
        // Modulation rows hold several chunks; use the 3rd as shift and the 5th as scale.
        int stride = 6 * d, shiftOff = 2 * d, scaleOff = 4 * d;
        var x = Random(21, b * t * d, 2f);
        for (int i = 0; i < x.Length; i++) x[i] += 0.5f; // a non-zero mean
        var mod = Random(22, b * stride);
        using var tx = Cpu.Arena.Upload(x, b, t, d);
        using var tm = Cpu.Arena.Upload(mod, b, stride);
        using var y = LayerNormModulate.Run(tx, tm, shiftOff, scaleOff, (float)eps);

        var expected = new double[x.Length];
        for (int row = 0; row < b * t; row++)
        {
            double mean = 0, var = 0;
            for (int k = 0; k < d; k++) mean += x[row * d + k];
            mean /= d;
            for (int k = 0; k < d; k++) var += Math.Pow(x[row * d + k] - mean, 2);
            var /= d;
            int s = row / t;
            for (int k = 0; k < d; k++)
                expected[row * d + k] = (x[row * d + k] - mean) / Math.Sqrt(var + eps)
                    * (1 + mod[s * stride + scaleOff + k]) + mod[s * stride + shiftOff + k];
        }
        Assert.True(RelativeL2(y.ToArray(), expected) < 1e-6);
    }
}
