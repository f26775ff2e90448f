using SmoothCache.Sampling;
using static SmoothCache.Tests.TestSupport;

namespace SmoothCache.Tests.Sampling;

public class ImageOutputTests
{
    [Fact]
    public void ToImagesTransposesToNhwcAndClampsHalfPlusHalf()
    {
        const int b = 2, c = 3, h = 2, w = 5;
        var x = Random(3, b * c * h * w, scale: 2f);
        using var input = Cpu.Arena.Upload(x, b, c, h, w);
        using var images = ImageOutput.ToImages(input);
        Assert.Equal([b, h, w, c], images.Shape);
        var y = images.ToArray();
        for (int n = 0; n < b; n++)
            for (int ch = 0; ch < c; ch++)
                for (int i = 0; i < h; i++)
                    for (int j = 0; j < w; j++)
                    {
                        float expected = Math.Clamp(x[((n * c + ch) * h + i) * w + j] / 2f + 0.5f, 0f, 1f);
                        Assert.Equal(expected, y[((n * h + i) * w + j) * c + ch]);
                    }
        Assert.Contains(0f, y);
        Assert.Contains(1f, y);
    }

    [Fact]
    public void ImageBytesQuantiseOneImageAsNumpyToPil()
    {
        // Two 1 x 3 RGB images; the second: clamped ends, a value on a half (127.5: to even), one just above.
        float[] images = [0f, 0f, 0f, 0f, 0f, 0f, 0f, 0f, 0f, -0.2f, 1.3f, 127.5f / 255f, 128.5f / 255f, 0.2f, 1f / 255f, 0.999f, 0.5f, 1f];
        var result = new GenerationResult([], [2, 1, 1, 1], images, [2, 1, 3, 3], TimeSpan.Zero);
        Assert.Equal(new byte[9], result.ImageBytes(0));
        Assert.Equal(new byte[] { 0, 255, 128, 128, 51, 1, 255, 128, 255 }, result.ImageBytes(1));
        Assert.Throws<ArgumentOutOfRangeException>(() => result.ImageBytes(2));
        Assert.Throws<ArgumentOutOfRangeException>(() => result.ImageBytes(-1));
    }

    [Fact]
    public void ScaleMultipliesEveryElement()
    {
        var x = Random(4, 37);
        using var input = Cpu.Arena.Upload(x, 37);
        using var scaled = ImageOutput.Scale(input, 1f / 0.18215f);
        Assert.Equal(x.Select(v => v * (1f / 0.18215f)), scaled.ToArray());
    }

    [Fact]
    public void PixelSpaceModelImagesAreItsClampedLatents()
    {
        var result = TinyCase.Pipeline.Generate(new GenerationOptions { Labels = [1, 7], Steps = 2, Seed = 3 });
        Assert.Equal([2, 1, 16, 16], result.LatentShape);
        Assert.Equal([2, 16, 16, 1], result.ImageShape);
        Assert.Equal(result.Latents.Select(v => Math.Clamp(v / 2f + 0.5f, 0f, 1f)), result.Images);
    }
}
