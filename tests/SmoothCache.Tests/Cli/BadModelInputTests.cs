using ILGPU.Runtime.Cuda;
using SmoothCache.Cli;
using SmoothCache.Kernels;
using SmoothCache.Model.Checkpoints;
using SmoothCache.Sampling;
using SmoothCache.Tests.Sampling;

namespace SmoothCache.Tests.Cli;

/// <summary>
/// Broken model folders given to `smoothcache generate`: exit code 2, one line on stderr naming the
/// file and the problem, and no output file.
/// </summary>
public class BadModelInputTests
{
    private static string TransformerWeights(LatentPipelineFolder folder) =>
        Path.Combine(folder.Component("transformer"), "diffusion_pytorch_model.safetensors");

    /// <summary>Runs generate on the folder; asserts the bad-input contract and returns the stderr line.</summary>
    private static string GenerateFails(LatentPipelineFolder folder)
    {
        string png = Path.Combine(folder.Path, "out.png");
        var run = CliRunner.Run("generate", "--model", folder.Path, "--labels", "3", "--steps", "1", "--out", png, "--device", "cpu");
        Assert.Equal(ExitCodes.BadInput, run.ExitCode);
        string line = Assert.Single(run.ErrorLines);
        Assert.StartsWith("error: ", line);
        Assert.False(File.Exists(png));
        Assert.Equal("", run.Out);
        return line;
    }

    /// <summary>Sets one key of a JSON file (the rest as it was); returns the file's path.</summary>
    private static string SetJsonKey(string file, string key, System.Text.Json.Nodes.JsonNode? value)
    {
        var json = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(file))!;
        json[key] = value;
        File.WriteAllText(file, json.ToJsonString());
        return file;
    }

    /// <summary>Weights that hold a NaN are valid input, but every image drawn from them is NaN: the command succeeds and
    /// warns, where it used to draw a black grid in silence.</summary>
    [Fact]
    public void NaNWeightsGiveAWarningAndStillSucceed()
    {
        using var folder = new LatentPipelineFolder();
        string weights = TransformerWeights(folder);
        (string, int[], float[])[] tensors;
        using (var file = SafetensorsFile.Open(weights))
            tensors = file.Names.Select(n => (n, file.Describe(n).Shape, file.ReadFloat32(n))).ToArray();
        var bias = tensors.Single(t => t.Item1 == "proj_out_2.bias");
        bias.Item3[0] = float.NaN;
        SafetensorsWriter.Write(weights, tensors);
        string png = Path.Combine(folder.Path, "out.png");
        var run = CliRunner.Run("generate", "--model", folder.Path, "--labels", "3", "--steps", "1", "--out", png, "--device", "cpu");
        Assert.Equal(ExitCodes.Success, run.ExitCode);
        Assert.Contains(run.ErrorLines, line => line.StartsWith("warning: ") && line.Contains("final latent values are NaN or infinite"));
        Assert.True(File.Exists(png));
    }

    [Fact]
    public void CorruptZipCheckpoint()
    {
        using var folder = new LatentPipelineFolder();
        File.Delete(TransformerWeights(folder));
        string bin = Path.Combine(folder.Component("transformer"), "diffusion_pytorch_model.bin");
        File.WriteAllBytes(bin, [.. "PK\u0003\u0004 this is not really a zip"u8, .. new byte[64]]);
        string line = GenerateFails(folder);
        Assert.Contains(bin, line);
        Assert.Contains("not a valid zip archive", line);
    }

    [Fact]
    public void PickleWithAnUnexpectedGlobal()
    {
        using var folder = new LatentPipelineFolder();
        File.Delete(TransformerWeights(folder));
        string bin = Path.Combine(folder.Component("transformer"), "diffusion_pytorch_model.bin");
        byte[] pickle = new PickleBuilder().Proto().Global("collections", "OrderedDict").EmptyTuple().Reduce().Mark()
            .String("pos_embed.proj.bias").Global("posix", "system").Mark().String("touch pwned").Tuple().Reduce()
            .SetItems().Stop();
        PyTorchBinWriter.WriteArchive(bin, "archive", pickle, []);
        string line = GenerateFails(folder);
        Assert.Contains(bin, line);
        Assert.Contains("unexpected global posix.system", line);
        Assert.False(File.Exists("pwned"));
    }

    [Fact]
    public void ShardIndexNamingAMissingFile()
    {
        using var folder = new LatentPipelineFolder();
        string weights = TransformerWeights(folder);
        string present = "diffusion_pytorch_model-00001-of-00002.safetensors", missing = "diffusion_pytorch_model-00002-of-00002.safetensors";
        File.Move(weights, Path.Combine(folder.Component("transformer"), present));
        string index = Path.Combine(folder.Component("transformer"), "diffusion_pytorch_model.safetensors.index.json");
        File.WriteAllText(index, $$$"""
            {"metadata": {}, "weight_map": {"pos_embed.proj.weight": "{{{present}}}", "proj_out_2.bias": "{{{missing}}}"}}
            """);
        string line = GenerateFails(folder);
        Assert.Contains(index, line);
        Assert.Contains($"'{missing}'", line);
    }

    [Fact]
    public void VaeConfigWithAnUnknownUpBlockType()
    {
        using var folder = new LatentPipelineFolder();
        string config = Path.Combine(folder.Component("vae"), "config.json");
        string text = File.ReadAllText(config);
        const string upBlocks = "\"up_block_types\": [\n    \"UpDecoderBlock2D\",\n    \"UpDecoderBlock2D\"\n  ]";
        Assert.Contains(upBlocks, text);
        File.WriteAllText(config, text.Replace(upBlocks, "\"up_block_types\": [\"UpDecoderBlock2D\", \"AttnUpDecoderBlock2D\"]"));
        string line = GenerateFails(folder);
        Assert.Contains(config, line);
        Assert.Contains("up_block_types", line);
        Assert.Contains("AttnUpDecoderBlock2D", line);
    }

    [Theory]
    [InlineData("[\"tench\", \"goldfish\"]", "found Array")]
    [InlineData("{\"zero\": \"tench\"}", "found \"zero\": \"tench\"")]
    public void Id2LabelThatIsNotAnObjectOfIdsToNames(string id2Label, string found)
    {
        using var folder = new LatentPipelineFolder();
        string index = SetJsonKey(Path.Combine(folder.Path, "model_index.json"), "id2label", System.Text.Json.Nodes.JsonNode.Parse(id2Label));
        string line = GenerateFails(folder);
        Assert.Contains(index, line);
        Assert.Contains("key 'id2label': expected an object of class ids to names", line);
        Assert.EndsWith(found, line);
    }

    /// <summary>A config whose num_layers is not the checkpoint's block count: more blocks would be left out, fewer would fail
    /// on the first missing tensor without saying why.</summary>
    [Theory]
    [InlineData(1)]
    [InlineData(28)]
    public void NumLayersOtherThanTheBlocksStored(int layers)
    {
        using var folder = new LatentPipelineFolder();
        string config = SetJsonKey(Path.Combine(folder.Component("transformer"), "config.json"), "num_layers", layers);
        string line = GenerateFails(folder);
        Assert.Contains(config, line);
        Assert.Contains($"key 'num_layers': {layers}, but ", line);
        Assert.EndsWith("holds 2 blocks (transformer_blocks.0..1)", line);
        var inspect = CliRunner.Run("inspect", "--model", folder.Path);
        Assert.Equal(ExitCodes.BadInput, inspect.ExitCode);
        Assert.Equal(line, Assert.Single(inspect.ErrorLines));
    }

    /// <summary>Files whose first bytes say what they are: a git-lfs pointer (a hub repository cloned without its large
    /// files) and a pre-1.6 torch.save pickle.</summary>
    [Theory]
    [InlineData("diffusion_pytorch_model.safetensors", "version https://git-lfs.github.com/spec/v1\noid sha256:0123\nsize 1234\n", "git-lfs pointer")]
    [InlineData("diffusion_pytorch_model.bin", "version https://git-lfs.github.com/spec/v1\noid sha256:0123\nsize 1234\n", "git lfs pull")]
    [InlineData("diffusion_pytorch_model.bin", "\u0080\u0002\u008a\u000alz\u00fc\u009cF\u00f9 j\u00a8P\u0019.", "before PyTorch 1.6")]
    public void WeightFilesThatAreNotWeightsSayWhatTheyAre(string name, string content, string expected)
    {
        using var folder = new LatentPipelineFolder();
        File.Delete(TransformerWeights(folder));
        string file = Path.Combine(folder.Component("transformer"), name);
        File.WriteAllBytes(file, content.Select(c => (byte)c).ToArray());
        string line = GenerateFails(folder);
        Assert.Contains(file, line);
        Assert.Contains(expected, line);
    }

    [Fact]
    public void ShardedBinCheckpointIsNamedAsUnsupported()
    {
        using var folder = new LatentPipelineFolder();
        File.Delete(TransformerWeights(folder));
        string index = Path.Combine(folder.Component("transformer"), "diffusion_pytorch_model.bin.index.json");
        File.WriteAllText(index, """{"metadata": {}, "weight_map": {}}""");
        string line = GenerateFails(folder);
        Assert.Contains(index, line);
        Assert.Contains("sharded .bin checkpoints are not supported", line);
    }

    [Fact]
    public void PipelineFolderOfAnotherKind()
    {
        using var folder = new LatentPipelineFolder();
        string index = SetJsonKey(Path.Combine(folder.Path, "model_index.json"), "_class_name", "StableDiffusionPipeline");
        string line = GenerateFails(folder);
        Assert.Contains(index, line);
        Assert.Contains("'StableDiffusionPipeline' is not a DiT pipeline", line);
        var inspect = CliRunner.Run("inspect", "--model", folder.Path);
        Assert.Equal(ExitCodes.BadInput, inspect.ExitCode);
        Assert.Equal(line, Assert.Single(inspect.ErrorLines));
    }

    /// <summary>inspect reads headers only, and says so; --check loads the weights and finds what generate would.</summary>
    [Fact]
    public void InspectCheckLoadsTheWeights()
    {
        using var folder = new LatentPipelineFolder();
        var listed = CliRunner.Run("inspect", "--model", folder.Path);
        Assert.Equal(ExitCodes.Success, listed.ExitCode);
        Assert.Contains("not loaded (--check loads and checks them)", listed.Out);
        var check = CliRunner.Run("inspect", "--model", folder.Path, "--check");
        Assert.Equal(ExitCodes.Success, check.ExitCode);
        Assert.Contains("check: every tensor the model needs is there", check.Out);

        string weights = TransformerWeights(folder);
        (string, int[], float[])[] tensors;
        using (var file = SafetensorsFile.Open(weights))
            tensors = file.Names.Where(n => n != "proj_out_2.bias").Select(n => (n, file.Describe(n).Shape, file.ReadFloat32(n))).ToArray();
        SafetensorsWriter.Write(weights, tensors);
        Assert.Equal(ExitCodes.Success, CliRunner.Run("inspect", "--model", folder.Path).ExitCode);
        var broken = CliRunner.Run("inspect", "--model", folder.Path, "--check");
        Assert.Equal(ExitCodes.BadInput, broken.ExitCode);
        Assert.Equal(GenerateFails(folder), broken.ErrorLines.Last());
    }

    [Fact]
    public void TransformerWithOutputChannelsNeitherTheInputsNorTwice()
    {
        using var folder = new LatentPipelineFolder();
        string config = SetJsonKey(Path.Combine(folder.Component("transformer"), "config.json"), "out_channels", 2);
        string line = GenerateFails(folder);
        Assert.Contains(config, line);
        Assert.Contains("out_channels", line);
        Assert.Contains("2 is neither in_channels 4 nor twice it", line);
    }

    [Fact]
    public void InspectReportsTheSameErrorsAsBadInput()
    {
        using var folder = new LatentPipelineFolder();
        File.Delete(TransformerWeights(folder));
        var run = CliRunner.Run("inspect", "--model", folder.Path);
        Assert.Equal(ExitCodes.BadInput, run.ExitCode);
        Assert.Contains(folder.Component("transformer"), Assert.Single(run.ErrorLines));
    }

    /// <summary>Without a GPU, bench-gemm says it needs one; with GPUs, a device number past them is refused the same way.</summary>
    [Fact]
    public void AskingForACudaDeviceThatIsNotThereIsAUserError()
    {
        int devices;
        using (var context = ILGPU.Context.Create(b => b.Cuda())) devices = context.GetCudaDevices().Count;
        var run = CliRunner.Run("bench-gemm", "--iterations", "1", "--device", $"cuda:{devices}");
        Assert.Equal(ExitCodes.BadInput, run.ExitCode);
        Assert.Contains(devices == 0 ? "no CUDA device found" : $"there is no CUDA device {devices}", Assert.Single(run.ErrorLines));
        Assert.DoesNotContain("internal error", run.Error);
    }

    [Fact]
    public void CheckpointAndConfigExceptionsAreUserErrors()
    {
        Exception[] user =
        [
            new CorruptCheckpointException("f.bin", null, "not a valid zip archive"),
            new CheckpointNotFoundException("f.index.json", "shard missing"),
            new ModelConfigException("config.json", "up_block_types", "unknown"),
            new MissingTensorException("f.safetensors", "w"),
            new TensorShapeException("f.safetensors", "w", [1], [2]),
            new UnsupportedDTypeException("f.safetensors", "w", "I8"),
            new UnsupportedCheckpointFormatException("f.ckpt", "unknown format"),
            new SchedulerConfigException("scheduler_config.json", "bad"),
            new UserInputException("--steps"),
            new ArgumentException("label 'x'"),
            new DeviceUnavailableException("cuda: no CUDA device found", 0),
            new UnauthorizedAccessException("Access to the path 'w.safetensors' is denied."),
        ];
        Assert.All(user, e => Assert.True(UserErrors.IsUserError(e), e.GetType().Name));
        Assert.False(UserErrors.IsUserError(new InvalidOperationException("bug")));
        Assert.False(UserErrors.IsUserError(new NullReferenceException()));
    }
}
