using System.Buffers.Binary;
using System.Runtime.InteropServices;

namespace SmoothCache.Model.Checkpoints;

/// <summary>Element sizes of the dtypes checkpoints store (safetensors spelling) and their conversion to float.</summary>
internal static class StoredDTypes
{
    public const string F32 = "F32";
    public const string F16 = "F16";
    public const string BF16 = "BF16";
    public const string F64 = "F64";

    // Every dtype the safetensors format defines with a whole-byte element size; only the
    // floating ones are converted, the others may sit in a file but cannot be read as weights.
    private static readonly Dictionary<string, int> Sizes = new()
    {
        [F64] = 8, [F32] = 4, [F16] = 2, [BF16] = 2,
        ["I64"] = 8, ["I32"] = 4, ["I16"] = 2, ["I8"] = 1,
        ["U64"] = 8, ["U32"] = 4, ["U16"] = 2, ["U8"] = 1,
        ["BOOL"] = 1, ["F8_E4M3"] = 1, ["F8_E5M2"] = 1, ["F8_E8M0"] = 1,
        ["C64"] = 8,
    };

    public static bool TryGetSize(string dtype, out int size) => Sizes.TryGetValue(dtype, out size);

    public static bool IsConvertible(string dtype) => dtype is F32 or F16 or BF16 or F64;

    /// <summary>Converts little-endian stored elements to float32 (F64 rounds to nearest).</summary>
    public static void ToFloat32(string dtype, ReadOnlySpan<byte> source, Span<float> destination)
    {
        switch (dtype)
        {
            case F32 when BitConverter.IsLittleEndian:
                MemoryMarshal.Cast<byte, float>(source[..(4 * destination.Length)]).CopyTo(destination);
                break;
            case F32:
                for (int i = 0; i < destination.Length; i++)
                    destination[i] = BinaryPrimitives.ReadSingleLittleEndian(source[(4 * i)..]);
                break;
            case F16:
                for (int i = 0; i < destination.Length; i++)
                    destination[i] = (float)BinaryPrimitives.ReadHalfLittleEndian(source[(2 * i)..]);
                break;
            case BF16:
                // bfloat16 is the upper half of an IEEE float32.
                for (int i = 0; i < destination.Length; i++)
                    destination[i] = BitConverter.Int32BitsToSingle(BinaryPrimitives.ReadUInt16LittleEndian(source[(2 * i)..]) << 16);
                break;
            case F64:
                for (int i = 0; i < destination.Length; i++)
                    destination[i] = (float)BinaryPrimitives.ReadDoubleLittleEndian(source[(8 * i)..]);
                break;
            default:
                throw new ArgumentException($"dtype {dtype} is not convertible", nameof(dtype));
        }
    }

    /// <summary>Converts little-endian stored elements to float64 (exact for every convertible dtype).</summary>
    public static void ToFloat64(string dtype, ReadOnlySpan<byte> source, Span<double> destination)
    {
        if (dtype == F64)
        {
            for (int i = 0; i < destination.Length; i++)
                destination[i] = BinaryPrimitives.ReadDoubleLittleEndian(source[(8 * i)..]);
            return;
        }
        float[] singles = new float[destination.Length];
        ToFloat32(dtype, source, singles);
        for (int i = 0; i < singles.Length; i++) destination[i] = singles[i];
    }

    public delegate void Converter<T>(string dtype, ReadOnlySpan<byte> source, Span<T> destination);

    /// <summary>Fills the span with the next bytes of a tensor's data, in order.</summary>
    public delegate void ByteReader(Span<byte> destination);

    /// <summary>
    /// Reads a tensor's stored bytes in bounded chunks and converts them into <paramref name="values"/>,
    /// so a huge tensor never needs a second full-size byte buffer.
    /// </summary>
    public static void ReadConverted<T>(string dtype, T[] values, ByteReader read, Converter<T> convert)
    {
        const int ChunkBytes = 1 << 24;
        TryGetSize(dtype, out int elementSize);
        int chunkElements = ChunkBytes / elementSize;
        byte[] buffer = new byte[Math.Min(values.Length, chunkElements) * elementSize];
        for (int start = 0; start < values.Length; start += chunkElements)
        {
            int count = Math.Min(chunkElements, values.Length - start);
            Span<byte> bytes = buffer.AsSpan(0, count * elementSize);
            read(bytes);
            convert(dtype, bytes, values.AsSpan(start, count));
        }
    }

    /// <summary>Encodes float32 values as little-endian F32 or F16 bytes (F16 rounds to nearest even).</summary>
    public static byte[] Encode(SaveDType dtype, ReadOnlySpan<float> values)
    {
        switch (dtype)
        {
            case SaveDType.F32:
            {
                byte[] bytes = new byte[values.Length * 4];
                for (int i = 0; i < values.Length; i++)
                    BinaryPrimitives.WriteSingleLittleEndian(bytes.AsSpan(4 * i), values[i]);
                return bytes;
            }
            case SaveDType.F16:
            {
                byte[] bytes = new byte[values.Length * 2];
                for (int i = 0; i < values.Length; i++)
                    BinaryPrimitives.WriteHalfLittleEndian(bytes.AsSpan(2 * i), (Half)values[i]);
                return bytes;
            }
            default:
                throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "F32 or F16");
        }
    }

    public static string Name(SaveDType dtype) => dtype switch
    {
        SaveDType.F32 => F32,
        SaveDType.F16 => F16,
        _ => throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "F32 or F16"),
    };

    /// <summary>Checks a requested shape against the stored one; an empty request checks nothing.</summary>
    public static void CheckShape(string file, TensorEntry entry, int[] expectedShape)
    {
        if (expectedShape.Length > 0 && !expectedShape.AsSpan().SequenceEqual(entry.Shape))
            throw new TensorShapeException(file, entry.Name, expectedShape, entry.Shape);
    }

    /// <summary>Rejects element counts a .NET array cannot hold.</summary>
    public static int ArrayLength(string file, TensorEntry entry)
    {
        long count = entry.ElementCount;
        if (count > Array.MaxLength)
            throw new CorruptCheckpointException(file, entry.Name, $"{count} elements exceed the largest array .NET can allocate");
        return (int)count;
    }
}
