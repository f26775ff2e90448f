using MathNet.Numerics.LinearAlgebra;

namespace SmoothCache.Cli.Evaluation;

/// <summary>
/// Fréchet distance between Gaussians fitted to two sets of feature vectors (the FID formula):
/// ||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^{1/2}).
/// <para>
/// Method: S1 S2 is not symmetric, but for positive semi-definite S1, S2 it has the same eigenvalues
/// as the symmetric PSD matrix M = S1^{1/2} S2 S1^{1/2}, so Tr((S1 S2)^{1/2}) = sum_i sqrt(lambda_i(M)).
/// S1^{1/2} comes from the symmetric eigendecomposition of S1 (MathNet's Evd with symmetric = true);
/// eigenvalues of S1 and of M below zero (round-off on rank-deficient covariances, e.g. fewer samples
/// than feature dimensions) are clipped to 0 before the square root. M is symmetrised before its
/// decomposition to remove round-off asymmetry.
/// </para>
/// </summary>
public static class FrechetDistance
{
    /// <summary>Distance between two sample sets, one feature vector per row (equal column counts,
    /// at least 2 rows each). Covariances are unbiased (divide by n - 1), as numpy.cov.</summary>
    public static double Compute(Matrix<double> features1, Matrix<double> features2)
    {
        if (features1.ColumnCount != features2.ColumnCount)
            throw new ArgumentException($"feature sets have {features1.ColumnCount} and {features2.ColumnCount} columns; expected the same dimension");
        var (mean1, covariance1) = Statistics(features1);
        var (mean2, covariance2) = Statistics(features2);
        return FromStatistics(mean1, covariance1, mean2, covariance2);
    }

    /// <summary>Distance between N(mean1, covariance1) and N(mean2, covariance2); covariances must be
    /// symmetric positive semi-definite.</summary>
    public static double FromStatistics(Vector<double> mean1, Matrix<double> covariance1, Vector<double> mean2, Matrix<double> covariance2)
    {
        int d = mean1.Count;
        if (mean2.Count != d || covariance1.RowCount != d || covariance1.ColumnCount != d || covariance2.RowCount != d || covariance2.ColumnCount != d)
            throw new ArgumentException(
                $"statistics disagree in size: means {mean1.Count} and {mean2.Count}, covariances {covariance1.RowCount}x{covariance1.ColumnCount} and {covariance2.RowCount}x{covariance2.ColumnCount}; expected {d} and {d}x{d}");
        double meanTerm = (mean1 - mean2).DotProduct(mean1 - mean2);
        Matrix<double> root1 = SymmetricSquareRoot(covariance1);
        Matrix<double> product = root1 * covariance2 * root1;
        Matrix<double> symmetric = (product + product.Transpose()) * 0.5;
        double traceOfRoot = symmetric.Evd(Symmetricity.Symmetric).EigenValues.Sum(e => Math.Sqrt(Math.Max(e.Real, 0)));
        return meanTerm + covariance1.Trace() + covariance2.Trace() - 2 * traceOfRoot;
    }

    /// <summary>Per-column mean and unbiased covariance of the rows.</summary>
    public static (Vector<double> Mean, Matrix<double> Covariance) Statistics(Matrix<double> features)
    {
        int n = features.RowCount;
        if (n < 2)
            throw new ArgumentException($"feature set has {n} rows; expected at least 2 samples to estimate a covariance", nameof(features));
        Vector<double> mean = features.ColumnSums() / n;
        Matrix<double> centred = features - Matrix<double>.Build.Dense(n, features.ColumnCount, (_, j) => mean[j]);
        return (mean, centred.TransposeThisAndMultiply(centred) / (n - 1));
    }

    private static Matrix<double> SymmetricSquareRoot(Matrix<double> matrix)
    {
        var evd = matrix.Evd(Symmetricity.Symmetric);
        Vector<double> roots = evd.EigenValues.Map(e => Math.Sqrt(Math.Max(e.Real, 0)));
        Matrix<double> vectors = evd.EigenVectors;
        return vectors * Matrix<double>.Build.DiagonalOfDiagonalVector(roots) * vectors.Transpose();
    }
}
