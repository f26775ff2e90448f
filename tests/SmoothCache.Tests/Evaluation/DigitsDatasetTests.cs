using SmoothCache.Cli.Evaluation;

namespace SmoothCache.Tests.Evaluation;

public class DigitsDatasetTests
{
    // align_corners=False at scale 2: destination d samples s = (d + 0.5) * 0.5 - 0.5 clamped at 0,
    // and the upper neighbour is clamped at 7, so the effective coordinates are
    // 0, 0.25, 0.75, 1.25, ..., 6.25, 6.75, 7.
    private static double EffectiveCoordinate(int d) => Math.Min(Math.Max((d + 0.5) * 0.5 - 0.5, 0), 7);

    [Fact]
    public void Upsample16_ReproducesALinearRampAtTheAlignCornersFalseCoordinates()
    {
        var ramp = new float[64];
        for (int r = 0; r < 8; r++)
            for (int c = 0; c < 8; c++) ramp[r * 8 + c] = 8 * r + c;

        float[] up = DigitsDataset.Upsample16(ramp);

        // A few by hand: (0,0) -> 0; (1,2) -> 8*0.25 + 0.75; (2,15) -> 8*0.75 + 7; (15,15) -> 63.
        Assert.Equal(0f, up[0]);
        Assert.Equal(2.75f, up[1 * 16 + 2]);
        Assert.Equal(13f, up[2 * 16 + 15]);
        Assert.Equal(63f, up[15 * 16 + 15]);
        for (int y = 0; y < 16; y++)
            for (int x = 0; x < 16; x++)
                Assert.Equal(8 * EffectiveCoordinate(y) + EffectiveCoordinate(x), up[y * 16 + x], 6);
    }

    [Fact]
    public void Upsample16_SpreadsAnImpulseWithQuarterWeights()
    {
        var impulse = new float[64];
        impulse[3 * 8 + 4] = 16;

        float[] up = DigitsDataset.Upsample16(impulse);

        // Source row 3 feeds destination rows 5..8 with weights .25, .75, .75, .25;
        // source column 4 feeds destination columns 7..10 with the same weights.
        float[] weights = [0.25f, 0.75f, 0.75f, 0.25f];
        for (int y = 0; y < 16; y++)
            for (int x = 0; x < 16; x++)
            {
                float wy = y is >= 5 and <= 8 ? weights[y - 5] : 0;
                float wx = x is >= 7 and <= 10 ? weights[x - 7] : 0;
                Assert.Equal(16 * wy * wx, up[y * 16 + x]);
            }
        Assert.Equal(9f, up[6 * 16 + 8]);
        Assert.Equal(1f, up[5 * 16 + 7]);
    }

    [Fact]
    public void PrepareImage_ScalesZeroTo16OntoMinusOneToOne()
    {
        Assert.All(DigitsDataset.PrepareImage(Enumerable.Repeat(0, 64).ToArray()), v => Assert.Equal(-1f, v));
        Assert.All(DigitsDataset.PrepareImage(Enumerable.Repeat(8, 64).ToArray()), v => Assert.Equal(0f, v));
        Assert.All(DigitsDataset.PrepareImage(Enumerable.Repeat(16, 64).ToArray()), v => Assert.Equal(1f, v));
    }

    [Fact]
    public void Load_ReadsAllDigitsWithTheDocumentedLabelCounts()
    {
        var data = DigitsDataset.Load(DigitsDataset.DefaultPath);

        Assert.Equal(1797, data.Count);
        Assert.Equal(1797 * 256, data.Images.Length);
        int[] counts = new int[10];
        foreach (int label in data.Labels) counts[label]++;
        Assert.Equal([178, 182, 177, 183, 181, 182, 181, 179, 174, 180], counts); // data/digits/README.md
        Assert.Equal(0, data.Labels[0]);
        Assert.Equal(-1f, data.Image(0)[0]); // the first line starts with pixel value 0
        Assert.All(data.Images.ToArray(), v => Assert.InRange(v, -1f, 1f));
    }

    [Theory]
    [InlineData("0,1,2\n", "3 comma-separated values; expected 65")]
    [InlineData("{0}x,3\n", "value 64 is \"x\"; expected an integer 0..16")]
    [InlineData("{0}17,3\n", "value 64 is \"17\"; expected an integer 0..16")]
    [InlineData("{0}1,10\n", "value 65 is \"10\"; expected an integer 0..9")]
    public void Load_NamesFileLineAndExpectationForAMalformedLine(string badLine, string expected)
    {
        string good = string.Join(',', Enumerable.Repeat("0", 64)) + ",5\n";
        string path = Path.Combine(Path.GetTempPath(), $"digits-{Guid.NewGuid():N}.tes");
        File.WriteAllText(path, good + "\n" + string.Format(badLine, string.Join(',', Enumerable.Repeat("0", 63)) + ","));
        try
        {
            var error = Assert.Throws<InvalidDataException>(() => DigitsDataset.Load(path));
            Assert.Contains($"{path}:3:", error.Message);
            Assert.Contains(expected, error.Message);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void Split_IsDeterministicPerSeedAndPartitionsTheData()
    {
        var data = DigitsDataset.Load(DigitsDataset.DefaultPath);

        var (train, test) = data.Split(0.8, seed: 7);
        var (trainAgain, _) = data.Split(0.8, seed: 7);
        var (trainOther, _) = data.Split(0.8, seed: 8);

        Assert.Equal(1438, train.Count); // round(0.8 * 1797)
        Assert.Equal(1797 - 1438, test.Count);
        Assert.Equal(train.Labels, trainAgain.Labels);
        Assert.True(train.Images.SequenceEqual(trainAgain.Images));
        Assert.False(train.Images.SequenceEqual(trainOther.Images));
        int[] counts = new int[10];
        foreach (int label in train.Labels.Concat(test.Labels)) counts[label]++;
        Assert.Equal([178, 182, 177, 183, 181, 182, 181, 179, 174, 180], counts);
    }
}
