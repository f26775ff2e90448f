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
        using var fused = LayerNormModulate.RunAfterResiduals(fusedX, tm, 3 * d, 4 * d, 1e-6f, tr, 2 * d);
        using var twoStepX = Cpu.Arena.Upload(x, b, t, d);
        GatedResidual.Run(twoStepX, tm, tr, 2 * d);
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
        using var fused = LayerNormModulate.RunAfterResiduals(fusedX, tm, 9 * d, 10 * d, 1e-6f, r1, 5 * d, r2, 8 * d);
        using var stepsX = backend.Arena.Upload(x, b, t, d);
        GatedResidual.Run(stepsX, tm, r1, 5 * d);
        GatedResidual.Run(stepsX, tm, r2, 8 * d);
        using var steps = LayerNormModulate.Run(stepsX, tm, 9 * d, 10 * d, 1e-6f);
        Assert.Equal(stepsX.ToArray(), fusedX.ToArray()); // x is updated in place, bit for bit
        Assert.True(RelativeL2(fused.ToArray(), steps.ToArray()) < 1e-7);
    }

    [Theory]
    [InlineData(false, 2, 100)]
    [InlineData(true, 1, 100)]   // the row kernel, most lanes' last float4s past the row
    [InlineData(true, 2, 1152)]  // DiT-XL/2's width, both terms in every lane's nine float4s
    public void Float16XIsUpdatedAsOneGatedResidualLaunchThenNormalizedAsStored(bool gpuKernels, int terms, int d)
    {
        // The fp16 path: x and the component outputs float16. x + gate r (+ gate2 r2) is summed in float32 and rounded
        // once, as GatedResidual adds both terms in one launch, and the norm reads the rounded x.
        var backend = gpuKernels ? CpuWithGpuKernels : Cpu;
        int b = 2, t = 3;
        using var mod = backend.Arena.Upload(Random(37, b * 6 * d), b, 6 * d);
        using var r = HalfAndWidened(backend, 38, b, t, d);
        using var r2 = HalfAndWidened(backend, 39, b, t, d);
        using var x = HalfAndWidened(backend, 36, b, t, d);
        Tensor? second = terms == 2 ? r2.Half : null;
        using var fusedX = x.Half.Reshape(b, t, d);
        using var fused = LayerNormModulate.RunAfterResiduals(fusedX, mod, 3 * d, 4 * d, 1e-6f, r.Half, 2 * d, second, 5 * d, DType.Float16);
        using var stepsX = HalfConversion.ToHalf(x.Wide);
        GatedResidual.Run(stepsX, mod, r.Half, 2 * d, second, 5 * d);
        using var steps = LayerNormModulate.Run(stepsX, mod, 3 * d, 4 * d, 1e-6f, DType.Float16);
        Assert.Equal(stepsX.ToArray(), fusedX.ToArray());
        Assert.NotEqual(x.Wide.ToArray(), fusedX.ToArray());
        // y from the rounded x, bit for bit on the portable kernel (the same sums); the row kernel sums in another order.
        if (gpuKernels) Assert.True(RelativeL2(fused.ToArray(), steps.ToArray()) < 1e-3);
        else Assert.Equal(steps.ToArray(), fused.ToArray());
    }

    [Fact]
    public void ResidualsOfAnotherTypeThanXAreRejected()
    {
        int b = 1, t = 2, d = 8;
        using var mod = Cpu.Arena.Zeros(b, 6 * d);
        using var r = HalfAndWidened(Cpu, 40, b, t, d);
        using var x = Cpu.Arena.Zeros(b, t, d);
        var e = Assert.Throws<ArgumentException>(() => LayerNormModulate.RunAfterResiduals(x, mod, 0, d, 1e-6f, r.Half, 2 * d));
        Assert.Contains("residual Float16 and x Float32 differ in type", e.Message);
        using var halfX = HalfConversion.ToHalf(x);
        Assert.Throws<ArgumentException>(() => LayerNormModulate.RunAfterResiduals(halfX, mod, 0, d, 1e-6f, r.Half, 2 * d, r.Wide, 5 * d));
    }

    [Fact]
    public void RejectsAGateOutsideTheModulationRows()
    {
        using var x = Cpu.Arena.Zeros(1, 2, 8);
        using var mod = Cpu.Arena.Zeros(1, 48);
        var e = Assert.Throws<ArgumentException>(() => LayerNormModulate.RunAfterResiduals(x, mod, 0, 8, 1e-6f, x, 44));
        Assert.Contains("does not fit", e.Message);
    }
}
