using System.Collections;
using System.Numerics;
using Razorvine.Pickle;

namespace SmoothCache.Model.Checkpoints;

/// <summary>
/// A storage a torch.save pickle refers to by persistent id: its dtype, file key and element count.
/// <paramref name="TensorCounter"/> belongs to one load and numbers the tensors built on it.
/// </summary>
internal sealed record TorchStorage(string DType, string Key, long ElementCount, TorchPickle.Counter TensorCounter);

/// <summary>
/// What <c>torch._utils._rebuild_tensor_v2</c> describes: a strided view of a storage.
/// <paramref name="Sequence"/> is the order the pickle built it in, which is the state dict's order
/// (the unpickler's dicts do not keep insertion order).
/// </summary>
internal sealed record TorchTensor(TorchStorage Storage, long Offset, int[] Shape, long[] Stride, int Sequence);

/// <summary>
/// Loads the pickle of a torch.save zip checkpoint into plain descriptions (no tensor data, no code):
/// only the globals a state dict needs are accepted (checked by <see cref="PickleGlobalScanner"/>
/// first), and each maps to a constructor that builds a description record.
/// </summary>
internal static class TorchPickle
{
    private const string OrderedDict = "collections.OrderedDict";
    private const string RebuildTensor = "torch._utils._rebuild_tensor_v2";

    private static readonly Dictionary<string, string> StorageDTypes = new()
    {
        ["torch.FloatStorage"] = StoredDTypes.F32,
        ["torch.HalfStorage"] = StoredDTypes.F16,
        ["torch.BFloat16Storage"] = StoredDTypes.BF16,
        ["torch.DoubleStorage"] = StoredDTypes.F64,
    };

    public static readonly IReadOnlySet<string> AllowedGlobals =
        new HashSet<string>(StorageDTypes.Keys.Append(OrderedDict).Append(RebuildTensor), StringComparer.Ordinal);

    /// <summary>The storage class (in module torch) each dtype is pickled as.</summary>
    public static string StorageClass(string dtype) => StorageDTypes.Single(pair => pair.Value == dtype).Key["torch.".Length..];

    static TorchPickle()
    {
        // Razorvine keeps constructors in one process-wide table, keyed "module.name"; registering
        // once here is enough for every unpickler.
        Register(OrderedDict, new OrderedDictConstructor());
        Register(RebuildTensor, new RebuildTensorConstructor());
        foreach (var (storageClass, dtype) in StorageDTypes)
            Register(storageClass, new StorageTypeConstructor(storageClass, dtype));
    }

    private static void Register(string qualifiedName, IObjectConstructor constructor)
    {
        int dot = qualifiedName.LastIndexOf('.');
        Unpickler.registerConstructor(qualifiedName[..dot], qualifiedName[(dot + 1)..], constructor);
    }

    /// <summary>Refuses disallowed globals (<see cref="PickleGlobalScanner.RefusedGlobalException"/>; weights of an element type not read, as
    /// <see cref="InvalidDataException"/>), then unpickles. Throws <see cref="InvalidDataException"/> or <see cref="PickleException"/> on a malformed pickle.</summary>
    public static object? Load(byte[] pickle)
    {
        try
        {
            PickleGlobalScanner.Check(pickle, AllowedGlobals);
        }
        catch (PickleGlobalScanner.RefusedGlobalException e) when (e.Global.StartsWith("torch.", StringComparison.Ordinal) && e.Global.EndsWith("Storage", StringComparison.Ordinal))
        {
            // A tensor of another element type: say so, not only that its storage class is unknown.
            throw new InvalidDataException($"weights stored as {e.Global}, which is not supported (expected {string.Join(", ", StorageDTypes.Keys.Order())})", e);
        }
        using var unpickler = new StateDictUnpickler();
        return unpickler.loads(pickle);
    }

    public static long ToInt64(object? value, string what) => value switch
    {
        int i => i,
        long l => l,
        BigInteger b when b >= long.MinValue && b <= long.MaxValue => (long)b,
        _ => throw new PickleException($"{what} is {Describe(value)}, expected an integer"),
    };

    public static string Describe(object? value) => value switch
    {
        null => "None",
        string s => $"the string '{s}'",
        _ => $"a {value.GetType().Name}",
    };

    internal sealed class Counter
    {
        private int _next;

        public int Next() => _next++;
    }

    /// <summary>torch's persistent ids for storages: ('storage', storage class, key, location, element count).</summary>
    private sealed class StateDictUnpickler : Unpickler
    {
        private readonly Counter _tensors = new();

        protected override object persistentLoad(object pid)
        {
            if (pid is not object[] { Length: 5 } fields || fields[0] is not "storage")
                throw new PickleException($"persistent id is {Describe(pid)}, expected ('storage', type, key, location, numel)");
            if (fields[1] is not StorageTypeConstructor storageType)
                throw new PickleException($"persistent id storage type is {Describe(fields[1])}");
            if (fields[2] is not string key)
                throw new PickleException($"persistent id key is {Describe(fields[2])}, expected a string");
            long count = ToInt64(fields[4], "persistent id element count");
            if (count < 0)
                throw new PickleException($"storage '{key}' has a negative element count {count}");
            return new TorchStorage(storageType.DType, key, count, _tensors);
        }
    }

    /// <summary>An OrderedDict; the unpickler applies its instance attributes through __setstate__.</summary>
    private sealed class PickledOrderedDict : Hashtable
    {
        // A state dict's only attribute is `_metadata` (module versions), which carries no weights.
        public void __setstate__(Hashtable state) { }
    }

    private sealed class OrderedDictConstructor : IObjectConstructor
    {
        public object construct(object[] args) => args.Length == 0
            ? new PickledOrderedDict()
            : throw new PickleException($"OrderedDict called with {args.Length} arguments, expected none");
    }

    private sealed class RebuildTensorConstructor : IObjectConstructor
    {
        // (storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
        public object construct(object[] args)
        {
            if (args.Length < 4)
                throw new PickleException($"_rebuild_tensor_v2 called with {args.Length} arguments, expected at least 4");
            if (args[0] is not TorchStorage storage)
                throw new PickleException($"_rebuild_tensor_v2 storage is {Describe(args[0])}");
            long offset = ToInt64(args[1], "storage offset");
            if (args[2] is not object[] size || args[3] is not object[] stride || size.Length != stride.Length)
                throw new PickleException("_rebuild_tensor_v2 size and stride are not tuples of one length");
            var shape = new int[size.Length];
            for (int i = 0; i < size.Length; i++)
            {
                long dim = ToInt64(size[i], "size");
                if (dim < 0 || dim > int.MaxValue)
                    throw new PickleException($"size {dim} is out of range");
                shape[i] = (int)dim;
            }
            return new TorchTensor(storage, offset, shape, stride.Select(s => ToInt64(s, "stride")).ToArray(), storage.TensorCounter.Next());
        }
    }

    /// <summary>A storage class global; it only appears inside persistent ids, never called.</summary>
    private sealed class StorageTypeConstructor(string name, string dtype) : IObjectConstructor
    {
        public string DType { get; } = dtype;

        public object construct(object[] args) => throw new PickleException($"{name} called as a function");
    }
}
