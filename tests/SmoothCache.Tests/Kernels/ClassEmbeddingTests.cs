using ILGPU.Runtime;
using SmoothCache.Kernels;
using static SmoothCache.Tests.TestSupport;

namespace SmoothCache.Tests.Kernels;

/// <summary>The class-embedding lookup with its epilogue.</summary>
public class ClassEmbeddingTests
{
    [Theory]
    [InlineData(3, false)]  // a row per label
    [InlineData(9, false)]  // three steps' rows: the labels repeat
    [InlineData(9, true)]   // with SiLU, as the adaLN projections read c
    public void ClassEmbeddingAddsEachRowsLabelsRowThenItsEpilogue(int rows, bool silu)
    {
        int classes = 11, d = 8;
        int[] labels = [10, 0, 4];
        var table = Random(41, classes * d);
        var addend = Random(42, rows * d);
        using var tt = Cpu.Arena.Upload(table, classes, d);
        using var ta = Cpu.Arena.Upload(addend, rows, d);
        using var lb = Cpu.Accelerator.Allocate1D(labels);
        using var o = silu ? ClassEmbedding.Run<SiluEpilogue>(lb.View, tt, ta) : ClassEmbedding.Run<IdentityEpilogue>(lb.View, tt, ta);
        var got = o.ToArray();
        for (int r = 0; r < rows; r++)
            for (int k = 0; k < d; k++)
            {
                double c = (double)addend[r * d + k] + table[labels[r % 3] * d + k];
                Assert.Equal(silu ? c / (1 + Math.Exp(-c)) : c, got[r * d + k], 1e-6);
            }
        using var ragged = Cpu.Arena.Zeros(rows + 1, d);
        Assert.Throws<ArgumentException>(() => ClassEmbedding.Run<IdentityEpilogue>(lb.View, tt, ragged));
    }
}
