using SmoothCache.Cli;
using SmoothCache.Tests.Cli;
using SmoothCache.Kernels;
using SmoothCache.Model.Checkpoints;
using SmoothCache.Sampling;
using static SmoothCache.Tests.TestSupport;

namespace SmoothCache.Tests.Sampling;

/// <summary>
/// The whole latent pipeline (dit-small + vae-small + DDIM) against diffusers' DiTPipeline:
/// fixture random/pipeline-ddim12, labels (3, 999), guidance 4, 12 DDIM steps.
/// </summary>
public class LatentPipelineTests
{
    /// <summary>Largest image difference from diffusers, images in [0, 1] (measured: 6e-8).</summary>
    private const double ImageTolerance = 1e-5;
    private static readonly int[] Labels = [3, 999];

    private static float[] InitialLatents()
    {
        using var reference = SafetensorsFile.Open(Fixture("random", "pipeline-ddim12.safetensors"));
        return reference.ReadFloat32("initial_latents", 2, 4, 8, 8);
    }

    private static double[] ReferenceImages()
    {
        using var reference = SafetensorsFile.Open(Fixture("random", "pipeline-ddim12.safetensors"));
        return reference.ReadFloat64("images", 2, 16, 16, 3);
    }

    [Fact]
    public void GenerateDecodesThroughTheVaeAsDiffusersDoes()
    {
        using var folder = new LatentPipelineFolder();
        using var pipeline = DiTPipeline.Load(folder.Path, Cpu);
        Assert.NotNull(pipeline.Vae);
        var result = pipeline.Generate(new GenerationOptions
        {
            Labels = Labels, Steps = 12, Scheduler = "ddim", GuidanceScale = 4f, InitialNoise = InitialLatents(),
        });
        Assert.Equal([2, 4, 8, 8], result.LatentShape);
        Assert.Equal(2 * 4 * 8 * 8, result.Latents.Length);
        Assert.Equal([2, 16, 16, 3], result.ImageShape);
        double error = MaxAbs(result.Images, ReferenceImages());
        Assert.True(error < ImageTolerance, $"max abs image error {error:E2}");
    }

    /// <summary>The fp16 path decodes at fp16 too, as diffusers' fp16 DiTPipeline does: the whole job's images within
    /// the fp16 path's 1e-2 of the float32 reference.</summary>
    [Fact]
    public void GenerateAtFp16DecodesAtFp16WithinFp16RoundingOfDiffusers()
    {
        using var folder = new LatentPipelineFolder();
        using var pipeline = DiTPipeline.Load(folder.Path, Cpu, Precision.Fp16);
        Assert.Equal(Precision.Fp16, pipeline.Vae!.Precision);
        var result = pipeline.Generate(new GenerationOptions
        {
            Labels = Labels, Steps = 12, Scheduler = "ddim", GuidanceScale = 4f, InitialNoise = InitialLatents(),
        });
        double error = RelativeL2(result.Images, ReferenceImages());
        Assert.True(error < 1e-2, $"relative image error {error:E2}");
    }

    [Fact]
    public void CliGenerateWritesTheReferenceImagesAndThePreVaeLatents()
    {
        using var folder = new LatentPipelineFolder();
        string noise = Path.Combine(folder.Path, "noise.safetensors"), images = Path.Combine(folder.Path, "images.safetensors");
        string latents = Path.Combine(folder.Path, "latents.safetensors"), png = Path.Combine(folder.Path, "grid.png");
        SafetensorsWriter.Write(noise, [("initial_noise", [2, 4, 8, 8], InitialLatents())]);
        var run = CliRunner.Run("generate", "--model", folder.Path, "--labels", "3,999", "--steps", "12", "--noise", noise,
            "--save-images", images, "--save-latents", latents, "--out", png, "--device", "cpu");
        Assert.True(run.ExitCode == ExitCodes.Success, run.Error);
        Assert.True(File.Exists(png));

        using (var saved = SafetensorsFile.Open(images))
        {
            double error = MaxAbs(saved.ReadFloat32("images", 2, 16, 16, 3), ReferenceImages());
            Assert.True(error < ImageTolerance, $"max abs image error {error:E2}");
        }
        // --save-latents holds the sampler's output before the VAE: what the API returns as Latents.
        using var pipeline = DiTPipeline.Load(folder.Path, Cpu);
        var api = pipeline.Generate(new GenerationOptions
        {
            Labels = Labels, Steps = 12, Scheduler = "ddim", GuidanceScale = 4f, InitialNoise = InitialLatents(),
        });
        using var savedLatents = SafetensorsFile.Open(latents);
        Assert.Equal(api.Latents, savedLatents.ReadFloat32("latents", 2, 4, 8, 8));
    }

    [Fact]
    public void TransformerWithOtherChannelsThanTheVaeLatentsIsRefused()
    {
        using var folder = new LatentPipelineFolder();
        // Replaces transformer/ (and the scheduler and index) with an 8-channel model beside the 4-channel VAE.
        var eightChannels = new SmoothCache.Model.DiTConfig
        {
            NumLayers = 1, NumHeads = 2, HeadDim = 8, InChannels = 8, OutChannels = 16, SampleSize = 4, NumClasses = 10,
        };
        new SyntheticWeights(eightChannels).WriteFolder(folder.Path, SaveDType.F32, pytorchBin: false);
        var e = Assert.Throws<ModelConfigException>(() => DiTPipeline.Load(folder.Path, Cpu));
        Assert.Contains(Path.Combine(folder.Component("vae"), "config.json"), e.Message);
        Assert.Contains("latent_channels", e.Message);
        Assert.Contains("in_channels 8", e.Message);
    }
}
