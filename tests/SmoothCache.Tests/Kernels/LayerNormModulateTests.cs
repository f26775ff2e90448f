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

    [Fact]
    public void RunAfterResidualEqualsGatedResidualThenNorm()
    {
        int b = 2, t = 7, d = 40;
        var x = Random(23, b * t * d, 2f);
        var r = Random(24, b * t * d);
        var mod = Random(25, b * 6 * d);
        using var tm = Cpu.Arena.Upload(mod, b, 6 * d);
        using var tr = Cpu.Arena.Upload(r, b, t, d);
        using var fusedX = Cpu.Arena.Upload(x, b, t, d);
        using var fused = LayerNormModulate.RunAfterResidual(fusedX, tr, tm, 2 * d, 3 * d, 4 * d, 1e-6f);
        using var twoStepX = Cpu.Arena.Upload(x, b, t, d);
        GatedResidual.Run(twoStepX, tr, tm, 2 * d);
        using var twoStep = LayerNormModulate.Run(twoStepX, tm, 3 * d, 4 * d, 1e-6f);
        Assert.Equal(twoStepX.ToArray(), fusedX.ToArray()); // x is updated in place, bit for bit
        Assert.True(RelativeL2(fused.ToArray(), twoStep.ToArray()) < 1e-7);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]   // the row kernel
    public void RunAfterResidualsEqualsTwoGatedResidualsThenNorm(bool gpuKernels)
    {
        var backend = gpuKernels ? CpuWithGpuKernels : Cpu;
        int b = 2, t = 5, d = 48;
        var x = Random(26, b * t * d, 2f);
        using var r1 = backend.Arena.Upload(Random(27, b * t * d), b, t, d);
        using var r2 = backend.Arena.Upload(Random(28, b * t * d), b, t, d);
        using var tm = backend.Arena.Upload(Random(29, b * 12 * d), b, 12 * d);
        // The block before's MLP gate (column 5d), then this block's attention gate (column 8d).
        using var fusedX = backend.Arena.Upload(x, b, t, d);
        using var fused = LayerNormModulate.RunAfterResiduals(fusedX, r1, 5 * d, r2, 8 * d, tm, 9 * d, 10 * d, 1e-6f);
        using var stepsX = backend.Arena.Upload(x, b, t, d);
        GatedResidual.Run(stepsX, r1, tm, 5 * d);
        GatedResidual.Run(stepsX, r2, tm, 8 * d);
        using var steps = LayerNormModulate.Run(stepsX, tm, 9 * d, 10 * d, 1e-6f);
        Assert.Equal(stepsX.ToArray(), fusedX.ToArray()); // x is updated in place, bit for bit
        Assert.True(RelativeL2(fused.ToArray(), steps.ToArray()) < 1e-7);
    }

    [Theory]
    [InlineData(false, 2, 100)]
    [InlineData(true, 1, 100)]   // the row kernel, most lanes' last float4s past the row
    [InlineData(true, 2, 1152)]  // DiT-XL/2's width, both terms in every lane's nine float4s
    public void Float16ResidualsGiveWhatTheirWidenedValuesGiveBitForBit(bool gpuKernels, int terms, int d)
    {
        // The fp16 path's component outputs: the same values as Float16 tensors or as Float32 ones, the same x and y.
        var backend = gpuKernels ? CpuWithGpuKernels : Cpu;
        int b = 2, t = 3;
        var x = Random(36, b * t * d, 2f);
        using var mod = backend.Arena.Upload(Random(37, b * 6 * d), b, 6 * d);
        using var r = HalfAndWidened(backend, 38, b, t, d);
        using var r2 = HalfAndWidened(backend, 39, b, t, d);
        (float[] X, float[] Y) Run(Tensor first, Tensor second)
        {
            using var tx = backend.Arena.Upload(x, b, t, d);
            using var y = LayerNormModulate.RunAfterResiduals(tx, first, 2 * d, terms == 2 ? second : null, 5 * d, mod, 3 * d, 4 * d, 1e-6f, DType.Float16);
            return (tx.ToArray(), y.ToArray());
        }
        var (halfX, halfY) = Run(r.Half, r2.Half);
        var (wideX, wideY) = Run(r.Wide, r2.Wide);
        Assert.Equal(wideX, halfX);
        Assert.Equal(wideY, halfY);
        Assert.NotEqual(x, halfX);
        if (terms == 2) Assert.Contains("differ in type", Assert.Throws<ArgumentException>(() => Run(r.Half, r2.Wide)).Message);
    }

    [Fact]
    public void RejectsAGateOutsideTheModulationRows()
    {
        using var x = Cpu.Arena.Zeros(1, 2, 8);
        using var mod = Cpu.Arena.Zeros(1, 48);
        var e = Assert.Throws<ArgumentException>(() => LayerNormModulate.RunAfterResidual(x, x, mod, 44, 0, 8, 1e-6f));
        Assert.Contains("does not fit", e.Message);
    }
}
