using SmoothCache.Model.Checkpoints;
using static SmoothCache.Tests.Model.Checkpoints.CheckpointTestFiles;

namespace SmoothCache.Tests.Model.Checkpoints;

public class WeightSourcesTests
{
    private static readonly (string name, int[] shape, float[] data)[] Tensors = [("w", [2, 2], [1f, 2f, 3f, 4f])];

    [Fact]
    public void OpensEachFormatByItsExtension()
    {
        using var temp = new TempFolder();
        SafetensorsWriter.Write(temp.File("a.safetensors"), Tensors);
        PyTorchBinWriter.Write(temp.File("a.bin"), Tensors);
        PyTorchBinWriter.Write(temp.File("a.PT"), Tensors);
        File.WriteAllText(temp.File("a.safetensors.index.json"), """{"weight_map": {"w": "a.safetensors"}}""");

        using (var source = WeightSources.Open(temp.File("a.safetensors"))) Assert.IsType<SafetensorsFile>(source);
        using (var source = WeightSources.Open(temp.File("a.bin"))) Assert.IsType<PyTorchBinFile>(source);
        using (var source = WeightSources.Open(temp.File("a.PT"))) Assert.IsType<PyTorchBinFile>(source);
        using (var source = WeightSources.Open(temp.File("a.safetensors.index.json")))
        {
            Assert.IsType<ShardedSafetensors>(source);
            Assert.Equal(Tensors[0].data, source.ReadFloat32("w", 2, 2));
        }
    }

    [Fact]
    public void UnknownExtensionIsRefused()
    {
        using var temp = new TempFolder();
        string path = temp.File("weights.ckpt");
        File.WriteAllBytes(path, [1, 2, 3]);
        var e = Assert.Throws<UnsupportedCheckpointFormatException>(() => WeightSources.Open(path));
        AssertNames(e, path);
        Assert.Contains(".safetensors", e.Message);
    }

    [Fact]
    public void MissingFileWithAKnownExtensionIsNotFound()
    {
        using var temp = new TempFolder();
        Assert.Throws<CheckpointNotFoundException>(() => WeightSources.Open(temp.File("x.safetensors")));
        Assert.Throws<CheckpointNotFoundException>(() => WeightSources.Open(temp.File("x.bin")));
        Assert.Throws<CheckpointNotFoundException>(() => WeightSources.Open(temp.File("x.safetensors.index.json")));
    }

    [Fact]
    public void ModelFolderPrefersSafetensorsThenIndexThenBin()
    {
        using var temp = new TempFolder();
        PyTorchBinWriter.Write(temp.File("diffusion_pytorch_model.bin"), Tensors);
        using (var source = WeightSources.OpenModelFolder(temp.Path)) Assert.IsType<PyTorchBinFile>(source);

        SafetensorsWriter.Write(temp.File("shard.safetensors"), Tensors);
        File.WriteAllText(temp.File("diffusion_pytorch_model.safetensors.index.json"), """{"weight_map": {"w": "shard.safetensors"}}""");
        using (var source = WeightSources.OpenModelFolder(temp.Path)) Assert.IsType<ShardedSafetensors>(source);

        SafetensorsWriter.Write(temp.File("diffusion_pytorch_model.safetensors"), Tensors);
        using (var source = WeightSources.OpenModelFolder(temp.Path)) Assert.IsType<SafetensorsFile>(source);
        using (var source = WeightSources.Open(temp.Path)) Assert.IsType<SafetensorsFile>(source);
    }

    [Fact]
    public void ModelFolderTakesDiffusersFp16VariantWhenItHasNoPlainWeights()
    {
        using var temp = new TempFolder();
        PyTorchBinWriter.Write(temp.File("diffusion_pytorch_model.fp16.bin"), Tensors, SaveDType.F16);
        using (var source = WeightSources.OpenModelFolder(temp.Path)) Assert.IsType<PyTorchBinFile>(source);

        SafetensorsWriter.Write(temp.File("diffusion_pytorch_model.fp16-00001-of-00001.safetensors"), Tensors, SaveDType.F16);
        File.WriteAllText(temp.File("diffusion_pytorch_model.safetensors.index.fp16.json"),
            """{"weight_map": {"w": "diffusion_pytorch_model.fp16-00001-of-00001.safetensors"}}""");
        using (var source = WeightSources.OpenModelFolder(temp.Path)) Assert.IsType<ShardedSafetensors>(source);

        SafetensorsWriter.Write(temp.File("diffusion_pytorch_model.fp16.safetensors"), Tensors, SaveDType.F16);
        using (var source = WeightSources.OpenModelFolder(temp.Path))
        {
            Assert.Equal(temp.File("diffusion_pytorch_model.fp16.safetensors"), source.Location);
            Assert.Equal(Tensors[0].data, source.ReadFloat32("w", 2, 2));
        }

        // Plain weights beside the variant win, as diffusers loads them without variant="fp16".
        PyTorchBinWriter.Write(temp.File("diffusion_pytorch_model.bin"), Tensors);
        using (var source = WeightSources.OpenModelFolder(temp.Path)) Assert.Equal(temp.File("diffusion_pytorch_model.bin"), source.Location);
    }

    [Fact]
    public void ModelFolderAcceptsAnotherBaseName()
    {
        using var temp = new TempFolder();
        SafetensorsWriter.Write(temp.File("model.safetensors"), Tensors);
        using var source = WeightSources.OpenModelFolder(temp.Path, "model");
        Assert.Equal(temp.File("model.safetensors"), source.Location);
    }

    [Fact]
    public void OpensTheFixtureTransformerFolder()
    {
        using var source = WeightSources.OpenModelFolder(Path.GetDirectoryName(DitSmallWeights)!);
        Assert.Equal([72, 4, 2, 2], source.Describe("pos_embed.proj.weight").Shape);
    }

    [Fact]
    public void FolderWithoutWeightsIsNotFoundNamingWhatWasLookedFor()
    {
        using var temp = new TempFolder();
        var e = Assert.Throws<CheckpointNotFoundException>(() => WeightSources.OpenModelFolder(temp.Path));
        AssertNames(e, temp.Path);
        Assert.Contains("diffusion_pytorch_model.safetensors", e.Message);
        Assert.Contains("diffusion_pytorch_model.safetensors.index.json", e.Message);
        Assert.Contains("diffusion_pytorch_model.bin", e.Message);
        Assert.Contains("diffusion_pytorch_model.fp16.safetensors", e.Message);

        string absent = Path.Combine(temp.Path, "transformer");
        AssertNames(Assert.Throws<CheckpointNotFoundException>(() => WeightSources.OpenModelFolder(absent)), absent);
    }
}
