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
    /// <summary>Runs one component call of a block: computes it, records it, or returns a stored output.</summary>
    /// <param name="component">the component's name, <see cref="Components.Attention"/> or <see cref="Components.FeedForward"/></param>
    /// <param name="block">the block's index, 0 .. NumBlocks - 1</param>
    /// <param name="compute">computes the component (its adaLN included) at this step; call it at most once</param>
    /// <returns>the component's output [B, T, D] (B counting both halves of a guided batch), owned by the caller</returns>
    Tensor Run(string component, int block, Func<Tensor> compute);

    /// <summary>Starts over for a new generation (DiTPipeline.Generate calls it first, and a forward at a planned run's step 0
    /// does): forgets per-step state (call counters, stored outputs). Hooks without such state keep this default.</summary>
    void Reset() { }

    /// <summary>Why this hook cannot run inside a launch recording (e.g. it reads every step's results on the host), or
    /// null where it can (the default): DiTPipeline.Record refuses such a hook before it runs anything.</summary>
    string? RecordingRefusal => null;
}

/// <summary>The names under which a DiT block runs its components through the hook.</summary>
public static class Components
{
    /// <summary>The self-attention (QKV, attention, out-projection): "attn1".</summary>
    public const string Attention = "attn1";
    /// <summary>The MLP (two linears with a GELU between): "ff".</summary>
    public const string FeedForward = "ff";
    /// <summary>Both components, in the order a block runs them.</summary>
    public static readonly IReadOnlyList<string> All = [Attention, FeedForward];
}
