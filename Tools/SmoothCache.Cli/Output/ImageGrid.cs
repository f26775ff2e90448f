using SkiaSharp;
using SmoothCache.Model;
using static SmoothCache.Sampling.GenerationResult;

namespace SmoothCache.Cli.Output;

/// <summary>
/// Writes samples as one labelled PNG grid: each image (NHWC in [0,1], 1 or 3 channels) is scaled
/// up by an integer factor with nearest-neighbour sampling so a 16x16 digit is clearly visible,
/// with its label underneath.
/// </summary>
public static class ImageGrid
{
    private const int MinTile = 128, LabelBand = 26, Gap = 6;

    public static void SavePng(string path, float[] images, int[] shape, IReadOnlyList<string> labels)
    {
        int b = shape[0], h = shape[1], w = shape[2], c = shape[3];
        if (labels.Count != b) throw new ArgumentException($"{labels.Count} labels for {b} images");
        int scale = Math.Max(1, (int)Math.Ceiling((double)MinTile / Math.Max(h, w)));
        int columns = b <= 10 ? b : (int)Math.Ceiling(Math.Sqrt(b));
        int rows = (b + columns - 1) / columns;
        int tileW = w * scale, tileH = h * scale;
        int width = columns * (tileW + Gap) + Gap, height = rows * (tileH + LabelBand + Gap) + Gap;

        using var bitmap = new SKBitmap(width, height, SKColorType.Rgba8888, SKAlphaType.Opaque);
        using var canvas = new SKCanvas(bitmap);
        canvas.Clear(SKColors.White);
        using var font = new SKFont(SKTypeface.Default, 16);
        using var ink = new SKPaint { Color = SKColors.Black, IsAntialias = true };
        for (int n = 0; n < b; n++)
        {
            int x0 = Gap + n % columns * (tileW + Gap), y0 = Gap + n / columns * (tileH + LabelBand + Gap);
            for (int y = 0; y < h; y++)
                for (int x = 0; x < w; x++)
                {
                    int p = ((n * h + y) * w + x) * c;
                    var color = c == 1
                        ? Gray(images[p])
                        : new SKColor(ToByte(images[p]), ToByte(images[p + 1]), ToByte(images[p + 2]));
                    using var fill = new SKPaint { Color = color };
                    canvas.DrawRect(x0 + x * scale, y0 + y * scale, scale, scale, fill);
                }
            canvas.DrawText(labels[n], x0 + tileW / 2f, y0 + tileH + LabelBand - 7, SKTextAlign.Center, font, ink);
        }
        canvas.Flush();
        using var png = bitmap.Encode(SKEncodedImageFormat.Png, 100);
        AtomicFile.WriteAllBytes(path, png.ToArray());
    }

    private static SKColor Gray(float v)
    {
        byte g = ToByte(v);
        return new SKColor(g, g, g);
    }
}
