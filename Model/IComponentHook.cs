using SmoothCache.Kernels;

namespace SmoothCache.Model;

/// <summary>
/// The seam through which a DiT block runs its attention ("attn1") and MLP ("ff") components
/// (DESIGN §2). A hook may compute (call the compute function it is given, at most once: it also runs the
/// component's adaLN, which for the MLP applies the attention residual), record, or return a stored
/// output instead; the block applies the gate and the residual to whatever comes back.
/// The returned tensor is owned by the caller (the block disposes it): a hook that keeps a tensor
/// returns <see cref="Tensor.Share"/> of it.
/// </summary>
public interface IComponentHook
{
    Tensor Run(string component, int block, Func<Tensor> compute);

    /// <summary>Starts over for a new generation (DiTPipeline.Generate calls it first): forgets per-step state (call
    /// counters, stored outputs). Hooks without such state keep this default.</summary>
    void Reset() { }
}

public static class Components
{
    public const string Attention = "attn1";
    public const string FeedForward = "ff";
    public static readonly IReadOnlyList<string> All = [Attention, FeedForward];
}
