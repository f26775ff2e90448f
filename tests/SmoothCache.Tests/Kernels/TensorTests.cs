using SmoothCache.Kernels;
using static SmoothCache.Tests.TestSupport;

namespace SmoothCache.Tests.Kernels;

public class TensorTests
{
    [Fact]
    public void RowsViewAContiguousRangeOfTheFirstAxisInPlace()
    {
        var values = Enumerable.Range(0, 5 * 3 * 2).Select(i => (float)i).ToArray();
        using var t = Cpu.Arena.Upload(values, 5, 3, 2);
        using var rows = t.Rows(2, 2);
        Assert.Equal(new[] { 2, 3, 2 }, rows.Shape);
        Assert.Equal(values[12..24], rows.ToArray());
        // A reshape of the view keeps its start; a write through it lands in the whole tensor.
        using var flat = rows.Reshape(12);
        Assert.Equal(values[12..24], flat.ToArray());
        using (var last = t.Rows(4, 1)) last.CopyFrom(new float[6]);
        Assert.Equal(new float[6], t.ToArray()[24..]);
        // Rows of rows count from the view's start.
        using var inner = rows.Rows(1, 1);
        Assert.Equal(values[18..24], inner.ToArray());
    }

    [Fact]
    public void RowsOutsideTheTensorAreRejected()
    {
        using var t = Cpu.Arena.Zeros(4, 2);
        Assert.Contains("[3, 5)", Assert.Throws<ArgumentOutOfRangeException>(() => t.Rows(3, 2)).Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => t.Rows(-1, 1));
        using var empty = t.Rows(4, 0);
        Assert.Equal(0, empty.Length);
    }

    [Fact]
    public void ARowsViewKeepsTheStorageAfterTheTensorIsDisposed()
    {
        var t = Cpu.Arena.Upload([1f, 2f, 3f, 4f], 2, 2);
        using var rows = t.Rows(1, 1);
        t.Dispose();
        // Not returned to the arena while the view owns it: a new tensor gets other storage.
        using var other = Cpu.Arena.Upload([9f, 9f, 9f, 9f], 2, 2);
        Assert.Equal(new[] { 3f, 4f }, rows.ToArray());
    }

    [Fact]
    public void ARentScopeNotKeptReturnsWhatWasRentedInItToTheArena()
    {
        using (Cpu.Arena.TrackRents())
        {
            Cpu.Arena.Zeros(7919);
            Cpu.Arena.Rent(DType.Float16, 7919);
        }
        long held = Cpu.Arena.AllocatedBytes;
        using var again = Cpu.Arena.Zeros(7919);
        using var half = Cpu.Arena.Rent(DType.Float16, 7919);
        Assert.Equal(held, Cpu.Arena.AllocatedBytes);
    }

    [Fact]
    public void AKeptRentScopeLeavesItsTensorsToTheCallerUnlessAnOuterScopeFails()
    {
        Tensor kept, inner;
        using (var scope = Cpu.Arena.TrackRents())
        {
            kept = Cpu.Arena.Upload([1f, 2f], 2);
            scope.Keep();
        }
        Assert.Equal(new[] { 1f, 2f }, kept.ToArray());
        kept.Dispose();
        using (Cpu.Arena.TrackRents())
        using (var scope = Cpu.Arena.TrackRents())
        {
            inner = Cpu.Arena.Zeros(3);
            scope.Keep();
        }
        Assert.Throws<ObjectDisposedException>(() => inner.View);
    }

    [Fact]
    public void RentScopesEndInnermostFirst()
    {
        var outer = Cpu.Arena.TrackRents();
        var inner = Cpu.Arena.TrackRents();
        Assert.Throws<InvalidOperationException>(outer.Dispose);
        inner.Dispose();
        outer.Dispose();
        // Both ended: a later rent is tracked by neither (it stays the caller's).
        using var later = Cpu.Arena.Zeros(2);
        outer.Dispose();
        Assert.Equal(new float[2], later.ToArray());
    }

    [Fact]
    public void ReleaseFreeFreesTheBuffersNoTensorHolds()
    {
        using var backend = Backend.Create(DeviceKind.Cpu);
        var arena = backend.Arena;
        using var kept = arena.Upload(Enumerable.Repeat(2f, 1000).ToArray(), 1000);
        arena.Zeros(3000).Dispose();
        arena.Rent(DType.Float16, 500).Dispose();
        Assert.Equal(4000 + 12000 + 1000, arena.AllocatedBytes);
        Assert.Equal(12000 + 1000, arena.ReleaseFree());
        Assert.Equal(4000, arena.AllocatedBytes);
        Assert.All(kept.ToArray(), v => Assert.Equal(2f, v));
        using var again = arena.Zeros(3000); // allocated anew
        Assert.Equal(4000 + 12000, arena.AllocatedBytes);
        Assert.Equal(0, arena.ReleaseFree());
    }
}
