using ILGPU;
using SmoothCache.Kernels.Gpu;

namespace SmoothCache.Kernels;

/// <summary>
/// x += gate[b] * y, in place, and optionally then x += gate2[b] * y2 (two residuals that waited together:
/// one pass over x, the sum rounded once where it is written). x, y and y2 are [B, T, D], all float32, or all float16
/// (the fp16 path's residual stream and component outputs); the gate is a row of D values per sample in a
/// [B, GateStride] tensor at column GateOffset (a chunk of the adaLN projection), gate2 in the same rows at Gate2Offset.
/// With GPU kernels and D, the stride and the offset multiples of 4, an element is a float4
/// (<see cref="Vector4Args{TView}"/>: 16-byte loads and a quarter of the index arithmetic, whose two
/// integer divisions cost more than the update itself); the arithmetic per value is the same.
/// </summary>
public static class GatedResidual
{
    public struct Args : IElementKernel
    {
        /// <summary>x, read and written in place.</summary>
        public OutputView X;
        public ArrayView<float> Gate;
        /// <summary>The residual, then the second one or empty.</summary>
        public InputView Y, Y2;
        public int D, TokensPerSample, GateStride, GateOffset, Gate2Offset;

        public readonly void Compute(int i)
        {
            float x = X.AsInput.Load(i) + Gate[GateAt(i, D, TokensPerSample, GateStride, GateOffset)] * Y.Load(i);
            if (!Y2.IsEmpty) x += Gate[GateAt(i, D, TokensPerSample, GateStride, Gate2Offset)] * Y2.Load(i);
            X.Store(i, x);
        }
    }

    /// <summary><see cref="Args"/> over float4s: every view, D, the stride and the offset in float4s; x's and the
    /// residuals' float4s as <typeparamref name="TView"/> (float32 or float16 ones).</summary>
    public struct Vector4Args<TView> : IElementKernel where TView : struct, IFloat4View<TView>
    {
        public TView X;
        public ArrayView<F4> Gate;
        /// <summary>The residual, then the second one or empty.</summary>
        public TView Y, Y2;
        public int D, TokensPerSample, GateStride, GateOffset, Gate2Offset;

        public readonly void Compute(int i)
        {
            F4 x = X.At(i), y = Y.At(i), g = Gate[GateAt(i, D, TokensPerSample, GateStride, GateOffset)];
            x = new F4 { X = x.X + g.X * y.X, Y = x.Y + g.Y * y.Y, Z = x.Z + g.Z * y.Z, W = x.W + g.W * y.W };
            if (!Y2.IsEmpty())
            {
                F4 y2 = Y2.At(i), g2 = Gate[GateAt(i, D, TokensPerSample, GateStride, Gate2Offset)];
                x = new F4 { X = x.X + g2.X * y2.X, Y = x.Y + g2.Y * y2.Y, Z = x.Z + g2.Z * y2.Z, W = x.W + g2.W * y2.W };
            }
            X.Stored<HalfConversion.RoundingOnAnyAccelerator>(i, x);
        }
    }

    /// <summary>Where the gate of element i of x lies: its sample's modulation row, at its column.</summary>
    private static int GateAt(int i, int d, int tokensPerSample, int stride, int offset)
    {
        int row = i / d;
        return row / tokensPerSample * stride + offset + (i - row * d);
    }

    /// <summary>x += gate * y, then (if given) x += gate2 * y2, in one pass; the gates are columns of the modulation rows
    /// <paramref name="gate"/> [B, stride], at <paramref name="gateOffset"/> and <paramref name="gate2Offset"/>.</summary>
    public static void Run(Tensor x, Tensor gate, Tensor y, int gateOffset, Tensor? y2 = null, int gate2Offset = 0)
    {
        CheckResiduals("GatedResidual", x, y, y2);
        var args = new Args
        {
            X = OutputView.Of(x), Y = InputView.Of(y), Gate = gate.View, Y2 = InputView.OfOptional(y2), D = x.Dim(2), TokensPerSample = x.Dim(1),
            GateStride = gate.Dim(1), GateOffset = gateOffset, Gate2Offset = gate2Offset,
        };
        if (x.Backend.UsesGpuKernels && Vectorizable(args))
        {
            var xs = args.X.AsInput;
            if (x.DType == DType.Float16) LaunchVector4(x.Backend, args, xs.AsHalves(), args.Y.AsHalves(), args.Y2.AsHalves());
            else LaunchVector4(x.Backend, args, xs.AsFloats(), args.Y.AsFloats(), args.Y2.AsFloats());
            return;
        }
        ElementLauncher.Launch(x.Backend, (int)x.Length, args);
    }

    /// <summary>Throws, naming <paramref name="kernel"/>, unless the residuals to add to x (<paramref name="r2"/> may be
    /// null) are as long as x and of x's type (float32, or float16 on the fp16 path). Shared with <see cref="LayerNormModulate"/>,
    /// which adds them on its pass over x.</summary>
    internal static void CheckResiduals(string kernel, Tensor x, Tensor r, Tensor? r2)
    {
        foreach (var term in r2 is null ? [r] : new[] { r, r2 })
        {
            if (term.Length != x.Length)
                throw new ArgumentException($"{kernel}: residual {term.ShapeText} and x {x.ShapeText} differ");
            if (term.DType != x.DType)
                throw new ArgumentException($"{kernel}: residual {term.DType} and x {x.DType} differ in type");
        }
    }

    private static void LaunchVector4<TView>(Backend backend, Args a, TView x, TView y, TView y2) where TView : struct, IFloat4View<TView> =>
        ElementLauncher.Launch(backend, (int)(a.X.Length / 4), new Vector4Args<TView>
        {
            X = x, Y = y, Gate = a.Gate.Cast<F4>(), Y2 = y2, D = a.D / 4,
            TokensPerSample = a.TokensPerSample, GateStride = a.GateStride / 4, GateOffset = a.GateOffset / 4, Gate2Offset = a.Gate2Offset / 4,
        });

    private static bool Vectorizable(Args a) =>
        a.D % 4 == 0 && a.GateStride % 4 == 0 && a.GateOffset % 4 == 0 && a.Gate2Offset % 4 == 0
        && Vectors.Float4Aligned(a.Gate) && a.X.AsInput.Float4Aligned && a.Y.Float4Aligned && a.Y2.Float4Aligned;
}
