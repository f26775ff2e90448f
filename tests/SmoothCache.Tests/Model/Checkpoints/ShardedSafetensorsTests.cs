using SmoothCache.Model.Checkpoints;
using static SmoothCache.Tests.Model.Checkpoints.CheckpointTestFiles;

namespace SmoothCache.Tests.Model.Checkpoints;

public class ShardedSafetensorsTests
{
    private static readonly float[] First = Values(6, seed: 10), Second = Values(4, seed: 11), Third = Values(3, seed: 12);

    private static string WriteShards(TempFolder temp, string weightMapJson)
    {
        SafetensorsWriter.Write(temp.File("model-00001-of-00002.safetensors"), [("a.weight", [2, 3], First), ("a.bias", [4], Second)]);
        SafetensorsWriter.Write(temp.File("model-00002-of-00002.safetensors"), [("b.weight", [3], Third)], SaveDType.F16);
        string index = temp.File("model.safetensors.index.json");
        File.WriteAllText(index, $$$"""{"metadata": {"total_size": 52}, "weight_map": {{{{weightMapJson}}}}}""");
        return index;
    }

    private const string ValidMap = """
        "a.weight": "model-00001-of-00002.safetensors",
        "a.bias": "model-00001-of-00002.safetensors",
        "b.weight": "model-00002-of-00002.safetensors"
        """;

    [Fact]
    public void ReadsTensorsFromEveryShard()
    {
        using var temp = new TempFolder();
        string index = WriteShards(temp, ValidMap);
        using var source = ShardedSafetensors.Open(index);
        Assert.Equal(index, source.Location);
        Assert.Equal(["a.weight", "a.bias", "b.weight"], source.Names);
        Assert.Equal(First, source.ReadFloat32("a.weight", 2, 3));
        Assert.Equal(Second, source.ReadFloat32("a.bias"));
        Assert.Equal("F16", source.Describe("b.weight").DType);
        Assert.Equal(Third.Select(v => (float)(Half)v), source.ReadFloat32("b.weight", 3));
        var missing = Assert.Throws<MissingTensorException>(() => source.ReadFloat32("c.weight"));
        AssertNames(missing, index, "c.weight");
    }

    [Fact]
    public void ShapeErrorsNameTheShardFile()
    {
        using var temp = new TempFolder();
        using var source = ShardedSafetensors.Open(WriteShards(temp, ValidMap));
        var e = Assert.Throws<TensorShapeException>(() => source.ReadFloat32("a.weight", 3, 2));
        AssertNames(e, temp.File("model-00001-of-00002.safetensors"), "a.weight");
    }

    [Fact]
    public void MissingShardIsNotFoundNamingIndexAndShard()
    {
        using var temp = new TempFolder();
        string index = WriteShards(temp, ValidMap.Replace("model-00002-of-00002", "model-00002-of-00003"));
        var e = Assert.Throws<CheckpointNotFoundException>(() => ShardedSafetensors.Open(index));
        AssertNames(e, index);
        Assert.Contains("model-00002-of-00003.safetensors", e.Message);
        Assert.Contains("is missing", e.Message);
    }

    [Fact]
    public void AShardThatIsAFolderIsSaidToBeOne()
    {
        using var temp = new TempFolder();
        Directory.CreateDirectory(temp.File("shard-folder"));
        string index = WriteShards(temp, ValidMap.Replace("model-00002-of-00002.safetensors", "shard-folder"));
        var e = Assert.Throws<CheckpointNotFoundException>(() => ShardedSafetensors.Open(index));
        AssertNames(e, index);
        Assert.Contains("'shard-folder' named by weight_map is a folder", e.Message);
    }

    [Fact]
    public void TensorAbsentFromItsShardIsCorrupt()
    {
        using var temp = new TempFolder();
        string index = WriteShards(temp, ValidMap.Replace("\"b.weight\": \"model-00002", "\"b.weight\": \"model-00001"));
        var e = Assert.Throws<CorruptCheckpointException>(() => ShardedSafetensors.Open(index));
        AssertNames(e, index, "b.weight");
    }

    [Theory]
    [InlineData("\"a.weight\": \"../model-00001-of-00002.safetensors\"")]
    [InlineData("\"a.weight\": 3")]
    public void InvalidWeightMapEntriesAreCorrupt(string map)
    {
        using var temp = new TempFolder();
        string index = WriteShards(temp, map);
        var e = Assert.Throws<CorruptCheckpointException>(() => ShardedSafetensors.Open(index));
        AssertNames(e, index, "a.weight");
    }

    [Fact]
    public void IndexWithoutWeightMapIsCorrupt()
    {
        using var temp = new TempFolder();
        string index = temp.File("model.safetensors.index.json");
        File.WriteAllText(index, """{"metadata": {}}""");
        var e = Assert.Throws<CorruptCheckpointException>(() => ShardedSafetensors.Open(index));
        AssertNames(e, index);
        File.WriteAllText(index, "{ not json");
        Assert.Throws<CorruptCheckpointException>(() => ShardedSafetensors.Open(index));
    }
}
