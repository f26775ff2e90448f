using ILGPU;
using SmoothCache.Kernels.Gpu;

namespace SmoothCache.Kernels;

/// <summary>
/// adaLN: y = LN(x) * (1 + scale[b]) + shift[b], LayerNorm without affine parameters.
/// x and y are [B, T, D] (rows of D); the modulation vectors live in a [B, ModStride] tensor at
/// column offsets ShiftOffset and ScaleOffset (one row per sample, shared by its T tokens), so the
/// output of one big adaLN projection can be used in place. One thread per row, two passes
/// (mean, then variance about the mean) for accuracy.
/// Optionally it first applies the previous component's gated residual, x += gate[b] * r (gate at
/// column GateOffset of the same modulation rows), and a second one after it (x += gate2[b] * r2), writing
/// x back: DiT's "x = x + gate * attn; h = adaLN(x)" in one pass over x instead of two launches (two
/// residuals when the component before was reused from the cache and its residual waited too).
/// x is the residual stream, Float32, or Float16 on the fp16 path (its residuals then Float16 too): the sum of
/// x and the gated residuals is rounded once, where it is written, and normalized as written.
/// </summary>
public static class LayerNormModulate
{
    public struct Args : IElementKernel
    {
        /// <summary>x, read and (with residuals) written in place.</summary>
        public OutputView X;
        public ArrayView<float> Mod;
        public OutputView Y;
        /// <summary>The residual r, or empty for a plain adaLN; then r2, added after it, or empty (float32 or float16).</summary>
        public InputView Residual, Residual2;
        public int D, TokensPerSample, ModStride, ShiftOffset, ScaleOffset, GateOffset, Gate2Offset;
        public float Eps;

        public readonly void Compute(int row)
        {
            int x0 = row * D;
            int m0 = (row / TokensPerSample) * ModStride;
            var x = X.AsInput;
            float mean = 0f;
            for (int d = 0; d < D; d++)
            {
                if (!Residual.IsEmpty)
                {
                    float v = x.Load(x0 + d) + Mod[m0 + GateOffset + d] * Residual.Load(x0 + d);
                    if (!Residual2.IsEmpty) v += Mod[m0 + Gate2Offset + d] * Residual2.Load(x0 + d);
                    X.Store(x0 + d, v);
                }
                mean += x.Load(x0 + d);
            }
            mean /= D;
            float var = 0f;
            for (int d = 0; d < D; d++)
            {
                float c = x.Load(x0 + d) - mean;
                var += c * c;
            }
            var /= D;
            float inv = 1f / MathF.Sqrt(var + Eps);
            for (int d = 0; d < D; d++)
            {
                float n = (x.Load(x0 + d) - mean) * inv;
                Y.Store(x0 + d, n * (1f + Mod[m0 + ScaleOffset + d]) + Mod[m0 + ShiftOffset + d]);
            }
        }
    }

    /// <param name="x">[B, T, D], Float32 or Float16</param>
    /// <param name="mod">[B, modStride] holding shift and scale at the given column offsets</param>
    /// <param name="output">Float16 for the fp16 path's GEMM input (rounded to nearest even)</param>
    public static Tensor Run(Tensor x, Tensor mod, int shiftOffset, int scaleOffset, float eps, DType output = DType.Float32) =>
        Run(x, mod, shiftOffset, scaleOffset, eps, null, 0, null, 0, output);

    /// <summary>x += gate * residual, then (if given) x += gate2 * residual2 (x is updated in place), then adaLN of the new x;
    /// the gates are columns of the same modulation rows as shift and scale.</summary>
    /// <param name="residual">[B, T, D], the output of the component before this norm</param>
    /// <param name="gateOffset">column of the gate in the modulation rows</param>
    public static Tensor RunAfterResiduals(Tensor x, Tensor mod, int shiftOffset, int scaleOffset, float eps, Tensor residual, int gateOffset,
        Tensor? residual2 = null, int gate2Offset = 0, DType output = DType.Float32)
    {
        GatedResidual.CheckResiduals("LayerNormModulate", x, residual, residual2);
        return Run(x, mod, shiftOffset, scaleOffset, eps, residual, gateOffset, residual2, gate2Offset, output);
    }

    private static Tensor Run(Tensor x, Tensor mod, int shiftOffset, int scaleOffset, float eps, Tensor? residual, int gateOffset,
        Tensor? residual2, int gate2Offset, DType output)
    {
        int b = x.Dim(0), t = x.Dim(1), d = x.Dim(2);
        if (mod.Dim(0) != b || new[] { shiftOffset, scaleOffset, gateOffset, gate2Offset }.Any(o => o < 0 || o + d > mod.Dim(1)))
            throw new ArgumentException($"LayerNormModulate: modulation {mod.ShapeText} does not fit x {x.ShapeText}");
        var y = x.Backend.Arena.Rent(output, x.Shape);
        var args = new Args
        {
            X = OutputView.Of(x), Mod = mod.View, Y = OutputView.Of(y), Residual = InputView.OfOptional(residual),
            Residual2 = InputView.OfOptional(residual2), D = d, TokensPerSample = t, ModStride = mod.Dim(1),
            ShiftOffset = shiftOffset, ScaleOffset = scaleOffset, GateOffset = gateOffset, Gate2Offset = gate2Offset, Eps = eps,
        };
        // A thread per row suits the CPU accelerator; on a GPU a warp per row keeps the row in registers.
        if (x.Backend.UsesGpuKernels && LayerNormModulateRow.Supports(args)) LayerNormModulateRow.Run(x.Backend, args);
        else ElementLauncher.Launch(x.Backend, b * t, args);
        return y;
    }
}
