using SmoothCache.Model.Checkpoints;
using static SmoothCache.Tests.Model.Checkpoints.CheckpointTestFiles;

namespace SmoothCache.Tests.Model.Checkpoints;

public class SafetensorsFileTests
{
    [Fact]
    public void ReadsTheDitSmallFixture()
    {
        using var file = SafetensorsFile.Open(DitSmallWeights);
        Assert.Equal(44, file.Names.Count);
        Assert.Equal("pos_embed.proj.bias", file.Names.First());
        Assert.Equal("pt", file.Metadata["format"]);
        Assert.Equal([72, 4, 2, 2], file.Describe("pos_embed.proj.weight").Shape);
        Assert.Equal([32, 72], file.Describe("proj_out_2.weight").Shape);
        Assert.Equal([1001, 72], file.Describe("transformer_blocks.0.norm1.emb.class_embedder.embedding_table.weight").Shape);
        Assert.Equal("F32", file.Describe("proj_out_2.weight").DType);

        // Expected values read from the file with Python's struct module.
        float[] bias = file.ReadFloat32("pos_embed.proj.bias", 72);
        Assert.Equal([0.025940630584955215f, 0.0017123963916674256f, 0.05287260562181473f], bias[..3]);
        Assert.Equal(0.09481792896986008f, bias[71]);
        float[] last = file.ReadFloat32("transformer_blocks.1.norm1.linear.weight", 432, 72);
        Assert.Equal(0.09533397108316422f, last[0]);
        Assert.Equal(-0.03051733784377575f, last[^1]);
    }

    [Fact]
    public void ReadsFloat64FixturesExactly()
    {
        using var file = SafetensorsFile.Open(Fixture("random/scheduler-draws-ddim50.safetensors"));
        Assert.Equal("F64", file.Describe("draws").DType);
        double[] draws = file.ReadFloat64("draws", 51, 2, 4, 4, 4);
        Assert.Equal(6528, draws.Length);
        Assert.Equal(-0.21774879177876416, draws[0]);
        Assert.Equal(0.1466771298110492, draws[1]);
        Assert.Equal(0.7058187305510463, draws[^1]);
        float[] singles = file.ReadFloat32("draws");
        Assert.Equal(draws.Select(d => (float)d), singles);
    }

    [Fact]
    public void ReadFloat64WidensFloat32Tensors()
    {
        using var file = SafetensorsFile.Open(Fixture("random/dit-small-forward.safetensors"));
        float[] singles = file.ReadFloat32("out_f64", 3, 8, 8, 8);
        double[] doubles = file.ReadFloat64("out_f64", 3, 8, 8, 8);
        Assert.Equal(singles.Select(s => (double)s), doubles);
    }

    [Fact]
    public void MissingFileIsNotFound()
    {
        using var temp = new TempFolder();
        string path = temp.File("absent.safetensors");
        var e = Assert.Throws<CheckpointNotFoundException>(() => SafetensorsFile.Open(path));
        AssertNames(e, path);
    }

    [Fact]
    public void TruncatedFileIsCorruptAndNamesTheFirstTensorCut()
    {
        using var temp = new TempFolder();
        string path = temp.File("truncated.safetensors");
        File.Copy(DitSmallWeights, path);
        using (var stream = new FileStream(path, FileMode.Open)) stream.SetLength(8 + 4688 + 600);

        var e = Assert.Throws<CorruptCheckpointException>(() => SafetensorsFile.Open(path));
        // pos_embed.proj.weight occupies data bytes [288, 4896): the first tensor past 600 bytes.
        Assert.Equal("pos_embed.proj.weight", e.TensorName);
        AssertNames(e, path, "pos_embed.proj.weight");
        Assert.Contains("truncated", e.Message);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(5)]
    public void FileShorterThanTheLengthFieldIsCorrupt(int length)
    {
        using var temp = new TempFolder();
        string path = temp.File("tiny.safetensors");
        File.WriteAllBytes(path, new byte[length]);
        var e = Assert.Throws<CorruptCheckpointException>(() => SafetensorsFile.Open(path));
        AssertNames(e, path);
    }

    [Fact]
    public void HeaderLengthBeyondTheFileIsCorrupt()
    {
        using var temp = new TempFolder();
        string path = temp.File("long-header.safetensors");
        File.WriteAllBytes(path, [.. BitConverter.GetBytes(1_000_000UL), .. "{}"u8.ToArray()]);
        var e = Assert.Throws<CorruptCheckpointException>(() => SafetensorsFile.Open(path));
        AssertNames(e, path);
        Assert.Contains("1000000", e.Message);
    }

    /// <summary>A header length the file could hold but no header needs (the reference implementation's 100 MB limit):
    /// refused before it is allocated. The file is sparse.</summary>
    [Fact]
    public void HeaderLongerThanAnyHeaderIsCorrupt()
    {
        using var temp = new TempFolder();
        string path = temp.File("huge-header.safetensors");
        using (var stream = new FileStream(path, FileMode.CreateNew))
        {
            stream.Write(BitConverter.GetBytes(150_000_000UL));
            stream.SetLength(150_000_100);
        }
        var e = Assert.Throws<CorruptCheckpointException>(() => SafetensorsFile.Open(path));
        AssertNames(e, path);
        Assert.Contains("more than the 100000000 bytes", e.Message);
    }

    [Theory]
    [InlineData("{\"q\": {\"dtype\": \"Q4\", \"shape\": [2147483647, 2147483647, 2147483647], \"data_offsets\": [0, 0]}}")]
    [InlineData("{\"a\": {\"dtype\": \"F64\", \"shape\": [2147483647, 2147483647, 2147483647], \"data_offsets\": [0, 4]}}")]
    [InlineData("[1, 2]")]
    [InlineData("{\"a\": ")]
    [InlineData("{\"a\": {\"dtype\": \"F32\", \"shape\": [1]}}")]
    [InlineData("{\"a\": {\"dtype\": \"F32\", \"shape\": [-1], \"data_offsets\": [0, 4]}}")]
    [InlineData("{\"a\": {\"dtype\": 3, \"shape\": [1], \"data_offsets\": [0, 4]}}")]
    [InlineData("{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [4, 0]}}")]
    [InlineData("{\"__metadata__\": {\"format\": 1}}")]
    [InlineData("{\"__metadata__\": {}, \"__metadata__\": {\"format\": \"pt\"}}")]
    public void InvalidHeadersAreCorrupt(string header)
    {
        using var temp = new TempFolder();
        string path = temp.File("bad-header.safetensors");
        WriteRawSafetensors(path, header, new byte[4]);
        var e = Assert.Throws<CorruptCheckpointException>(() => SafetensorsFile.Open(path));
        AssertNames(e, path);
    }

    [Fact]
    public void InvalidUtf8HeaderIsCorrupt()
    {
        using var temp = new TempFolder();
        string path = temp.File("bad-utf8.safetensors");
        File.WriteAllBytes(path, [.. BitConverter.GetBytes(4UL), (byte)'{', 0xff, 0xfe, (byte)'}']);
        var e = Assert.Throws<CorruptCheckpointException>(() => SafetensorsFile.Open(path));
        AssertNames(e, path);
    }

    [Fact]
    public void OffsetsOutsideTheDataAreCorrupt()
    {
        using var temp = new TempFolder();
        string path = temp.File("outside.safetensors");
        WriteRawSafetensors(path, """{"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}""", new byte[8]);
        var e = Assert.Throws<CorruptCheckpointException>(() => SafetensorsFile.Open(path));
        Assert.Equal("a", e.TensorName);
        AssertNames(e, path, "a");
    }

    [Fact]
    public void OverlappingOffsetsAreCorrupt()
    {
        using var temp = new TempFolder();
        string path = temp.File("overlap.safetensors");
        WriteRawSafetensors(path, """
            {"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
             "b": {"dtype": "F32", "shape": [4], "data_offsets": [8, 24]}}
            """, new byte[24]);
        var e = Assert.Throws<CorruptCheckpointException>(() => SafetensorsFile.Open(path));
        AssertNames(e, path, "b");
        Assert.Contains("'a'", e.Message);
    }

    [Fact]
    public void ByteCountDisagreeingWithTheShapeIsCorrupt()
    {
        using var temp = new TempFolder();
        string path = temp.File("size.safetensors");
        WriteRawSafetensors(path, """{"a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 16]}}""", new byte[16]);
        var e = Assert.Throws<CorruptCheckpointException>(() => SafetensorsFile.Open(path));
        AssertNames(e, path, "a");
        Assert.Contains("12", e.Message);
    }

    [Fact]
    public void DuplicateTensorNamesAreCorrupt()
    {
        using var temp = new TempFolder();
        string path = temp.File("duplicate.safetensors");
        WriteRawSafetensors(path, """
            {"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
             "a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}
            """, new byte[8]);
        var e = Assert.Throws<CorruptCheckpointException>(() => SafetensorsFile.Open(path));
        AssertNames(e, path, "a");
    }

    [Fact]
    public void MissingTensorNamesFileAndTensor()
    {
        using var file = SafetensorsFile.Open(DitSmallWeights);
        Assert.False(file.Contains("pos_embed.proj.missing"));
        var e = Assert.Throws<MissingTensorException>(() => file.ReadFloat32("pos_embed.proj.missing"));
        AssertNames(e, DitSmallWeights, "pos_embed.proj.missing");
        Assert.Throws<MissingTensorException>(() => file.Describe("pos_embed.proj.missing"));
    }

    [Fact]
    public void WrongShapeNamesExpectedAndActual()
    {
        using var file = SafetensorsFile.Open(DitSmallWeights);
        var e = Assert.Throws<TensorShapeException>(() => file.ReadFloat32("pos_embed.proj.weight", 72, 4, 4));
        AssertNames(e, DitSmallWeights, "pos_embed.proj.weight");
        Assert.Contains("[72,4,4]", e.Message);
        Assert.Contains("[72,4,2,2]", e.Message);
    }

    [Fact]
    public void IntegerTensorsCanBeDescribedButNotRead()
    {
        using var temp = new TempFolder();
        string path = temp.File("ints.safetensors");
        WriteRawSafetensors(path, """
            {"steps": {"dtype": "I64", "shape": [2], "data_offsets": [0, 16]},
             "w": {"dtype": "F32", "shape": [2], "data_offsets": [16, 24]}}
            """, [.. new byte[16], .. FloatBytes(1.5f, -2f)]);
        using var file = SafetensorsFile.Open(path);
        Assert.Equal("I64", file.Describe("steps").DType);
        Assert.Equal([2], file.Describe("steps").Shape);
        var e = Assert.Throws<UnsupportedDTypeException>(() => file.ReadFloat32("steps"));
        AssertNames(e, path, "steps");
        Assert.Contains("I64", e.Message);
        Assert.Throws<UnsupportedDTypeException>(() => file.ReadFloat64("steps"));
        Assert.Equal([1.5f, -2f], file.ReadFloat32("w"));
    }

    [Fact]
    public void Float16BitPatternsConvertExactly()
    {
        using var temp = new TempFolder();
        string path = temp.File("f16.safetensors");
        // IEEE binary16: 1, -2, largest finite, smallest subnormal (2^-24), +infinity, 0x3555 = 1365/4096.
        WriteRawSafetensors(path, """{"h": {"dtype": "F16", "shape": [6], "data_offsets": [0, 12]}}""",
            UInt16Bytes(0x3C00, 0xC000, 0x7BFF, 0x0001, 0x7C00, 0x3555));
        using var file = SafetensorsFile.Open(path);
        Assert.Equal([1f, -2f, 65504f, MathF.Pow(2, -24), float.PositiveInfinity, 1365f / 4096f], file.ReadFloat32("h"));
        Assert.Equal([1d, -2d, 65504d, Math.Pow(2, -24), double.PositiveInfinity, 1365d / 4096d], file.ReadFloat64("h"));
    }

    [Fact]
    public void BFloat16BitPatternsConvertExactly()
    {
        using var temp = new TempFolder();
        string path = temp.File("bf16.safetensors");
        // bfloat16: 1, -3, 3.140625 (0x4049), smallest subnormal 2^-133, -infinity.
        WriteRawSafetensors(path, """{"b": {"dtype": "BF16", "shape": [5], "data_offsets": [0, 10]}}""",
            UInt16Bytes(0x3F80, 0xC040, 0x4049, 0x0001, 0xFF80));
        using var file = SafetensorsFile.Open(path);
        Assert.Equal([1f, -3f, 3.140625f, (float)Math.Pow(2, -133), float.NegativeInfinity], file.ReadFloat32("b"));
    }

    [Fact]
    public void Float64ValuesRoundToNearestFloat32()
    {
        using var temp = new TempFolder();
        string path = temp.File("f64.safetensors");
        double[] values = [0.1, -1e-300, 1e300, Math.PI];
        WriteRawSafetensors(path, """{"d": {"dtype": "F64", "shape": [2, 2], "data_offsets": [0, 32]}}""", DoubleBytes(values));
        using var file = SafetensorsFile.Open(path);
        Assert.Equal([0.1f, -0f, float.PositiveInfinity, MathF.PI], file.ReadFloat32("d", 2, 2));
        Assert.Equal(values, file.ReadFloat64("d"));
    }

    [Fact]
    public void ReadsTensorsLargerThanOneChunk()
    {
        using var temp = new TempFolder();
        string path = temp.File("large.safetensors");
        float[] values = Values(5_000_000, seed: 3); // 20 MB: more than one 16 MB read chunk
        SafetensorsWriter.Write(path, [("big", [5_000_000], values)]);
        using var file = SafetensorsFile.Open(path);
        Assert.Equal(values, file.ReadFloat32("big"));
    }
}
