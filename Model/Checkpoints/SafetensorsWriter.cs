using System.Buffers.Binary;
using System.Text.Json;

namespace SmoothCache.Model.Checkpoints;

/// <summary>Writes float32 tensors to a .safetensors file (stored as F32 or F16), atomically.</summary>
public static class SafetensorsWriter
{
    /// <summary>
    /// Writes the tensors in the given order. Each data array must hold exactly the shape's element
    /// count; names must be unique and not <c>__metadata__</c>. The file appears only when complete.
    /// </summary>
    public static void Write(string path, IEnumerable<(string name, int[] shape, float[] data)> tensors,
        SaveDType dtype = SaveDType.F32, IReadOnlyDictionary<string, string>? metadata = null)
    {
        var list = tensors.ToList();
        TensorListChecks.Validate(path, list);
        string dtypeName = StoredDTypes.Name(dtype);
        var encoded = list.Select(t => StoredDTypes.Encode(dtype, t.data)).ToList();

        using var headerStream = new MemoryStream();
        using (var json = new Utf8JsonWriter(headerStream))
        {
            json.WriteStartObject();
            if (metadata is { Count: > 0 })
            {
                json.WriteStartObject("__metadata__");
                foreach (var (key, value) in metadata) json.WriteString(key, value);
                json.WriteEndObject();
            }
            long offset = 0;
            for (int i = 0; i < list.Count; i++)
            {
                json.WriteStartObject(list[i].name);
                json.WriteString("dtype", dtypeName);
                json.WriteStartArray("shape");
                foreach (int size in list[i].shape) json.WriteNumberValue(size);
                json.WriteEndArray();
                json.WriteStartArray("data_offsets");
                json.WriteNumberValue(offset);
                json.WriteNumberValue(offset + encoded[i].Length);
                json.WriteEndArray();
                json.WriteEndObject();
                offset += encoded[i].Length;
            }
            json.WriteEndObject();
        }
        // Pad the header with spaces to a multiple of 8 so the data section starts aligned.
        int padding = (int)((8 - headerStream.Length % 8) % 8);
        for (int i = 0; i < padding; i++) headerStream.WriteByte((byte)' ');

        AtomicFile.Write(path, stream =>
        {
            Span<byte> length = stackalloc byte[8];
            BinaryPrimitives.WriteUInt64LittleEndian(length, (ulong)headerStream.Length);
            stream.Write(length);
            headerStream.Position = 0;
            headerStream.CopyTo(stream);
            foreach (byte[] bytes in encoded) stream.Write(bytes);
        });
    }
}
