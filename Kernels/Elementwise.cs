using ILGPU;

namespace SmoothCache.Kernels;

/// <summary>y[i] = f(x[i]) for an epilogue f (SiLU, GELU-tanh): the epilogues the GEMMs and the class lookup fuse, on
/// their own. The model fuses every activation; the device checks run this to test an epilogue's arithmetic on the GPU
/// apart from the kernel that fuses it, and it is the smallest kernel there is to record and replay.</summary>
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
