using MathNet.Numerics.LinearAlgebra;
using SmoothCache.Cli.Evaluation;

namespace SmoothCache.Tests.Evaluation;

public class FrechetDistanceTests
{
    private static Matrix<double> RandomFeatures(int rows, int columns, int seed)
    {
        var random = new Random(seed);
        return Matrix<double>.Build.Dense(rows, columns, (_, j) => (j + 1) * random.NextDouble() + j);
    }

    [Theory]
    [InlineData(200, 8)]
    [InlineData(5, 10)] // fewer samples than dimensions: a singular covariance
    public void Compute_OfASetWithItselfIsZero(int rows, int columns)
    {
        var features = RandomFeatures(rows, columns, seed: rows);
        double scale = FrechetDistance.Statistics(features).Covariance.Trace();

        double distance = FrechetDistance.Compute(features, features);

        Assert.True(Math.Abs(distance) <= 1e-6 * scale, $"distance {distance} at covariance trace {scale}");
    }

    [Fact]
    public void FromStatistics_MatchesTheClosedFormForDiagonalCovariances()
    {
        var mean1 = Vector<double>.Build.DenseOfArray([1, 2, 3]);
        var mean2 = Vector<double>.Build.DenseOfArray([0, 2, 5]);
        var covariance1 = Matrix<double>.Build.DenseOfDiagonalArray([4, 9, 1]);
        var covariance2 = Matrix<double>.Build.DenseOfDiagonalArray([1, 4, 1]);

        // ||mu1 - mu2||^2 + sum (sqrt a - sqrt b)^2 = (1 + 0 + 4) + ((2-1)^2 + (3-2)^2 + 0) = 7
        Assert.Equal(7, FrechetDistance.FromStatistics(mean1, covariance1, mean2, covariance2), 10);
    }

    [Fact]
    public void FromStatistics_MatchesTheClosedFormForCommutingNonDiagonalCovariances()
    {
        // Both covariances share the eigenvectors of a 30-degree rotation: S1 = Q diag(4, 1) Q^T,
        // S2 = Q diag(9, 16) Q^T, so the distance is (2-3)^2 + (1-4)^2 = 10 plus the mean term 0.5^2.
        double c = Math.Cos(Math.PI / 6), s = Math.Sin(Math.PI / 6);
        var rotation = Matrix<double>.Build.DenseOfArray(new[,] { { c, -s }, { s, c } });
        var covariance1 = rotation * Matrix<double>.Build.DenseOfDiagonalArray([4, 1]) * rotation.Transpose();
        var covariance2 = rotation * Matrix<double>.Build.DenseOfDiagonalArray([9, 16]) * rotation.Transpose();
        Assert.NotEqual(0, covariance1[0, 1], 3);

        double distance = FrechetDistance.FromStatistics(
            Vector<double>.Build.DenseOfArray([0, 0]), covariance1, Vector<double>.Build.DenseOfArray([0, 0.5]), covariance2);

        Assert.Equal(10.25, distance, 10);
    }

    [Fact]
    public void FromStatistics_MatchesTheTwoByTwoTraceFormulaForNonCommutingCovariances()
    {
        // For 2x2 PSD products, Tr((S1 S2)^{1/2}) = sqrt(Tr(S1 S2) + 2 sqrt(det S1 det S2)).
        // S1 = [[2,1],[1,2]], S2 = diag(1,4): Tr(S1 S2) = 2 + 8 = 10, det S1 = 3, det S2 = 4.
        var covariance1 = Matrix<double>.Build.DenseOfArray(new double[,] { { 2, 1 }, { 1, 2 } });
        var covariance2 = Matrix<double>.Build.DenseOfDiagonalArray([1, 4]);
        var mean = Vector<double>.Build.Dense(2);
        double expected = 4 + 5 - 2 * Math.Sqrt(10 + 2 * Math.Sqrt(12));

        Assert.Equal(expected, FrechetDistance.FromStatistics(mean, covariance1, mean, covariance2), 10);
    }

    [Fact]
    public void Statistics_AreTheColumnMeansAndUnbiasedCovariance()
    {
        var features = Matrix<double>.Build.DenseOfArray(new double[,] { { 1, 2 }, { 3, 6 } });

        var (mean, covariance) = FrechetDistance.Statistics(features);

        Assert.Equal([2.0, 4.0], mean.ToArray());
        Assert.Equal(new double[,] { { 2, 4 }, { 4, 8 } }, covariance.ToArray()); // divided by n - 1 = 1
    }

    [Fact]
    public void Compute_RejectsMismatchedDimensionsAndSingleSamples()
    {
        Assert.Throws<ArgumentException>(() => FrechetDistance.Compute(RandomFeatures(4, 3, 0), RandomFeatures(4, 2, 0)));
        var error = Assert.Throws<ArgumentException>(() => FrechetDistance.Compute(RandomFeatures(1, 3, 0), RandomFeatures(4, 3, 0)));
        Assert.Contains("at least 2", error.Message);
    }
}
