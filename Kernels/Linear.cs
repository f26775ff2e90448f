using ILGPU;
using ILGPU.Runtime;

namespace SmoothCache.Kernels;

/// <summary>
/// y = epilogue(x W^T + b). x is [M, K] row-major, W is [N, K] row-major (PyTorch's Linear layout),
/// b is [N] (or empty for no bias), y is [M, N]. Portable fp32 path: one thread per output element,
/// a plain dot product over K with no barriers — the shape the CPU accelerator runs fastest, and
/// the reference for the tensor-core kernels.
/// </summary>
public static class Linear
{
    public struct Args
    {
        public ArrayView<float> X, W, Bias, Y;
        public int M, N, K;
    }

    public static void Kernel<TEpilogue>(Index1D index, Args a) where TEpilogue : struct, IEpilogue
    {
        int m = index / a.N;
        int n = index - m * a.N;
        int xRow = m * a.K;
        int wRow = n * a.K;
        float acc = 0f;
        for (int k = 0; k < a.K; k++)
            acc += a.X[xRow + k] * a.W[wRow + k];
        if (a.Bias.Length > 0) acc += a.Bias[n];
        a.Y[index] = default(TEpilogue).Apply(acc);
    }

    /// <summary>y[..., N] = epilogue(x[..., K] W^T + b); y is rented from the arena.</summary>
    public static Tensor Run<TEpilogue>(Tensor x, Tensor w, Tensor? bias) where TEpilogue : struct, IEpilogue
    {
        int k = w.Dim(1), n = w.Dim(0);
        if (x.Dim(-1) != k)
            throw new ArgumentException($"Linear: input {x.ShapeText} does not end in K={k} (weight {w.ShapeText})");
        int m = (int)(x.Length / k);
        var shape = (int[])x.Shape.Clone();
        shape[^1] = n;
        var y = x.Backend.Arena.Rent(shape);
        Run<TEpilogue>(x.View, w, bias, y.View, m);
        return y;
    }

    public static Tensor Run(Tensor x, Tensor w, Tensor? bias) => Run<IdentityEpilogue>(x, w, bias);

    /// <summary>Writes into an existing view of M x N elements.</summary>
    public static void Run<TEpilogue>(ArrayView<float> x, Tensor w, Tensor? bias, ArrayView<float> y, int m)
        where TEpilogue : struct, IEpilogue
    {
        int n = w.Dim(0), k = w.Dim(1);
        var args = new Args
        {
            X = x, W = w.View, Bias = bias?.View ?? ArrayView<float>.Empty, Y = y, M = m, N = n, K = k,
        };
        w.Backend.Load<Args>(Kernel<TEpilogue>)(m * n, args);
    }
}
