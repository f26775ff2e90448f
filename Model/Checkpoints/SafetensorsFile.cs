using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using Microsoft.Win32.SafeHandles;

namespace SmoothCache.Model.Checkpoints;

/// <summary>
/// A .safetensors file: an 8-byte little-endian header length, a UTF-8 JSON header mapping each
/// tensor name to dtype, shape and [begin, end) byte offsets into the data section that follows.
/// The header is validated completely on open; tensor bytes are read only when a tensor is asked for
/// (positional reads, so a multi-gigabyte checkpoint never sits in memory whole).
/// </summary>
public sealed class SafetensorsFile : IWeightSource
{
    private const string MetadataKey = "__metadata__";
    private const ulong MaxHeaderBytes = 100_000_000;

    private readonly SafeFileHandle _handle;
    private readonly long _dataStart;
    private readonly Dictionary<string, (TensorEntry Entry, long Begin, long End)> _tensors;

    /// <inheritdoc/>
    public string Location { get; }

    /// <summary>Tensor names in header order.</summary>
    public IReadOnlyCollection<string> Names { get; }

    /// <summary>The free-form string map stored under <c>__metadata__</c> (empty when absent).</summary>
    public IReadOnlyDictionary<string, string> Metadata { get; }

    private SafetensorsFile(string location, SafeFileHandle handle, long dataStart,
        Dictionary<string, (TensorEntry, long, long)> tensors, List<string> names, Dictionary<string, string> metadata)
    {
        Location = location;
        _handle = handle;
        _dataStart = dataStart;
        _tensors = tensors;
        Names = names;
        Metadata = metadata;
    }

    /// <summary>Opens and validates a safetensors file.</summary>
    /// <exception cref="CheckpointNotFoundException">The file does not exist.</exception>
    /// <exception cref="CorruptCheckpointException">The file is truncated or its header is invalid.</exception>
    public static SafetensorsFile Open(string path)
    {
        if (PathProblems.ForFile(path) is { } problem)
            throw new CheckpointNotFoundException(path, problem);
        SafeFileHandle handle = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.Read);
        try
        {
            return Parse(path, handle);
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    private static SafetensorsFile Parse(string path, SafeFileHandle handle)
    {
        long fileLength = RandomAccess.GetLength(handle);
        if (fileLength < 8)
            throw new CorruptCheckpointException(path, null, $"file is {fileLength} bytes, shorter than the 8-byte header length");
        Span<byte> lengthBytes = stackalloc byte[8];
        RandomAccess.Read(handle, lengthBytes, 0);
        ulong headerLength = BinaryPrimitives.ReadUInt64LittleEndian(lengthBytes);
        if (headerLength > (ulong)(fileLength - 8))
            throw new CorruptCheckpointException(path, null, WeightSources.ForeignContent(path) ??
                $"header length {headerLength} runs past the end of the file ({fileLength} bytes; truncated or not a safetensors file)");
        // The reference implementation's own limit: a header is a few hundred bytes a tensor.
        if (headerLength > MaxHeaderBytes)
            throw new CorruptCheckpointException(path, null, $"header length {headerLength} is more than the {MaxHeaderBytes} bytes a header may have");

        byte[] header = new byte[headerLength];
        for (int read = 0; read < header.Length;)
        {
            int n = RandomAccess.Read(handle, header.AsSpan(read), 8 + read);
            if (n == 0) throw new CorruptCheckpointException(path, null, $"file ends inside its {headerLength}-byte header");
            read += n;
        }
        long dataStart = 8 + (long)headerLength;
        long dataLength = fileLength - dataStart;

        var tensors = new Dictionary<string, (TensorEntry, long, long)>(StringComparer.Ordinal);
        var names = new List<string>();
        var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
        bool metadataSeen = false;
        using (JsonDocument document = ParseHeader(path, header))
        {
            if (document.RootElement.ValueKind != JsonValueKind.Object)
                throw new CorruptCheckpointException(path, null, $"header is a JSON {document.RootElement.ValueKind}, expected an object");
            foreach (JsonProperty property in document.RootElement.EnumerateObject())
            {
                if (property.Name == MetadataKey)
                {
                    if (metadataSeen) throw new CorruptCheckpointException(path, null, $"{MetadataKey} appears twice in the header");
                    metadataSeen = true;
                    ReadMetadata(path, property.Value, metadata);
                    continue;
                }
                if (tensors.ContainsKey(property.Name))
                    throw new CorruptCheckpointException(path, property.Name, "appears twice in the header");
                var (entry, begin, end) = ReadEntry(path, property.Name, property.Value, dataLength);
                tensors.Add(property.Name, (entry, begin, end));
                names.Add(property.Name);
            }
        }
        CheckNoOverlap(path, tensors);
        return new SafetensorsFile(path, handle, dataStart, tensors, names, metadata);
    }

    private static JsonDocument ParseHeader(string path, byte[] header)
    {
        try
        {
            // Strict UTF-8 first so invalid bytes are reported rather than replaced.
            new UTF8Encoding(false, true).GetCharCount(header);
            return JsonDocument.Parse(header);
        }
        catch (Exception e) when (e is DecoderFallbackException or JsonException)
        {
            throw new CorruptCheckpointException(path, null, $"header is not valid UTF-8 JSON: {e.Message}", e);
        }
    }

    private static void ReadMetadata(string path, JsonElement value, Dictionary<string, string> metadata)
    {
        if (value.ValueKind != JsonValueKind.Object)
            throw new CorruptCheckpointException(path, null, $"'{MetadataKey}' is a JSON {value.ValueKind}, expected an object of strings");
        foreach (JsonProperty item in value.EnumerateObject())
        {
            if (item.Value.ValueKind != JsonValueKind.String)
                throw new CorruptCheckpointException(path, null,
                    $"'{MetadataKey}' key '{item.Name}' is a JSON {item.Value.ValueKind}, expected a string");
            metadata[item.Name] = item.Value.GetString()!;
        }
    }

    private static (TensorEntry, long, long) ReadEntry(string path, string name, JsonElement value, long dataLength)
    {
        if (value.ValueKind != JsonValueKind.Object)
            throw new CorruptCheckpointException(path, name, $"header entry is a JSON {value.ValueKind}, expected an object");
        if (!value.TryGetProperty("dtype", out JsonElement dtypeElement) || dtypeElement.ValueKind != JsonValueKind.String)
            throw new CorruptCheckpointException(path, name, "header entry lacks a string 'dtype'");
        string dtype = dtypeElement.GetString()!;

        if (!value.TryGetProperty("shape", out JsonElement shapeElement) || shapeElement.ValueKind != JsonValueKind.Array)
            throw new CorruptCheckpointException(path, name, "header entry lacks a 'shape' array");
        var shape = new int[shapeElement.GetArrayLength()];
        int d = 0;
        foreach (JsonElement dim in shapeElement.EnumerateArray())
        {
            if (dim.ValueKind != JsonValueKind.Number || !dim.TryGetInt32(out int size) || size < 0)
                throw new CorruptCheckpointException(path, name, $"shape entry {dim.GetRawText()} is not a non-negative 32-bit integer");
            shape[d++] = size;
        }

        if (!value.TryGetProperty("data_offsets", out JsonElement offsetsElement) || offsetsElement.ValueKind != JsonValueKind.Array
            || offsetsElement.GetArrayLength() != 2)
            throw new CorruptCheckpointException(path, name, "header entry lacks a two-element 'data_offsets' array");
        long begin = ReadOffset(path, name, offsetsElement[0]);
        long end = ReadOffset(path, name, offsetsElement[1]);
        if (begin > end)
            throw new CorruptCheckpointException(path, name, $"data_offsets [{begin}, {end}] end before they begin");
        if (end > dataLength)
            throw new CorruptCheckpointException(path, name,
                $"data_offsets [{begin}, {end}] run past the data section ({dataLength} bytes; file truncated?)");

        var entry = new TensorEntry(name, dtype, shape);
        long elements;
        try
        {
            elements = shape.Aggregate(1L, (a, b) => checked(a * b));
        }
        catch (OverflowException)
        {
            throw new CorruptCheckpointException(path, name, $"shape [{string.Join(",", shape)}] is too large");
        }
        // A dtype this reader does not know (newer sub-byte formats) cannot be size-checked; reading it
        // throws UnsupportedDTypeException, and the bounds and overlap checks still apply.
        if (!StoredDTypes.TryGetSize(dtype, out int elementSize))
            return (entry, begin, end);
        if (elements > long.MaxValue / elementSize)
            throw new CorruptCheckpointException(path, name, $"shape [{string.Join(",", shape)}] is too large");
        long expectedBytes = elements * elementSize;
        if (end - begin != expectedBytes)
            throw new CorruptCheckpointException(path, name,
                $"data_offsets [{begin}, {end}] hold {end - begin} bytes, but {dtype} shape [{string.Join(",", shape)}] needs {expectedBytes}");
        return (entry, begin, end);
    }

    private static long ReadOffset(string path, string name, JsonElement element)
    {
        if (element.ValueKind != JsonValueKind.Number || !element.TryGetInt64(out long offset) || offset < 0)
            throw new CorruptCheckpointException(path, name, $"data offset {element.GetRawText()} is not a non-negative integer");
        return offset;
    }

    private static void CheckNoOverlap(string path, Dictionary<string, (TensorEntry Entry, long Begin, long End)> tensors)
    {
        var byBegin = tensors.Values.Where(t => t.End > t.Begin).OrderBy(t => t.Begin).ToList();
        for (int i = 1; i < byBegin.Count; i++)
        {
            var previous = byBegin[i - 1];
            var current = byBegin[i];
            if (current.Begin < previous.End)
                throw new CorruptCheckpointException(path, current.Entry.Name,
                    $"data_offsets [{current.Begin}, {current.End}] overlap those of '{previous.Entry.Name}' [{previous.Begin}, {previous.End}]");
        }
    }

    /// <inheritdoc/>
    public bool Contains(string name) => _tensors.ContainsKey(name);

    /// <inheritdoc/>
    public TensorEntry Describe(string name) => Find(name).Entry;

    /// <inheritdoc/>
    public float[] ReadFloat32(string name, params int[] expectedShape) => Read<float>(name, expectedShape, StoredDTypes.ToFloat32);

    /// <summary>
    /// Reads a tensor as float64 (F64 exactly; F32, F16 and BF16 widened). For reference data such as
    /// the float64 fixtures. Same exceptions as <see cref="ReadFloat32"/>.
    /// </summary>
    public double[] ReadFloat64(string name, params int[] expectedShape) => Read<double>(name, expectedShape, StoredDTypes.ToFloat64);

    private T[] Read<T>(string name, int[] expectedShape, StoredDTypes.Converter<T> convert)
    {
        var (entry, begin, _) = Find(name);
        StoredDTypes.CheckShape(Location, entry, expectedShape);
        RequireConvertible(entry);
        var values = new T[StoredDTypes.ArrayLength(Location, entry)];
        ReadConverted(entry, begin, values, convert);
        return values;
    }

    private void ReadConverted<T>(TensorEntry entry, long begin, T[] values, StoredDTypes.Converter<T> convert)
    {
        long fileOffset = _dataStart + begin;
        StoredDTypes.ReadConverted(entry.DType, values, bytes =>
        {
            ReadExactly(entry.Name, fileOffset, bytes);
            fileOffset += bytes.Length;
        }, convert);
    }

    private void ReadExactly(string name, long fileOffset, Span<byte> destination)
    {
        while (destination.Length > 0)
        {
            int read = RandomAccess.Read(_handle, destination, fileOffset);
            if (read == 0)
                throw new CorruptCheckpointException(Location, name, "file ended while reading the tensor (truncated after opening?)");
            destination = destination[read..];
            fileOffset += read;
        }
    }

    private void RequireConvertible(TensorEntry entry)
    {
        if (!StoredDTypes.IsConvertible(entry.DType))
            throw new UnsupportedDTypeException(Location, entry.Name, entry.DType);
    }

    private (TensorEntry Entry, long Begin, long End) Find(string name) =>
        _tensors.TryGetValue(name, out var tensor) ? tensor : throw new MissingTensorException(Location, name);

    /// <inheritdoc/>
    public void Dispose() => _handle.Dispose();
}
