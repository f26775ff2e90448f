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

    public static VaeConfig Load(string path)
    {
        if (!File.Exists(path)) throw new CheckpointNotFoundException(path, "config file not found");
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(File.ReadAllText(path));
        }
        catch (JsonException e)
        {
            throw new ModelConfigException(path, "(json)", $"not valid JSON: {e.Message}");
        }
        using (doc) return Parse(doc.RootElement, path);
    }

    public static VaeConfig Parse(JsonElement root, string path)
    {
        if (root.ValueKind != JsonValueKind.Object)
            throw new ModelConfigException(path, "(root)", "expected a JSON object");
        string? className = OptionalString(root, "_class_name", path);
        if (className is not null and not "AutoencoderKL")
            throw new ModelConfigException(path, "_class_name", $"'{className}' is not supported (expected AutoencoderKL)");
        string? activation = OptionalString(root, "act_fn", path);
        if (activation is not null and not "silu")
            throw new ModelConfigException(path, "act_fn", $"'{activation}' is not supported (expected silu)");

        var d = new VaeConfig();
        var channels = IntArray(root, "block_out_channels", path) ?? d.BlockOutChannels;
        var upBlocks = StringArray(root, "up_block_types", path) ?? Enumerable.Repeat(UpDecoderBlock, channels.Length).ToArray();
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
            LayersPerBlock = Int(root, "layers_per_block", d.LayersPerBlock, path),
            NormNumGroups = Int(root, "norm_num_groups", d.NormNumGroups, path),
            LatentChannels = Int(root, "latent_channels", d.LatentChannels, path),
            OutChannels = Int(root, "out_channels", d.OutChannels, path),
            MidBlockAddAttention = Bool(root, "mid_block_add_attention", d.MidBlockAddAttention, path),
            ScalingFactor = Float(root, "scaling_factor", d.ScalingFactor, path),
            UsePostQuantConv = Bool(root, "use_post_quant_conv", d.UsePostQuantConv, path),
        };
        foreach (int c in channels)
            if (c % config.NormNumGroups != 0)
                throw new ModelConfigException(path, "block_out_channels",
                    $"{c} channels are not divisible by norm_num_groups {config.NormNumGroups}");
        return config;
    }

    private static string? OptionalString(JsonElement root, string key, string path)
    {
        if (!root.TryGetProperty(key, out var v) || v.ValueKind == JsonValueKind.Null) return null;
        if (v.ValueKind != JsonValueKind.String) throw new ModelConfigException(path, key, "expected a string");
        return v.GetString();
    }

    private static int Int(JsonElement root, string key, int fallback, string path)
    {
        if (!root.TryGetProperty(key, out var v) || v.ValueKind == JsonValueKind.Null) return fallback;
        return PositiveInt(v, key, path);
    }

    private static int PositiveInt(JsonElement v, string key, string path)
    {
        if (v.ValueKind != JsonValueKind.Number || !v.TryGetInt32(out int value) || value < 1)
            throw new ModelConfigException(path, key, $"expected a positive integer, found {v.GetRawText()}");
        return value;
    }

    private static float Float(JsonElement root, string key, float fallback, string path)
    {
        if (!root.TryGetProperty(key, out var v) || v.ValueKind == JsonValueKind.Null) return fallback;
        if (v.ValueKind != JsonValueKind.Number || !(v.GetDouble() > 0))
            throw new ModelConfigException(path, key, $"expected a positive number, found {v.GetRawText()}");
        return v.GetSingle();
    }

    private static bool Bool(JsonElement root, string key, bool fallback, string path)
    {
        if (!root.TryGetProperty(key, out var v) || v.ValueKind == JsonValueKind.Null) return fallback;
        return v.ValueKind switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            _ => throw new ModelConfigException(path, key, $"expected true or false, found {v.GetRawText()}"),
        };
    }

    private static int[]? IntArray(JsonElement root, string key, string path)
    {
        if (!root.TryGetProperty(key, out var v) || v.ValueKind == JsonValueKind.Null) return null;
        if (v.ValueKind != JsonValueKind.Array || v.GetArrayLength() == 0)
            throw new ModelConfigException(path, key, $"expected a non-empty array of positive integers, found {v.GetRawText()}");
        return v.EnumerateArray().Select(e => PositiveInt(e, key, path)).ToArray();
    }

    private static string[]? StringArray(JsonElement root, string key, string path)
    {
        if (!root.TryGetProperty(key, out var v) || v.ValueKind == JsonValueKind.Null) return null;
        if (v.ValueKind != JsonValueKind.Array || v.EnumerateArray().Any(e => e.ValueKind != JsonValueKind.String))
            throw new ModelConfigException(path, key, $"expected an array of strings, found {v.GetRawText()}");
        return v.EnumerateArray().Select(e => e.GetString()!).ToArray();
    }
}
