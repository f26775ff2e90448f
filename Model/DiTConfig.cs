using System.Text.Json;
using SmoothCache.Model.Checkpoints;

namespace SmoothCache.Model;

/// <summary>
/// The transformer's config.json (diffusers' DiTTransformer2DModel; older checkpoints call the class
/// Transformer2DModel with norm_type "ada_norm_zero"). Missing keys take diffusers' defaults.
/// </summary>
public sealed record DiTConfig
{
    /// <summary>Attention heads per block (num_attention_heads).</summary>
    public int NumHeads { get; init; } = 16;
    /// <summary>Channels per attention head (attention_head_dim).</summary>
    public int HeadDim { get; init; } = 72;
    /// <summary>Number of DiT blocks (num_layers).</summary>
    public int NumLayers { get; init; } = 28;
    /// <summary>Channels of the samples the model denoises (in_channels): 1 or 3 for pixels, otherwise a VAE's latents.</summary>
    public int InChannels { get; init; } = 4;
    /// <summary>Channels the model outputs (out_channels; missing or null in the file means InChannels), at least InChannels:
    /// the first InChannels are the noise prediction (twice InChannels with learned sigma). 8 here, DiT-XL/2's.</summary>
    public int OutChannels { get; init; } = 8;
    /// <summary>Side of the square patch of the sample that each token covers (patch_size).</summary>
    public int PatchSize { get; init; } = 2;
    /// <summary>Side S of the square samples [B, C, S, S] the model denoises (sample_size); a multiple of PatchSize.</summary>
    public int SampleSize { get; init; } = 32;
    /// <summary>Number of classes; the null (unconditional) class has this index.</summary>
    public int NumClasses { get; init; } = 1000;
    /// <summary>Epsilon of the LayerNorm before each block's MLP (norm_eps); the other LayerNorms use 1e-6.</summary>
    public float NormEps { get; init; } = 1e-5f;

    /// <summary>The hidden width D = NumHeads * HeadDim: channels per token.</summary>
    public int Width => NumHeads * HeadDim;
    /// <summary>Patches per side of the sample (SampleSize / PatchSize).</summary>
    public int Grid => SampleSize / PatchSize;
    /// <summary>Tokens per sample, T = Grid * Grid, row-major over the patch grid.</summary>
    public int Tokens => Grid * Grid;
    /// <summary>The label of the null (unconditional) class that guidance runs against: NumClasses.</summary>
    public int NullClass => NumClasses;
    /// <summary>Learned-sigma checkpoints output 2x the input channels; eps is the first half.</summary>
    public bool LearnedSigma => OutChannels == 2 * InChannels;
    /// <summary>Whether samples are images as they are (1 channel: gray, 3: RGB); others are latents for a VAE.</summary>
    public bool SamplesArePixels => InChannels is 1 or 3;

    /// <summary>Reads and checks a transformer config.json (see <see cref="Parse"/>).</summary>
    /// <exception cref="CheckpointNotFoundException">the file is missing, or the path is a folder</exception>
    /// <exception cref="CorruptCheckpointException">the file is not valid JSON</exception>
    /// <exception cref="ModelConfigException">a key has a value the model cannot use</exception>
    public static DiTConfig Load(string path) => ConfigJson.Load(path, Parse);

    /// <summary>The config from a parsed config.json object; missing or null keys take diffusers' defaults, and
    /// <paramref name="path"/> only names the file in errors.</summary>
    /// <exception cref="ModelConfigException">root is not an object; the class, norm type or activation is not a DiT's; a
    /// value has the wrong type or is not positive; out_channels is below in_channels; sample_size is not a multiple of
    /// patch_size; or the width is not a multiple of 4</exception>
    public static DiTConfig Parse(JsonElement root, string path)
    {
        if (root.ValueKind != JsonValueKind.Object)
            throw new ModelConfigException(path, "(root)", "expected a JSON object");
        string? className = ConfigJson.OptionalString(root, "_class_name", path);
        string? normType = ConfigJson.OptionalString(root, "norm_type", path);
        if (className is not null and not "DiTTransformer2DModel" and not "Transformer2DModel")
            throw new ModelConfigException(path, "_class_name",
                $"'{className}' is not a DiT transformer (expected DiTTransformer2DModel or Transformer2DModel)");
        if (normType is not null and not "ada_norm_zero")
            throw new ModelConfigException(path, "norm_type", $"'{normType}' is not supported (expected ada_norm_zero)");
        // Transformer2DModel serves several models; without norm_type it is diffusers' layer_norm one, not a DiT.
        if (className == "Transformer2DModel" && normType is null)
            throw new ModelConfigException(path, "norm_type", "missing: a Transformer2DModel is a DiT only with norm_type ada_norm_zero");
        if (root.TryGetProperty("cross_attention_dim", out var crossAttention) && crossAttention.ValueKind != JsonValueKind.Null)
            throw new ModelConfigException(path, "cross_attention_dim", $"{crossAttention.GetRawText()}: a DiT has no cross-attention (expected null)");
        if (!ConfigJson.Bool(root, "attention_bias", true, path))
            throw new ModelConfigException(path, "attention_bias", "false is not supported (a DiT's q, k and v projections have biases)");
        string? activation = ConfigJson.OptionalString(root, "activation_fn", path);
        if (activation is not null and not "gelu-approximate")
            throw new ModelConfigException(path, "activation_fn", $"'{activation}' is not supported (expected gelu-approximate)");

        var c = new DiTConfig();
        int inChannels = ConfigJson.Int(root, "in_channels", c.InChannels, path);
        var config = c with
        {
            NumHeads = ConfigJson.Int(root, "num_attention_heads", c.NumHeads, path),
            HeadDim = ConfigJson.Int(root, "attention_head_dim", c.HeadDim, path),
            NumLayers = ConfigJson.Int(root, "num_layers", c.NumLayers, path),
            InChannels = inChannels,
            // out_channels missing or null means out = in (no learned sigma), as diffusers reads it.
            OutChannels = !root.TryGetProperty("out_channels", out var oc) || oc.ValueKind == JsonValueKind.Null
                ? inChannels
                : ConfigJson.Int(root, "out_channels", c.OutChannels, path),
            PatchSize = ConfigJson.Int(root, "patch_size", c.PatchSize, path),
            SampleSize = ConfigJson.Int(root, "sample_size", c.SampleSize, path),
            NumClasses = ConfigJson.Int(root, "num_embeds_ada_norm", c.NumClasses, path),
            NormEps = ConfigJson.Float(root, "norm_eps", c.NormEps, path),
        };
        if (config.OutChannels != config.InChannels && config.OutChannels != 2 * config.InChannels)
            throw new ModelConfigException(path, "out_channels",
                $"{config.OutChannels} is neither in_channels {config.InChannels} nor twice it: a DiT predicts the noise of every latent " +
                "channel and, learning sigma, as many variance channels");
        if (config.SampleSize % config.PatchSize != 0)
            throw new ModelConfigException(path, "sample_size",
                $"{config.SampleSize} is not a multiple of patch_size {config.PatchSize}");
        long width = (long)config.NumHeads * config.HeadDim, tokens = (long)config.Grid * config.Grid;
        ConfigJson.Limit(path, "attention_head_dim", width, 1 << 14, "the width (heads x head dim)");
        ConfigJson.Limit(path, "sample_size", tokens, 1 << 16, "the token count ((sample_size / patch_size)^2)");
        ConfigJson.Limit(path, "num_layers", config.NumLayers, 1 << 10, "num_layers");
        ConfigJson.Limit(path, "num_embeds_ada_norm", config.NumClasses, 1 << 24, "num_embeds_ada_norm");
        ConfigJson.Limit(path, "patch_size", (long)config.PatchSize * config.PatchSize * config.OutChannels * width, int.MaxValue,
            "the output projection's size (patch_size^2 x out_channels x width)");
        if (config.Width % 4 != 0)
            throw new ModelConfigException(path, "attention_head_dim",
                $"width {config.Width} (heads x head dim) must be a multiple of 4 for the position table");
        return config;
    }
}
