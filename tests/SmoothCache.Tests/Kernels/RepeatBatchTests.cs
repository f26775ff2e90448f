using SmoothCache.Kernels;
using static SmoothCache.Tests.TestSupport;

namespace SmoothCache.Tests.Kernels;

/// <summary>The CFG input: copies stacked along the batch.</summary>
public class RepeatBatchTests
{
    [Fact]
    public void RepeatBatchStacksCopies()
    {
        var x = Random(73, 2 * 3);
        using var tx = Cpu.Arena.Upload(x, 2, 3);
        using var r = RepeatBatch.Run(tx, 2);
        Assert.Equal(new[] { 4, 3 }, r.Shape);
        Assert.Equal(x.Concat(x).ToArray(), r.ToArray());
    }
}
