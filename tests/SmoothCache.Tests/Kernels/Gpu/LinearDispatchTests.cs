using SmoothCache.Kernels;
using SmoothCache.Kernels.Gpu;
using static SmoothCache.Tests.TestSupport;

namespace SmoothCache.Tests.Kernels.Gpu;

public class LinearDispatchTests
{
    [Theory]
    [InlineData(72, 0, null)]
    [InlineData(1152, 0, null)]
    [InlineData(12, 0, "K=12 is not a multiple of 8")]
    [InlineData(16, 6, "starts at element 6")]
    public void TensorCoreKernelStatesWhatItSupports(int k, long offset, string? reason)
    {
        var why = LinearTensorCore.Unsupported(100, 200, k, offset);
        if (reason is null) Assert.Null(why);
        else Assert.Contains(reason, why);
    }

    [Theory]
    [InlineData(KernelSet.TensorCores, 2, true)] // fp16 on tensor cores whatever the rows
    [InlineData(KernelSet.Gpu, 2, false)]        // without them a few rows go to the skinny kernel
    [InlineData(KernelSet.Gpu, 17, false)]       // and more to the portable kernel
    public void Fp16GemmsTakeTensorCoresEvenForAFewRows(KernelSet kernels, int rows, bool tensorCores)
    {
        using var backend = Backend.Create(DeviceKind.Cpu, kernels);
        var xs = Enumerable.Range(0, rows * 16).Select(i => i * 0.01f).ToArray();
        var ws = Enumerable.Range(0, 8 * 16).Select(i => 1f - i * 0.01f).ToArray();
        using var x = backend.Arena.Upload(xs, rows, 16);
        using var w32 = backend.Arena.Upload(ws, 8, 16);
        using var w = HalfConversion.ToHalf(w32);
        using var y = Linear.Run(x, w, null);
        Assert.Equal(tensorCores, backend.LoadedKernels.Any(k => k.DeclaringType == typeof(LinearTensorCore)));
        Assert.Equal(!tensorCores && rows <= LinearSkinny.MaxRows, backend.LoadedKernels.Any(k => k.DeclaringType == typeof(LinearSkinny)));
        // Whichever kernel: x and W rounded to float16, products summed in float32.
        static double H(float v) => (double)(System.Half)v;
        var expected = new double[rows * 8];
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < 8; c++)
                expected[r * 8 + c] = Enumerable.Range(0, 16).Sum(k => H(xs[r * 16 + k]) * H(ws[c * 16 + k]));
        Assert.True(RelativeL2(y.ToArray(), expected) < 1e-6);
    }

    [Theory]
    [InlineData(KernelSet.Wgmma, typeof(LinearWgmma))]
    [InlineData(KernelSet.WgmmaTma, typeof(LinearWgmmaTma))]
    public void HopperKernelSetsTakeTheirKernelForFp16AndKeep3xTf32ForFp32(KernelSet kernels, Type hopperKernel)
    {
        using var backend = Backend.Create(DeviceKind.Cpu, kernels);
        using var x = backend.Arena.Upload(Enumerable.Range(0, 20 * 16).Select(i => i * 0.01f).ToArray(), 20, 16);
        using var w32 = backend.Arena.Upload(Enumerable.Range(0, 8 * 16).Select(i => 1f - i * 0.01f).ToArray(), 8, 16);
        using var w = HalfConversion.ToHalf(w32);
        using (Linear.Run(x, w, null))
            Assert.Equal([hopperKernel], backend.LoadedKernels.Select(k => k.DeclaringType).Where(t => t!.Name.StartsWith("Linear")).Distinct());
        using (Linear.Run(x, w32, null))
            Assert.Contains(backend.LoadedKernels, k => k.DeclaringType == typeof(LinearTensorCore));
    }

    [Fact]
    public void TmaGemmVariantsAreNamedAndParsedBack()
    {
        var all = LinearWgmmaTma.Variant.All.ToArray();
        // 14 in 32-deep tiles, 12 in 64-deep ones.
        Assert.Equal(26, all.Select(v => v.Name).Distinct().Count());
        Assert.All(all, v => Assert.True(v.SharedBytes <= LinearWgmmaTma.MaxSharedBytes, v.Name));
        Assert.All(all, v => Assert.Equal(v, LinearWgmmaTma.Variant.Parse(v.Name.ToUpperInvariant())));
        var e = Assert.Throws<ArgumentException>(() => LinearWgmmaTma.Variant.Parse("128x128-fast"));
        Assert.Contains("'128x128-fast'", e.Message);
        Assert.Contains("256x128-multicast", e.Message);
        // 64-deep tiles are named by their K; 6 stages of 256 x 128 x 64 (288 KB) would not fit.
        Assert.Contains(all, v => v.Name == "128x128x64-deepreleased");
        Assert.Equal(new LinearWgmmaTma.Variant(false, LinearWgmmaTma.RingKind.ShallowReleased, 64), LinearWgmmaTma.Variant.Parse("128x128x64-shallowreleased"));
        Assert.Contains(all, v => v.Name == "256x128x64-barrier");
        Assert.Throws<ArgumentException>(() => LinearWgmmaTma.Variant.Parse("256x128x64-deep"));
        var tooBig = Assert.Throws<ArgumentException>(() => LinearWgmmaTma.Run<IdentityEpilogue>(Cpu, new(true, LinearWgmmaTma.RingKind.Deep, 64),
            default, default!, default, default, 0));
        Assert.Contains("256x128x64-deep needs 295008 bytes", tooBig.Message);
    }

    [Fact]
    public void EnvironmentsTmaGemmVariantRunsEveryFp16GemmWithTheSameSums()
    {
        string? saved = Environment.GetEnvironmentVariable("SMOOTHCACHE_TMA_GEMM");
        try
        {
            // 130 rows: a 256 x 128 block with rows past M; K = 72: a partial third K tile.
            float[] Multiply(out Type[] kernelTypes)
            {
                using var backend = Backend.Create(DeviceKind.Cpu, KernelSet.WgmmaTma);
                using var x = backend.Arena.Upload(Enumerable.Range(0, 130 * 72).Select(i => MathF.Sin(i * 0.37f)).ToArray(), 130, 72);
                using var w32 = backend.Arena.Upload(Enumerable.Range(0, 24 * 72).Select(i => MathF.Cos(i * 0.11f)).ToArray(), 24, 72);
                using var w = HalfConversion.ToHalf(w32);
                using var y = Linear.Run(x, w, null);
                kernelTypes = backend.LoadedKernels.Where(k => k.DeclaringType == typeof(LinearWgmmaTma)).SelectMany(k => k.GetGenericArguments()).ToArray();
                return y.ToArray();
            }
            Environment.SetEnvironmentVariable("SMOOTHCACHE_TMA_GEMM", null);
            var expected = Multiply(out var defaultTypes);
            Assert.Contains(typeof(LinearWgmma.OneWarpGroup), defaultTypes);
            Assert.Contains(typeof(LinearWgmmaTma.BarrierRing), defaultTypes);
            Environment.SetEnvironmentVariable("SMOOTHCACHE_TMA_GEMM", "256x128-Deep");
            var deep = Multiply(out var deepTypes);
            Assert.Contains(typeof(LinearWgmma.TwoWarpGroups), deepTypes);
            Assert.Contains(typeof(LinearWgmmaTma.DeepBarrierRing), deepTypes);
            Assert.Equal(expected, deep);
            Environment.SetEnvironmentVariable("SMOOTHCACHE_TMA_GEMM", "256x64-deep");
            var e = Assert.Throws<ArgumentException>(() => Backend.Create(DeviceKind.Cpu, KernelSet.WgmmaTma));
            Assert.StartsWith("SMOOTHCACHE_TMA_GEMM: '256x64-deep' is not a TMA GEMM variant", e.Message);
        }
        finally
        {
            Environment.SetEnvironmentVariable("SMOOTHCACHE_TMA_GEMM", saved);
        }
    }

    /// <summary>An M x K x and an N x K Float16 W of values exact in fp16 (sines and cosines at the given steps), and
    /// x W^T + b in float64 for a bias of <paramref name="biasStep"/> times the column.</summary>
    private static (float[] Xs, Tensor X, Tensor W, double[] Expected) HalfProblem(Backend backend, int m, int n, int k, float xStep, float wStep,
        float biasStep)
    {
        var xs = Enumerable.Range(0, m * k).Select(i => (float)(System.Half)MathF.Sin(i * xStep)).ToArray();
        var ws = Enumerable.Range(0, n * k).Select(i => (float)(System.Half)MathF.Cos(i * wStep)).ToArray();
        using var w32 = backend.Arena.Upload(ws, n, k);
        var expected = Enumerable.Range(0, m * n)
            .Select(i => Enumerable.Range(0, k).Sum(t => (double)xs[i / n * k + t] * ws[i % n * k + t]) + (double)biasStep * (i % n)).ToArray();
        return (xs, backend.Arena.Upload(xs, m, k), HalfConversion.ToHalf(w32), expected);
    }

    [Fact]
    public void ATunedShapeTakesItsVariantAndSplitAndOthersTheBuiltInChoice()
    {
        using var backend = Backend.Create(DeviceKind.Cpu, KernelSet.WgmmaTma);
        // 130 rows: a 256 x 128 block with rows past M; K = 72: three K tiles, split 2 ways as 2 + 1.
        var problem = HalfProblem(backend, 130, 24, 72, 0.37f, 0.11f, 0);
        using var x = problem.X;
        using var w = problem.W;
        using var fewRows = backend.Arena.Upload(problem.Xs[..(20 * 72)], 20, 72);
        var expected = problem.Expected;
        GemmChoice Launched(Tensor input)
        {
            backend.GemmLog = new();
            using var y = Linear.Run(input, w, null);
            var launch = Assert.Single(backend.GemmLog);
            backend.GemmLog = null;
            Assert.True(RelativeL2(y.ToArray(), expected[..(launch.M * 24)]) < 1e-5);
            // What the tuner times it with: this launch's epilogue and output type.
            Assert.Equal((typeof(IdentityEpilogue), false), (launch.Epilogue, launch.Fp16Output));
            return launch.Choice;
        }
        var deep = LinearWgmmaTma.Variant.Parse("256x128-deep");
        backend.GemmTuning = new GemmTuning(backend.DeviceName, "LinearWgmmaTma", [new GemmChoice(130, 24, 72, deep, 2, 1, 2)]);
        var tuned = Launched(x);
        Assert.Equal((deep, 2), (tuned.Variant!.Value, tuned.Splits));
        Assert.Contains(backend.LoadedKernels, k => k.DeclaringType == typeof(LinearWgmmaTma)
            && k.GetGenericArguments().Contains(typeof(LinearWgmma.TwoWarpGroups)) && k.GetGenericArguments().Contains(typeof(LinearWgmmaTma.DeepBarrierRing)));
        var untuned = Launched(fewRows);
        Assert.Equal((LinearWgmmaTma.Variant.Default, 1), (untuned.Variant!.Value, untuned.Splits));
        // A table measured with another kernel does not apply.
        backend.GemmTuning = new GemmTuning(backend.DeviceName, "LinearTensorCore", [new GemmChoice(130, 24, 72, null, 2, 1, 2)]);
        var other = Launched(x);
        Assert.Equal((LinearWgmmaTma.Variant.Default, 1), (other.Variant!.Value, other.Splits));
    }

    [Fact]
    public void ATunedShapeWithHeadRowsRunsThemUnsplitThenTheRestSplit()
    {
        using var backend = Backend.Create(DeviceKind.Cpu, KernelSet.WgmmaTma);
        // 300 rows: 256 unsplit, then 44 split 2 ways along K = 72 (three 32-deep tiles: 2 + 1).
        var problem = HalfProblem(backend, 300, 40, 72, 0.29f, 0.13f, 0.1f);
        using var x = problem.X;
        using var w = problem.W;
        var expected = problem.Expected;
        using var bias = backend.Arena.Upload(Enumerable.Range(0, 40).Select(i => 0.1f * i).ToArray(), 40);
        var variant = LinearWgmmaTma.Variant.Parse("128x128-barrier");
        backend.GemmTuning = new GemmTuning(backend.DeviceName, "LinearWgmmaTma", [new GemmChoice(300, 40, 72, variant, 2, 1, 2, HeadRows: 256)]);
        backend.GemmLog = new();
        using var y = Linear.Run(x, w, bias, DType.Float16);
        Assert.Equal([(256, 1), (44, 2)], backend.GemmLog.Select(l => (l.M, l.Splits)));
        Assert.All(backend.GemmLog, l => Assert.Equal(variant, l.Variant));
        backend.GemmLog = null;
        Assert.True(RelativeL2(y.ToArray(), expected) < 1e-3); // fp16 output
    }

    [Fact]
    public void EnvironmentsTmaGemmVariantOverridesTheTuningTable()
    {
        string? saved = Environment.GetEnvironmentVariable("SMOOTHCACHE_TMA_GEMM");
        try
        {
            var table = new GemmTuning("CPUAccelerator", "LinearWgmmaTma", [new GemmChoice(130, 24, 72, LinearWgmmaTma.Variant.Parse("256x128-deep"), 2, 1, 2)]);
            Environment.SetEnvironmentVariable("SMOOTHCACHE_TMA_GEMM", null);
            using (var backend = Backend.Create(DeviceKind.Cpu, KernelSet.WgmmaTma))
            {
                backend.GemmTuning = table;
                Assert.Equal((LinearWgmmaTma.Variant.Parse("256x128-deep"), 2, 0), Linear.Fp16Launch(backend, 130, 24, 72));
            }
            Environment.SetEnvironmentVariable("SMOOTHCACHE_TMA_GEMM", "128x128-released");
            using (var backend = Backend.Create(DeviceKind.Cpu, KernelSet.WgmmaTma))
            {
                backend.GemmTuning = table;
                Assert.Equal((LinearWgmmaTma.Variant.Parse("128x128-released"), 0, 0), Linear.Fp16Launch(backend, 130, 24, 72));
            }
        }
        finally
        {
            Environment.SetEnvironmentVariable("SMOOTHCACHE_TMA_GEMM", saved);
        }
    }
}
