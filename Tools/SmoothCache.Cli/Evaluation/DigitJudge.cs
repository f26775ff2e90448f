using MathNet.Numerics.LinearAlgebra;

namespace SmoothCache.Cli.Evaluation;

/// <summary>
/// Judges generated digits with a <see cref="DigitClassifier"/> trained at eval time on an 80/20 split
/// of the digits data: class accuracy against the requested labels, and the Fréchet distance between
/// the classifier's hidden features of the generated digits and of every real digit (the real set is the
/// whole dataset, prepared as the classifier sees it: 16x16 in [-1, 1]).
/// </summary>
public sealed class DigitJudge
{
    public const double TrainFraction = 0.8;

    private readonly DigitClassifier _classifier;
    private readonly DigitsDataset _heldOut;
    private readonly Vector<double> _realMean;
    private readonly Matrix<double> _realCovariance;

    public double HeldOutAccuracy { get; }
    public int HeldOutCount => _heldOut.Count;
    public int TrainCount { get; }
    public int RealCount { get; }

    private DigitJudge(DigitsDataset all, int seed)
    {
        var (train, test) = all.Split(TrainFraction, seed);
        _classifier = DigitClassifier.Train(train, new ClassifierTrainingOptions(Seed: seed));
        _heldOut = test;
        TrainCount = train.Count;
        RealCount = all.Count;
        HeldOutAccuracy = _classifier.Accuracy(test);
        (_realMean, _realCovariance) = FrechetDistance.Statistics(_classifier.Features(all.Images));
    }

    /// <summary>Trains the judge on <paramref name="data"/> (split and training seeded by <paramref name="seed"/>).</summary>
    public static DigitJudge Train(DigitsDataset data, int seed = 0) => new(data, seed);

    /// <summary>Pipeline images (NHWC, 16x16x1, values in [0, 1]) as the classifier's input: flat
    /// [N, 1, 16, 16] in [-1, 1] (one channel, so NHWC and NCHW coincide).</summary>
    public static float[] ToClassifierInput(ReadOnlySpan<float> unitImages)
    {
        if (unitImages.Length == 0 || unitImages.Length % DigitsDataset.PixelsPerImage != 0)
            throw new ArgumentException(
                $"images hold {unitImages.Length} values; expected a positive multiple of {DigitsDataset.PixelsPerImage} (16x16x1 digits)");
        var input = new float[unitImages.Length];
        for (int i = 0; i < input.Length; i++) input[i] = unitImages[i] * 2f - 1f;
        return input;
    }

    /// <summary>Fraction of images (pipeline images, [0, 1]) the classifier assigns their label.</summary>
    public double Accuracy(ReadOnlySpan<float> unitImages, IReadOnlyList<int> labels)
    {
        int[] predicted = _classifier.Predict(ToClassifierInput(unitImages));
        if (predicted.Length != labels.Count)
            throw new ArgumentException($"{predicted.Length} images for {labels.Count} labels");
        return (double)predicted.Where((p, n) => p == labels[n]).Count() / predicted.Length;
    }

    /// <summary>Fréchet distance of the images' features to the real digits' features; NaN for fewer
    /// than 2 images (no covariance).</summary>
    public double FrechetToReal(ReadOnlySpan<float> unitImages) =>
        FrechetOfInput(ToClassifierInput(unitImages));

    /// <summary>
    /// What the Fréchet distance of <paramref name="count"/> real digits is (the first of the held-out
    /// split, at most all of it): with few samples the covariance estimate alone makes the distance
    /// large, so generated sets are to be compared with this floor at the same count.
    /// </summary>
    public double RealFloor(int count)
    {
        int n = Math.Min(count, _heldOut.Count);
        return FrechetOfInput(_heldOut.Images[..(n * DigitsDataset.PixelsPerImage)].ToArray());
    }

    private double FrechetOfInput(float[] input)
    {
        if (input.Length < 2 * DigitsDataset.PixelsPerImage) return double.NaN;
        var (mean, covariance) = FrechetDistance.Statistics(_classifier.Features(input));
        return FrechetDistance.FromStatistics(_realMean, _realCovariance, mean, covariance);
    }
}
