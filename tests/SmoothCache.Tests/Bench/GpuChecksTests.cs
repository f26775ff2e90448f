using SmoothCache.Cli.Bench;
using SmoothCache.Kernels;

namespace SmoothCache.Tests.Bench;

public class GpuChecksTests
{
    [Fact]
    public void WgmmaLayoutProbeFindsEveryElementWhereTheEmulationPutsIt()
    {
        // The emulation reads through the kernel's own descriptors: the probe must see every element in place,
        // so that on a GPU a mismatch it reports is the hardware reading the descriptors differently.
        using var backend = Backend.Create(DeviceKind.Cpu, KernelSet.Wgmma);
        var log = new StringWriter();
        var checks = GpuChecks.WgmmaLayoutProbe(backend, log).ToArray();
        Assert.Equal(2, checks.Length);
        Assert.All(checks, c => Assert.Equal(0, c.RelativeError));
        // Nothing but the two checks' PASS lines: no mismatch to decode.
        var lines = log.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(2, lines.Length);
        Assert.All(lines, l => Assert.StartsWith("PASS wgmma probe", l));
    }

    [Fact]
    public void TmaLayoutProbesFindEveryElementWhereTheEmulatedCopiesPutIt()
    {
        using var backend = Backend.Create(DeviceKind.Cpu, KernelSet.WgmmaTma);
        var log = new StringWriter();
        var checks = GpuChecks.TmaLayoutProbe<SmoothCache.Kernels.Gpu.LinearWgmmaTma.Plain>(backend, log)
            .Concat(GpuChecks.TmaLayoutProbe<SmoothCache.Kernels.Gpu.LinearWgmmaTma.Swizzled64>(backend, log))
            .Concat(GpuChecks.TmaLayoutProbe<SmoothCache.Kernels.Gpu.LinearWgmmaTma.Swizzled128>(backend, log)).ToArray();
        Assert.Equal(6, checks.Length);
        Assert.All(checks, c => Assert.Equal(0, c.RelativeError));
        Assert.All(log.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries), l => Assert.StartsWith("PASS TMA ", l));
    }
}
