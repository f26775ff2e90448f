using SmoothCache.Kernels;

namespace SmoothCache.Model;

/// <summary>
/// Gated residuals, x += gate * output, not yet added to x: one or two, in the order they arose. The next adaLN
/// over x (the next component's norm, or the final layer's) adds them on its own pass over x, which saves a launch
/// and a pass per residual. A component reused from the cache runs no norm, so its residual and those waiting
/// before it wait on together; two is what one launch adds (<see cref="Then"/> adds the older ones to x first
/// when a third would join). The next norm must read the same modulation tensor (each gate at its own column).
/// Once added to x (<see cref="Added"/>) it is spent: <see cref="Then"/> passes over it and adding it again throws.
/// Owns a share of the outputs and of the modulation tensor.
/// </summary>
public sealed class PendingResidual : IDisposable
{
    /// <summary>Residuals one adaLN or GatedResidual launch adds.</summary>
    public const int MaxTerms = 2;

    private readonly (Tensor Output, int GateOffset)[] _terms;
    private readonly Tensor _mod;

    private PendingResidual((Tensor Output, int GateOffset)[] terms, Tensor mod)
    {
        _terms = terms;
        _mod = mod;
    }

    /// <summary>How many residuals wait.</summary>
    public int Count => _terms.Length;

    /// <summary>Whether they have been added to x (by <see cref="AddTo"/> or <see cref="AddThenNormalize"/>).</summary>
    public bool Added { get; private set; }

    /// <summary>x += gate * output waiting alone (shares of output and mod are taken).</summary>
    public static PendingResidual Of(Tensor output, Tensor mod, int gateOffset) => new([(output.Share(), gateOffset)], mod.Share());

    /// <summary>What waits after <paramref name="before"/> (null or already added: nothing) and then x += gate * output:
    /// the terms of both, or, if that would be more than <see cref="MaxTerms"/>, <paramref name="before"/> added to x now
    /// (one launch) and output's alone. <paramref name="before"/> stays the caller's to dispose.</summary>
    public static PendingResidual Then(PendingResidual? before, Tensor x, Tensor output, Tensor mod, int gateOffset)
    {
        if (before is null || before.Added) return Of(output, mod, gateOffset);
        if (before.Count + 1 > MaxTerms)
        {
            before.AddTo(x);
            return Of(output, mod, gateOffset);
        }
        var terms = before._terms.Select(t => (t.Output.Share(), t.GateOffset)).Append((output.Share(), gateOffset)).ToArray();
        return new PendingResidual(terms, before._mod.Share());
    }

    /// <summary>x += each gate * output on its own launch (when no adaLN of x follows, or it reads other modulation rows).</summary>
    public void AddTo(Tensor x)
    {
        Spend();
        GatedResidual.Run(x, _mod, _terms[0].Output, _terms[0].GateOffset, Second?.Output, Second?.GateOffset ?? 0);
    }

    /// <summary>Marks the residuals added; adding them twice would be a wrong x, not an error a kernel sees.</summary>
    private void Spend()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (Added) throw new InvalidOperationException("these residuals were already added to x");
        Added = true;
    }

    private (Tensor Output, int GateOffset)? Second => _terms.Length > 1 ? _terms[1] : null;

    /// <summary>adaLN of x with shift and scale at these columns of the modulation rows, first adding
    /// <paramref name="pending"/> (if any) to x in the same pass.</summary>
    public static Tensor AddThenNormalize(PendingResidual? pending, Tensor x, Tensor mod, int shiftOffset, int scaleOffset,
        float eps, DType outputType)
    {
        if (pending is null) return LayerNormModulate.Run(x, mod, shiftOffset, scaleOffset, eps, outputType);
        pending.Spend();
        return LayerNormModulate.RunAfterResiduals(x, mod, shiftOffset, scaleOffset, eps, pending._terms[0].Output, pending._terms[0].GateOffset, pending.Second?.Output, pending.Second?.GateOffset ?? 0, outputType);
    }

    private bool _disposed;

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        foreach (var (output, _) in _terms) output.Dispose();
        _mod.Dispose();
    }
}
