using SmoothCache.Kernels;
using SmoothCache.Kernels.Gpu;
using static SmoothCache.Tests.TestSupport;
using static SmoothCache.Tests.Kernels.LinearTests;

namespace SmoothCache.Tests.Kernels.Gpu;

public class SplitKTests
{
    [Theory]
    // DiT-XL/2 on a 132-multiprocessor GPU, tensor-core tiles (128 x 128, K by 32):
    [InlineData(512, 1152, 1152, 4)]   // batch 2 out-projection: 36 blocks, 36 K tiles
    [InlineData(512, 1152, 4608, 7)]   // batch 2 fc2: 36 blocks, 144 K tiles
    [InlineData(512, 3456, 1152, 1)]   // batch 2 qkv: 108 blocks, more than half the device
    [InlineData(512, 4608, 1152, 1)]   // batch 2 fc1: 144 blocks fill the device
    [InlineData(256, 1152, 1152, 4)]   // 18 blocks: as many splits as K allows (8 of its 36 tiles each)
    [InlineData(4096, 1152, 4608, 1)]  // batch 16 fc2: 288 blocks
    [InlineData(512, 1152, 200, 1)]    // too short a K to split
    public void SplitsOnlyWhatLeavesTheDeviceIdle(int m, int n, int k, int expected) =>
        Assert.Equal(expected, SplitK.Choose(132, m, n, k, 128, 32));

    [Theory]
    // DiT-XL/2 on 132 multiprocessors, 128 x 128 blocks:
    [InlineData(4096, 1152, 3712)]  // batch 16 out-projection and fc2: 288 blocks; 29 rows of 9 fill 2 a multiprocessor
    [InlineData(4096, 4608, 0)]     // batch 16 fc1: 1,152 blocks, many waves
    [InlineData(512, 1152, 0)]      // batch 2: 36 blocks, one partial wave
    [InlineData(3712, 1152, 0)]     // 261 blocks: 2 a multiprocessor at most already
    [InlineData(4000, 1152, 3712)]  // ragged rows
    public void HeadRowsGiveEveryMultiprocessorTwoBlocksOfAGridOfTwoToThree(int m, int n, int expected) =>
        Assert.Equal(expected, SplitK.HeadRows(132, m, n, 128));

    [Theory]
    [InlineData(1152, 32, 4, 9, 4)]
    [InlineData(4608, 32, 7, 21, 7)]
    [InlineData(130, 8, 3, 6, 3)]
    [InlineData(40, 8, 4, 2, 3)]  // 5 tiles asked in 4 splits: 2 + 2 + 1, no empty split
    public void PartitionLeavesNoSplitEmpty(int k, int depth, int splits, int perSplit, int used)
    {
        Assert.Equal((perSplit, used), SplitK.Partition(k, depth, splits));
        int kTiles = (k + depth - 1) / depth;
        Assert.True((used - 1) * perSplit < kTiles && used * perSplit >= kTiles);
    }

    [Theory]
    [InlineData(136, 48, 3)]   // N a multiple of 4: the finish goes four outputs at a time
    [InlineData(134, 48, 3)]   // one at a time
    [InlineData(136, 80, 10)]  // more splits than the finish loads at once
    public void LastSplitOfEachBlockSumsTheSplitsInOrderAddsTheBiasAndAppliesTheEpilogue(int n, int k, int splits)
    {
        // 2 x 2 output blocks, K in tiles of 8 shared evenly by the splits.
        int m = 130, kPerSplit = k / splits;
        using var p = new GemmProblem(31, m, k, n, 0.3f);
        using var y = GpuShapedCpu.Arena.Rent(m, n);
        var expected = new float[m * n];
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
            {
                // Each split's products in K order, then the splits in order from zero: bit for bit what the kernel adds.
                float sum = 0f;
                for (int s = 0; s < splits; s++)
                {
                    float partial = 0f;
                    for (int kk = s * kPerSplit; kk < (s + 1) * kPerSplit; kk++) partial += p.X[i * k + kk] * p.W[j * k + kk];
                    sum += partial;
                }
                expected[i * n + j] = default(GeluTanhEpilogue).Apply(sum + p.B[j]);
            }
        // Twice: each launch leaves the arrival counters at zero for the next.
        for (int run = 0; run < 2; run++)
        {
            y.CopyFrom(Enumerable.Repeat(float.NaN, m * n).ToArray());
            Sgemm.Run<GeluTanhEpilogue>(GpuShapedCpu, p.Tx.View, p.Tw.View, p.Tb.View, y.View, m, n, k, splits);
            Assert.Equal(expected, y.ToArray());
        }
    }
}
