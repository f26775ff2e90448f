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
}
