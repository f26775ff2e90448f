using SmoothCache.Kernels;
using SmoothCache.Model.Checkpoints;

namespace SmoothCache.Model.Vae;

/// <summary>
/// The VAE mid block's single-head self-attention over the H*W positions of an NCHW image:
///   t = GroupNorm(x) as rows of channels [B, HW, C];  q, k, v = t Wq^T + bq, ...
///   y = x + to_out(softmax(q k^T / sqrt(C)) v), back in NCHW.
/// Projections are read as to_q/to_k/to_v/to_out.0 or, in older checkpoints, query/key/value/
/// proj_attn; either may be stored as a Linear [C, C] or a 1x1 conv [C, C, 1, 1].
/// </summary>
internal sealed class VaeAttention : IDisposable
{
    private readonly GroupNormLayer _norm;
    private readonly Tensor _qkvWeight, _qkvBias, _outWeight, _outBias;

    public VaeAttention(Backend backend, IWeightSource weights, string prefix, int channels, int groups)
    {
        _norm = new GroupNormLayer(backend, weights, prefix + "group_norm.", channels, groups);
        // q, k and v as one [3C, C] projection, the layout Attention reads.
        var projections = new[] { ("to_q", "query"), ("to_k", "key"), ("to_v", "value") }
            .Select(names => ResolveName(weights, prefix, names.Item1, names.Item2))
            .ToArray();
        _qkvWeight = WeightLoader.Stack(backend, weights, projections.Select(p => (p + "weight", new[] { channels, channels })).ToArray(),
            (name, _) => ReadMatrix(weights, name, channels));
        _qkvBias = WeightLoader.Stack(backend, weights, projections.Select(p => (p + "bias", new[] { channels })).ToArray());
        string output = ResolveName(weights, prefix, "to_out.0", "proj_attn");
        _outWeight = backend.Arena.Upload(ReadMatrix(weights, output + "weight", channels), channels, channels);
        _outBias = WeightLoader.Load(backend, weights, output + "bias", channels);
    }

    /// <summary>The current name's prefix when its weight is stored, else the legacy one's when that is
    /// (a checkpoint with neither reports the current name as missing).</summary>
    private static string ResolveName(IWeightSource weights, string prefix, string name, string legacyName) =>
        !weights.Contains($"{prefix}{name}.weight") && weights.Contains($"{prefix}{legacyName}.weight")
            ? $"{prefix}{legacyName}."
            : $"{prefix}{name}.";

    private static float[] ReadMatrix(IWeightSource weights, string name, int channels) =>
        weights.Contains(name) && weights.Describe(name).Shape.Length == 4
            ? weights.ReadFloat32(name, channels, channels, 1, 1)
            : weights.ReadFloat32(name, channels, channels);

    /// <param name="x">[B, C, H, W]</param>
    /// <returns>x + attention(x), [B, C, H, W]</returns>
    public Tensor Forward(Tensor x)
    {
        int b = x.Dim(0), c = x.Dim(1), h = x.Dim(2), w = x.Dim(3);
        using var normed = _norm.Forward(x);
        using var planes = normed.Reshape(b, c, h * w);
        using var tokens = Transpose.Run(planes);
        using var qkv = Linear.Run(tokens, _qkvWeight, _qkvBias);
        using var attended = Attention.Run(qkv, 1, c);
        using var projected = Linear.Run(attended, _outWeight, _outBias);
        using var output = Transpose.Run(projected, x);
        return output.Reshape(b, c, h, w);
    }

    public void Dispose()
    {
        _norm.Dispose();
        _qkvWeight.Dispose();
        _qkvBias.Dispose();
        _outWeight.Dispose();
        _outBias.Dispose();
    }
}
