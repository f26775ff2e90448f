using SmoothCache.Kernels;
using SmoothCache.Model.Checkpoints;

namespace SmoothCache.Model;

/// <summary>
/// One DiT block with adaLN-Zero conditioning (DESIGN §2):
///   h = LN(x) * (1 + scale1) + shift1;  x = x + gate1 * Attn(h)    — component "attn1"
///   h = LN(x) * (1 + scale2) + shift2;  x = x + gate2 * FF(h)      — component "ff"
/// The six modulation vectors are read in place from a [B, stride] tensor at a column offset.
/// Attn and FF, each with its adaLN, run through the component hook; the gates and residuals always run.
/// </summary>
public sealed class DiTBlock : IDisposable
{
    // diffusers builds norm1 (adaLN-Zero) with eps 1e-6 whatever the config says; norm2 takes the config's norm_eps.
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
        _activations = HalfConversion.ActivationType(precision);
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
        var m = new ModulationColumns(modOffset, _width);
        // Each adaLN adds to x what waits (the block before's residuals, then the attention's) on its pass over x.
        using var attn = RunComponent(hook, Components.Attention, () =>
        {
            using var h = PendingResidual.AddThenNormalize(previous, x, mod, m.Shift1, m.Scale1, AttentionNormEps, _activations);
            return SelfAttention(h);
        });
        using var beforeMlp = PendingResidual.Then(previous, x, attn, mod, m.Gate1);
        using var ff = RunComponent(hook, Components.FeedForward, () =>
        {
            using var h = PendingResidual.AddThenNormalize(beforeMlp, x, mod, m.Shift2, m.Scale2, _mlpNormEps, _activations);
            return FeedForward(h);
        });
        return PendingResidual.Then(beforeMlp, x, ff, mod, m.Gate2);
    }

    /// <summary>The columns of a block's six modulation vectors, each <paramref name="Width"/> wide, in the adaLN rows.</summary>
    private readonly record struct ModulationColumns(int Offset, int Width)
    {
        public int Shift1 => Offset;
        public int Scale1 => Offset + Width;
        public int Gate1 => Offset + 2 * Width;
        public int Shift2 => Offset + 3 * Width;
        public int Scale2 => Offset + 4 * Width;
        public int Gate2 => Offset + 5 * Width;
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

    /// <summary>Multiply-adds of one attention call for a batch of b samples (of the config's tokens).</summary>
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
