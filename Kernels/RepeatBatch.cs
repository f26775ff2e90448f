using ILGPU;
using ILGPU.Runtime;

namespace SmoothCache.Kernels;

/// <summary>Stacks <c>copies</c> copies of x along the batch axis: out[c*n + i] = x[i] for the
/// n = x.Length elements (the CFG input [x; x]).</summary>
public static class RepeatBatch
{
    public struct Args
    {
        public ArrayView<float> X, Out;
        public int N;
    }

    public static void Kernel(Index1D i, Args a) => a.Out[i] = a.X[i % a.N];

    public static Tensor Run(Tensor x, int copies)
    {
        var shape = (int[])x.Shape.Clone();
        shape[0] *= copies;
        var output = x.Backend.Arena.Rent(shape);
        x.Backend.Load<Args>(Kernel)((int)output.Length, new Args { X = x.View, Out = output.View, N = (int)x.Length });
        return output;
    }
}
