using ILGPU;

namespace SmoothCache.Kernels;

/// <summary>
/// Tokens back to an image: y [B, T, P*P*C] (T = Grid*Grid) to out [B, C, Grid*P, Grid*P] with
/// out[b, ch, hi*P+pi, wi*P+qi] = y[b, hi*Grid+wi, (pi*P+qi)*C + ch]. One thread per output pixel.
/// </summary>
public static class Unpatchify
{
    public struct Args : IElementKernel
    {
        public ArrayView<float> Y, Out;
        public int Grid, P, C;

        public readonly void Compute(int index)
        {
            // Each coordinate from the flat index directly: no reassigned temporaries (ILGPU's PTX
            // backend miscompiled the earlier form with a reused remainder variable).
            int size = Grid * P;
            int col = index % size;
            int row = index / size % size;
            int ch = index / (size * size) % C;
            int b = index / (size * size * C);
            int hi = row / P, pi = row % P;
            int wi = col / P, qi = col % P;
            Out[index] = Y[((b * Grid + hi) * Grid + wi) * P * P * C + (pi * P + qi) * C + ch];
        }
    }

    public static Tensor Run(Tensor y, int patch, int channels)
    {
        int b = y.Dim(0), tokens = y.Dim(1);
        int grid = (int)Math.Round(Math.Sqrt(tokens));
        if (grid * grid != tokens || y.Dim(2) != patch * patch * channels)
            throw new ArgumentException($"Unpatchify: {y.ShapeText} is not [B, square, {patch * patch * channels}]");
        int size = grid * patch;
        var output = y.Backend.Arena.Rent(b, channels, size, size);
        ElementLauncher.Launch(y.Backend, (int)output.Length, new Args { Y = y.View, Out = output.View, Grid = grid, P = patch, C = channels });
        return output;
    }
}
