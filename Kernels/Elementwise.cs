using ILGPU;
using ILGPU.Runtime;

namespace SmoothCache.Kernels;

/// <summary>y[i] = f(x[i]) for an epilogue f (SiLU, GELU-tanh). Used where an activation cannot be
/// fused into the producing GEMM (SiLU of the conditioning vector feeds several linears).</summary>
public static class Elementwise
{
    public struct Args<TFunction> : IElementKernel where TFunction : struct, IEpilogue
    {
        public ArrayView<float> X, Y;

        public readonly void Compute(int i) => Y[i] = default(TFunction).Apply(X[i]);
    }

    public static Tensor Run<TFunction>(Tensor x) where TFunction : struct, IEpilogue
    {
        var y = x.Backend.Arena.Rent(x.Shape);
        ElementLauncher.Launch(x.Backend, (int)x.Length, new Args<TFunction> { X = x.View, Y = y.View });
        return y;
    }
}
