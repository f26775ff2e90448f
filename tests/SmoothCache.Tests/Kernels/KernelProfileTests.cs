using SmoothCache.Kernels;
using static SmoothCache.Tests.TestSupport;

namespace SmoothCache.Tests.Kernels;

public class KernelProfileTests
{
    [Fact]
    public void CountsAndTimesEachKernelWhileAttached()
    {
        using var x = Cpu.Arena.Upload(Random(51, 2 * 4 * 8), 2, 4, 8);
        using var mod = Cpu.Arena.Upload(Random(52, 2 * 48), 2, 48);
        Elementwise.Run<SiluEpilogue>(x).Dispose(); // before the profile: not recorded
        IReadOnlyList<KernelTime> kernels;
        using (var profile = Cpu.StartProfile())
        {
            Assert.Same(profile, Cpu.Profile);
            Assert.Throws<InvalidOperationException>(() => Cpu.StartProfile());
            for (int i = 0; i < 3; i++) LayerNormModulate.Run(x, mod, 0, 8, 1e-6f).Dispose();
            Elementwise.Run<GeluTanhEpilogue>(x).Dispose();
            kernels = profile.Read();
            Assert.Equal(4, profile.Launches);
        }
        Assert.Null(Cpu.Profile);
        Assert.Equal(["Elementwise<GeluTanhEpilogue>", "LayerNormModulate"], kernels.Select(k => k.Kernel).Order());
        Assert.Equal(3, kernels.Single(k => k.Kernel == "LayerNormModulate").Launches);
        Assert.All(kernels, k => Assert.True(k.Milliseconds > 0));
        Assert.True(kernels[0].Milliseconds >= kernels[1].Milliseconds); // largest first
    }
}
