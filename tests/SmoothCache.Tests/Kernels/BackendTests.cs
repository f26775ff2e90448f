using SmoothCache.Kernels;
using static SmoothCache.Tests.TestSupport;

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

    [Theory]
    [InlineData("auto", DeviceKind.Auto, 0)]
    [InlineData("CPU", DeviceKind.Cpu, 0)]
    [InlineData("cuda", DeviceKind.Cuda, 0)]
    [InlineData("gpu", DeviceKind.Cuda, 0)]
    [InlineData("cuda:0", DeviceKind.Cuda, 0)]
    [InlineData(" Cuda:3 ", DeviceKind.Cuda, 3)]
    public void DeviceChoiceParsesKindsAndCudaNumbers(string text, DeviceKind kind, int index) =>
        Assert.Equal(new DeviceChoice(kind, index), DeviceChoice.Parse(text));

    [Theory]
    [InlineData("tpu", "unknown device 'tpu'")]
    [InlineData("cpu:1", "only a CUDA device takes an index")]
    [InlineData("cuda:", "expected cuda:N")]
    [InlineData("cuda:-1", "expected cuda:N")]
    [InlineData("cuda:one", "expected cuda:N")]
    [InlineData("cuda:1:2", "expected cuda:N")]
    public void DeviceChoiceRejectsWhatNamesNoDevice(string text, string expected) =>
        Assert.Contains(expected, Assert.Throws<ArgumentException>(() => DeviceChoice.Parse(text)).Message);

    [Fact]
    public void ABackendSaysWhichDeviceItRunsOn()
    {
        using (var cpu = Backend.Create(DeviceKind.Cpu)) Assert.Equal(new DeviceChoice(DeviceKind.Cpu), cpu.Device);
        using (var auto = Backend.Create())
            Assert.Equal(auto.IsCuda ? new DeviceChoice(DeviceKind.Cuda, 0) : new DeviceChoice(DeviceKind.Cpu), auto.Device);
        Assert.Equal("cuda:2", new DeviceChoice(DeviceKind.Cuda, 2).ToString());
        Assert.Equal("cpu", ((DeviceChoice)DeviceKind.Cpu).ToString());
    }

    [Fact]
    public void ACudaDeviceThisMachineLacksIsNamedWithTheDevicesItHas()
    {
        // No machine here has 64 GPUs: without CUDA the error says there is none, with it it lists them.
        var e = Assert.Throws<DeviceUnavailableException>(() => Backend.Create(new DeviceChoice(DeviceKind.Cuda, 63)));
        Assert.StartsWith("cuda:63: ", e.Message);
        Assert.True(e.Message.Contains("no CUDA device found") || e.Message.Contains("there is no CUDA device 63; this machine has"), e.Message);
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

    [Fact]
    public void AClaimFromAnotherThreadWhileOneIsHeldIsRefused()
    {
        using var backend = Backend.Create(DeviceKind.Cpu);
        Exception? ClaimOnAnotherThread(string work) => ThrownOnAnotherThread(() => backend.Claim(work).Dispose());
        using (backend.Claim("first"))
        {
            using (backend.Claim("nested on the same thread")) { }
            var refused = Assert.IsType<InvalidOperationException>(ClaimOnAnotherThread("second"));
            Assert.Contains("second: the backend on", refused.Message);
        }
        Assert.Null(ClaimOnAnotherThread("after the first ended"));
    }

    /// <summary>ClaimWhenFree and Dispose on another thread wait for the claim held here (freeing buffers under another
    /// thread's kernels took the process down); Dispose marks the backend at once, so that work can stop, and a
    /// ClaimUnlessDisposed waiting meanwhile gets null only once everything is freed.</summary>
    [Fact]
    public void ClaimWhenFreeAndDisposeWaitForAnotherThreadsClaim()
    {
        var backend = Backend.Create(DeviceKind.Cpu);
        bool waiterClaimed = false, cleanerGotNull = false;
        WorkerThread waiter, disposer, cleaner;
        using (backend.Claim("generating"))
        {
            waiter = new WorkerThread(() => { using (backend.ClaimWhenFree("loading")) waiterClaimed = true; });
            waiter.UntilBlocked();
            Assert.False(waiterClaimed);
        }
        Assert.True(waiter.Join(10_000));
        Assert.Null(waiter.Thrown);
        Assert.True(waiterClaimed);
        using (backend.Claim("generating"))
        {
            disposer = new WorkerThread(backend.Dispose);
            Assert.True(SpinWait.SpinUntil(() => backend.IsDisposed, 10_000));
            disposer.UntilBlocked();
            cleaner = new WorkerThread(() => cleanerGotNull = backend.ClaimUnlessDisposed("disposing a pipeline") is null);
            cleaner.UntilBlocked();
            using (var t = backend.Arena.Rent(4)) Assert.Equal(4, t.Length); // still the claim owner's until it lets go
            Assert.False(disposer.Join(100));
            Assert.False(cleaner.Join(0));
        }
        Assert.True(disposer.Join(10_000));
        Assert.True(cleaner.Join(10_000));
        Assert.Null(disposer.Thrown);
        Assert.Null(cleaner.Thrown);
        Assert.True(cleanerGotNull);
        Assert.Throws<ObjectDisposedException>(() => backend.ClaimWhenFree("after"));
    }
}
