using ILGPU;
using ILGPU.Runtime;
using SmoothCache.Kernels.Gpu;

namespace SmoothCache.Kernels;

/// <summary>
/// y = epilogue(x W^T + b). x is [M, K] row-major, W is [N, K] row-major (PyTorch's Linear layout),
/// b is [N] (or empty for no bias), y is [M, N]. Portable fp32 path: each element computes
/// 4 adjacent outputs of one row as plain dot products over K, no barriers — the shape the CPU
/// accelerator runs fastest — and it is the reference for the tensor-core kernels. On a CUDA backend Run dispatches to the fast kernels:
/// <see cref="Sgemm"/> for a Float32 weight, <see cref="LinearTensorCore"/> for a Float16 weight.
/// </summary>
public static class Linear
{
    public struct Args<TEpilogue> : IElementKernel where TEpilogue : struct, IEpilogue
    {
        public ArrayView<float> X, W, Bias, Y;
        public int M, N, K;

        /// <summary>Element = one row m and a quad of 4 output columns: each x value read feeds
        /// 4 products (a 1x4 register tile, unrolled by hand since ILGPU does not unroll).</summary>
        public readonly void Compute(int index)
        {
            int quads = (N + 3) / 4;
            int m = index / quads;
            int n0 = (index - m * quads) * 4;
            int xRow = m * K;
            // Columns past N reuse the last row of W; their results are not stored.
            int w0 = n0 * K;
            int w1 = (n0 + 1 < N ? n0 + 1 : N - 1) * K;
            int w2 = (n0 + 2 < N ? n0 + 2 : N - 1) * K;
            int w3 = (n0 + 3 < N ? n0 + 3 : N - 1) * K;
            float a0 = 0f, a1 = 0f, a2 = 0f, a3 = 0f;
            for (int k = 0; k < K; k++)
            {
                float xv = X[xRow + k];
                a0 += xv * W[w0 + k];
                a1 += xv * W[w1 + k];
                a2 += xv * W[w2 + k];
                a3 += xv * W[w3 + k];
            }
            Store(m, n0, a0);
            if (n0 + 1 < N) Store(m, n0 + 1, a1);
            if (n0 + 2 < N) Store(m, n0 + 2, a2);
            if (n0 + 3 < N) Store(m, n0 + 3, a3);
        }

        private readonly void Store(int m, int n, float acc)
        {
            if (Bias.Length > 0) acc += Bias[n];
            Y[m * N + n] = default(TEpilogue).Apply(acc);
        }
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
        var args = new Args<TEpilogue>
        {
            X = x, W = w.View, Bias = biasView, Y = y, M = m, N = n, K = k,
        };
        ElementLauncher.Launch(backend, m * ((n + 3) / 4), args);
    }
}
