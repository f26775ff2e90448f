using SmoothCache.Kernels;
using SmoothCache.Model.Checkpoints;
using SmoothCache.Model.Vae;
using static SmoothCache.Tests.TestSupport;

namespace SmoothCache.Tests.Model;

public class VaeDecoderTests
{
    private static readonly string Folder = Fixture("random", "vae-small");

    /// <summary>vae.decode(z) of vae-small, computed by diffusers.</summary>
    private static (float[] Z, float[] Image) Expected()
    {
        using var file = SafetensorsFile.Open(Fixture("random", "vae-small-decode.safetensors"));
        return (file.ReadFloat32("z", 2, 4, 8, 8), file.ReadFloat32("image", 2, 3, 16, 16));
    }

    private static float[] Decode(VaeDecoder vae, float[] z)
    {
        using var latents = vae.Backend.Arena.Upload(z, 2, 4, 8, 8);
        using var image = vae.Decode(latents);
        Assert.Equal(new[] { 2, 3, 16, 16 }, image.Shape);
        return image.ToArray();
    }

    /// <summary>DESIGN's float32 parity (measured: 9.9e-7 on both backends).</summary>
    private const double ParityTolerance = 1e-5;

    [Fact]
    public void DecodesLikeDiffusers()
    {
        var (z, expected) = Expected();
        using var vae = VaeDecoder.Load(Cpu, Folder);
        Assert.Equal(2, vae.Config.UpscaleFactor);
        Assert.True(RelativeL2(Decode(vae, z), expected) < ParityTolerance);
    }

    [Fact]
    public void DecodesLikeDiffusersOnTheGpuKernelsWithItsConvolutionsAsGemms()
    {
        var (z, expected) = Expected();
        using var vae = VaeDecoder.Load(CpuWithGpuKernels, Folder);
        Assert.True(RelativeL2(Decode(vae, z), expected) < ParityTolerance);
    }

    /// <summary>At fp16 the convolutions multiply float16 operands (all but conv_in and post_quant_conv, over 4 latent
    /// channels): fp16 rounding away from diffusers' float32 decode (the float32 path is 1e-6 from it), inside the fp16
    /// path's 1e-2. The two backends' convolutions give the same numbers (Conv2dTests), but their float32 operators'
    /// last-bit differences flip some float16 roundings: this random VAE moves 3.6e-4 for a 1e-7 change in z.</summary>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void DecodesAtFp16WithinFp16RoundingOfDiffusers(bool gpuKernels)
    {
        var (z, expected) = Expected();
        using var vae = VaeDecoder.Load(gpuKernels ? CpuWithGpuKernels : Cpu, Folder, Precision.Fp16);
        Assert.Equal(Precision.Fp16, vae.Precision);
        Assert.InRange(RelativeL2(Decode(vae, z), expected), 1e-5, 1e-2);
    }

    [Fact]
    public void AcceptsLegacyAttentionNamesStoredAsConvWeights()
    {
        var (z, expected) = Expected();
        var config = VaeConfig.Load(Path.Combine(Folder, "config.json"));
        using var legacy = new LegacyAttentionNames(WeightSources.OpenModelFolder(Folder));
        using var vae = new VaeDecoder(Cpu, config, legacy);
        Assert.True(RelativeL2(Decode(vae, z), expected) < ParityTolerance);
    }

    [Fact]
    public void MissingAttentionWeightsNameTheCurrentTensor()
    {
        var config = VaeConfig.Load(Path.Combine(Folder, "config.json"));
        using var weights = new WeightsWithout(WeightSources.OpenModelFolder(Folder), n => n == "decoder.mid_block.attentions.0.to_k.weight");
        var e = Assert.Throws<MissingTensorException>(() => new VaeDecoder(Cpu, config, weights));
        Assert.Equal("decoder.mid_block.attentions.0.to_k.weight", e.TensorName);
    }

    /// <summary>Without the mid-block attention and post_quant_conv (their weights absent), the decode equals the whole
    /// VAE's with those parts made identities: the attention's out-projection zero (leaving its residual) and
    /// post_quant_conv the identity 1x1 convolution.</summary>
    [Fact]
    public void OptionalPartsAreNotReadWhenTheConfigTurnsThemOff()
    {
        var (z, expected) = Expected();
        var full = VaeConfig.Load(Path.Combine(Folder, "config.json"));
        var config = full with { MidBlockAddAttention = false, UsePostQuantConv = false };
        float[] without;
        using (var weights = new WeightsWithout(WeightSources.OpenModelFolder(Folder),
                   n => n.StartsWith("post_quant_conv.") || n.StartsWith("decoder.mid_block.attentions.")))
        using (var vae = new VaeDecoder(Cpu, config, weights))
            without = Decode(vae, z);
        Assert.True(RelativeL2(without, expected) > 1e-2); // the parts matter

        using var identities = new WeightsReplaced(WeightSources.OpenModelFolder(Folder), (name, values) => name switch
        {
            "decoder.mid_block.attentions.0.to_out.0.weight" or "decoder.mid_block.attentions.0.to_out.0.bias"
                or "post_quant_conv.bias" => new float[values.Length],
            "post_quant_conv.weight" => Enumerable.Range(0, 16).Select(i => i % 5 == 0 ? 1f : 0f).ToArray(), // [4, 4, 1, 1]
            _ => values,
        });
        using var whole = new VaeDecoder(Cpu, full, identities);
        Assert.Equal(Decode(whole, z), without);
    }

    /// <summary>Tensors as read, or as <c>replace(name, values)</c> returns them.</summary>
    private sealed class WeightsReplaced(IWeightSource inner, Func<string, float[], float[]> replace) : IWeightSource
    {
        public string Location => inner.Location;
        public IReadOnlyCollection<string> Names => inner.Names;
        public bool Contains(string name) => inner.Contains(name);
        public TensorEntry Describe(string name) => inner.Describe(name);
        public float[] ReadFloat32(string name, params int[] expectedShape) => replace(name, inner.ReadFloat32(name, expectedShape));
        public void Dispose() => inner.Dispose();
    }

    [Fact]
    public void RejectsLatentsWithTheWrongChannelCount()
    {
        using var vae = VaeDecoder.Load(Cpu, Folder);
        using var latents = Cpu.Arena.Zeros(1, 3, 8, 8);
        Assert.Contains("[B,4,h,w]", Assert.Throws<ArgumentException>(() => vae.Decode(latents)).Message);
    }

    /// <summary>The real file with the mid-block attention renamed as in old checkpoints
    /// (query/key/value/proj_attn) and its projections reported as 1x1 convs [C, C, 1, 1].</summary>
    private sealed class LegacyAttentionNames(IWeightSource inner) : IWeightSource
    {
        private const string Prefix = "decoder.mid_block.attentions.0.";
        private static readonly (string Current, string Legacy)[] Renames =
            [("to_q.", "query."), ("to_k.", "key."), ("to_v.", "value."), ("to_out.0.", "proj_attn.")];

        private static string ToLegacy(string name)
        {
            foreach (var (current, legacy) in Renames)
                if (name.StartsWith(Prefix + current)) return Prefix + legacy + name[(Prefix + current).Length..];
            return name;
        }

        private static string ToCurrent(string name)
        {
            foreach (var (current, legacy) in Renames)
                if (name.StartsWith(Prefix + legacy)) return Prefix + current + name[(Prefix + legacy).Length..];
            return name;
        }

        private static bool IsProjectionWeight(string legacyName) =>
            legacyName != ToCurrent(legacyName) && legacyName.EndsWith(".weight");

        public string Location => inner.Location;
        public IReadOnlyCollection<string> Names => inner.Names.Select(ToLegacy).ToArray();
        public bool Contains(string name) => Names.Contains(name);

        public TensorEntry Describe(string name)
        {
            if (!Contains(name)) throw new MissingTensorException(Location, name);
            var entry = inner.Describe(ToCurrent(name));
            return IsProjectionWeight(name) ? entry with { Name = name, Shape = [.. entry.Shape, 1, 1] } : entry with { Name = name };
        }

        public float[] ReadFloat32(string name, params int[] expectedShape)
        {
            var entry = Describe(name);
            if (expectedShape.Length > 0 && !expectedShape.SequenceEqual(entry.Shape))
                throw new TensorShapeException(Location, name, expectedShape, entry.Shape);
            return inner.ReadFloat32(ToCurrent(name));
        }

        public void Dispose() => inner.Dispose();
    }
}
