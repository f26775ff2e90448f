using System.Globalization;
using SmoothCache.Cli;
using SmoothCache.Model;
using SmoothCache.Model.Checkpoints;
using SmoothCache.Tests.Model.Checkpoints;
using SmoothCache.Tests.Sampling;
using static SmoothCache.Tests.TestSupport;

namespace SmoothCache.Tests.Cli;

public class InspectCommandTests
{
    private static (int Tensors, long Parameters) Count(string weightsFile)
    {
        using var file = SafetensorsFile.Open(weightsFile);
        return (file.Names.Count, file.Names.Sum(n => file.Describe(n).ElementCount));
    }

    [Fact]
    public void DescribesEveryComponentOfALatentPipeline()
    {
        using var folder = new LatentPipelineFolder(new Dictionary<int, string> { [0] = "tench, Tinca tinca", [1] = "goldfish" });
        var run = CliRunner.Run("inspect", "--model", folder.Path);
        Assert.True(run.ExitCode == ExitCodes.Success, run.Error);
        string o = run.Out;

        Assert.Contains("transformer: 2 layers, 3 heads x 24 (width 72), patch 2, sample 8 (16 tokens), channels 4 -> 8 (learned sigma), 1000 classes", o);
        var (tensors, parameters) = Count(Fixture("random", "dit-small", "diffusion_pytorch_model.safetensors"));
        Assert.Contains(Invariant($"{tensors} tensors, {parameters:N0} parameters, dtypes F32 x{tensors}"), o);
        var (vaeTensors, vaeParameters) = Count(Fixture("random", "vae-small", "diffusion_pytorch_model.safetensors"));
        Assert.Contains(Invariant($"{vaeTensors} tensors, {vaeParameters:N0} parameters"), o);
        Assert.Contains("vae: block_out_channels [32,64], 2 layers per block, 16 groups, 4 latent channels -> 3, upscale x2, scaling factor 0.18215", o);
        Assert.Contains("scheduler: DDIMScheduler, 1000 training steps, linear betas 0.0001..0.02, epsilon prediction, leading spacing", o);
        Assert.Contains("id2label: 2 class names", o);

        // dit-small per forward at batch 1, counted by hand: patch embed 16x72x16, conditioning (its two blocks hold
        // different embedders, so each runs its timestep MLP) 2 x (256x72 + 72x72) + (2x6 + 2) x 72x72, per block qkv/out
        // 4x16x72x72 + scores 2x16x16x72 + MLP 8x16x72x72, head 16x72x32.
        long block = 4L * 16 * 72 * 72 + 2L * 16 * 16 * 72 + 8L * 16 * 72 * 72;
        long macs = 16L * 72 * 16 + (2 * (256L * 72 + 72 * 72) + 14L * 72 * 72) + 2 * block + 16L * 72 * 32;
        Assert.Equal(macs, DiTTransformer.ForwardMacsOf(DiTConfig.Load(Path.Combine(folder.Component("transformer"), "config.json")), 1, embedders: 2));
        Assert.Contains(Invariant($"MACs per forward: {macs:N0} ({macs / 1e9:G3} G) at batch 1, {2 * macs:N0} ({2 * macs / 1e9:G3} G) at batch 2 (2 conditioning embedders: the blocks' differ)"), o);
    }

    /// <summary>A latent transformer without its VAE: inspect says its samples are latents, and generate warns that the PNG
    /// draws latents (it still writes it).</summary>
    [Fact]
    public void ALatentModelWithoutItsVaeIsSaidToGiveLatents()
    {
        using var folder = new LatentPipelineFolder();
        Directory.Delete(folder.Component("vae"), recursive: true);
        var inspect = CliRunner.Run("inspect", "--model", folder.Path);
        Assert.Contains("vae: none: its 4-channel samples are latents that a vae/ folder would decode", inspect.Out);
        string png = Path.Combine(folder.Path, "out.png");
        var generate = CliRunner.Run("generate", "--model", folder.Path, "--labels", "3", "--steps", "1", "--out", png, "--device", "cpu");
        Assert.Equal(ExitCodes.Success, generate.ExitCode);
        Assert.Contains("has no vae/ folder to decode its 4-channel latents", Assert.Single(generate.ErrorLines));
        Assert.True(File.Exists(png));
    }

    [Fact]
    public void SynthFolderInBinFormatIsInspected()
    {
        using var temp = new TempFolder();
        string folder = temp.File("xl1");
        var synth = CliRunner.Run("synth", "--out", folder, "--layers", "1", "--dtype", "fp32", "--format", "bin");
        Assert.True(synth.ExitCode == ExitCodes.Success, synth.Error);
        var run = CliRunner.Run("inspect", "--model", folder);
        Assert.True(run.ExitCode == ExitCodes.Success, run.Error);
        Assert.Contains("transformer: 1 layer, 16 heads x 72 (width 1152), patch 2, sample 32 (256 tokens)", run.Out);
        Assert.Contains("diffusion_pytorch_model.bin: 25 tensors", run.Out);
        Assert.Contains("dtypes F32 x25", run.Out);
        Assert.Contains("vae: none", run.Out);
        Assert.Contains("id2label: none (classes go by id)", run.Out);

        var again = CliRunner.Run("synth", "--out", folder, "--layers", "1");
        Assert.Equal(ExitCodes.BadInput, again.ExitCode);
        Assert.Contains("not empty", Assert.Single(again.ErrorLines));
        var badType = CliRunner.Run("synth", "--out", temp.File("other"), "--dtype", "int8");
        Assert.Equal(ExitCodes.BadInput, badType.ExitCode);
        Assert.Contains("--dtype 'int8'", Assert.Single(badType.ErrorLines));
        Assert.False(Directory.Exists(temp.File("other")));
    }

    [Fact]
    public void WithoutModelItDescribesTheEmbeddedDigitsModel()
    {
        var run = CliRunner.Run("inspect");
        Assert.True(run.ExitCode == ExitCodes.Success, run.Error);
        Assert.Contains(Path.Combine("models", "dit-digits") + " (diffusers pipeline)", run.Out);
        Assert.Contains("transformer: 6 layers, 4 heads x 16 (width 64), patch 2, sample 16", run.Out);
        Assert.Contains("id2label: 10 class names", run.Out);
    }

    [Fact]
    public void AFolderThatHoldsATransformerFolderOrAVaeIsSaidSo()
    {
        using var temp = new TempFolder();
        string transformer = Path.Combine(temp.Path, "transformer");
        Directory.CreateDirectory(transformer);
        File.Copy(Fixture("random", "dit-small", "config.json"), Path.Combine(transformer, "config.json"));
        var parent = CliRunner.Run("inspect", "--model", temp.Path);
        Assert.Equal(ExitCodes.BadInput, parent.ExitCode);
        Assert.EndsWith($"its transformer/ folder is one: {transformer}", Assert.Single(parent.ErrorLines));
        var generate = CliRunner.Run("generate", "--model", temp.Path, "--device", "cpu", "--out", Path.Combine(temp.Path, "out.png"));
        Assert.Equal(parent.ErrorLines, generate.ErrorLines);

        var vae = CliRunner.Run("inspect", "--model", Fixture("random", "vae-small"));
        Assert.Equal(ExitCodes.BadInput, vae.ExitCode);
        Assert.Contains("AutoencoderKL", Assert.Single(vae.ErrorLines));
        Assert.Equal("", vae.Out);
    }

    private static string Invariant(FormattableString s) => s.ToString(CultureInfo.InvariantCulture);
}
