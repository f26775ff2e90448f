using ILGPU;
using ILGPU.Runtime;
using Half = ILGPU.Half;

namespace SmoothCache.Kernels;

public enum DType { Float32, Float16 }

/// <summary>
/// A device buffer with a shape. Row-major; activations are [B, T, D], images NCHW.
/// Storage is reference-counted: <see cref="Share"/> adds an owner, <see cref="Dispose"/> drops one,
/// and the buffer goes back to the arena only when the last owner is gone — so a tensor held by a
/// cache is never recycled while held.
/// </summary>
public sealed class Tensor : IDisposable
{
    private readonly TensorStorage _storage;
    /// <summary>Where this tensor's elements start in the storage (non-zero for <see cref="Rows"/>).</summary>
    private readonly long _offset;
    private bool _disposed;

    /// <summary>Sizes of the dimensions, outermost first (row-major: the last dimension's elements lie side by side).</summary>
    public int[] Shape { get; }
    /// <summary>What an element is stored as on the device: Float32 or Float16.</summary>
    public DType DType => _storage.DType;
    /// <summary>Elements: the product of <see cref="Shape"/>.</summary>
    public long Length { get; }
    /// <summary>The backend whose device memory holds the tensor.</summary>
    public Backend Backend => _storage.Arena.Backend;

    internal Tensor(TensorStorage storage, int[] shape, long offset = 0)
    {
        _storage = storage;
        Shape = shape;
        Length = ElementCount(shape);
        _offset = offset;
        if (offset + Length > storage.Capacity)
            throw new ArgumentException($"shape [{string.Join(",", shape)}] at element {offset} exceeds storage of {storage.Capacity} elements");
    }

    public static long ElementCount(int[] shape)
    {
        long n = 1;
        foreach (var s in shape)
        {
            if (s < 0) throw new ArgumentException($"negative dimension in shape [{string.Join(",", shape)}]");
            n *= s;
        }
        return n;
    }

    /// <summary>The float32 elements (exactly Length of them).</summary>
    public ArrayView<float> View
    {
        get
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (DType != DType.Float32) throw new InvalidOperationException($"tensor is {DType}, not Float32");
            return _storage.F32!.View.SubView(_offset, Length);
        }
    }

    /// <summary>The float16 elements (exactly Length of them).</summary>
    public ArrayView<Half> HalfView
    {
        get
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (DType != DType.Float16) throw new InvalidOperationException($"tensor is {DType}, not Float16");
            return _storage.F16!.View.SubView(_offset, Length);
        }
    }

    public int Dim(int axis) => Shape[axis < 0 ? Shape.Length + axis : axis];

    public string ShapeText => "[" + string.Join(",", Shape) + "]";

    /// <summary>Another owner of the same storage (and the same shape).</summary>
    public Tensor Share() => Reshape(Shape);

    /// <summary>A view with another shape of the same element count; it is an owner of the storage.</summary>
    public Tensor Reshape(params int[] shape)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (ElementCount(shape) != Length)
            throw new ArgumentException($"cannot reshape {ShapeText} to [{string.Join(",", shape)}]");
        _storage.AddRef();
        return new Tensor(_storage, (int[])shape.Clone(), _offset);
    }

    /// <summary>Rows [start, start + count) of the first axis, in place: another owner of the storage whose
    /// elements are that contiguous range (e.g. one step's batch of a tensor holding several steps' rows).</summary>
    public Tensor Rows(int start, int count)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        int rows = Dim(0);
        if (start < 0 || count < 0 || start + count > rows)
            throw new ArgumentOutOfRangeException(nameof(start), $"rows [{start}, {start + count}) are outside the {rows} rows of {ShapeText}");
        var shape = (int[])Shape.Clone();
        shape[0] = count;
        long rowLength = rows == 0 ? 0 : Length / rows;
        _storage.AddRef();
        return new Tensor(_storage, shape, _offset + start * rowLength);
    }

    /// <summary>Copies to the host as float32 (waits for pending work).</summary>
    public float[] ToArray()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        Backend.Synchronize();
        if (DType == DType.Float32) return View.GetAsArray();
        var h = HalfView.GetAsArray();
        var f = new float[h.Length];
        for (int i = 0; i < h.Length; i++) f[i] = (float)h[i];
        return f;
    }

    /// <summary>Overwrites the contents from a host array of exactly Length float32 values.</summary>
    public void CopyFrom(ReadOnlySpan<float> data)
    {
        if (data.Length != Length) throw new ArgumentException($"expected {Length} values for {ShapeText}, got {data.Length}");
        if (DType == DType.Float32)
        {
            Backend.Upload(View, data.ToArray());
        }
        else
        {
            var h = new Half[data.Length];
            for (int i = 0; i < h.Length; i++) h[i] = (Half)data[i];
            Backend.Upload(HalfView, h);
        }
    }

    /// <summary>Gives up this owner's hold: the storage returns to the arena when its last owner (see <see cref="Share"/>)
    /// lets go. Later reads of this tensor throw <see cref="ObjectDisposedException"/>; a second call does nothing.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _storage.Release();
    }
}

internal sealed class TensorStorage
{
    private int _refs = 1;
    /// <summary>The arena it returns to; changes only when a recording's arena takes it over while free.</summary>
    public TensorArena Arena { get; set; }
    public DType DType { get; }
    public long Capacity { get; }
    public MemoryBuffer1D<float, Stride1D.Dense>? F32 { get; }
    public MemoryBuffer1D<Half, Stride1D.Dense>? F16 { get; }

    public TensorStorage(TensorArena arena, DType dtype, long capacity)
    {
        Arena = arena;
        DType = dtype;
        Capacity = capacity;
        var acc = arena.Backend.Accelerator;
        // Zero-length buffers are not allowed by every accelerator.
        long n = Math.Max(1, capacity);
        if (dtype == DType.Float32) F32 = acc.Allocate1D<float>(n);
        else F16 = acc.Allocate1D<Half>(n);
    }

    public void Revive() => _refs = 1;

    public void AddRef()
    {
        if (_refs <= 0) throw new InvalidOperationException("storage already returned to the arena");
        _refs++;
    }

    public void Release()
    {
        if (--_refs == 0) Arena.Return(this);
    }

    public void Free()
    {
        F32?.Dispose();
        F16?.Dispose();
    }
}
