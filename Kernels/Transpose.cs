using ILGPU;

namespace SmoothCache.Kernels;

/// <summary>
/// Batched transpose of the last two axes with an optional addend and an epilogue f:
/// y[b, j, i] = f(x[b, i, j] + addend[b, j, i]). x is [B, R, S], y and the addend are [B, S, R]. Turns NCHW images
/// (viewed as [B, C, H*W]) into rows of channels [B, H*W, C] for token-wise linears and attention, and back — where
/// the addend folds in a residual connection — and decoded images into the NHWC values a pipeline returns.
/// One thread per output element.
/// </summary>
public static class Transpose
{
    public struct Args<TEpilogue> : IElementKernel where TEpilogue : struct, IEpilogue
    {
        public ArrayView<float> X, Addend, Y;
        public int R, S;

        public readonly void Compute(int index)
        {
            int i = index % R;
            int bj = index / R;
            int j = bj % S;
            int b = bj / S;
            float v = X[(b * R + i) * S + j];
            if (Addend.Length > 0) v += Addend[index];
            Y[index] = default(TEpilogue).Apply(v);
        }
    }

    /// <param name="x">[B, R, S]</param>
    /// <param name="addend">B x S x R elements (any shape), or null</param>
    /// <returns>[B, S, R], rented from the arena</returns>
    public static Tensor Run(Tensor x, Tensor? addend = null) => Run<IdentityEpilogue>(x, addend);

    /// <summary>The same with epilogue <typeparamref name="TEpilogue"/> applied to each output.</summary>
    public static Tensor Run<TEpilogue>(Tensor x, Tensor? addend = null) where TEpilogue : struct, IEpilogue
    {
        if (x.Shape.Length != 3)
            throw new ArgumentException($"Transpose: expected [B, R, S], got {x.ShapeText}");
        var y = x.Backend.Arena.Rent(x.Dim(0), x.Dim(2), x.Dim(1));
        try
        {
            Into<TEpilogue>(x, addend, y);
            return y;
        }
        catch
        {
            y.Dispose();
            throw;
        }
    }

    /// <summary>The same into <paramref name="y"/>: B x S x R elements (any shape; e.g. some images of a larger batch).</summary>
    public static void Into(Tensor x, Tensor? addend, Tensor y) => Into<IdentityEpilogue>(x, addend, y);

    private static void Into<TEpilogue>(Tensor x, Tensor? addend, Tensor y) where TEpilogue : struct, IEpilogue
    {
        if (x.Shape.Length != 3)
            throw new ArgumentException($"Transpose: expected [B, R, S], got {x.ShapeText}");
        if (addend is not null && addend.Length != x.Length)
            throw new ArgumentException($"Transpose: addend {addend.ShapeText} does not have the {x.Length} elements of {x.ShapeText}");
        if (y.Length != x.Length)
            throw new ArgumentException($"Transpose: output {y.ShapeText} does not have the {x.Length} elements of {x.ShapeText}");
        var args = new Args<TEpilogue> { X = x.View, Addend = addend?.View ?? ArrayView<float>.Empty, Y = y.View, R = x.Dim(1), S = x.Dim(2) };
        ElementLauncher.Launch(x.Backend, (int)y.Length, args);
    }
}
