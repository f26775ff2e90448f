using System.IO.Compression;
using System.Text;

namespace SmoothCache.Model.Checkpoints;

/// <summary>
/// Writes a state dict in torch.save's zip format (<c>archive/data.pkl</c>, a protocol-2 pickle of an
/// OrderedDict of tensors, plus one <c>archive/data/&lt;key&gt;</c> file per storage), atomically.
/// For synthetic checkpoints and for testing <see cref="PyTorchBinFile"/> without Python.
/// </summary>
public static class PyTorchBinWriter
{
    /// <summary>
    /// Writes the tensors in order, each contiguous in its own storage, as torch.FloatStorage (F32)
    /// or torch.HalfStorage (F16). <paramref name="archiveName"/> is the zip's top folder, which
    /// torch versions name differently.
    /// </summary>
    public static void Write(string path, IEnumerable<(string name, int[] shape, float[] data)> tensors,
        SaveDType dtype = SaveDType.F32, string archiveName = "archive")
    {
        var list = tensors.ToList();
        TensorListChecks.Validate(path, list);
        string storageClass = TorchPickle.StorageClass(StoredDTypes.Name(dtype));

        var pickle = new PickleBuilder().Proto().Global("collections", "OrderedDict").EmptyTuple().Reduce().Mark();
        for (int i = 0; i < list.Count; i++)
        {
            var (name, shape, data) = list[i];
            pickle.String(name).RebuildTensor(storageClass, StorageKey(i), data.Length, 0, shape, ContiguousStrides(shape));
        }
        // Storages are encoded as the archive is written, one at a time.
        WriteArchive(path, archiveName, pickle.SetItems().Stop(),
            list.Select((tensor, i) => (StorageKey(i), StoredDTypes.Encode(dtype, tensor.data))));
    }

    private static string StorageKey(int index) => index.ToString(System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>Row-major strides, in elements.</summary>
    internal static long[] ContiguousStrides(int[] shape)
    {
        var strides = new long[shape.Length];
        long stride = 1;
        for (int d = shape.Length - 1; d >= 0; d--)
        {
            strides[d] = stride;
            stride *= shape[d];
        }
        return strides;
    }

    /// <summary>Packs a pickle and its storages into a torch.save zip (entries stored uncompressed, as torch does).</summary>
    internal static void WriteArchive(string path, string archiveName, byte[] pickle, IEnumerable<(string Key, byte[] Bytes)> storages)
    {
        AtomicFile.WriteStream(path, stream =>
        {
            using var zip = new ZipArchive(stream, ZipArchiveMode.Create, leaveOpen: true);
            void Add(string name, byte[] bytes)
            {
                using Stream entry = zip.CreateEntry($"{archiveName}/{name}", CompressionLevel.NoCompression).Open();
                entry.Write(bytes);
            }
            Add("data.pkl", pickle);
            Add("byteorder", Encoding.ASCII.GetBytes("little"));
            foreach (var (key, bytes) in storages) Add($"data/{key}", bytes);
            Add("version", Encoding.ASCII.GetBytes("3\n"));
        });
    }
}
