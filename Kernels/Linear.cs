using ILGPU;
using ILGPU.Runtime;
using SmoothCache.Kernels.Gpu;

namespace SmoothCache.Kernels;

/// <summary>
/// y = epilogue(x W^T + b). x is [M, K] row-major, W is [N, K] row-major (PyTorch's Linear layout),
/// b is [N] (or empty for no bias), y is [M, N]. Portable fp32 path: one thread per output element,
/// a plain dot product over K with no barriers — the shape the CPU accelerator runs fastest, and
/// the reference for the tensor-core kernels. On a CUDA backend Run dispatches to the fast kernels:
/// <see cref="Sgemm"/> for a Float32 weight, <see cref="LinearTensorCore"/> for a Float16 weight.
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
        var backend = w.Backend;
        var biasView = bias?.View ?? ArrayView<float>.Empty;
        if (w.DType == DType.Float16)
        {
            // Throws with the reason on a CPU backend or an unsupported K.
            LinearTensorCore.Run<TEpilogue>(backend, x, w, biasView, y, m);
            return;
        }
        if (backend.IsCuda)
        {
            Sgemm.Run<TEpilogue>(backend, x, w.View, biasView, y, m, n, k);
            return;
        }
        var args = new Args
        {
            X = x, W = w.View, Bias = biasView, Y = y, M = m, N = n, K = k,
        };
        backend.Load<Args>(Kernel<TEpilogue>)(m * n, args);
    }
}
