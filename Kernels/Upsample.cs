using ILGPU;

namespace SmoothCache.Kernels;

/// <summary>
/// Nearest-neighbour 2x upsampling of NCHW images: y [B, C, 2H, 2W] with y[b, c, i, j] = x[b, c, i/2, j/2].
/// One thread per output element.
/// </summary>
public static class Upsample
{
    public struct Args : IElementKernel
    {
        public ArrayView<float> X, Y;
        public int H, Width;

        public readonly void Compute(int index)
        {
            int outWidth = 2 * Width, outHeight = 2 * H;
            int j = index % outWidth;
            int rest = index / outWidth;
            int i = rest % outHeight;
            int plane = rest / outHeight;
            Y[index] = X[(plane * H + i / 2) * Width + j / 2];
        }
    }

    /// <param name="x">[B, C, H, W]</param>
    /// <returns>[B, C, 2H, 2W], rented from the arena</returns>
    public static Tensor Run(Tensor x)
    {
        if (x.Shape.Length != 4)
            throw new ArgumentException($"Upsample: expected NCHW input, got {x.ShapeText}");
        int h = x.Dim(2), w = x.Dim(3);
        var y = x.Backend.Arena.Rent(x.Dim(0), x.Dim(1), 2 * h, 2 * w);
        ElementLauncher.Launch(x.Backend, (int)y.Length, new Args { X = x.View, Y = y.View, H = h, Width = w });
        return y;
    }
}
