using SimdVector = System.Numerics.Vector<float>;
using MathNet.Numerics.LinearAlgebra;

namespace SmoothCache.Cli.Evaluation;

/// <summary>Training settings for <see cref="DigitClassifier.Train"/>; the defaults reach about 97%
/// held-out accuracy on an 80/20 split of the digits in a second or two on one core.</summary>
public sealed record ClassifierTrainingOptions(
    int Seed = 0,
    int Epochs = 30,
    int BatchSize = 32,
    double LearningRate = 1e-3);

/// <summary>
/// A 256 -> 128 (ReLU) -> 10 MLP over 16x16 digit images in [-1, 1], trained on the host with Adam on
/// softmax cross-entropy. It judges generated digits: <see cref="Predict"/> gives labels (class accuracy)
/// and <see cref="Features"/> the hidden activations (the feature space of the Fréchet distance).
/// Training is single-threaded and seeded; every weight update sums in a fixed order (vectorised only
/// across hidden units, never across the summed index), so a seed gives the same weights on every run.
/// </summary>
public sealed class DigitClassifier
{
    public const int InputSize = DigitsDataset.PixelsPerImage;
    public const int HiddenSize = 128;
    public const int ClassCount = DigitsDataset.ClassCount;

    private const double AdamBeta1 = 0.9;
    private const double AdamBeta2 = 0.999;
    private const double AdamEpsilon = 1e-8;

    // Layouts are input-major ([in, out]) so both passes are axpy loops over the output units.
    private readonly float[] _w1 = new float[InputSize * HiddenSize];
    private readonly float[] _b1 = new float[HiddenSize];
    private readonly float[] _w2 = new float[HiddenSize * ClassCount];
    private readonly float[] _b2 = new float[ClassCount];

    private DigitClassifier(Random random)
    {
        FillUniform(_w1, MathF.Sqrt(6f / InputSize), random); // He-uniform for the ReLU layer
        FillUniform(_w2, MathF.Sqrt(6f / (HiddenSize + ClassCount)), random); // Glorot-uniform
    }

    public static DigitClassifier Train(DigitsDataset data, ClassifierTrainingOptions? options = null)
    {
        options ??= new ClassifierTrainingOptions();
        if (options.Epochs < 1 || options.BatchSize < 1 || !(options.LearningRate > 0))
            throw new ArgumentOutOfRangeException(nameof(options), options, "expected Epochs >= 1, BatchSize >= 1, LearningRate > 0");
        var random = new Random(options.Seed);
        var model = new DigitClassifier(random);
        var parameters = new[] { model._w1, model._b1, model._w2, model._b2 };
        var gradients = parameters.Select(p => new float[p.Length]).ToArray();
        var optimizer = new Adam(parameters, options.LearningRate);

        var hidden = new float[HiddenSize];
        var hiddenGradient = new float[HiddenSize];
        var logits = new float[ClassCount];
        int[] order = Enumerable.Range(0, data.Count).ToArray();
        for (int epoch = 0; epoch < options.Epochs; epoch++)
        {
            random.Shuffle(order);
            for (int start = 0; start < order.Length; start += options.BatchSize)
            {
                int end = Math.Min(start + options.BatchSize, order.Length);
                foreach (float[] g in gradients) Array.Clear(g);
                for (int n = start; n < end; n++)
                    model.AccumulateGradients(data.Image(order[n]), data.Labels[order[n]], gradients, hidden, hiddenGradient, logits);
                optimizer.Step(gradients, 1.0 / (end - start));
            }
        }
        return model;
    }

    /// <summary>The most likely class of each image; <paramref name="images"/> is flat [N, 1, 16, 16] in [-1, 1].</summary>
    public int[] Predict(ReadOnlySpan<float> images)
    {
        int count = ImageCount(images);
        var labels = new int[count];
        var hidden = new float[HiddenSize];
        var logits = new float[ClassCount];
        for (int n = 0; n < count; n++)
        {
            Forward(images.Slice(n * InputSize, InputSize), hidden, logits);
            int best = 0;
            for (int k = 1; k < ClassCount; k++)
                if (logits[k] > logits[best]) best = k;
            labels[n] = best;
        }
        return labels;
    }

    /// <summary>Hidden-layer activations (after ReLU), one row per image: [N, 128].</summary>
    public Matrix<double> Features(ReadOnlySpan<float> images)
    {
        int count = ImageCount(images);
        var features = Matrix<double>.Build.Dense(count, HiddenSize);
        var hidden = new float[HiddenSize];
        for (int n = 0; n < count; n++)
        {
            Hidden(images.Slice(n * InputSize, InputSize), hidden);
            for (int j = 0; j < HiddenSize; j++) features[n, j] = hidden[j];
        }
        return features;
    }

    /// <summary>Fraction of <paramref name="data"/> whose predicted label equals its label.</summary>
    public double Accuracy(DigitsDataset data)
    {
        int[] predicted = Predict(data.Images);
        int correct = 0;
        for (int n = 0; n < predicted.Length; n++)
            if (predicted[n] == data.Labels[n]) correct++;
        return (double)correct / predicted.Length;
    }

    private static int ImageCount(ReadOnlySpan<float> images)
    {
        if (images.Length == 0 || images.Length % InputSize != 0)
            throw new ArgumentException($"images hold {images.Length} floats; expected a positive multiple of {InputSize} (flat [N, 1, 16, 16])", nameof(images));
        return images.Length / InputSize;
    }

    private void Hidden(ReadOnlySpan<float> image, Span<float> hidden)
    {
        _b1.CopyTo(hidden);
        for (int i = 0; i < InputSize; i++)
            Axpy(image[i], _w1.AsSpan(i * HiddenSize, HiddenSize), hidden);
        for (int j = 0; j < HiddenSize; j++) hidden[j] = MathF.Max(hidden[j], 0f);
    }

    private void Forward(ReadOnlySpan<float> image, Span<float> hidden, Span<float> logits)
    {
        Hidden(image, hidden);
        _b2.CopyTo(logits);
        for (int j = 0; j < HiddenSize; j++)
            Axpy(hidden[j], _w2.AsSpan(j * ClassCount, ClassCount), logits);
    }

    /// <summary>Adds d(cross-entropy)/d(parameter) for one image to <paramref name="gradients"/> (w1, b1, w2, b2).</summary>
    private void AccumulateGradients(ReadOnlySpan<float> image, int label, float[][] gradients,
        float[] hidden, float[] hiddenGradient, float[] logits)
    {
        Forward(image, hidden, logits);
        // Softmax minus one-hot is the gradient of cross-entropy with respect to the logits;
        // it overwrites the logits in place.
        float max = logits.Max();
        float sum = 0f;
        for (int k = 0; k < ClassCount; k++) sum += logits[k] = MathF.Exp(logits[k] - max);
        for (int k = 0; k < ClassCount; k++) logits[k] /= sum;
        logits[label] -= 1f;

        float[] w1Gradient = gradients[0], b1Gradient = gradients[1], w2Gradient = gradients[2], b2Gradient = gradients[3];
        Axpy(1f, logits, b2Gradient);
        for (int j = 0; j < HiddenSize; j++)
        {
            Axpy(hidden[j], logits, w2Gradient.AsSpan(j * ClassCount, ClassCount));
            float back = 0f;
            for (int k = 0; k < ClassCount; k++) back += _w2[j * ClassCount + k] * logits[k];
            hiddenGradient[j] = hidden[j] > 0f ? back : 0f; // ReLU passes gradient only where active
        }
        Axpy(1f, hiddenGradient, b1Gradient);
        for (int i = 0; i < InputSize; i++)
            Axpy(image[i], hiddenGradient, w1Gradient.AsSpan(i * HiddenSize, HiddenSize));
    }

    /// <summary>y += a * x, element by element (no reduction, so results do not depend on vector width).</summary>
    private static void Axpy(float a, ReadOnlySpan<float> x, Span<float> y)
    {
        int i = 0;
        var scale = new SimdVector(a);
        for (; i <= y.Length - SimdVector.Count; i += SimdVector.Count)
            (new SimdVector(x.Slice(i)) * scale + new SimdVector(y.Slice(i))).CopyTo(y.Slice(i));
        for (; i < y.Length; i++) y[i] += a * x[i];
    }

    private static void FillUniform(float[] values, float limit, Random random)
    {
        for (int i = 0; i < values.Length; i++)
            values[i] = (float)((random.NextDouble() * 2 - 1) * limit);
    }

    /// <summary>Adam (Kingma and Ba) with bias correction; moments kept in double.</summary>
    private sealed class Adam(float[][] parameters, double learningRate)
    {
        private readonly double[][] _first = parameters.Select(p => new double[p.Length]).ToArray();
        private readonly double[][] _second = parameters.Select(p => new double[p.Length]).ToArray();
        private int _step;

        public void Step(float[][] gradientSums, double gradientScale)
        {
            _step++;
            double stepSize = learningRate * Math.Sqrt(1 - Math.Pow(AdamBeta2, _step)) / (1 - Math.Pow(AdamBeta1, _step));
            for (int p = 0; p < parameters.Length; p++)
            {
                float[] weights = parameters[p];
                double[] first = _first[p], second = _second[p];
                float[] gradient = gradientSums[p];
                for (int i = 0; i < weights.Length; i++)
                {
                    double g = gradient[i] * gradientScale;
                    first[i] = AdamBeta1 * first[i] + (1 - AdamBeta1) * g;
                    second[i] = AdamBeta2 * second[i] + (1 - AdamBeta2) * g * g;
                    weights[i] -= (float)(stepSize * first[i] / (Math.Sqrt(second[i]) + AdamEpsilon));
                }
            }
        }
    }
}
