using SmoothCache.Kernels;
using SmoothCache.Kernels.Gpu;
using static SmoothCache.Tests.TestSupport;

namespace SmoothCache.Tests.Kernels.Gpu;

public class LinearDispatchTests
{
    [Fact]
    public void TensorCoreKernelOnCpuNamesTheMissingCudaDevice()
    {
        // Linear.Run takes the portable fp16 GEMM there; the inline-PTX kernel itself refuses clearly.
        using var x = Cpu.Arena.Upload(Random(31, 16), 2, 8);
        using var w32 = Cpu.Arena.Upload(Random(32, 24), 3, 8);
        using var w16 = HalfConversion.ToHalf(w32);
        using var x16 = HalfConversion.ToHalf(x);
        using var y = Cpu.Arena.Rent(2, 3);
        var e = Assert.Throws<InvalidOperationException>(() =>
            LinearTensorCore.Run<IdentityEpilogue>(Cpu, x16.HalfView, w16, ILGPU.ArrayView<float>.Empty, OutputView.Of(y), 2));
        Assert.Contains("CUDA", e.Message);
    }

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
