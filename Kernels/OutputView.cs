using ILGPU;
using Half = ILGPU.Half;

namespace SmoothCache.Kernels;

/// <summary>
/// Where a kernel writes its float32 results: a Float32 tensor as they are, or a Float16 tensor rounded
/// to nearest even (the fp16 path's activations, ready for the next GEMM). Exactly one view is non-empty.
/// </summary>
public struct OutputView
{
    public ArrayView<float> F32;
    public ArrayView<Half> F16;

    public static OutputView Of(Tensor t) => t.DType == DType.Float32 ? new OutputView { F32 = t.View } : new OutputView { F16 = t.HalfView };

    /// <summary>The same elements to read (a Float16 one widened exactly): for an output updated in place, such as the
    /// residual stream x that the adaLN and <see cref="GatedResidual"/> add to.</summary>
    public readonly InputView AsInput => new() { F32 = F32, F16 = F16 };

    /// <summary>The first <paramref name="length"/> elements of the same output.</summary>
    public readonly OutputView Take(long length) =>
        F16.Length > 0 ? new OutputView { F16 = F16.SubView(0, length) } : new OutputView { F32 = F32.SubView(0, length) };

    public readonly long Length => F16.Length > 0 ? F16.Length : F32.Length;

    /// <summary>The same output from element <paramref name="start"/> on: a kernel moves to a row once, then stores at
    /// constant offsets from it (folded into the store instructions).</summary>
    public readonly OutputView From(long start) =>
        F16.Length > 0 ? new OutputView { F16 = F16.SubView(start) } : new OutputView { F32 = F32.SubView(start) };

    public readonly void Store(long i, float value) => Store<HalfConversion.RoundingOnAnyAccelerator>(i, value);

    /// <summary>Element i, a Float16 output's rounded by <typeparamref name="TRound"/>.</summary>
    public readonly void Store<TRound>(long i, float value) where TRound : struct, HalfConversion.IHalfRounding
    {
        if (F16.Length > 0) F16[i] = default(TRound).Round(value);
        else F32[i] = value;
    }

    /// <summary>Elements i and i + 1 in one store (8 bytes of float32 or 4 of float16). i must be even and
    /// the view must start at an even element (<see cref="PairsAligned"/>).
    /// A Float16 output's are rounded by <typeparamref name="TRound"/>.</summary>
    public readonly void StorePair<TRound>(long i, float first, float second) where TRound : struct, HalfConversion.IHalfRounding
    {
        if (F16.Length > 0) StoreHalfPair<TRound>(i >> 1, first, second);
        else StoreFloatPair(i >> 1, first, second);
    }

    /// <summary>Elements 2 pair and 2 pair + 1 of a Float16 output in one 4-byte store, rounded by <typeparamref name="TRound"/>.</summary>
    public readonly void StoreHalfPair<TRound>(long pair, float first, float second) where TRound : struct, HalfConversion.IHalfRounding =>
        F16.Cast<uint>()[pair] = Interop.FloatAsInt(default(TRound).Round(first)) | ((uint)Interop.FloatAsInt(default(TRound).Round(second)) << 16);

    /// <summary>Elements 2 pair and 2 pair + 1 of a Float32 output in one 8-byte store.</summary>
    public readonly void StoreFloatPair(long pair, float first, float second) =>
        F32.Cast<Gpu.U2>()[pair] = new Gpu.U2 { X = Interop.FloatAsInt(first), Y = Interop.FloatAsInt(second) };

    /// <summary>Whether element pairs (2j, 2j + 1) are aligned for <see cref="StorePair"/>: the view starts at an even element.</summary>
    public readonly bool PairsAligned => (F16.Length > 0 ? ((IContiguousArrayView)F16).Index : ((IContiguousArrayView)F32).Index) % 2 == 0;
}
