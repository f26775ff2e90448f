using SmoothCache.Kernels;
using static SmoothCache.Tests.TestSupport;

namespace SmoothCache.Tests.Kernels;

/// <summary>The fixed 2D sin-cos position table.</summary>
public class PositionTableTests
{
    [Fact]
    public void PositionTablePutsTheColumnCoordinateFirst()
    {
        int grid = 5, d = 12, q = d / 4;
        using var o = PositionTable.Run(Cpu, grid, d);
        var got = o.ToArray();
        var expected = new double[grid * grid * d];
        for (int i = 0; i < grid; i++)
            for (int j = 0; j < grid; j++)
                for (int k = 0; k < q; k++)
                {
                    double w = Math.Pow(10000, -(double)k / q);
                    int row = (i * grid + j) * d;
                    expected[row + k] = Math.Sin(j * w);
                    expected[row + q + k] = Math.Cos(j * w);
                    expected[row + 2 * q + k] = Math.Sin(i * w);
                    expected[row + 3 * q + k] = Math.Cos(i * w);
                }
        Assert.True(MaxAbs(got, expected) < 1e-7);
    }
}
