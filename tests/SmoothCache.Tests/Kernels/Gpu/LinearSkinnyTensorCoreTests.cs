using SmoothCache.Kernels;
using SmoothCache.Kernels.Gpu;
using static SmoothCache.Tests.TestSupport;

namespace SmoothCache.Tests.Kernels.Gpu;

/// <summary>
/// The few-row fp16 GEMM on tensor cores, its mma emulated on the CPU accelerator: fragments loaded straight from
/// x and W with K paired in the kernel's own order, rows past M, columns past N. The reference is the float64 product
/// of the fp16-rounded operands; the kernel sums in float32.
/// </summary>
public class LinearSkinnyTensorCoreTests
{
    private static float[] HalfRounded(int seed, int count, float scale) =>
        Random(seed, count, scale).Select(v => (float)(System.Half)v).ToArray();

    private static (float[] Got, double[] Expected) Run<TEpilogue>(int m, int n, int k, DType output, bool bias)
        where TEpilogue : struct, IEpilogue =>
        Run<TEpilogue, LinearSkinnyTensorCore.Columns32>(m, n, k, output, bias);

    private static (float[] Got, double[] Expected) Run<TEpilogue, TShape>(int m, int n, int k, DType output, bool bias)
        where TEpilogue : struct, IEpilogue where TShape : struct, LinearSkinnyTensorCore.IWarpShape
    {
        var xs = HalfRounded(m * 100 + k, m * k, 1f);
        var ws = HalfRounded(n * 100 + k, n * k, 1f / MathF.Sqrt(k));
        var bs = Random(n, n, 0.5f);
        using var x32 = GpuShapedCpu.Arena.Upload(xs, m, k);
        using var x = HalfConversion.ToHalf(x32);
        using var w32 = GpuShapedCpu.Arena.Upload(ws, n, k);
        using var w = HalfConversion.ToHalf(w32);
        using var b = GpuShapedCpu.Arena.Upload(bs, n);
        using var y = GpuShapedCpu.Arena.Rent(output, m, n);
        LinearSkinnyTensorCore.Run<TEpilogue, TShape>(GpuShapedCpu, x.HalfView, w, bias ? b.View : default, OutputView.Of(y), m);
        var expected = new double[m * n];
        for (int r = 0; r < m; r++)
            for (int c = 0; c < n; c++)
            {
                double sum = bias ? bs[c] : 0;
                for (int t = 0; t < k; t++) sum += (double)xs[r * k + t] * ws[c * k + t];
                expected[r * n + c] = default(TEpilogue).Apply((float)sum);
            }
        return (y.ToArray(), expected);
    }

    [Theory]
    [InlineData(2, 64, 96)]   // DiT's conditioning at batch 2 (one image with CFG): 14 of 16 rows zeros; 3 steps of 32
    [InlineData(16, 40, 64)]  // every row; 40 columns: the second warp's last 3 tiles past N
    [InlineData(9, 200, 32)]  // rows g + 8 only for g = 0; one step
    [InlineData(1, 34, 1152)] // one row, K as DiT-XL/2's
    public void MatchesFloat64ProductsOfTheFp16Operands(int m, int n, int k)
    {
        var (got, expected) = Run<IdentityEpilogue>(m, n, k, DType.Float32, bias: true);
        Assert.True(RelativeL2(got, expected) < 1e-6, $"{RelativeL2(got, expected):E2}");
    }

    [Theory]
    [InlineData(16, 2, 64, 128)]    // 16 columns a warp, 64 deep a step: 2 steps; the last warp's second tile past N
    [InlineData(16, 16, 40, 192)]   // every row, 3 steps
    [InlineData(8, 9, 200, 128)]    // 8 columns a warp, 128 deep a step: one step
    [InlineData(8, 1, 34, 1152)]    // DiT-XL/2's K: 9 steps; the last warp's columns 32-33
    public void NarrowerWarpsReadingDeeperGiveTheSameProducts(int columns, int m, int n, int k)
    {
        var (got, expected) = columns == 16
            ? Run<IdentityEpilogue, LinearSkinnyTensorCore.Columns16>(m, n, k, DType.Float32, bias: true)
            : Run<IdentityEpilogue, LinearSkinnyTensorCore.Columns8>(m, n, k, DType.Float32, bias: true);
        Assert.True(RelativeL2(got, expected) < 1e-6, $"{RelativeL2(got, expected):E2}");
    }

    [Theory]
    [InlineData(8, 1152, 8)]
    [InlineData(8, 96, 32)]    // not whole steps of 128: the 32-column warps
    [InlineData(16, 192, 16)]
    [InlineData(16, 96, 32)]
    [InlineData(32, 64, 32)]
    public void TakesTheColumnsAskedForWhereKIsWholeSteps(int asked, int k, int columns) =>
        Assert.Equal(columns, LinearSkinnyTensorCore.ColumnsFor(asked, k));

    [Fact]
    public void AppliesTheEpilogueAndRoundsAnFp16Output()
    {
        var (got, expected) = Run<SiluEpilogue>(4, 48, 64, DType.Float16, bias: true);
        Assert.True(RelativeL2(got, expected) < 1e-3, $"{RelativeL2(got, expected):E2}");
        var (plain, reference) = Run<GeluTanhEpilogue>(3, 16, 32, DType.Float32, bias: false);
        Assert.True(RelativeL2(plain, reference) < 1e-6);
    }

    [Theory]
    [InlineData(17, 64, 64, "M=17 is not 1 to 16")]
    [InlineData(2, 64, 40, "K=40 is not a multiple of 32")]
    [InlineData(2, 63, 64, "N=63 is odd")]
    public void StatesWhatItDoesNotSupport(int m, int n, int k, string reason)
    {
        using var x = GpuShapedCpu.Arena.Rent(DType.Float16, 17, 64);
        using var y = GpuShapedCpu.Arena.Rent(17, 64);
        Assert.Equal(reason, LinearSkinnyTensorCore.Unsupported(m, n, k, x.HalfView, OutputView.Of(y)));
        using var w = GpuShapedCpu.Arena.Rent(DType.Float16, n, k);
        var e = Assert.Throws<ArgumentException>(() => LinearSkinnyTensorCore.Run<IdentityEpilogue>(GpuShapedCpu, x.HalfView, w, default, OutputView.Of(y), m));
        Assert.Equal("LinearSkinnyTensorCore: " + reason, e.Message);
    }

    [Fact]
    public void TakesTheFewRowFp16GemmsUnlessTheBackendAsksForTiles()
    {
        using var backend = Backend.Create(DeviceKind.Cpu, KernelSet.TensorCores);
        using var x = backend.Arena.Upload(Enumerable.Range(0, 2 * 64).Select(i => MathF.Sin(i * 0.3f)).ToArray(), 2, 64);
        using var w32 = backend.Arena.Upload(Enumerable.Range(0, 48 * 64).Select(i => MathF.Cos(i * 0.07f) * 0.1f).ToArray(), 48, 64);
        using var w = HalfConversion.ToHalf(w32);
        using var skinny = Linear.Run(x, w, null);
        Assert.Contains(backend.LoadedKernels, k => k.DeclaringType == typeof(LinearSkinnyTensorCore));
        Assert.DoesNotContain(backend.LoadedKernels, k => k.DeclaringType == typeof(LinearTensorCore));
        backend.SkinnyOnTensorCores = false;
        using var tiled = Linear.Run(x, w, null);
        Assert.Contains(backend.LoadedKernels, k => k.DeclaringType == typeof(LinearTensorCore));
        // The same products, summed in another order.
        Assert.True(RelativeL2(skinny.ToArray(), tiled.ToArray()) < 1e-6);
    }

    [Fact]
    public void TheBackendsColumnsChooseTheWarpShape()
    {
        using var backend = Backend.Create(DeviceKind.Cpu, KernelSet.TensorCores);
        backend.SkinnyColumns = 8;
        Assert.Equal("few-row fp16 GEMM 8 columns a warp", backend.KernelOptions);
        using var x = backend.Arena.Upload(Enumerable.Range(0, 2 * 128).Select(i => MathF.Sin(i * 0.3f)).ToArray(), 2, 128);
        using var w32 = backend.Arena.Upload(Enumerable.Range(0, 24 * 128).Select(i => MathF.Cos(i * 0.07f) * 0.1f).ToArray(), 24, 128);
        using var w = HalfConversion.ToHalf(w32);
        Linear.Run(x, w, null).Dispose();
        var kernel = Assert.Single(backend.LoadedKernels, k => k.DeclaringType == typeof(LinearSkinnyTensorCore));
        Assert.Equal(typeof(LinearSkinnyTensorCore.Columns8), kernel.GetGenericArguments()[2]);
        using var xShort = backend.Arena.Rent(DType.Float16, 2, 96);
        using var wShort = backend.Arena.Rent(DType.Float16, 24, 96);
        using var y = backend.Arena.Rent(2, 24);
        var e = Assert.Throws<ArgumentException>(() => LinearSkinnyTensorCore.Run<IdentityEpilogue, LinearSkinnyTensorCore.Columns8>(backend,
            xShort.HalfView, wShort, default, OutputView.Of(y), 2));
        Assert.Equal("LinearSkinnyTensorCore: K=96 is not a multiple of 128 (8 columns a warp)", e.Message);
        Assert.Equal(16, Backend.ParseSkinnyColumns(" 16"));
        Assert.Equal(32, Backend.ParseSkinnyColumns(null));
        Assert.Equal("SMOOTHCACHE_SKINNY_COLUMNS='4': expected 8, 16 or 32", Assert.Throws<ArgumentException>(() => Backend.ParseSkinnyColumns("4")).Message);
    }

    [Fact]
    public void SmoothcacheSkinnyNamesTheKernel()
    {
        Assert.True(Backend.ParseSkinny(null));
        Assert.True(Backend.ParseSkinny(" TensorCores"));
        Assert.False(Backend.ParseSkinny("tiles"));
        Assert.Equal("SMOOTHCACHE_SKINNY='simt': expected tensorcores or tiles", Assert.Throws<ArgumentException>(() => Backend.ParseSkinny("simt")).Message);
    }
}
