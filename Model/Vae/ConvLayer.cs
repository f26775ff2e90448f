using SmoothCache.Kernels;
using SmoothCache.Model.Checkpoints;

namespace SmoothCache.Model.Vae;

/// <summary>A "same" convolution with bias, loaded from {prefix}weight [Cout, Cin, K, K] and {prefix}bias [Cout].
/// At <see cref="Precision.Fp16"/> the weight is stored as float16 (the convolution then runs as an fp16 GEMM) where
/// Cin K K is a multiple of 8, the depths the fp16 tensor-core GEMMs take; the others (a VAE's conv_in and
/// post_quant_conv, over 4 latent channels) stay float32.</summary>
internal sealed class ConvLayer : IDisposable
{
    private readonly Tensor _weight, _bias;

    public ConvLayer(Backend backend, IWeightSource weights, string prefix, int inChannels, int outChannels, int kernelSize,
        Precision precision)
    {
        var weight = WeightLoader.Load(backend, weights, prefix + "weight", outChannels, inChannels, kernelSize, kernelSize);
        _weight = inChannels * kernelSize * kernelSize % 8 == 0 ? WeightLoader.ForLinear(weight, precision) : weight;
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
