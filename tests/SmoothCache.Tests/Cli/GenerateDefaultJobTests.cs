using Snapshooter.Xunit;
using SmoothCache.Cli.Evaluation;
using SmoothCache.Model.Checkpoints;
using static SmoothCache.Tests.Cli.CliRunner;

namespace SmoothCache.Tests.Cli;

public class GenerateDefaultJobTests
{
    /// <summary>The main job: `smoothcache generate` with no arguments draws ten recognisable digits.</summary>
    [Fact]
    public void TheDefaultJobDrawsTenRecognisableDigits()
    {
        using var temp = new TempFolder();
        string png = temp.File("samples.png"), images = temp.File("images.safetensors");
        var result = Run("generate", "--device", "cpu", "--out", png, "--save-images", images);
        Assert.Equal(0, result.ExitCode);
        Assert.Equal([0x89, (byte)'P', (byte)'N', (byte)'G'], File.ReadAllBytes(png)[..4]);

        using var file = SafetensorsFile.Open(images);
        var pixels = file.ReadFloat32("images", 10, 16, 16, 1);
        // Recognisable: a digit classifier trained on the real digits reads the intended labels.
        var classifier = DigitClassifier.Train(DigitsDataset.Load(DigitsDataset.DefaultPath));
        var asModelRange = pixels.Select(v => v * 2f - 1f).ToArray();
        var predicted = classifier.Predict(asModelRange);
        Assert.Equal(Enumerable.Range(0, 10), predicted);
        Snapshot.Match(SnapshotFormat.Images(pixels, 10, 16, 16, 0f, 1f));
    }
}
