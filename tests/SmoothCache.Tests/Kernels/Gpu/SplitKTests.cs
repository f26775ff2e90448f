using ILGPU.Runtime;
using SmoothCache.Kernels;
using SmoothCache.Kernels.Gpu;
using static SmoothCache.Tests.TestSupport;

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
    [InlineData(8, DType.Float32)]  // N a multiple of 4: four outputs a thread
    [InlineData(8, DType.Float16)]
    [InlineData(6, DType.Float32)]  // one a thread
    public void ReductionSumsTheSplitsAddsTheBiasAndAppliesTheEpilogue(int n, DType output)
    {
        int m = 3, splits = 3;
        var partials = Enumerable.Range(0, splits * m * n).Select(i => MathF.Sin(i) * 0.5f).ToArray();
        var bias = Enumerable.Range(0, n).Select(i => 0.1f * i - 0.3f).ToArray();
        using var b = Cpu.Arena.Upload(bias, n);
        using var y = Cpu.Arena.Rent(output, m, n);
        SplitK.Run<GeluTanhEpilogue>(Cpu, m, n, splits, b.View, OutputView.Of(y), view => view.CopyFromCPU(partials));
        var got = y.ToArray();
        for (int i = 0; i < m * n; i++)
        {
            float sum = 0f;
            for (int s = 0; s < splits; s++) sum += partials[s * m * n + i];
            float expected = default(GeluTanhEpilogue).Apply(sum + bias[i % n]);
            if (output == DType.Float16) expected = (float)(System.Half)expected;
            Assert.Equal(expected, got[i]);
        }
    }
}
