using ILGPU;
using SmoothCache.Kernels;

namespace SmoothCache.Sampling;

/// <summary>
/// The device kernels between the sampler and the host: latents scaled for the VAE, and NCHW images
/// in [-1, 1] turned into NHWC clamp(x / 2 + 0.5, 0, 1) as diffusers' pipelines return them.
/// </summary>
public static class ImageOutput
{
    public struct ScaleArgs : IElementKernel
    {
        public ArrayView<float> X, Y;
        public float Factor;

        public readonly void Compute(int i) => Y[i] = X[i] * Factor;
    }

    /// <summary>x * factor, rented from the arena.</summary>
    public static Tensor Scale(Tensor x, float factor)
    {
        var y = x.Backend.Arena.Rent(x.Shape);
        ElementLauncher.Launch(x.Backend, (int)x.Length, new ScaleArgs { X = x.View, Y = y.View, Factor = factor });
        return y;
    }

    /// <param name="x">[B, C, H, W] in [-1, 1]</param>
    /// <returns>[B, H, W, C] in [0, 1], rented from the arena</returns>
    public static Tensor ToImages(Tensor x)
    {
        if (x.Shape.Length != 4)
            throw new ArgumentException($"ImageOutput: expected [B, C, H, W], got {x.ShapeText}");
        int b = x.Dim(0), c = x.Dim(1), h = x.Dim(2), w = x.Dim(3);
        using var planes = x.Reshape(b, c, h * w);
        using var pixels = Transpose.Run<UnitRangeEpilogue>(planes);
        return pixels.Reshape(b, h, w, c);
    }
}
