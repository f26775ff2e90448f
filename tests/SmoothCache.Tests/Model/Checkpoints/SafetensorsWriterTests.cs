using SmoothCache.Model.Checkpoints;
using static SmoothCache.Tests.Model.Checkpoints.CheckpointTestFiles;

namespace SmoothCache.Tests.Model.Checkpoints;

public class SafetensorsWriterTests
{
    [Fact]
    public void Float32RoundTripsExactlyWithMetadataAndAlignedHeader()
    {
        using var temp = new TempFolder();
        string path = temp.File("out.safetensors");
        float[] a = Values(24, seed: 1), b = [float.MaxValue, float.Epsilon, -0f, float.NaN];
        SafetensorsWriter.Write(path, [("a", [2, 3, 4], a), ("b.weight", [4], b), ("empty", [0, 3], [])],
            metadata: new Dictionary<string, string> { ["format"] = "pt" });

        Assert.Equal(0UL, BitConverter.ToUInt64(File.ReadAllBytes(path), 0) % 8);
        using var file = SafetensorsFile.Open(path);
        Assert.Equal(["a", "b.weight", "empty"], file.Names);
        Assert.Equal("pt", file.Metadata["format"]);
        Assert.Equal([2, 3, 4], file.Describe("a").Shape);
        Assert.Equal("F32", file.Describe("a").DType);
        Assert.Equal(a, file.ReadFloat32("a", 2, 3, 4));
        Assert.Equal(b.Select(BitConverter.SingleToInt32Bits), file.ReadFloat32("b.weight").Select(BitConverter.SingleToInt32Bits));
        Assert.Empty(file.ReadFloat32("empty", 0, 3));
        Assert.Equal([path], Directory.GetFiles(temp.Path));
    }

    [Fact]
    public void Float16StoresHalfRoundedValues()
    {
        using var temp = new TempFolder();
        string path = temp.File("half.safetensors");
        float[] values = [.. Values(32, seed: 2), 1e-8f, 70000f, 0.1f];
        SafetensorsWriter.Write(path, [("h", [values.Length], values)], SaveDType.F16);
        using var file = SafetensorsFile.Open(path);
        Assert.Equal("F16", file.Describe("h").DType);
        Assert.Equal(8 + BitConverter.ToInt64(File.ReadAllBytes(path), 0) + 2 * values.Length, new FileInfo(path).Length);
        Assert.Equal(values.Select(v => (float)(Half)v), file.ReadFloat32("h"));
    }

    [Fact]
    public void OverwritesAnExistingFile()
    {
        using var temp = new TempFolder();
        string path = temp.File("out.safetensors");
        SafetensorsWriter.Write(path, [("old", [1], [1f])]);
        SafetensorsWriter.Write(path, [("new", [2], [2f, 3f])]);
        using var file = SafetensorsFile.Open(path);
        Assert.Equal(["new"], file.Names);
        Assert.Single(Directory.GetFiles(temp.Path));
    }

    [Theory]
    [InlineData("a", new[] { 2, 2 }, 3)]
    [InlineData("__metadata__", new[] { 1 }, 1)]
    [InlineData("", new[] { 1 }, 1)]
    public void InvalidTensorsAreRejectedAndNothingIsWritten(string name, int[] shape, int count)
    {
        using var temp = new TempFolder();
        string path = temp.File("out.safetensors");
        var e = Assert.Throws<ArgumentException>(() => SafetensorsWriter.Write(path, [(name, shape, new float[count])]));
        Assert.Contains(path, e.Message);
        Assert.Empty(Directory.GetFiles(temp.Path));
    }

    [Fact]
    public void DuplicateNamesAreRejected()
    {
        using var temp = new TempFolder();
        string path = temp.File("out.safetensors");
        var e = Assert.Throws<ArgumentException>(() => SafetensorsWriter.Write(path, [("a", [1], [1f]), ("a", [1], [2f])]));
        Assert.Contains("'a'", e.Message);
    }
}
