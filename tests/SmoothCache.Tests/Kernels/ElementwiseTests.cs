using SmoothCache.Kernels;
using static SmoothCache.Tests.TestSupport;

namespace SmoothCache.Tests.Kernels;

public class ElementwiseTests
{
    [Fact]
    public void SiluAndGeluMatchFloat64()
    {
        var x = Random(11, 1001, 6f);
        using var t = Cpu.Arena.Upload(x, 1001);
        using var silu = Elementwise.Run<SiluEpilogue>(t);
        using var gelu = Elementwise.Run<GeluTanhEpilogue>(t);
        Assert.True(RelativeL2(silu.ToArray(), x.Select(v => LinearTests.Silu(v)).ToArray()) < 1e-6);
        Assert.True(RelativeL2(gelu.ToArray(), x.Select(v => LinearTests.GeluTanh(v)).ToArray()) < 1e-6);
    }
}
