using SmoothCache.Cli.Evaluation;

namespace SmoothCache.Tests.Evaluation;

public class DigitClassifierTests
{
    private static readonly (DigitsDataset Train, DigitsDataset Test) Digits =
        DigitsDataset.Load(DigitsDataset.DefaultPath).Split(0.8, seed: 0);

    [Fact]
    public void Train_ReachesAtLeast95PercentHeldOutAccuracy()
    {
        var classifier = DigitClassifier.Train(Digits.Train, new ClassifierTrainingOptions(Seed: 1));

        Assert.True(classifier.Accuracy(Digits.Test) >= 0.95, $"held-out accuracy {classifier.Accuracy(Digits.Test):P2}");
    }

    [Fact]
    public void Train_IsDeterministicForAFixedSeed()
    {
        var options = new ClassifierTrainingOptions(Seed: 3, Epochs: 2);
        var first = DigitClassifier.Train(Digits.Train, options);
        var second = DigitClassifier.Train(Digits.Train, options);
        var other = DigitClassifier.Train(Digits.Train, options with { Seed = 4 });

        Assert.Equal(first.Predict(Digits.Test.Images), second.Predict(Digits.Test.Images));
        Assert.Equal(first.Features(Digits.Test.Images), second.Features(Digits.Test.Images));
        Assert.NotEqual(first.Features(Digits.Test.Images), other.Features(Digits.Test.Images));
    }

    [Fact]
    public void Features_AreTheNonNegativeHiddenActivationsOfEachImage()
    {
        var classifier = DigitClassifier.Train(Digits.Train, new ClassifierTrainingOptions(Seed: 3, Epochs: 1));

        var features = classifier.Features(Digits.Test.Images);
        var firstImageOnly = classifier.Features(Digits.Test.Image(0));

        Assert.Equal(Digits.Test.Count, features.RowCount);
        Assert.Equal(DigitClassifier.HiddenSize, features.ColumnCount);
        Assert.True(features.Enumerate().All(v => v >= 0));
        Assert.Equal(features.Row(0), firstImageOnly.Row(0));
    }

    [Fact]
    public void Predict_RejectsAPartialImage()
    {
        var classifier = DigitClassifier.Train(Digits.Train, new ClassifierTrainingOptions(Epochs: 1));

        var error = Assert.Throws<ArgumentException>(() => classifier.Predict(new float[300]));
        Assert.Contains("300", error.Message);
    }
}
