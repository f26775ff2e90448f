using SmoothCache.Kernels;

namespace SmoothCache.Model;

/// <summary>
/// A block's last gated residual, x += gate * output, not yet added to x: the next adaLN over x (the next
/// block's attention norm, or the final layer's) adds it on its own pass over x, which saves a launch and a
/// pass per block. The gate is read at column <c>gateOffset</c> of the modulation rows the next norm uses.
/// Owns a share of the output and of the modulation tensor.
/// </summary>
public sealed class PendingResidual(Tensor output, Tensor mod, int gateOffset) : IDisposable
{
    /// <summary>x += gate * output on its own (when no adaLN of x follows, or it reads other modulation rows).</summary>
    public void AddTo(Tensor x) => GatedResidual.Run(x, output, mod, gateOffset);

    /// <summary>adaLN of x with shift and scale at these columns of the modulation rows, first adding
    /// <paramref name="pending"/> (if any) to x in the same pass.</summary>
    public static Tensor AddThenNormalize(PendingResidual? pending, Tensor x, Tensor mod, int shiftOffset, int scaleOffset,
        float eps, DType outputType) =>
        pending is null
            ? LayerNormModulate.Run(x, mod, shiftOffset, scaleOffset, eps, outputType)
            : LayerNormModulate.RunAfterResidual(x, pending.Output, mod, pending.GateOffset, shiftOffset, scaleOffset, eps, outputType);

    private Tensor Output => output;
    private int GateOffset => gateOffset;
    private bool _disposed;

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        output.Dispose();
        mod.Dispose();
    }
}
