using ILGPU;
using ILGPU.Runtime;

namespace SmoothCache.Kernels;

/// <summary>
/// x += gate[b] * y, in place. x and y are [B, T, D]; the gate is a row of D values per sample in
/// a [B, GateStride] tensor at column GateOffset (a chunk of the adaLN projection).
/// </summary>
public static class GatedResidual
{
    public struct Args
    {
        public ArrayView<float> X, Y, Gate;
        public int D, TokensPerSample, GateStride, GateOffset;
    }

    public static void Kernel(Index1D i, Args a)
    {
        int row = i / a.D;
        int d = i - row * a.D;
        int b = row / a.TokensPerSample;
        a.X[i] += a.Gate[b * a.GateStride + a.GateOffset + d] * a.Y[i];
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
        x.Backend.Load<Args>(Kernel)((int)x.Length, args);
    }
}
