using ILGPU;
using ILGPU.Runtime;

namespace SmoothCache.Kernels;

/// <summary>
/// x += gate[b] * y, in place. x and y are [B, T, D]; the gate is a row of D values per sample in
/// a [B, GateStride] tensor at column GateOffset (a chunk of the adaLN projection).
/// </summary>
public static class GatedResidual
{
    public struct Args : IElementKernel
    {
        public ArrayView<float> X, Y, Gate;
        public int D, TokensPerSample, GateStride, GateOffset;

        public readonly void Compute(int i)
        {
            int row = i / D;
            int d = i - row * D;
            int b = row / TokensPerSample;
            X[i] += Gate[b * GateStride + GateOffset + d] * Y[i];
        }
    }

    public static void Run(Tensor x, Tensor y, Tensor gate, int gateOffset)
    {
        if (x.Length != y.Length)
            throw new ArgumentException($"GatedResidual: x {x.ShapeText} and y {y.ShapeText} differ");
        var args = new Args
        {
            X = x.View, Y = y.View, Gate = gate.View, D = x.Dim(2), TokensPerSample = x.Dim(1),
            GateStride = gate.Dim(1), GateOffset = gateOffset,
        };
        ElementLauncher.Launch(x.Backend, (int)x.Length, args);
    }
}
