using SmoothCache.Kernels;
using SmoothCache.Model.Checkpoints;

namespace SmoothCache.Model.Vae;

/// <summary>
/// diffusers' ResnetBlock2D without a time embedding:
///   y = conv2(SiLU(norm2(conv1(SiLU(norm1(x)))))) + shortcut(x)
/// where shortcut is a 1x1 conv_shortcut when the channel count changes and the identity otherwise.
/// The residual is added by conv2 itself.
/// </summary>
internal sealed class VaeResnetBlock : IDisposable
{
    private readonly GroupNormLayer _norm1, _norm2;
    private readonly ConvLayer _conv1, _conv2;
    private readonly ConvLayer? _shortcut;

    public VaeResnetBlock(Backend backend, IWeightSource weights, string prefix, int inChannels, int outChannels, int groups,
        Precision precision)
    {
        _norm1 = new GroupNormLayer(backend, weights, prefix + "norm1.", inChannels, groups);
        _conv1 = new ConvLayer(backend, weights, prefix + "conv1.", inChannels, outChannels, 3, precision);
        _norm2 = new GroupNormLayer(backend, weights, prefix + "norm2.", outChannels, groups);
        _conv2 = new ConvLayer(backend, weights, prefix + "conv2.", outChannels, outChannels, 3, precision);
        if (inChannels != outChannels)
            _shortcut = new ConvLayer(backend, weights, prefix + "conv_shortcut.", inChannels, outChannels, 1, precision);
    }

    public Tensor Forward(Tensor x)
    {
        Tensor hidden;
        using (var a = _norm1.ForwardSilu(x))
        using (var b = _conv1.Forward(a))
            hidden = _norm2.ForwardSilu(b);
        using (hidden)
        using (var shortcut = _shortcut?.Forward(x) ?? x.Share())
            return _conv2.Forward(hidden, shortcut);
    }

    public void Dispose()
    {
        _norm1.Dispose();
        _conv1.Dispose();
        _norm2.Dispose();
        _conv2.Dispose();
        _shortcut?.Dispose();
    }
}
