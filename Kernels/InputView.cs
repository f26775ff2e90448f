using ILGPU;
using SmoothCache.Kernels.Gpu;
using Half = ILGPU.Half;

namespace SmoothCache.Kernels;

/// <summary>
/// Where a kernel reads float32 values from: a Float32 tensor as it is, or a Float16 one widened exactly (the fp16
/// path's component outputs). At most one view is non-empty; neither is an absent input. The counterpart of
/// <see cref="OutputView"/>; the choice is one uniform branch per element, for kernels where that costs nothing
/// (a GPU kernel that loads many elements takes <see cref="Floats"/> or <see cref="Halves"/> instead, cast on the host:
/// cast inside a kernel, a view is not known to be aligned and ILGPU loads it a float at a time).
/// </summary>
public struct InputView
{
    public ArrayView<float> F32;
    public ArrayView<Half> F16;

    public static InputView Of(Tensor t) => t.DType == DType.Float32 ? new InputView { F32 = t.View } : new InputView { F16 = t.HalfView };

    /// <summary><see cref="Of(Tensor)"/>, or no input.</summary>
    public static InputView OfOptional(Tensor? t) => t is null ? default : Of(t);

    public readonly long Length => F16.Length > 0 ? F16.Length : F32.Length;

    public readonly bool IsEmpty => Length == 0;

    public readonly float Load(long i) => F16.Length > 0 ? (float)F16[i] : F32[i];

    /// <summary>Whether it starts at a multiple of 4 elements, so that its float4s (16 bytes of float32, 8 of float16) are
    /// aligned (host-side check before a float4 kernel; an empty view is).</summary>
    public readonly bool Float4Aligned => (F16.Length > 0 ? ((IContiguousArrayView)F16).Index : ((IContiguousArrayView)F32).Index) % 4 == 0;

    /// <summary>The float4s of a Float32 view (empty for a Float16 one). On the host.</summary>
    public readonly Floats AsFloats() => new(F32.Length > 0 ? F32.Cast<F4>() : ArrayView<F4>.Empty);

    /// <summary>The float4s of a Float16 view, 4 halves each (empty for a Float32 one). On the host.</summary>
    public readonly Halves AsHalves() => new(F16.Length > 0 ? F16.Cast<U2>() : ArrayView<U2>.Empty);
}

/// <summary>A view of float4s as a kernel loads and stores them, whatever it holds: a kernel generic over it has one
/// instance per element type and no branch per access.</summary>
public interface IFloat4View<TSelf> where TSelf : struct, IFloat4View<TSelf>
{
    /// <summary>Float4 i.</summary>
    F4 At(int i);
    /// <summary>Stores <paramref name="value"/> as float4 i (float16 ones rounded by <typeparamref name="TRound"/>) and
    /// returns it as stored: what <see cref="At"/> reads back.</summary>
    F4 Stored<TRound>(int i, F4 value) where TRound : struct, HalfConversion.IHalfRounding;
    /// <summary>The view from float4 <paramref name="start"/> on.</summary>
    TSelf From(int start);
    bool IsEmpty();
}

/// <summary>Float32 float4s, 16 bytes each.</summary>
public readonly struct Floats(ArrayView<F4> view) : IFloat4View<Floats>
{
    private readonly ArrayView<F4> _view = view;
    public F4 At(int i) => _view[i];

    public F4 Stored<TRound>(int i, F4 value) where TRound : struct, HalfConversion.IHalfRounding
    {
        _view[i] = value;
        return value;
    }

    public Floats From(int start) => new(_view.SubView(start));
    public bool IsEmpty() => _view.Length == 0;
}

/// <summary>Float16 float4s, 8 bytes each, widened exactly.</summary>
public readonly struct Halves(ArrayView<U2> view) : IFloat4View<Halves>
{
    private readonly ArrayView<U2> _view = view;

    public F4 At(int i)
    {
        var w = _view[i];
        return new F4 { X = Vectors.LowHalf(w.X), Y = Vectors.HighHalf(w.X), Z = Vectors.LowHalf(w.Y), W = Vectors.HighHalf(w.Y) };
    }

    public F4 Stored<TRound>(int i, F4 value) where TRound : struct, HalfConversion.IHalfRounding
    {
        var round = default(TRound);
        Half x = round.Round(value.X), y = round.Round(value.Y), z = round.Round(value.Z), w = round.Round(value.W);
        _view[i] = new U2
        {
            X = Interop.FloatAsInt(x) | ((uint)Interop.FloatAsInt(y) << 16),
            Y = Interop.FloatAsInt(z) | ((uint)Interop.FloatAsInt(w) << 16),
        };
        return new F4 { X = (float)x, Y = (float)y, Z = (float)z, W = (float)w };
    }

    public Halves From(int start) => new(_view.SubView(start));
    public bool IsEmpty() => _view.Length == 0;
}
