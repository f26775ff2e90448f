
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
    private readonly TensorArena? _donor;
    private RentScope? _scope;
    private bool _disposed;

    public Backend Backend { get; }

    /// <summary>Bytes of device memory this arena holds (allocated, or taken over from its donor).</summary>
    public long AllocatedBytes { get; private set; }

    /// <param name="donor">an arena whose free buffers this one takes over before allocating (a launch
    /// recording's arena takes the backend's: the work ran once before it was recorded, so its buffers
    /// are there, and a recording then needs no new memory)</param>
    internal TensorArena(Backend backend, TensorArena? donor = null)
    {
        Backend = backend;
        _donor = donor;
    }

    /// <summary>A tensor with undefined contents.</summary>
    public Tensor Rent(DType dtype, params int[] shape)
    {
        if (_disposed)
            throw new ObjectDisposedException(nameof(Kernels.Backend), "the backend was disposed, and its arena with it");
        long n = Tensor.ElementCount(shape);
        var storage = TakeFree(dtype, n) ?? _donor?.GiveFree(dtype, n, this) ?? Allocate(dtype, n, shape);
        var tensor = new Tensor(storage, (int[])shape.Clone());
        _scope?.Rented.Add(tensor);
        return tensor;
    }

    /// <summary>
    /// Tracks every tensor rented until the scope is disposed; unless <see cref="RentScope.Keep"/> was called by then,
    /// disposes them all. For building something of many tensors (a model's weights) that must not leave them rented when
    /// it fails part way (a missing tensor late in a checkpoint). Scopes nest.
    /// </summary>
    public RentScope TrackRents() => _scope = new RentScope(this, _scope);

    public sealed class RentScope : IDisposable
    {
        private readonly TensorArena _arena;
        private readonly RentScope? _outer;
        private bool _kept, _disposed;
        internal readonly List<Tensor> Rented = new();

        internal RentScope(TensorArena arena, RentScope? outer)
        {
            _arena = arena;
            _outer = outer;
        }

        /// <summary>What was rented is the caller's now (an outer scope still tracks it).</summary>
        public void Keep() => _kept = true;

        public void Dispose()
        {
            if (_disposed) return;
            if (_arena._scope != this) throw new InvalidOperationException("rent scopes must end innermost first");
            _disposed = true;
            _arena._scope = _outer;
            if (_kept) _outer?.Rented.AddRange(Rented);
            else foreach (var tensor in Rented) tensor.Dispose();
        }
    }

    private TensorStorage? TakeFree(DType dtype, long n)
    {
        if (!_free.TryGetValue((dtype, n), out var stack) || stack.Count == 0) return null;
        var storage = stack.Pop();
        storage.Revive();
        return storage;
    }

    /// <summary>Hands a free buffer over to <paramref name="owner"/> for good, or null if none is free.</summary>
    private TensorStorage? GiveFree(DType dtype, long n, TensorArena owner)
    {
        var storage = TakeFree(dtype, n);
        if (storage is null) return null;
        _all.Remove(storage);
        AllocatedBytes -= Bytes(storage);
        storage.Arena = owner;
        owner._all.Add(storage);
        owner.AllocatedBytes += Bytes(storage);
        return storage;
    }

    private TensorStorage Allocate(DType dtype, long n, int[] shape)
    {
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
        AllocatedBytes += Bytes(fresh);
        return fresh;
    }

    private static long Bytes(TensorStorage s) => s.Capacity * (s.DType == DType.Float32 ? 4 : 2);

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

    /// <summary>Frees the device memory of every buffer that no tensor holds (the arena keeps them for the next
    /// request of their size: every shape a generation used stays, so a service whose requests vary the model, the
    /// batch or the step count calls this now and then, e.g. when <see cref="AllocatedBytes"/> passes a bound, or
    /// disposes the pipeline, which does). Returns the bytes freed. It claims the backend (<see cref="Backend.Claim"/>):
    /// called while another thread generates, it throws InvalidOperationException rather than free buffers under
    /// that thread's kernels.</summary>
    public long ReleaseFree()
    {
        if (_disposed || Backend.IsDisposed) return 0; // the backend went first: everything is freed already
        using var claim = Backend.Claim("TensorArena.ReleaseFree");
        Backend.Synchronize(); // a kernel still queued may read a buffer its tensor's owner has already returned
        long freed = 0;
        foreach (var stack in _free.Values)
            foreach (var storage in stack)
            {
                _all.Remove(storage);
                freed += Bytes(storage);
                storage.Free();
            }
        _free.Clear();
        AllocatedBytes -= freed;
        return freed;
    }

    internal void Return(TensorStorage storage)
    {
        var key = (storage.DType, storage.Capacity);
        if (!_free.TryGetValue(key, out var stack)) _free[key] = stack = new Stack<TensorStorage>();
        stack.Push(storage);
    }

    public void Dispose()
    {
        _disposed = true;
        foreach (var s in _all) s.Free();
        _all.Clear();
        _free.Clear();
        AllocatedBytes = 0;
    }
}
