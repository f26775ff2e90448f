using SmoothCache.Kernels;

namespace SmoothCache.Model;

/// <summary>
/// A block's last gated residual, x += gate * output, not yet added to x: the next adaLN over x (the next
/// block's attention norm, or the final layer's) adds it on its own pass over x, which saves a launch and a
/// pass per block. The next norm must read the same modulation tensor (the gate is at its column <c>gateOffset</c>).
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
            : pending.AddThenNormalize(x, shiftOffset, scaleOffset, eps, outputType);

    /// <summary>The same with this residual: its modulation tensor is the one the norm reads.</summary>
    private Tensor AddThenNormalize(Tensor x, int shiftOffset, int scaleOffset, float eps, DType outputType) =>
        LayerNormModulate.RunAfterResidual(x, output, mod, gateOffset, shiftOffset, scaleOffset, eps, outputType);

    private bool _disposed;

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        output.Dispose();
        mod.Dispose();
    }
}
