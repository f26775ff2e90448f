using SmoothCache.Kernels;
using SmoothCache.Model.Checkpoints;

namespace SmoothCache.Model.Vae;

/// <summary>A "same" convolution with bias, loaded from {prefix}weight [Cout, Cin, K, K] and {prefix}bias [Cout].</summary>
internal sealed class ConvLayer : IDisposable
{
    private readonly Tensor _weight, _bias;

    public ConvLayer(Backend backend, IWeightSource weights, string prefix, int inChannels, int outChannels, int kernelSize)
    {
        _weight = WeightLoader.Load(backend, weights, prefix + "weight", outChannels, inChannels, kernelSize, kernelSize);
        _bias = WeightLoader.Load(backend, weights, prefix + "bias", outChannels);
    }

    /// <summary>conv(x) + b, plus the residual when given.</summary>
    public Tensor Forward(Tensor x, Tensor? residual = null) => Conv2d.Run(x, _weight, _bias, residual);

    public void Dispose()
    {
        _weight.Dispose();
        _bias.Dispose();
    }
}
