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

    public struct ToImagesArgs : IElementKernel
    {
        public ArrayView<float> X, Y;
        public int Channels, Pixels;

        /// <summary>Output index = (n * pixels + p) * channels + c; reads x[n, c, p].</summary>
        public readonly void Compute(int index)
        {
            int c = index % Channels;
            int np = index / Channels;
            int p = np % Pixels;
            int n = np / Pixels;
            float v = X[(n * Channels + c) * Pixels + p] * 0.5f + 0.5f;
            Y[index] = v < 0f ? 0f : v > 1f ? 1f : v;
        }
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
        var y = x.Backend.Arena.Rent(b, h, w, c);
        ElementLauncher.Launch(x.Backend, (int)y.Length, new ToImagesArgs { X = x.View, Y = y.View, Channels = c, Pixels = h * w });
        return y;
    }
}
