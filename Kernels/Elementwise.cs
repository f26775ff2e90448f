using ILGPU;
using ILGPU.Runtime;

namespace SmoothCache.Kernels;

/// <summary>y[i] = f(x[i]) for an epilogue f (SiLU, GELU-tanh). Used where an activation cannot be
/// fused into the producing GEMM (SiLU of the conditioning vector feeds several linears).</summary>
public static class Elementwise
{
    public struct Args
    {
        public ArrayView<float> X, Y;
    }

    public static void Kernel<TFunction>(Index1D i, Args a) where TFunction : struct, IEpilogue
        => a.Y[i] = default(TFunction).Apply(a.X[i]);

    public static Tensor Run<TFunction>(Tensor x) where TFunction : struct, IEpilogue
    {
        var y = x.Backend.Arena.Rent(x.Shape);
        x.Backend.Load<Args>(Kernel<TFunction>)((int)x.Length, new Args { X = x.View, Y = y.View });
        return y;
    }
}
