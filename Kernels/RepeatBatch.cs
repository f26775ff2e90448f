using ILGPU;

namespace SmoothCache.Kernels;

/// <summary>Stacks <c>copies</c> copies of x along the batch axis: out[c*n + i] = x[i] for the
/// n = x.Length elements (the CFG input [x; x]).</summary>
public static class RepeatBatch
{
    public struct Args : IElementKernel
    {
        public ArrayView<float> X, Out;
        public int N;

        public readonly void Compute(int i) => Out[i] = X[i % N];
    }

    public static Tensor Run(Tensor x, int copies)
    {
        var shape = (int[])x.Shape.Clone();
        shape[0] *= copies;
        var output = x.Backend.Arena.Rent(shape);
        ElementLauncher.Launch(x.Backend, (int)output.Length, new Args { X = x.View, Out = output.View, N = (int)x.Length });
        return output;
    }
}
