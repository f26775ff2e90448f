using ILGPU;
using ILGPU.Runtime;

namespace SmoothCache.Kernels;

/// <summary>
/// Reuses device buffers: a tensor's storage returns here when its last owner disposes it and is
/// handed out again for the next request of the same dtype and element count. A denoising loop
/// allocates the same sizes every step, so after the first step nothing is allocated.
/// </summary>
public sealed class TensorArena : IDisposable
{
    private readonly Dictionary<(DType, long), Stack<TensorStorage>> _free = new();
    private readonly List<TensorStorage> _all = new();

    public Backend Backend { get; }

    /// <summary>Bytes allocated on the device by this arena so far.</summary>
    public long AllocatedBytes { get; private set; }

    internal TensorArena(Backend backend) => Backend = backend;

    /// <summary>A tensor with undefined contents.</summary>
    public Tensor Rent(DType dtype, params int[] shape)
    {
        long n = Tensor.ElementCount(shape);
        if (_free.TryGetValue((dtype, n), out var stack) && stack.Count > 0)
        {
            var storage = stack.Pop();
            storage.Revive();
            return new Tensor(storage, (int[])shape.Clone());
        }
        TensorStorage fresh;
        try
        {
            fresh = new TensorStorage(this, dtype, n);
        }
        catch (Exception e) when (e is ILGPU.Runtime.AcceleratorException or OutOfMemoryException)
        {
            throw new InsufficientMemoryException(
                $"out of device memory allocating {dtype} [{string.Join(",", shape)}] on {Backend.DeviceName} " +
                $"({AllocatedBytes >> 20} MiB already held by the arena): try a smaller batch", e);
        }
        _all.Add(fresh);
        AllocatedBytes += n * (dtype == DType.Float32 ? 4 : 2);
        return new Tensor(fresh, (int[])shape.Clone());
    }

    public Tensor Rent(params int[] shape) => Rent(DType.Float32, shape);

    /// <summary>A float32 tensor holding a copy of host data.</summary>
    public Tensor Upload(ReadOnlySpan<float> data, params int[] shape)
    {
        var t = Rent(DType.Float32, shape);
        t.CopyFrom(data);
        return t;
    }

    /// <summary>A float32 tensor of zeros.</summary>
    public Tensor Zeros(params int[] shape)
    {
        var t = Rent(DType.Float32, shape);
        Backend.Clear(t.View);
        return t;
    }

    internal void Return(TensorStorage storage)
    {
        var key = (storage.DType, storage.Capacity);
        if (!_free.TryGetValue(key, out var stack)) _free[key] = stack = new Stack<TensorStorage>();
        stack.Push(storage);
    }

    public void Dispose()
    {
        foreach (var s in _all) s.Free();
        _all.Clear();
        _free.Clear();
    }
}
