using SmoothCache.Kernels;
using SmoothCache.Kernels.Gpu;
using static SmoothCache.Tests.TestSupport;

namespace SmoothCache.Tests.Kernels.Gpu;

/// <summary>The warp-per-row LayerNorm is portable ILGPU (warp shuffles included), so the CPU accelerator runs it.</summary>
public class LayerNormModulateRowTests
{
    [Theory]
    [InlineData(3, 5, 72)]    // 18 float4s: one per lane, most lanes' others past the row; 15 rows in 4 groups
    [InlineData(2, 9, 1152)]  // DiT-XL/2's width: 9 float4s in every lane
    [InlineData(1, 3, 20)]    // 5 float4s: most lanes hold nothing
    [InlineData(1, 2, 1028)]  // 257 float4s: the ninth in one lane only
    public void MatchesThePortableKernel(int b, int t, int d)
    {
        var x = Random(31, b * t * d, 2f);
        for (int i = 0; i < x.Length; i++) x[i] += 0.5f;
        var mod = Random(32, b * 6 * d);
        using var tx = GpuShapedCpu.Arena.Upload(x, b, t, d);
        using var tm = GpuShapedCpu.Arena.Upload(mod, b, 6 * d);
        using var portable = LayerNormModulate.Run(tx, tm, 3 * d, 4 * d, 1e-6f);
        using var row = GpuShapedCpu.Arena.Rent(b, t, d);
        LayerNormModulateRow.Run(GpuShapedCpu, new LayerNormModulate.Args
        {
            X = OutputView.Of(tx), Mod = tm.View, Y = OutputView.Of(row), D = d, TokensPerSample = t, ModStride = 6 * d,
            ShiftOffset = 3 * d, ScaleOffset = 4 * d, Eps = 1e-6f,
        });
        Assert.True(RelativeL2(row.ToArray(), portable.ToArray()) < 1e-6);
    }

    [Theory]
    [InlineData(1152, true)]   // 9 float4s a lane
    [InlineData(1156, false)]  // 10 would be needed
    [InlineData(18, false)]    // not whole float4s
    public void TakesRowsOfWholeFloat4sUpToNineALane(int d, bool supported) =>
        Assert.Equal(supported, LayerNormModulateRow.Supports(new LayerNormModulate.Args { D = d, ModStride = 6 * d, ShiftOffset = 0, ScaleOffset = d }));

    [Fact]
    public void RoundsAnFp16OutputLikeThePortableKernel()
    {
        int b = 2, t = 3, d = 64;
        var x = Random(36, b * t * d, 2f);
        var mod = Random(37, b * 6 * d);
        var (portable, gpu) = BothPaths(x, mod, b, t, d, DType.Float16);
        // The row kernel sums in another order: a float32 sum a few ulps away may round to the neighbouring
        // float16, never further (truncating instead of rounding would move about half of them).
        int differing = 0;
        for (int i = 0; i < gpu.Length; i++)
        {
            if (gpu[i] == portable[i]) continue;
            differing++;
            Assert.True(Math.Abs(gpu[i] - portable[i]) <= HalfUlp(portable[i]), $"element {i}: {gpu[i]} vs {portable[i]}");
        }
        Assert.True(differing <= gpu.Length / 20, $"{differing} of {gpu.Length} differ");
    }

    /// <summary>The gap from |v| (a float16 value) to the next float16 up.</summary>
    private static double HalfUlp(float v)
    {
        var h = (System.Half)Math.Abs(v);
        var next = BitConverter.Int16BitsToHalf((short)(BitConverter.HalfToInt16Bits(h) + 1));
        return (double)next - (double)h;
    }

    [Fact]
    public void ResidualsOfAnotherTypeThanXAreRejected()
    {
        int b = 1, t = 2, d = 8;
        using var x = GpuShapedCpu.Arena.Zeros(b, t, d);
        using var mod = GpuShapedCpu.Arena.Zeros(b, 6 * d);
        using var y = GpuShapedCpu.Arena.Rent(b, t, d);
        using var r = HalfAndWidened(GpuShapedCpu, 45, b, t, d);
        var e = Assert.Throws<ArgumentException>(() => LayerNormModulateRow.Run(GpuShapedCpu, new LayerNormModulate.Args
        {
            X = OutputView.Of(x), Mod = mod.View, Y = OutputView.Of(y), Residual = InputView.Of(r.Half), D = d, TokensPerSample = t,
            ModStride = 6 * d, ShiftOffset = 0, ScaleOffset = d, GateOffset = 2 * d, Eps = 1e-6f,
        }));
        Assert.Contains("not of x's type (float32)", e.Message);
    }

    [Fact]
    public void RowsItCannotTakeAsFloat4sGoToThePortableKernel()
    {
        int b = 1, t = 4, d = 18;
        var x = Random(38, b * t * d, 2f);
        var mod = Random(39, b * 6 * d);
        var args = new LayerNormModulate.Args { D = d, ModStride = 6 * d, ShiftOffset = 0, ScaleOffset = d };
        Assert.False(LayerNormModulateRow.Supports(args));
        Assert.Throws<ArgumentException>(() => LayerNormModulateRow.Run(GpuShapedCpu, args));
        var (portable, gpu) = BothPaths(x, mod, b, t, d, DType.Float32);
        Assert.Equal(portable, gpu);
    }

    /// <summary>adaLN (shift at column 0, scale at D) of x on the portable and on the GPU kernel path, as float32.</summary>
    private static (float[] Portable, float[] Gpu) BothPaths(float[] x, float[] mod, int b, int t, int d, DType output)
    {
        float[] Run(Backend backend)
        {
            using var tx = backend.Arena.Upload(x, b, t, d);
            using var tm = backend.Arena.Upload(mod, b, 6 * d);
            using var y = LayerNormModulate.Run(tx, tm, 0, d, 1e-6f, output);
            Assert.Equal(output, y.DType);
            if (output == DType.Float32) return y.ToArray();
            using var wide = HalfConversion.ToFloat(y);
            return wide.ToArray();
        }
        return (Run(GpuShapedCpu), Run(CpuWithGpuKernels));
    }

    [Theory]
    [InlineData(1, 100)]
    [InlineData(2, 100)]
    [InlineData(2, 1152)]  // every lane's ninth float4 gets both terms
    public void AppliesTheGatedResidualsLikeThePortableKernel(int terms, int d)
    {
        int b = 2, t = 5;
        var x = Random(33, b * t * d, 2f);
        var r = Random(34, b * t * d);
        var r2 = Random(40, b * t * d);
        var mod = Random(35, b * 6 * d);
        (float[] X, float[] Y) Run(Backend backend)
        {
            using var tx = backend.Arena.Upload(x, b, t, d);
            using var tr = backend.Arena.Upload(r, b, t, d);
            using var tr2 = backend.Arena.Upload(r2, b, t, d);
            using var tm = backend.Arena.Upload(mod, b, 6 * d);
            using var y = LayerNormModulate.RunAfterResiduals(tx, tm, 3 * d, 4 * d, 1e-6f, tr, 2 * d, terms == 2 ? tr2 : null, 5 * d);
            return (tx.ToArray(), y.ToArray());
        }
        var (portableX, portable) = Run(GpuShapedCpu);
        var (gpuX, gpu) = Run(CpuWithGpuKernels);
        Assert.Equal(portableX, gpuX);
        Assert.True(RelativeL2(gpu, portable) < 1e-6);
    }
}
