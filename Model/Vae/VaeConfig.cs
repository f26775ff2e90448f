using System.Text.Json;
using SmoothCache.Model.Checkpoints;

namespace SmoothCache.Model.Vae;

/// <summary>
/// The decoder-relevant part of a diffusers AutoencoderKL vae/config.json (as in sd-vae-ft-ema).
/// Missing keys take diffusers' defaults; force_upcast, the encoder's keys and latents_mean/std
/// are ignored. Only UpDecoderBlock2D up blocks (the SD VAE's) are supported.
/// </summary>
public sealed record VaeConfig
{
    private const string UpDecoderBlock = "UpDecoderBlock2D";

    /// <summary>Channels per resolution level, finest first; the decoder walks them in reverse.</summary>
    public int[] BlockOutChannels { get; init; } = [64];
    /// <summary>Each decoder up block has LayersPerBlock + 1 ResNet blocks.</summary>
    public int LayersPerBlock { get; init; } = 1;
    public int NormNumGroups { get; init; } = 32;
    public int LatentChannels { get; init; } = 4;
    public int OutChannels { get; init; } = 3;
    public bool MidBlockAddAttention { get; init; } = true;
    /// <summary>Latents are multiplied by this after encoding; the pipeline divides by it before decoding.</summary>
    public float ScalingFactor { get; init; } = 0.18215f;
    public bool UsePostQuantConv { get; init; } = true;

    /// <summary>Image size / latent size: 2 for every up block but the last.</summary>
    public int UpscaleFactor => 1 << (BlockOutChannels.Length - 1);

    /// <summary>Elements of the largest tensor decoding one image of <paramref name="latentSize"/> x <paramref name="latentSize"/>
    /// latents holds: at each level, the wider of its own channels and those the level below upsamples into it (the mid
    /// block's attention scores, pixels x pixels at the coarsest level, where larger).</summary>
    public long LargestActivation(int latentSize)
    {
        int levels = BlockOutChannels.Length;
        long largest = 0;
        for (int i = 0; i < levels; i++)
        {
            long side = (long)latentSize << (levels - 1 - i);
            int channels = Math.Max(BlockOutChannels[i], BlockOutChannels[Math.Min(i + 1, levels - 1)]);
            largest = Math.Max(largest, channels * side * side);
        }
        long pixels = (long)latentSize * latentSize;
        return MidBlockAddAttention ? Math.Max(largest, pixels * pixels) : largest;
    }

    public static VaeConfig Load(string path) => ConfigJson.Load(path, Parse);

    public static VaeConfig Parse(JsonElement root, string path)
    {
        if (root.ValueKind != JsonValueKind.Object)
            throw new ModelConfigException(path, "(root)", "expected a JSON object");
        string? className = ConfigJson.OptionalString(root, "_class_name", path);
        if (className is not null and not "AutoencoderKL")
            throw new ModelConfigException(path, "_class_name", $"'{className}' is not supported (expected AutoencoderKL)");
        string? activation = ConfigJson.OptionalString(root, "act_fn", path);
        if (activation is not null and not "silu")
            throw new ModelConfigException(path, "act_fn", $"'{activation}' is not supported (expected silu)");

        var d = new VaeConfig();
        var channels = ConfigJson.IntArray(root, "block_out_channels", path) ?? d.BlockOutChannels;
        ConfigJson.Limit(path, "block_out_channels", channels.Length, 8, "the number of levels");
        ConfigJson.Limit(path, "block_out_channels", channels.Max(), 1 << 14, "the widest level's channels");
        var upBlocks = ConfigJson.StringArray(root, "up_block_types", path) ?? Enumerable.Repeat(UpDecoderBlock, channels.Length).ToArray();
        for (int i = 0; i < upBlocks.Length; i++)
            if (upBlocks[i] != UpDecoderBlock)
                throw new ModelConfigException(path, "up_block_types",
                    $"entry {i} is '{upBlocks[i]}': only {UpDecoderBlock} is supported");
        if (upBlocks.Length != channels.Length)
            throw new ModelConfigException(path, "up_block_types",
                $"has {upBlocks.Length} entries but block_out_channels has {channels.Length}");

        var config = d with
        {
            BlockOutChannels = channels,
            LayersPerBlock = ConfigJson.Int(root, "layers_per_block", d.LayersPerBlock, path),
            NormNumGroups = ConfigJson.Int(root, "norm_num_groups", d.NormNumGroups, path),
            LatentChannels = ConfigJson.Int(root, "latent_channels", d.LatentChannels, path),
            OutChannels = ConfigJson.Int(root, "out_channels", d.OutChannels, path),
            MidBlockAddAttention = ConfigJson.Bool(root, "mid_block_add_attention", d.MidBlockAddAttention, path),
            ScalingFactor = ConfigJson.Float(root, "scaling_factor", d.ScalingFactor, path),
            UsePostQuantConv = ConfigJson.Bool(root, "use_post_quant_conv", d.UsePostQuantConv, path),
        };
        foreach (int c in channels)
            if (c % config.NormNumGroups != 0)
                throw new ModelConfigException(path, "block_out_channels",
                    $"{c} channels are not divisible by norm_num_groups {config.NormNumGroups}");
        return config;
    }
}
