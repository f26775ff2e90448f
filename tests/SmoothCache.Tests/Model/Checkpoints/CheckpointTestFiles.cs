using System.Buffers.Binary;
using System.Text;

namespace SmoothCache.Tests.Model.Checkpoints;

/// <summary>A temporary folder removed with everything in it on dispose.</summary>
public sealed class TempFolder : IDisposable
{
    public string Path { get; } = Directory.CreateTempSubdirectory("smoothcache-checkpoints-").FullName;

    public string File(string name) => System.IO.Path.Combine(Path, name);

    public void Dispose() => Directory.Delete(Path, recursive: true);
}

public static class CheckpointTestFiles
{
    public static string Fixture(string relativePath) =>
        Path.Combine(AppContext.BaseDirectory, "fixtures", relativePath);

    public static readonly string DitSmallWeights = Fixture("random/dit-small/diffusion_pytorch_model.safetensors");

    /// <summary>Writes a safetensors file by hand: the header length, the given header text, the data bytes.</summary>
    public static void WriteRawSafetensors(string path, string header, byte[] data)
    {
        byte[] headerBytes = Encoding.UTF8.GetBytes(header);
        var length = new byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(length, (ulong)headerBytes.Length);
        File.WriteAllBytes(path, [.. length, .. headerBytes, .. data]);
    }

    public static byte[] UInt16Bytes(params ushort[] values)
    {
        var bytes = new byte[values.Length * 2];
        for (int i = 0; i < values.Length; i++) BinaryPrimitives.WriteUInt16LittleEndian(bytes.AsSpan(2 * i), values[i]);
        return bytes;
    }

    public static byte[] FloatBytes(params float[] values)
    {
        var bytes = new byte[values.Length * 4];
        for (int i = 0; i < values.Length; i++) BinaryPrimitives.WriteSingleLittleEndian(bytes.AsSpan(4 * i), values[i]);
        return bytes;
    }

    public static byte[] DoubleBytes(params double[] values)
    {
        var bytes = new byte[values.Length * 8];
        for (int i = 0; i < values.Length; i++) BinaryPrimitives.WriteDoubleLittleEndian(bytes.AsSpan(8 * i), values[i]);
        return bytes;
    }

    /// <summary>Values with a fractional part, signs and a wide range, deterministic per seed.</summary>
    public static float[] Values(int count, int seed)
    {
        var random = new Random(seed);
        return Enumerable.Range(0, count).Select(_ => (float)((random.NextDouble() - 0.5) * Math.Pow(10, random.Next(-3, 4)))).ToArray();
    }

    /// <summary>Asserts the exception message names the file and, when given, the tensor.</summary>
    public static void AssertNames(Exception exception, string file, string? tensor = null)
    {
        Assert.Contains(file, exception.Message);
        if (tensor is not null) Assert.Contains($"'{tensor}'", exception.Message);
    }
}
