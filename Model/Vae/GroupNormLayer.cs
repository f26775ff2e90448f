using SmoothCache.Kernels;
using SmoothCache.Model.Checkpoints;

namespace SmoothCache.Model.Vae;

/// <summary>GroupNorm (eps 1e-6, as everywhere in the VAE) with {prefix}weight and {prefix}bias of [C].</summary>
internal sealed class GroupNormLayer : IDisposable
{
    private const float Eps = 1e-6f;

    private readonly Tensor _gamma, _beta;
    private readonly int _groups;

    public GroupNormLayer(Backend backend, IWeightSource weights, string prefix, int channels, int groups)
    {
        _gamma = WeightLoader.Load(backend, weights, prefix + "weight", channels);
        _beta = WeightLoader.Load(backend, weights, prefix + "bias", channels);
        _groups = groups;
    }

    public Tensor Forward(Tensor x) => GroupNorm.Run(x, _groups, _gamma, _beta, Eps);

    /// <summary>SiLU(GroupNorm(x)) in one pass: every ResNet norm and the output norm are followed by SiLU.</summary>
    public Tensor ForwardSilu(Tensor x) => GroupNorm.Run<SiluEpilogue>(x, _groups, _gamma, _beta, Eps);

    public void Dispose()
    {
        _gamma.Dispose();
        _beta.Dispose();
    }
}
