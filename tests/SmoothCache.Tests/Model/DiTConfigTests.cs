using System.Text.Json;
using SmoothCache.Model;
using SmoothCache.Model.Checkpoints;

namespace SmoothCache.Tests.Model;

public class DiTConfigTests
{
    private static DiTConfig Parse(string json)
    {
        using var doc = JsonDocument.Parse(json);
        return DiTConfig.Parse(doc.RootElement, "transformer/config.json");
    }

    [Fact]
    public void MissingKeysTakeDiffusersDefaults()
    {
        var c = Parse("{}");
        Assert.Equal((1152, 256, 28, 1000), (c.Width, c.Tokens, c.NumLayers, c.NumClasses));
        // diffusers' out_channels defaults to None: as many channels out as in (DiT-XL/2's config says 8 itself).
        Assert.Equal((4, 4), (c.InChannels, c.OutChannels));
    }

    [Theory]
    [InlineData("""{"in_channels": 3}""", 3)]
    [InlineData("""{"in_channels": 3, "out_channels": null}""", 3)]
    [InlineData("""{"in_channels": 3, "out_channels": 6}""", 6)]
    public void OutChannelsMissingOrNullMeanInChannels(string json, int expected) => Assert.Equal(expected, Parse(json).OutChannels);

    /// <summary>Configs of transformers that are not DiTs, which the weights alone might not betray, are refused by key.</summary>
    [Theory]
    [InlineData("""{"_class_name": "Transformer2DModel"}""", "norm_type")]
    [InlineData("""{"_class_name": "Transformer2DModel", "norm_type": "layer_norm"}""", "norm_type")]
    [InlineData("""{"cross_attention_dim": 768}""", "cross_attention_dim")]
    [InlineData("""{"attention_bias": false}""", "attention_bias")]
    [InlineData("""{"_class_name": "UNet2DConditionModel"}""", "_class_name")]
    [InlineData("""{"in_channels": 4, "out_channels": 5}""", "out_channels")] // neither the noise nor noise and variance
    [InlineData("""{"in_channels": 4, "out_channels": 2}""", "out_channels")]
    public void OtherTransformersAreRefusedByTheKeyThatSaysSo(string json, string key)
    {
        var e = Assert.Throws<ModelConfigException>(() => Parse(json));
        Assert.Contains($"'{key}'", e.Message);
    }

    [Fact]
    public void OlderDiffusersDiTConfigsAreAccepted() =>
        Assert.Equal(28, Parse("""{"_class_name": "Transformer2DModel", "norm_type": "ada_norm_zero", "cross_attention_dim": null, "attention_bias": true}""").NumLayers);

    /// <summary>Sizes the kernels would index past 32 bits (or wrap into small or negative ones), and numbers that round
    /// to 0 or infinity in float32, are refused with the key, before anything is allocated.</summary>
    [Theory]
    [InlineData("""{"sample_size": 4096, "patch_size": 2}""", "sample_size")]
    [InlineData("""{"num_attention_heads": 2, "attention_head_dim": 1073741824}""", "attention_head_dim")]
    [InlineData("""{"num_embeds_ada_norm": 2147483647}""", "num_embeds_ada_norm")]
    [InlineData("""{"num_layers": 100000}""", "num_layers")]
    [InlineData("""{"patch_size": 32, "sample_size": 1024, "in_channels": 2048, "out_channels": 4096}""", "patch_size")]
    [InlineData("""{"norm_eps": 1e39}""", "norm_eps")]
    [InlineData("""{"norm_eps": 1e-50}""", "norm_eps")]
    public void OutsizedOrUnrepresentableValuesNameTheirKey(string json, string key)
    {
        var e = Assert.Throws<ModelConfigException>(() => Parse(json));
        Assert.Contains($"'{key}'", e.Message);
        Assert.Contains("transformer/config.json", e.Message);
    }
}
