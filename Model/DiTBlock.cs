using SmoothCache.Kernels;
using SmoothCache.Model.Checkpoints;

namespace SmoothCache.Model;

/// <summary>
/// One DiT block with adaLN-Zero conditioning (DESIGN §2):
///   h = LN(x) * (1 + scale1) + shift1;  x = x + gate1 * Attn(h)    — component "attn1"
///   h = LN(x) * (1 + scale2) + shift2;  x = x + gate2 * FF(h)      — component "ff"
/// The six modulation vectors are read in place from a [B, stride] tensor at a column offset.
/// Attn and FF run through the component hook; the norms, gates and residuals always run.
/// </summary>
public sealed class DiTBlock : IDisposable
{
    private const float AttentionNormEps = 1e-6f;

    private readonly int _index, _heads, _headDim, _width;
    /// <summary>GEMM inputs and outputs (the adaLN outputs, qkv, attention's output, the MLP's hidden layer, and the
    /// components' outputs, which SmoothCache keeps and the next adaLN adds to x): Float16 on the fp16 path, rounded once
    /// where each is made, so the next kernel reads half the bytes. The residual stream x is of the same type (the
    /// transformer makes it).</summary>
    private readonly DType _activations;
    private readonly float _mlpNormEps;
    private readonly Tensor _qkvWeight, _qkvBias, _outWeight, _outBias;
    private readonly Tensor _fc1Weight, _fc1Bias, _fc2Weight, _fc2Bias;

    internal DiTBlock(int index, DiTConfig config, IWeightSource weights, Backend backend, Precision precision)
    {
        _index = index;
        _activations = precision == Precision.Fp16 ? DType.Float16 : DType.Float32;
        _heads = config.NumHeads;
        _headDim = config.HeadDim;
        _width = config.Width;
        _mlpNormEps = config.NormEps;
        int d = _width;
        string p = $"transformer_blocks.{index}.";
        // q, k and v are one [3D, D] projection so the attention reads them from one tensor.
        string[] qkv = ["to_q", "to_k", "to_v"];
        _qkvWeight = WeightLoader.ForLinear(WeightLoader.Stack(backend, weights, qkv.Select(n => ($"{p}attn1.{n}.weight", new[] { d, d })).ToArray()), precision);
        _qkvBias = WeightLoader.Stack(backend, weights, qkv.Select(n => ($"{p}attn1.{n}.bias", new[] { d })).ToArray());
        _outWeight = WeightLoader.ForLinear(WeightLoader.Load(backend, weights, p + "attn1.to_out.0.weight", d, d), precision);
        _outBias = WeightLoader.Load(backend, weights, p + "attn1.to_out.0.bias", d);
        _fc1Weight = WeightLoader.ForLinear(WeightLoader.Load(backend, weights, p + "ff.net.0.proj.weight", 4 * d, d), precision);
        _fc1Bias = WeightLoader.Load(backend, weights, p + "ff.net.0.proj.bias", 4 * d);
        _fc2Weight = WeightLoader.ForLinear(WeightLoader.Load(backend, weights, p + "ff.net.2.weight", d, 4 * d), precision);
        _fc2Bias = WeightLoader.Load(backend, weights, p + "ff.net.2.bias", d);
    }

    /// <summary>Updates x [B, T, D] in place, all but the residuals still waiting at its end (the MLP's, and the
    /// attention's too when the MLP was reused), which it returns for the caller to add
    /// (<see cref="PendingResidual.AddTo"/>) or to pass on to the next adaLN over x. mod holds shift1, scale1, gate1,
    /// shift2, scale2, gate2 (each D wide) starting at column modOffset; <paramref name="previous"/> (what the block
    /// before left waiting, its gates in the same modulation rows, or null; the caller's to dispose) is added first.</summary>
    /// <remarks>Each component's adaLN runs inside the component, so one that SmoothCache reuses costs no launch
    /// at all; the residuals waiting for x ride on the next adaLN that runs.</remarks>
    public PendingResidual Forward(Tensor x, Tensor mod, int modOffset, IComponentHook? hook, PendingResidual? previous)
    {
        int d = _width;
        bool previousAdded = false;
        using var attn = RunComponent(hook, Components.Attention, () =>
        {
            // What waits (the block before's MLP residual), then the attention's adaLN of the new x: one pass over x.
            using var h = PendingResidual.AddThenNormalize(previous, x, mod, modOffset, modOffset + d, AttentionNormEps, _activations);
            previousAdded = true;
            return SelfAttention(h);
        });
        using var beforeMlp = PendingResidual.Then(previousAdded ? null : previous, x, attn, mod, modOffset + 2 * d);
        bool beforeMlpAdded = false;
        using var ff = RunComponent(hook, Components.FeedForward, () =>
        {
            // x += gate_msa * attn (and what waited with it), then the MLP's adaLN of the new x: one pass over x.
            using var h = PendingResidual.AddThenNormalize(beforeMlp, x, mod, modOffset + 3 * d, modOffset + 4 * d, _mlpNormEps, _activations);
            beforeMlpAdded = true;
            return FeedForward(h);
        });
        return PendingResidual.Then(beforeMlpAdded ? null : beforeMlp, x, ff, mod, modOffset + 5 * d);
    }

    private Tensor RunComponent(IComponentHook? hook, string component, Func<Tensor> compute) =>
        hook is null ? compute() : hook.Run(component, _index, compute);

    private Tensor SelfAttention(Tensor h)
    {
        using var qkv = Linear.Run(h, _qkvWeight, _qkvBias, _activations);
        using var heads = Attention.Run(qkv, _heads, _headDim, _activations);
        return Linear.Run(heads, _outWeight, _outBias, _activations);
    }

    private Tensor FeedForward(Tensor h)
    {
        using var hidden = Linear.Run<GeluTanhEpilogue>(h, _fc1Weight, _fc1Bias, _activations);
        return Linear.Run(hidden, _fc2Weight, _fc2Bias, _activations);
    }

    /// <summary>Multiply-adds of one attention call for a batch of b samples of t tokens.</summary>
    public static long AttentionMacs(DiTConfig c, int b) =>
        (long)b * c.Tokens * (4L * c.Width * c.Width + 2L * c.Tokens * c.Width);

    /// <summary>Multiply-adds of one MLP call.</summary>
    public static long FeedForwardMacs(DiTConfig c, int b) => (long)b * c.Tokens * 8L * c.Width * c.Width;

    /// <summary>Returns the block's attention and MLP weights to the backend's arena.</summary>
    public void Dispose()
    {
        foreach (var t in new[] { _qkvWeight, _qkvBias, _outWeight, _outBias, _fc1Weight, _fc1Bias, _fc2Weight, _fc2Bias })
            t.Dispose();
    }
}
