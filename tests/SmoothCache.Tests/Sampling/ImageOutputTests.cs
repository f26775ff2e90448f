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
