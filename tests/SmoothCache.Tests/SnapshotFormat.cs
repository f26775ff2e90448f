using System.Globalization;

namespace SmoothCache.Tests;

/// <summary>
/// Readable, rounded renderings of outputs for snapshot tests: per image its mean and standard
/// deviation rounded to 4 decimals and a character picture with 5 grey levels. Changes below those
/// resolutions do not show; anything a person would notice does, as a line diff.
/// </summary>
public static class SnapshotFormat
{
    private const string Levels = " .:o#";

    /// <summary>Images [B, H, W] (one channel) with values mapped from [lo, hi] to the 5 levels.</summary>
    public static List<object> Images(float[] values, int batch, int height, int width, float lo, float hi)
    {
        var list = new List<object>();
        int size = height * width;
        for (int b = 0; b < batch; b++)
        {
            var pixels = values.AsSpan(b * size, size).ToArray();
            double mean = pixels.Average(v => (double)v);
            double std = Math.Sqrt(pixels.Average(v => (v - mean) * (v - mean)));
            var rows = new List<string>();
            for (int y = 0; y < height; y++)
            {
                var chars = new char[width];
                for (int x = 0; x < width; x++)
                {
                    double t = (pixels[y * width + x] - lo) / (hi - lo);
                    chars[x] = Levels[Math.Clamp((int)(t * Levels.Length), 0, Levels.Length - 1)];
                }
                rows.Add("|" + new string(chars) + "|");
            }
            list.Add(new
            {
                Mean = Math.Round(mean, 4).ToString("F4", CultureInfo.InvariantCulture),
                Std = Math.Round(std, 4).ToString("F4", CultureInfo.InvariantCulture),
                Picture = rows,
            });
        }
        return list;
    }
}
