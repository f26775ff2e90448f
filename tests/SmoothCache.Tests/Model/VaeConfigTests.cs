using SmoothCache.Model.Checkpoints;
using SmoothCache.Model.Vae;
using static SmoothCache.Tests.TestSupport;

namespace SmoothCache.Tests.Model;

public sealed class VaeConfigTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("vae-config-").FullName;

    private string Write(string json)
    {
        string path = Path.Combine(_dir, "config.json");
        File.WriteAllText(path, json);
        return path;
    }

    [Fact]
    public void ReadsTheFixtureConfig()
    {
        var c = VaeConfig.Load(Fixture("random", "vae-small", "config.json"));
        Assert.Equal(new[] { 32, 64 }, c.BlockOutChannels);
        Assert.Equal(2, c.LayersPerBlock);
        Assert.Equal(16, c.NormNumGroups);
        Assert.Equal(4, c.LatentChannels);
        Assert.Equal(3, c.OutChannels);
        Assert.True(c.MidBlockAddAttention);
        Assert.True(c.UsePostQuantConv);
        Assert.Equal(0.18215f, c.ScalingFactor);
    }

    [Fact]
    public void TheLargestActivationIsTheWidestLevelAtItsResolution()
    {
        // sd-vae-ft-ema's levels at 32 x 32 latents (DiT-XL/2-256): 256 x 256 pixels hold the 256 channels upsampled from
        // the level below before the finest level narrows them to 128; 256 * 256^2 = 16.8M beats 512 * 128^2 and the mid
        // block's 1024^2 attention scores.
        var sd = VaeConfig.Load(Write("""{"block_out_channels": [128, 256, 512, 512]}"""));
        Assert.Equal(256L * 256 * 256, sd.LargestActivation(32));
        // One level: its own channels at the latents' size, or the attention's pixels^2 where more.
        var flat = new VaeConfig { BlockOutChannels = [8] };
        Assert.Equal(16L * 16, flat.LargestActivation(4));
        Assert.Equal(8L * 2 * 2, (flat with { MidBlockAddAttention = false }).LargestActivation(2));
    }

    [Fact]
    public void MissingKeysTakeDiffusersDefaults()
    {
        var c = VaeConfig.Load(Write("""{"block_out_channels": [128, 256, 512, 512], "layers_per_block": 2}"""));
        Assert.Equal(8, c.UpscaleFactor);
        Assert.Equal(32, c.NormNumGroups);
        Assert.Equal(0.18215f, c.ScalingFactor);
        Assert.True(c.UsePostQuantConv);
        Assert.True(c.MidBlockAddAttention);
    }

    [Fact]
    public void RejectsAnUnknownUpBlockTypeNamingFileKeyAndValue()
    {
        string path = Write("""{"block_out_channels": [32, 64], "up_block_types": ["UpDecoderBlock2D", "AttnUpDecoderBlock2D"]}""");
        var e = Assert.Throws<ModelConfigException>(() => VaeConfig.Load(path));
        Assert.Contains(path, e.Message);
        Assert.Contains("up_block_types", e.Message);
        Assert.Contains("AttnUpDecoderBlock2D", e.Message);
    }

    [Theory]
    [InlineData("""{"block_out_channels": [32, 64], "up_block_types": ["UpDecoderBlock2D"]}""", "up_block_types")]
    [InlineData("""{"block_out_channels": [32, 48], "norm_num_groups": 32}""", "block_out_channels")]
    [InlineData("""{"layers_per_block": 0}""", "layers_per_block")]
    [InlineData("""{"use_post_quant_conv": "yes"}""", "use_post_quant_conv")]
    [InlineData("""{"_class_name": "AutoencoderTiny"}""", "_class_name")]
    [InlineData("""{"block_out_channels": [32, 32, 32, 32, 32, 32, 32, 32, 32], "up_block_types": null}""", "block_out_channels")]
    [InlineData("""{"scaling_factor": 1e400}""", "scaling_factor")]
    [InlineData("""{"scaling_factor": 1e-50}""", "scaling_factor")]
    public void RejectsInconsistentValuesNamingTheKey(string json, string key)
    {
        string path = Write(json);
        var e = Assert.Throws<ModelConfigException>(() => VaeConfig.Load(path));
        Assert.Contains($"'{key}'", e.Message);
        Assert.Contains(path, e.Message);
    }

    public void Dispose() => Directory.Delete(_dir, recursive: true);
}
