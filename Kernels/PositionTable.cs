using ILGPU;

namespace SmoothCache.Kernels;

/// <summary>
/// The fixed 2D sin-cos position table [Grid*Grid, D] for tokens t = i*Grid + j (i row, j column):
/// with Q = D/4 frequencies w_k = 10000^(-k/Q), row t is [sin(j w), cos(j w), sin(i w), cos(i w)]
/// (the column coordinate first). Computed in float64, stored in float32.
/// </summary>
public static class PositionTable
{
    public struct Args : IElementKernel
    {
        public ArrayView<float> Out;
        public int Grid, D;

        public readonly void Compute(int index)
        {
            int q = D / 4;
            int t = index / D;
            int e = index - t * D;
            int quarter = e / q;
            int k = e - quarter * q;
            int coordinate = quarter < 2 ? t % Grid : t / Grid;
            double w = 1.0 / Math.Pow(10000.0, (double)k / q);
            double angle = coordinate * w;
            Out[index] = (float)(quarter % 2 == 0 ? Math.Sin(angle) : Math.Cos(angle));
        }
    }

    public static Tensor Run(Backend backend, int grid, int d)
    {
        if (d % 4 != 0) throw new ArgumentException($"PositionTable: width {d} is not a multiple of 4");
        var output = backend.Arena.Rent(grid * grid, d);
        ElementLauncher.Launch(backend, grid * grid * d, new Args { Out = output.View, Grid = grid, D = d });
        return output;
    }
}
