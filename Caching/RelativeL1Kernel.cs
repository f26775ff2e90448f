using ILGPU;
using SmoothCache.Kernels;

namespace SmoothCache.Caching;

/// <summary>
/// Relative L1 error on the device: sum|previous - current| / sum|current| over whole tensors (float32, or the fp16
/// path's float16 component outputs widened exactly), with float32 sums (DESIGN §3). Two launches, no barriers: each
/// thread of the first sums a strided share of the elements (compensated, so the result does not depend on the split),
/// then one thread per comparison adds up the partial sums; the host reads 2 floats per comparison in one copy.
/// </summary>
public static class RelativeL1Kernel
{
    /// <summary>Elements per thread of the first pass (the partial array is 2/ElementsPerThread of the input).</summary>
    public const int ElementsPerThread = 4096;

    public struct PartialArgs
    {
        public InputView Previous;
        public InputView Current;
        /// <summary>[threads, 2]: sum|previous - current|, sum|current| per thread.</summary>
        public ArrayView<float> Partials;
        public int Threads;
    }

    public struct TotalArgs
    {
        /// <summary>[comparisons, threads, 2].</summary>
        public ArrayView<float> Partials;
        /// <summary>[comparisons, 2].</summary>
        public ArrayView<float> Totals;
        public int Threads;
    }

    /// <summary>Thread t sums elements t, t + Threads, ... (adjacent threads read adjacent elements).</summary>
    public static void PartialSumsKernel(Index1D index, PartialArgs a)
    {
        int thread = index;
        float difference = 0, differenceLost = 0, magnitude = 0, magnitudeLost = 0;
        for (long i = thread; i < a.Current.Length; i += a.Threads)
        {
            float current = a.Current.Load(i);
            KahanAdd(ref difference, ref differenceLost, Math.Abs(a.Previous.Load(i) - current));
            KahanAdd(ref magnitude, ref magnitudeLost, Math.Abs(current));
        }
        a.Partials[2 * thread] = difference;
        a.Partials[2 * thread + 1] = magnitude;
    }

    /// <summary>Thread c adds up the partial sums of comparison c.</summary>
    public static void TotalsKernel(Index1D index, TotalArgs a)
    {
        int comparison = index;
        float difference = 0, differenceLost = 0, magnitude = 0, magnitudeLost = 0;
        long start = 2L * comparison * a.Threads;
        for (int t = 0; t < a.Threads; t++)
        {
            KahanAdd(ref difference, ref differenceLost, a.Partials[start + 2 * t]);
            KahanAdd(ref magnitude, ref magnitudeLost, a.Partials[start + 2 * t + 1]);
        }
        a.Totals[2 * comparison] = difference;
        a.Totals[2 * comparison + 1] = magnitude;
    }

    // Compensated summation keeps float32 sums of millions of terms accurate to float32 rounding.
    private static void KahanAdd(ref float sum, ref float lost, float value)
    {
        float y = value - lost;
        float t = sum + y;
        lost = (t - sum) - y;
        sum = t;
    }

    /// <summary>sum|previous - current| / sum|current| over all elements, in float64 (host reference).</summary>
    public static double Reference(ReadOnlySpan<float> previous, ReadOnlySpan<float> current)
    {
        if (previous.Length != current.Length)
            throw new ArgumentException($"relative L1 of {previous.Length} vs {current.Length} elements: lengths differ");
        double difference = 0, magnitude = 0;
        for (int i = 0; i < current.Length; i++)
        {
            difference += Math.Abs((double)previous[i] - current[i]);
            magnitude += Math.Abs((double)current[i]);
        }
        return difference / magnitude;
    }

    /// <summary>
    /// The relative L1 error of each earlier output against <paramref name="current"/> (the later step in
    /// the denominator), as float32 like the reference; one device-to-host copy for all of them.
    /// </summary>
    public static float[] Compute(Tensor current, IReadOnlyList<Tensor> previous)
    {
        foreach (var p in previous)
            if (p.DType != current.DType || p.Length != current.Length)
                throw new ArgumentException(
                    $"relative L1: earlier output {p.DType} {p.ShapeText} does not match current {current.DType} {current.ShapeText}");
        if (previous.Count == 0) return [];

        var backend = current.Backend;
        int threads = (int)Math.Max(1, (current.Length + ElementsPerThread - 1) / ElementsPerThread);
        using var partials = backend.Arena.Rent(previous.Count, threads, 2);
        using var totals = backend.Arena.Rent(previous.Count, 2);
        var partialSums = backend.Load<PartialArgs>(PartialSumsKernel);
        for (int c = 0; c < previous.Count; c++)
        {
            partialSums(threads, new PartialArgs
            {
                Previous = InputView.Of(previous[c]),
                Current = InputView.Of(current),
                Partials = partials.View.SubView(2L * threads * c, 2L * threads),
                Threads = threads,
            });
        }
        backend.Load<TotalArgs>(TotalsKernel)(previous.Count,
            new TotalArgs { Partials = partials.View, Totals = totals.View, Threads = threads });
        var sums = totals.ToArray();
        var errors = new float[previous.Count];
        for (int c = 0; c < errors.Length; c++) errors[c] = sums[2 * c] / sums[2 * c + 1];
        return errors;
    }
}
