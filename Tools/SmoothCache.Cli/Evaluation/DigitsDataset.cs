using System.Globalization;

namespace SmoothCache.Cli.Evaluation;

/// <summary>
/// The UCI optical digits (data/digits/optdigits.tes) as dit-digits saw them in training: each 8x8
/// image (ints 0..16) upsampled to 16x16 like PyTorch's
/// <c>F.interpolate(x, size=16, mode="bilinear", align_corners=False)</c>, then scaled to [-1, 1] by
/// x / 16 * 2 - 1. Images are stored flat, NCHW [Count, 1, 16, 16].
/// </summary>
public sealed class DigitsDataset
{
    public const int SourceSide = 8;
    public const int Side = 16;
    public const int PixelsPerImage = Side * Side;
    public const int ClassCount = 10;
    public const int MaxRawValue = 16;

    private readonly float[] _images;
    private readonly int[] _labels;

    public DigitsDataset(float[] images, int[] labels)
    {
        if (images.Length != labels.Length * PixelsPerImage)
            throw new ArgumentException(
                $"images hold {images.Length} floats; expected {labels.Length} labels x {PixelsPerImage} pixels = {labels.Length * PixelsPerImage}",
                nameof(images));
        foreach (int label in labels)
            if ((uint)label >= ClassCount)
                throw new ArgumentException($"label {label} is outside 0..{ClassCount - 1}", nameof(labels));
        _images = images;
        _labels = labels;
    }

    /// <summary>The copy next to the executable (the CLI project copies data/digits to its output).</summary>
    public static string DefaultPath => Path.Combine(AppContext.BaseDirectory, "data", "digits", "optdigits.tes");

    public int Count => _labels.Length;

    /// <summary>All images, flat [Count, 1, 16, 16], values in [-1, 1].</summary>
    public ReadOnlySpan<float> Images => _images;

    public IReadOnlyList<int> Labels => _labels;

    public ReadOnlySpan<float> Image(int index) => _images.AsSpan(index * PixelsPerImage, PixelsPerImage);

    /// <summary>Reads the optdigits format: per non-empty line 64 comma-separated ints 0..16 (8x8
    /// row-major), then the label 0..9. Blank lines are skipped (the file ends with one).</summary>
    public static DigitsDataset Load(string path)
    {
        if (!File.Exists(path))
            throw new FileNotFoundException($"digits file not found: {path}", path);
        var images = new List<float>();
        var labels = new List<int>();
        Span<int> raw = stackalloc int[SourceSide * SourceSide];
        int lineNumber = 0;
        foreach (string line in File.ReadLines(path))
        {
            lineNumber++;
            if (string.IsNullOrWhiteSpace(line)) continue;
            labels.Add(ParseLine(line, raw, path, lineNumber));
            images.AddRange(PrepareImage(raw));
        }
        if (labels.Count == 0)
            throw new InvalidDataException($"{path}: no images (expected lines of 64 pixel values and a label)");
        return new DigitsDataset(images.ToArray(), labels.ToArray());
    }

    private static int ParseLine(string line, Span<int> raw, string path, int lineNumber)
    {
        string[] fields = line.Split(',');
        if (fields.Length != raw.Length + 1)
            throw new InvalidDataException(
                $"{path}:{lineNumber}: {fields.Length} comma-separated values; expected {raw.Length + 1} (64 pixels 0..{MaxRawValue} and a label 0..9)");
        for (int i = 0; i < raw.Length; i++)
            raw[i] = ParseField(fields, i, MaxRawValue, path, lineNumber);
        return ParseField(fields, raw.Length, ClassCount - 1, path, lineNumber);
    }

    private static int ParseField(string[] fields, int index, int max, string path, int lineNumber)
    {
        if (!int.TryParse(fields[index].Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out int value) || value > max)
            throw new InvalidDataException(
                $"{path}:{lineNumber}: value {index + 1} is \"{fields[index]}\"; expected an integer 0..{max}");
        return value;
    }

    /// <summary>One raw 8x8 image (ints 0..16) to the model's input: upsampled to 16x16, scaled to [-1, 1].</summary>
    public static float[] PrepareImage(ReadOnlySpan<int> raw8x8)
    {
        Span<float> source = stackalloc float[SourceSide * SourceSide];
        if (raw8x8.Length != source.Length)
            throw new ArgumentException($"raw image has {raw8x8.Length} values; expected {source.Length}", nameof(raw8x8));
        for (int i = 0; i < source.Length; i++) source[i] = raw8x8[i];
        float[] image = Upsample16(source);
        for (int i = 0; i < image.Length; i++) image[i] = image[i] / MaxRawValue * 2f - 1f;
        return image;
    }

    /// <summary>
    /// Bilinear 8x8 -> 16x16 with align_corners=False: destination index d samples source coordinate
    /// s = (d + 0.5) * 0.5 - 0.5, clamped below at 0; the upper neighbour is clamped to the last row/column.
    /// Rows are blended after columns, in the same order as PyTorch's CPU kernel.
    /// </summary>
    public static float[] Upsample16(ReadOnlySpan<float> source8x8)
    {
        if (source8x8.Length != SourceSide * SourceSide)
            throw new ArgumentException($"source has {source8x8.Length} values; expected {SourceSide * SourceSide}", nameof(source8x8));
        var result = new float[PixelsPerImage];
        for (int dy = 0; dy < Side; dy++)
        {
            var (y0, y1, wy) = SourceTaps(dy);
            for (int dx = 0; dx < Side; dx++)
            {
                var (x0, x1, wx) = SourceTaps(dx);
                float top = (1f - wx) * source8x8[y0 * SourceSide + x0] + wx * source8x8[y0 * SourceSide + x1];
                float bottom = (1f - wx) * source8x8[y1 * SourceSide + x0] + wx * source8x8[y1 * SourceSide + x1];
                result[dy * Side + dx] = (1f - wy) * top + wy * bottom;
            }
        }
        return result;
    }

    private static (int Low, int High, float Weight) SourceTaps(int destination)
    {
        float source = MathF.Max((destination + 0.5f) * 0.5f - 0.5f, 0f);
        int low = (int)source;
        int high = Math.Min(low + 1, SourceSide - 1);
        return (low, high, source - low);
    }

    /// <summary>Deterministic split: a seeded Fisher-Yates shuffle of the indices, the first
    /// round(trainFraction * Count) go to Train, the rest to Test (both keep shuffled order).</summary>
    public (DigitsDataset Train, DigitsDataset Test) Split(double trainFraction, int seed)
    {
        if (!(trainFraction > 0 && trainFraction < 1))
            throw new ArgumentOutOfRangeException(nameof(trainFraction), trainFraction, "expected a fraction strictly between 0 and 1");
        int[] order = Enumerable.Range(0, Count).ToArray();
        var random = new Random(seed);
        for (int i = order.Length - 1; i > 0; i--)
        {
            int j = random.Next(i + 1);
            (order[i], order[j]) = (order[j], order[i]);
        }
        int trainCount = (int)Math.Round(trainFraction * Count);
        return (Subset(order.AsSpan(0, trainCount)), Subset(order.AsSpan(trainCount)));
    }

    private DigitsDataset Subset(ReadOnlySpan<int> indices)
    {
        var images = new float[indices.Length * PixelsPerImage];
        var labels = new int[indices.Length];
        for (int i = 0; i < indices.Length; i++)
        {
            Image(indices[i]).CopyTo(images.AsSpan(i * PixelsPerImage));
            labels[i] = _labels[indices[i]];
        }
        return new DigitsDataset(images, labels);
    }
}
