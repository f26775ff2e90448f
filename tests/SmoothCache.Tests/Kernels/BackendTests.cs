using SmoothCache.Kernels;

namespace SmoothCache.Tests.Kernels;

public class BackendTests
{
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
