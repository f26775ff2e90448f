using SmoothCache.Kernels;

namespace SmoothCache.Tests.Kernels;

public class BackendTests
{
    [Fact]
    public void PortableKernelsRunOnTwoThreadGroupsAGpuShapedDeviceOnlyWhereAsked()
    {
        using (var portable = Backend.Create(DeviceKind.Cpu))
        {
            Assert.Equal((2, 2, Environment.ProcessorCount),
                (portable.Accelerator.WarpSize, portable.Accelerator.MaxNumThreadsPerGroup, portable.Accelerator.NumMultiprocessors));
            // A GPU-shaped kernel says what backend it needs instead of ILGPU's group-size error at launch.
            using var qkv = portable.Arena.Upload(new float[3 * 4 * 64], 1, 4, 3 * 64);
            using var output = portable.Arena.Rent(1, 4, 64);
            var e = Assert.Throws<InvalidOperationException>(() => SmoothCache.Kernels.Gpu.FlashAttention.Run(portable, qkv, output, 1, 4, 1, 64));
            Assert.Contains("is a GPU-shaped kernel: on the CPU accelerator it needs a backend created for such kernels", e.Message);
        }
        using (var asked = Backend.Create(DeviceKind.Cpu, gpuShapedCpu: true))
            Assert.Equal((32, 1024, false), (asked.Accelerator.WarpSize, asked.Accelerator.MaxNumThreadsPerGroup, asked.UsesGpuKernels));
        using (var gpuKernels = Backend.Create(DeviceKind.Cpu, KernelSet.Gpu))
            Assert.Equal((32, 1024), (gpuKernels.Accelerator.WarpSize, gpuKernels.Accelerator.MaxNumThreadsPerGroup));
    }

    [Fact]
    public void KernelSetComesFromTheArgumentThenTheEnvironment()
    {
        string? saved = Environment.GetEnvironmentVariable("SMOOTHCACHE_KERNELS");
        try
        {
            using (var plain = Backend.Create(DeviceKind.Cpu)) Assert.False(plain.UsesGpuKernels);
            using (var forced = Backend.Create(DeviceKind.Cpu, KernelSet.Gpu))
                Assert.True(forced.UsesGpuKernels && !forced.UsesTensorCores);
            using (var emulated = Backend.Create(DeviceKind.Cpu, KernelSet.TensorCores))
                Assert.True(emulated.UsesGpuKernels && emulated.UsesTensorCores && !emulated.UsesWgmma);
            using (var hopper = Backend.Create(DeviceKind.Cpu, KernelSet.Wgmma))
                Assert.True(hopper.UsesTensorCores && hopper.UsesWgmma && !hopper.UsesTma);
            using (var tma = Backend.Create(DeviceKind.Cpu, KernelSet.WgmmaTma))
                Assert.True(tma.UsesTensorCores && tma.UsesWgmma && tma.UsesTma);
            Environment.SetEnvironmentVariable("SMOOTHCACHE_KERNELS", "GPU");
            using (var fromEnvironment = Backend.Create(DeviceKind.Cpu)) Assert.True(fromEnvironment.UsesGpuKernels);
            Environment.SetEnvironmentVariable("SMOOTHCACHE_KERNELS", "wgmma");
            using (var wgmma = Backend.Create(DeviceKind.Cpu)) Assert.True(wgmma.UsesWgmma);
            Environment.SetEnvironmentVariable("SMOOTHCACHE_KERNELS", "wgmma-tma");
            using (var tmaFromEnvironment = Backend.Create(DeviceKind.Cpu)) Assert.True(tmaFromEnvironment.UsesTma);
            using (var argumentWins = Backend.Create(DeviceKind.Cpu, KernelSet.Portable)) Assert.False(argumentWins.UsesGpuKernels);
            Environment.SetEnvironmentVariable("SMOOTHCACHE_KERNELS", "fast");
            var e = Assert.Throws<ArgumentException>(() => Backend.Create(DeviceKind.Cpu));
            Assert.Contains("SMOOTHCACHE_KERNELS='fast'", e.Message);
        }
        finally
        {
            Environment.SetEnvironmentVariable("SMOOTHCACHE_KERNELS", saved);
        }
    }

    [Fact]
    public void DependentLaunchesAreOffUnlessSmoothcachePdlSaysOn()
    {
        Assert.False(Backend.ParseDependentLaunches(null));
        Assert.False(Backend.ParseDependentLaunches(""));
        Assert.False(Backend.ParseDependentLaunches("off"));
        Assert.True(Backend.ParseDependentLaunches(" ON "));
        var e = Assert.Throws<ArgumentException>(() => Backend.ParseDependentLaunches("yes"));
        Assert.Equal("SMOOTHCACHE_PDL='yes': expected on or off", e.Message);
        // Programmatic dependent launch is a CUDA feature (compute capability 9.0 and newer).
        Assert.False(TestSupport.Cpu.SupportsDependentLaunches);
    }
}
