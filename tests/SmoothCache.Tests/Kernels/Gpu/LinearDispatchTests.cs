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
        using var x = backend.Arena.Upload(Enumerable.Range(0, rows * 16).Select(i => i * 0.01f).ToArray(), rows, 16);
        using var w32 = backend.Arena.Upload(Enumerable.Range(0, 8 * 16).Select(i => 1f - i * 0.01f).ToArray(), 8, 16);
        using var w = HalfConversion.ToHalf(w32);
        using var y = Linear.Run(x, w, null);
        Assert.Equal(tensorCores, backend.LoadedKernels.Any(k => k.DeclaringType == typeof(LinearTensorCore)));
        Assert.Equal(!tensorCores && rows <= LinearSkinny.MaxRows, backend.LoadedKernels.Any(k => k.DeclaringType == typeof(LinearSkinny)));
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
        Assert.Equal(16, all.Select(v => v.Name).Distinct().Count());
        Assert.All(all, v => Assert.Equal(v, LinearWgmmaTma.Variant.Parse(v.Name.ToUpperInvariant())));
        var e = Assert.Throws<ArgumentException>(() => LinearWgmmaTma.Variant.Parse("128x128-fast"));
        Assert.Contains("'128x128-fast'", e.Message);
        Assert.Contains("256x128-multicast", e.Message);
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
}
