using System.Collections;
using System.IO.Compression;
using System.Text;

namespace SmoothCache.Model.Checkpoints;

/// <summary>
/// A PyTorch checkpoint in torch.save's zip format (<c>.bin</c>/<c>.pt</c>): <c>&lt;folder&gt;/data.pkl</c>
/// pickles the state dict and each storage's bytes sit in <c>&lt;folder&gt;/data/&lt;key&gt;</c>.
/// The pickle is loaded without running code: only the globals of a state dict are accepted
/// (OrderedDict, _rebuild_tensor_v2 and the float storage classes); anything else is refused as
/// corrupt. Tensors must be contiguous; their bytes are read only when asked for.
/// Nested dicts (e.g. {"ema": {...}}) are flattened with dotted names; non-tensor values are ignored.
/// </summary>
public sealed class PyTorchBinFile : IWeightSource
{
    private readonly FileStream _file;
    private readonly ZipArchive _zip;
    private readonly Dictionary<string, (TensorEntry Entry, TorchTensor Tensor, ZipArchiveEntry Storage)> _tensors;
    private readonly Lock _zipLock = new();

    // Bounds on what a hostile file can make us allocate or walk: data.pkl of a DiT-XL/2 checkpoint is ~100 KB, a state
    // dict nests a level or two, and deflate cannot expand more than ~1032 times.
    private const long MaxPickleBytes = 256L << 20;
    private const long MaxByteOrderBytes = 16;
    private const long MaxDeflateRatio = 1032;
    private const int MaxNesting = 32;
    private const int MaxStateDictEntries = 1 << 20;

    /// <inheritdoc/>
    public string Location { get; }

    /// <summary>Tensor names in state dict order (nested dicts flattened as "outer.inner").</summary>
    public IReadOnlyCollection<string> Names { get; }

    private PyTorchBinFile(string location, FileStream file, ZipArchive zip,
        Dictionary<string, (TensorEntry, TorchTensor, ZipArchiveEntry)> tensors, List<string> names)
    {
        Location = location;
        _file = file;
        _zip = zip;
        _tensors = tensors;
        Names = names;
    }

    /// <summary>Opens the zip, loads and checks the pickle and every tensor's storage reference.</summary>
    /// <exception cref="CheckpointNotFoundException">The file does not exist.</exception>
    /// <exception cref="CorruptCheckpointException">Not a valid torch zip, a disallowed global, or a tensor that does not fit its storage.</exception>
    public static PyTorchBinFile Open(string path)
    {
        if (PathProblems.ForFile(path) is { } problem)
            throw new CheckpointNotFoundException(path, problem);
        var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read);
        ZipArchive? zip = null;
        try
        {
            try
            {
                zip = new ZipArchive(file, ZipArchiveMode.Read, leaveOpen: true);
            }
            catch (Exception e) when (IsZipFault(e))
            {
                throw new CorruptCheckpointException(path, null,
                    WeightSources.ForeignContent(path) ?? $"not a valid zip archive (torch.save zip format expected): {e.Message}", e);
            }
            string folder = FindArchiveFolder(path, zip);
            CheckByteOrder(path, zip, folder);
            object? root = LoadPickle(path, zip, folder);
            if (root is not Hashtable dict)
                throw new CorruptCheckpointException(path, null, $"{folder}/data.pkl holds {TorchPickle.Describe(root)}, expected a state dict");
            var found = new List<(string Name, TorchTensor Tensor)>();
            Collect(path, dict, "", found, new HashSet<Hashtable>(ReferenceEqualityComparer.Instance), new int[1]);
            var tensors = new Dictionary<string, (TensorEntry, TorchTensor, ZipArchiveEntry)>(StringComparer.Ordinal);
            var names = new List<string>();
            foreach (var (name, tensor) in found.OrderBy(t => t.Tensor.Sequence))
            {
                if (!tensors.TryAdd(name, (new TensorEntry(name, tensor.Storage.DType, tensor.Shape), tensor, FindStorage(path, zip, folder, name, tensor))))
                    throw new CorruptCheckpointException(path, name, "appears twice after flattening nested dicts");
                names.Add(name);
            }
            return new PyTorchBinFile(path, file, zip, tensors, names);
        }
        catch
        {
            zip?.Dispose();
            file.Dispose();
            throw;
        }
    }

    /// <summary>The single top-level folder holding data.pkl (torch names it after the archive, or "archive").</summary>
    private static string FindArchiveFolder(string path, ZipArchive zip)
    {
        var folders = zip.Entries
            .Select(e => e.FullName.Split('/'))
            .Where(parts => parts.Length == 2 && parts[1] == "data.pkl")
            .Select(parts => parts[0])
            .ToList();
        return folders.Count switch
        {
            1 => folders[0],
            0 => throw new CorruptCheckpointException(path, null,
                "zip has no <folder>/data.pkl (not a torch.save checkpoint; the legacy pre-1.6 format is not supported)"),
            _ => throw new CorruptCheckpointException(path, null, $"zip has several data.pkl files (in {string.Join(", ", folders)})"),
        };
    }

    private static void CheckByteOrder(string path, ZipArchive zip, string folder)
    {
        ZipArchiveEntry? entry = zip.GetEntry($"{folder}/byteorder");
        if (entry is null) return; // older torch versions wrote no byteorder and were little-endian
        string order = Encoding.ASCII.GetString(ReadEntry(path, entry, MaxByteOrderBytes)).Trim();
        if (order != "little")
            throw new CorruptCheckpointException(path, null, $"{folder}/byteorder is '{order}', only little-endian checkpoints are supported");
    }

    private static object? LoadPickle(string path, ZipArchive zip, string folder)
    {
        byte[] pickle = ReadEntry(path, zip.GetEntry($"{folder}/data.pkl")!, MaxPickleBytes);
        try
        {
            return TorchPickle.Load(pickle);
        }
        catch (Exception e) when (e is not (OutOfMemoryException or CorruptCheckpointException))
        {
            // The unpickler signals a malformed stack with cast, index and null-reference errors as well as its own.
            throw new CorruptCheckpointException(path, null, $"{folder}/data.pkl: {e.Message}", e);
        }
    }

    /// <summary>The tensors of a state dict, nested dicts flattened. A pickle can make a dict hold itself or share one
    /// dict many times over (2^depth paths): dicts on the current path, nesting past 32 and more than 2^20 entries are refused.</summary>
    private static void Collect(string path, Hashtable dict, string prefix, List<(string, TorchTensor)> found,
        HashSet<Hashtable> enclosing, int[] entries)
    {
        if (enclosing.Count >= MaxNesting)
            throw new CorruptCheckpointException(path, null, $"the state dict nests deeper than {MaxNesting} levels (at '{prefix}')");
        if (!enclosing.Add(dict))
            throw new CorruptCheckpointException(path, null, $"the state dict contains itself (at '{prefix}')");
        foreach (DictionaryEntry item in dict)
        {
            if (++entries[0] > MaxStateDictEntries)
                throw new CorruptCheckpointException(path, null, $"the state dict has more than {MaxStateDictEntries} entries");
            if (item.Value is not (TorchTensor or Hashtable)) continue;
            if (item.Key is not string key)
                throw new CorruptCheckpointException(path, null, $"state dict key {TorchPickle.Describe(item.Key)} is not a string");
            if (item.Value is Hashtable nested)
                Collect(path, nested, $"{prefix}{key}.", found, enclosing, entries);
            else
                found.Add((prefix + key, (TorchTensor)item.Value));
        }
        enclosing.Remove(dict);
    }

    /// <summary>Checks the tensor is a contiguous view inside its storage and the storage file has the declared size.</summary>
    private static ZipArchiveEntry FindStorage(string path, ZipArchive zip, string folder, string name, TorchTensor tensor)
    {
        TorchStorage storage = tensor.Storage;
        // Checked: a hostile shape must not wrap around into a range that looks valid.
        long end;
        try
        {
            end = checked(tensor.Shape.Aggregate(1L, (a, b) => checked(a * b)) + tensor.Offset);
        }
        catch (OverflowException)
        {
            throw new CorruptCheckpointException(path, name, $"shape [{string.Join(",", tensor.Shape)}] is too large");
        }
        // Strides of size-1 dimensions, and of empty tensors, do not affect the layout.
        long[] contiguous = PyTorchBinWriter.ContiguousStrides(tensor.Shape);
        for (int d = 0; d < tensor.Shape.Length; d++)
            if (end > tensor.Offset && tensor.Shape[d] > 1 && tensor.Stride[d] != contiguous[d])
                throw new CorruptCheckpointException(path, name,
                    $"strides [{string.Join(",", tensor.Stride)}] for shape [{string.Join(",", tensor.Shape)}] are not contiguous (expected [{string.Join(",", contiguous)}])");
        if (tensor.Offset < 0 || end > storage.ElementCount)
            throw new CorruptCheckpointException(path, name,
                $"elements [{tensor.Offset}, {end}) fall outside storage '{storage.Key}' of {storage.ElementCount} elements");
        ZipArchiveEntry entry = zip.GetEntry($"{folder}/data/{storage.Key}")
            ?? throw new CorruptCheckpointException(path, name, $"storage file {folder}/data/{storage.Key} is missing from the zip");
        CheckDeclaredLength(path, entry);
        StoredDTypes.TryGetSize(storage.DType, out int elementSize);
        if (entry.Length % elementSize != 0 || entry.Length / elementSize != storage.ElementCount)
            throw new CorruptCheckpointException(path, name,
                $"storage file {entry.FullName} has {entry.Length} bytes, not {storage.ElementCount} {storage.DType} elements of {elementSize} bytes");
        return entry;
    }

    /// <summary>A whole zip entry of at most <paramref name="maxBytes"/> bytes.</summary>
    private static byte[] ReadEntry(string path, ZipArchiveEntry entry, long maxBytes)
    {
        if (entry.Length > maxBytes)
            throw new CorruptCheckpointException(path, null, $"zip entry {entry.FullName} declares {entry.Length} bytes, more than the {maxBytes} expected");
        CheckDeclaredLength(path, entry);
        try
        {
            using Stream stream = entry.Open();
            var bytes = new byte[entry.Length];
            stream.ReadExactly(bytes);
            return bytes;
        }
        catch (Exception e) when (IsZipFault(e))
        {
            throw new CorruptCheckpointException(path, null, $"zip entry {entry.FullName} cannot be read: {e.Message}", e);
        }
    }

    /// <summary>Refuses an entry whose declared size its stored bytes cannot hold (deflate expands at most ~1032 times), so
    /// that a lying zip directory cannot make us allocate gigabytes before the read fails.</summary>
    private static void CheckDeclaredLength(string path, ZipArchiveEntry entry)
    {
        if (entry.Length > Math.Max(entry.CompressedLength, 1) * MaxDeflateRatio)
            throw new CorruptCheckpointException(path, null,
                $"zip entry {entry.FullName} declares {entry.Length} bytes but stores {entry.CompressedLength}: more than deflate can expand");
    }

    /// <summary>What .NET's zip reader throws on a damaged archive (besides InvalidDataException, fuzzed archives have
    /// given index and argument errors).</summary>
    private static bool IsZipFault(Exception e) =>
        e is InvalidDataException or IOException or ArgumentException or IndexOutOfRangeException or NotSupportedException or OverflowException;

    /// <inheritdoc/>
    public bool Contains(string name) => _tensors.ContainsKey(name);

    /// <inheritdoc/>
    public TensorEntry Describe(string name) => Find(name).Entry;

    /// <inheritdoc/>
    public float[] ReadFloat32(string name, params int[] expectedShape)
    {
        var (entry, tensor, storage) = Find(name);
        StoredDTypes.CheckShape(Location, entry, expectedShape);
        var values = new float[StoredDTypes.ArrayLength(Location, entry)];
        StoredDTypes.TryGetSize(entry.DType, out int elementSize);
        lock (_zipLock)
        {
            try
            {
                using Stream stream = storage.Open();
                Skip(stream, tensor.Offset * elementSize);
                StoredDTypes.ReadConverted(entry.DType, values, stream.ReadExactly, StoredDTypes.ToFloat32);
            }
            catch (Exception e) when (IsZipFault(e))
            {
                throw new CorruptCheckpointException(Location, name, $"storage file {storage.FullName} cannot be read: {e.Message}", e);
            }
        }
        return values;
    }

    private static void Skip(Stream stream, long count)
    {
        if (stream.CanSeek)
        {
            stream.Seek(count, SeekOrigin.Current);
            return;
        }
        var scratch = new byte[(int)Math.Min(count, 1 << 20)];
        while (count > 0)
        {
            int chunk = (int)Math.Min(count, scratch.Length);
            stream.ReadExactly(scratch, 0, chunk);
            count -= chunk;
        }
    }

    private (TensorEntry Entry, TorchTensor Tensor, ZipArchiveEntry Storage) Find(string name) =>
        _tensors.TryGetValue(name, out var tensor) ? tensor : throw new MissingTensorException(Location, name);

    /// <inheritdoc/>
    public void Dispose()
    {
        _zip.Dispose();
        _file.Dispose();
    }
}
