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
        int elementSize = dtype == SaveDType.F16 ? 2 : 4;

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
                offset += (long)list[i].data.Length * elementSize;
                json.WriteNumberValue(offset);
                json.WriteEndArray();
                json.WriteEndObject();
            }
            json.WriteEndObject();
        }
        // Pad the header with spaces to a multiple of 8 so the data section starts aligned.
        int padding = (int)((8 - headerStream.Length % 8) % 8);
        for (int i = 0; i < padding; i++) headerStream.WriteByte((byte)' ');

        AtomicFile.WriteStream(path, stream =>
        {
            Span<byte> length = stackalloc byte[8];
            BinaryPrimitives.WriteUInt64LittleEndian(length, (ulong)headerStream.Length);
            stream.Write(length);
            headerStream.Position = 0;
            headerStream.CopyTo(stream);
            // Encode one tensor at a time: a multi-gigabyte checkpoint is never held twice.
            foreach (var tensor in list) stream.Write(StoredDTypes.Encode(dtype, tensor.data));
        });
    }
}
