namespace SmoothCache.Cli.Evaluation;

/// <summary>Pixel-wise distances between an image batch and its reference (same length, any layout).
/// Sums run in double.</summary>
public static class ImageMetrics
{
    /// <summary>||a - reference||_2 / ||reference||_2. A zero reference gives 0 when a is also zero,
    /// otherwise +infinity.</summary>
    public static double RelativeL2(ReadOnlySpan<float> a, ReadOnlySpan<float> reference)
    {
        CheckLengths(a, reference);
        double difference = 0, norm = 0;
        for (int i = 0; i < a.Length; i++)
        {
            double d = (double)a[i] - reference[i];
            difference += d * d;
            norm += (double)reference[i] * reference[i];
        }
        if (norm == 0) return difference == 0 ? 0 : double.PositiveInfinity;
        return Math.Sqrt(difference / norm);
    }

    /// <summary>Peak signal-to-noise ratio in dB: 10 log10(dataRange^2 / MSE), for images whose values
    /// span <paramref name="dataRange"/> (1 for [0, 1] images, 2 for [-1, 1]). Identical inputs
    /// (MSE = 0) give double.PositiveInfinity; <see cref="EvalTable.Number"/> prints it as "inf".</summary>
    public static double Psnr(ReadOnlySpan<float> a, ReadOnlySpan<float> reference, double dataRange = 1.0)
    {
        CheckLengths(a, reference);
        if (!(dataRange > 0))
            throw new ArgumentOutOfRangeException(nameof(dataRange), dataRange, "expected a positive data range");
        double squares = 0;
        for (int i = 0; i < a.Length; i++)
        {
            double d = (double)a[i] - reference[i];
            squares += d * d;
        }
        if (squares == 0) return double.PositiveInfinity;
        return 10 * Math.Log10(dataRange * dataRange / (squares / a.Length));
    }

    private static void CheckLengths(ReadOnlySpan<float> a, ReadOnlySpan<float> reference)
    {
        if (a.Length != reference.Length || a.Length == 0)
            throw new ArgumentException($"images hold {a.Length} and {reference.Length} values; expected the same, non-zero length");
    }
}
