using SmoothCache.Kernels;
using SmoothCache.Model.Checkpoints;

namespace SmoothCache.Model.Vae;

/// <summary>
/// The decoder half of diffusers' AutoencoderKL (the Stable Diffusion VAE, e.g. sd-vae-ft-ema):
///   z = post_quant_conv(latents)                         1x1, when use_post_quant_conv
///   x = decoder.conv_in(z)                               3x3, latent -> last block_out_channels
///   x = mid_block: resnet, attention (optional), resnet
///   for each up block i (channels = reversed block_out_channels):
///       x = resnets[0..layers_per_block](x);  x = upsamplers.0.conv(nearest2x(x)) except in the last
///   image = decoder.conv_out(SiLU(conv_norm_out(x)))     3x3 -> out_channels
/// Every GroupNorm has norm_num_groups groups and eps 1e-6. Decode takes latents as stored by the
/// sampler divided by the scaling factor (the caller's job) and returns the decoder's raw output,
/// nominally in [-1, 1] and not clamped. At <see cref="Precision.Fp16"/> the convolutions multiply float16 operands with
/// float32 sums (as diffusers' fp16 pipelines run their VAE, on tensor cores on CUDA); the activations between them, the
/// norms and the attention stay float32.
/// </summary>
public sealed class VaeDecoder : IDisposable
{
    private readonly ConvLayer? _postQuantConv;
    private readonly ConvLayer _convIn, _convOut;
    private readonly VaeResnetBlock[] _midResnets;
    private readonly VaeAttention? _midAttention;
    private readonly VaeResnetBlock[][] _upResnets;
    private readonly ConvLayer?[] _upsamplers;  // null for the last up block
    private readonly GroupNormLayer _normOut;

    /// <summary>The VAE's config.json settings the decoder was built from.</summary>
    public VaeConfig Config { get; }
    /// <summary>The backend holding the weights and running <see cref="Decode"/>; the caller's, not disposed with the decoder.</summary>
    public Backend Backend { get; }
    /// <summary>The convolutions' arithmetic: at Fp16 float16 operands with float32 sums where the layer's shape allows;
    /// activations, norms and the attention stay float32 either way.</summary>
    public Precision Precision { get; }

    /// <summary>Uploads the decoder's weights, laid out as <paramref name="config"/> says, from <paramref name="weights"/> (only
    /// read here: still the caller's to dispose). When a tensor fails, none of those already uploaded stays rented.</summary>
    /// <exception cref="MissingTensorException">a tensor the config implies is not in the checkpoint</exception>
    /// <exception cref="TensorShapeException">a tensor has another shape than the config implies</exception>
    public VaeDecoder(Backend backend, VaeConfig config, IWeightSource weights, Precision precision = Precision.Fp32)
    {
        Backend = backend;
        Config = config;
        Precision = precision;
        using var claim = backend.ClaimWhenFree("loading a VAE"); // after another thread's work: the arena is not thread-safe
        // A checkpoint that fails part way leaves none of its weights rented.
        using var loading = backend.Arena.TrackRents();
        int groups = config.NormNumGroups, latent = config.LatentChannels;
        var channels = config.BlockOutChannels.Reverse().ToArray();
        int top = channels[0];

        if (config.UsePostQuantConv)
            _postQuantConv = new ConvLayer(backend, weights, "post_quant_conv.", latent, latent, 1, precision);
        _convIn = new ConvLayer(backend, weights, "decoder.conv_in.", latent, top, 3, precision);
        const string mid = "decoder.mid_block.";
        _midResnets = [.. Enumerable.Range(0, 2)
            .Select(i => new VaeResnetBlock(backend, weights, $"{mid}resnets.{i}.", top, top, groups, precision))];
        if (config.MidBlockAddAttention)
            _midAttention = new VaeAttention(backend, weights, $"{mid}attentions.0.", top, groups);

        _upResnets = new VaeResnetBlock[channels.Length][];
        _upsamplers = new ConvLayer?[channels.Length];
        int previous = top;
        for (int i = 0; i < channels.Length; i++)
        {
            string block = $"decoder.up_blocks.{i}.";
            int output = channels[i];
            _upResnets[i] = [.. Enumerable.Range(0, config.LayersPerBlock + 1)
                .Select(j => new VaeResnetBlock(backend, weights, $"{block}resnets.{j}.", j == 0 ? previous : output, output, groups, precision))];
            if (i < channels.Length - 1)
                _upsamplers[i] = new ConvLayer(backend, weights, $"{block}upsamplers.0.conv.", output, output, 3, precision);
            previous = output;
        }
        _normOut = new GroupNormLayer(backend, weights, "decoder.conv_norm_out.", previous, groups);
        _convOut = new ConvLayer(backend, weights, "decoder.conv_out.", previous, config.OutChannels, 3, precision);
        loading.Keep();
    }

    /// <summary>Loads a diffusers VAE folder (config.json + diffusion_pytorch_model weights).</summary>
    public static VaeDecoder Load(Backend backend, string vaeFolder, Precision precision = Precision.Fp32)
    {
        var config = VaeConfig.Load(Path.Combine(vaeFolder, "config.json"));
        using var weights = WeightSources.OpenModelFolder(vaeFolder);
        return new VaeDecoder(backend, config, weights, precision);
    }

    /// <param name="latents">[B, latent_channels, h, w], already divided by the scaling factor</param>
    /// <returns>[B, out_channels, h * UpscaleFactor, w * UpscaleFactor], rented from the arena</returns>
    public Tensor Decode(Tensor latents)
    {
        if (latents.Shape.Length != 4 || latents.Dim(1) != Config.LatentChannels)
            throw new ArgumentException(
                $"VaeDecoder: latents {latents.ShapeText} are not [B,{Config.LatentChannels},h,w]");
        var x = _postQuantConv?.Forward(latents) ?? latents.Share();
        x = Then(x, t => _convIn.Forward(t));
        x = Then(x, _midResnets[0].Forward);
        if (_midAttention is not null) x = Then(x, _midAttention.Forward);
        x = Then(x, _midResnets[1].Forward);
        for (int i = 0; i < _upResnets.Length; i++)
        {
            foreach (var resnet in _upResnets[i]) x = Then(x, resnet.Forward);
            if (_upsamplers[i] is { } upsampler)
            {
                x = Then(x, Upsample.Run);
                x = Then(x, t => upsampler.Forward(t));
            }
        }
        x = Then(x, _normOut.ForwardSilu);
        return Then(x, t => _convOut.Forward(t));
    }

    /// <summary>f(x), releasing x.</summary>
    private static Tensor Then(Tensor x, Func<Tensor, Tensor> f)
    {
        using (x) return f(x);
    }

    /// <summary>Returns the decoder's weights to the backend's arena; the backend stays the caller's.</summary>
    public void Dispose()
    {
        _postQuantConv?.Dispose();
        _convIn.Dispose();
        foreach (var r in _midResnets) r.Dispose();
        _midAttention?.Dispose();
        foreach (var r in _upResnets.SelectMany(b => b)) r.Dispose();
        foreach (var u in _upsamplers) u?.Dispose();
        _normOut.Dispose();
        _convOut.Dispose();
    }
}
