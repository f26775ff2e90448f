using SmoothCache.Kernels;
using SmoothCache.Model;
using static SmoothCache.Tests.TestSupport;

namespace SmoothCache.Tests.Model;

public class PendingResidualTests
{
    private const int B = 2, T = 3, D = 8;

    [Fact]
    public void AddedResidualsCannotBeAddedAgain()
    {
        using var x = Cpu.Arena.Upload(Random(1, B * T * D), B, T, D);
        using var y = Cpu.Arena.Upload(Random(2, B * T * D), B, T, D);
        using var mod = Cpu.Arena.Upload(Random(3, B * 6 * D), B, 6 * D);
        using var pending = PendingResidual.Of(y, mod, 2 * D);
        pending.AddTo(x);
        var once = x.ToArray();
        Assert.True(pending.Added);
        Assert.Throws<InvalidOperationException>(() => pending.AddTo(x));
        Assert.Throws<InvalidOperationException>(() => PendingResidual.AddThenNormalize(pending, x, mod, 0, D, 1e-6f, DType.Float32).Dispose());
        Assert.Equal(once, x.ToArray());
    }

    [Fact]
    public void ThenPassesOverResidualsAnAdaLnAlreadyAdded()
    {
        using var x = Cpu.Arena.Upload(Random(4, B * T * D), B, T, D);
        using var y1 = Cpu.Arena.Upload(Random(5, B * T * D), B, T, D);
        using var y2 = Cpu.Arena.Upload(Random(6, B * T * D), B, T, D);
        using var mod = Cpu.Arena.Upload(Random(7, B * 6 * D), B, 6 * D);
        using var first = PendingResidual.Of(y1, mod, 2 * D);
        PendingResidual.AddThenNormalize(first, x, mod, 0, D, 1e-6f, DType.Float32).Dispose();
        using var next = PendingResidual.Then(first, x, y2, mod, 5 * D);
        Assert.Equal(1, next.Count);
        using var waiting = PendingResidual.Of(y1, mod, 2 * D);
        using var both = PendingResidual.Then(waiting, x, y2, mod, 5 * D);
        Assert.Equal(2, both.Count);
    }
}
