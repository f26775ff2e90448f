using ILGPU.Runtime;
using SmoothCache.Kernels;
using static SmoothCache.Tests.TestSupport;

namespace SmoothCache.Tests.Kernels;

/// <summary>The conditioning and token-layout kernels: timestep sinusoid, class lookup, patch
/// embedding, position table, unpatchify and guidance.</summary>
public class EmbeddingTests
{
    [Fact]
    public void TimestepSinusoidIsCosineThenSineOfScaledTimesteps()
    {
        float[] t = [999, 500, 1, 0];
        using var e = TimestepEmbedding.Run(Cpu, t);
        var got = e.ToArray();
        var expected = new double[4 * 256];
        for (int b = 0; b < 4; b++)
            for (int i = 0; i < 128; i++)
            {
                double a = t[b] * Math.Exp(-Math.Log(10000) * i / 127);
                expected[b * 256 + i] = Math.Cos(a);
                expected[b * 256 + 128 + i] = Math.Sin(a);
            }
        // float32 frequencies (as the reference computes them) move angles near 999 by ~1e-4.
        Assert.True(MaxAbs(got, expected) < 2e-4);
        Assert.Equal(1f, got[3 * 256]);           // t = 0: cos 0
        Assert.Equal(0f, got[3 * 256 + 128]);     // sin 0
    }

    [Fact]
    public void KernelExpAndCosSinAreDoubleAccurateWithoutLibraryCalls()
    {
        // The kernel's own series (immune to fast math on CUDA) against .NET's math, over the ranges it sees.
        for (double x = -9.3; x <= 3; x += 0.0137)
            Assert.True(Math.Abs(TimestepEmbedding.Exp(x) / Math.Exp(x) - 1) < 1e-15, $"exp({x})");
        for (double x = -1000; x <= 1000; x += 0.3779)
        {
            var (cos, sin) = TimestepEmbedding.CosSin(x);
            Assert.True(Math.Abs(cos - Math.Cos(x)) < 1e-14 && Math.Abs(sin - Math.Sin(x)) < 1e-14, $"cos/sin({x})");
        }
    }

    [Fact]
    public void ASharedTimestepTravelsInTheKernelArgumentsWithoutAnUpload()
    {
        long before = Cpu.Uploads;
        using var shared = TimestepEmbedding.Run(Cpu, [321f, 321f, 321f]);
        Assert.Equal(before, Cpu.Uploads);
        using var mixed = TimestepEmbedding.Run(Cpu, [321f, 321f, 5f]);
        Assert.Equal(before + 1, Cpu.Uploads);
        var a = shared.ToArray();
        var m = mixed.ToArray();
        Assert.Equal(a[..512], m[..512]);     // the first two samples agree either way
        Assert.NotEqual(a[512..], m[512..]);
    }

    [Fact]
    public void FillWritesOneTimestepIntoRowsOfALargerTensorAndNothingElse()
    {
        using var all = Cpu.Arena.Upload(Enumerable.Repeat(7f, 4 * 256).ToArray(), 4, 256);
        using (var middle = all.Rows(1, 2)) TimestepEmbedding.Fill(middle, 321f);
        using var reference = TimestepEmbedding.Run(Cpu, [321f, 321f]);
        var got = all.ToArray();
        Assert.Equal(reference.ToArray(), got[256..768]);
        Assert.All(got[..256].Concat(got[768..]), v => Assert.Equal(7f, v));
        using var wrong = Cpu.Arena.Zeros(2, 128);
        Assert.Contains("[R, 256]", Assert.Throws<ArgumentException>(() => TimestepEmbedding.Fill(wrong, 1f)).Message);
    }

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

    [Theory]
    [InlineData(2, 3, 6, 2, 10)]   // 3 x 3 patches: one group of 8, five past the row
    [InlineData(1, 4, 34, 2, 7)]   // 17 patches a row: groups of 8, 8 and 1
    [InlineData(2, 2, 16, 4, 5)]   // 4 x 4 patches of 4 x 4
    public void PatchEmbedIsAStridedConvolutionPlusPositions(int b, int c, int s, int p, int d)
    {
        int grid = s / p;
        var x = Random(51, b * c * s * s);
        var w = Random(52, d * c * p * p, 0.5f);
        var bias = Random(53, d);
        var pos = Random(54, grid * grid * d);
        using var tx = Cpu.Arena.Upload(x, b, c, s, s);
        using var tw = Cpu.Arena.Upload(w, d, c, p, p);
        using var tb = Cpu.Arena.Upload(bias, d);
        using var tp = Cpu.Arena.Upload(pos, grid * grid, d);
        using var o = PatchEmbed.Run(tx, tw, tb, tp);
        var expected = new double[b * grid * grid * d];
        // The kernel's own float sums: the bias, the products over (channel, row, column) in order, then the position.
        var sameOrder = new float[expected.Length];
        for (int n = 0; n < b; n++)
            for (int i = 0; i < grid; i++)
                for (int j = 0; j < grid; j++)
                    for (int o2 = 0; o2 < d; o2++)
                    {
                        double acc = bias[o2] + pos[(i * grid + j) * d + o2];
                        float sum = bias[o2];
                        for (int ci = 0; ci < c; ci++)
                            for (int kh = 0; kh < p; kh++)
                                for (int kw = 0; kw < p; kw++)
                                {
                                    float xv = x[((n * c + ci) * s + i * p + kh) * s + j * p + kw], wv = w[((o2 * c + ci) * p + kh) * p + kw];
                                    acc += (double)xv * wv;
                                    sum += xv * wv;
                                }
                        int at = ((n * grid + i) * grid + j) * d + o2;
                        expected[at] = acc;
                        sameOrder[at] = sum + pos[(i * grid + j) * d + o2];
                    }
        Assert.Equal(new[] { b, grid * grid, d }, o.Shape);
        var got = o.ToArray();
        Assert.True(RelativeL2(got, expected) < 1e-6);
        Assert.Equal(sameOrder, got);
    }

    [Fact]
    public void PositionTablePutsTheColumnCoordinateFirst()
    {
        int grid = 5, d = 12, q = d / 4;
        using var o = PositionTable.Run(Cpu, grid, d);
        var got = o.ToArray();
        var expected = new double[grid * grid * d];
        for (int i = 0; i < grid; i++)
            for (int j = 0; j < grid; j++)
                for (int k = 0; k < q; k++)
                {
                    double w = Math.Pow(10000, -(double)k / q);
                    int row = (i * grid + j) * d;
                    expected[row + k] = Math.Sin(j * w);
                    expected[row + q + k] = Math.Cos(j * w);
                    expected[row + 2 * q + k] = Math.Sin(i * w);
                    expected[row + 3 * q + k] = Math.Cos(i * w);
                }
        Assert.True(MaxAbs(got, expected) < 1e-7);
    }

    [Fact]
    public void UnpatchifyPlacesEachPatchChannelLast()
    {
        int b = 2, grid = 3, p = 2, c = 5;
        var y = Enumerable.Range(0, b * grid * grid * p * p * c).Select(v => (float)v).ToArray();
        using var ty = Cpu.Arena.Upload(y, b, grid * grid, p * p * c);
        using var o = Unpatchify.Run(ty, p, c);
        Assert.Equal(new[] { b, c, grid * p, grid * p }, o.Shape);
        var got = o.ToArray();
        int size = grid * p;
        for (int n = 0; n < b; n++)
            for (int ch = 0; ch < c; ch++)
                for (int hi = 0; hi < grid; hi++)
                    for (int pi = 0; pi < p; pi++)
                        for (int wi = 0; wi < grid; wi++)
                            for (int qi = 0; qi < p; qi++)
                                Assert.Equal(y[(n * grid * grid + hi * grid + wi) * p * p * c + (pi * p + qi) * c + ch],
                                    got[((n * c + ch) * size + hi * p + pi) * size + wi * p + qi]);
    }

    [Fact]
    public void GuidanceCombinesTheHalvesOnTheFirstChannels()
    {
        int half = 2, cout = 4, c = 2, px = 3;
        var m = Random(71, 2 * half * cout * px);
        using var tm = Cpu.Arena.Upload(m, 2 * half, cout, px, 1);
        using var e = Guidance.Run(tm, c, 4f);
        Assert.Equal(new[] { half, c, px, 1 }, e.Shape);
        var got = e.ToArray();
        for (int n = 0; n < half; n++)
            for (int ch = 0; ch < c; ch++)
                for (int p = 0; p < px; p++)
                {
                    float cond = m[(n * cout + ch) * px + p], uncond = m[((n + half) * cout + ch) * px + p];
                    float want = uncond + 4f * (cond - uncond);
                    Assert.Equal(want, got[(n * c + ch) * px + p], 5);
                }
    }

    [Fact]
    public void WithoutGuidanceEpsIsTheFirstChannels()
    {
        var m = Random(72, 3 * 4 * 5);
        using var tm = Cpu.Arena.Upload(m, 3, 4, 5, 1);
        using var e = Guidance.Run(tm, 2, 4f, doubled: false);
        var got = e.ToArray();
        for (int n = 0; n < 3; n++)
            for (int i = 0; i < 2 * 5; i++)
                Assert.Equal(m[n * 20 + i], got[n * 10 + i]);
    }

    [Fact]
    public void RepeatBatchStacksCopies()
    {
        var x = Random(73, 2 * 3);
        using var tx = Cpu.Arena.Upload(x, 2, 3);
        using var r = RepeatBatch.Run(tx, 2);
        Assert.Equal(new[] { 4, 3 }, r.Shape);
        Assert.Equal(x.Concat(x).ToArray(), r.ToArray());
    }
}
