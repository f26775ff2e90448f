using ILGPU.Runtime;
using SmoothCache.Kernels.Gpu;
using static SmoothCache.Tests.TestSupport;

namespace SmoothCache.Tests.Kernels.Gpu;

public class TensorMapArgTests
{
    [Fact]
    public void StoreWritesTheMapsSixteenWordsInOrder()
    {
        var words = Enumerable.Range(0, TensorMapArg.Words).Select(i => 0x0123456789ABCDEFUL * (ulong)(i + 1) + (ulong)i).ToArray();
        using var target = Cpu.Accelerator.Allocate1D<ulong>(TensorMapArg.Words + 1);
        target.MemSetToZero();
        Cpu.Load<TensorMapArg.StoreArgs>(TensorMapArg.Store)(1, new() { Map = TensorMapArg.FromWords(words), Target = target.View.SubView(0, TensorMapArg.Words) });
        var got = target.GetAsArray1D();
        Assert.Equal(words, got[..TensorMapArg.Words]);
        Assert.Equal(0UL, got[TensorMapArg.Words]);
        Assert.Equal(TensorMapArg.Bytes, System.Runtime.InteropServices.Marshal.SizeOf<TensorMapArg>());
    }
}
