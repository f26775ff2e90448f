using System.Diagnostics;
using ILGPU;
using ILGPU.Runtime.Cuda;
using SmoothCache.Kernels;
using SmoothCache.Kernels.Gpu;

namespace SmoothCache.Cli.Bench;

/// <summary>One timed GEMM: which implementation, the problem, its error against cuBLAS fp32, and speed.</summary>
public sealed record BenchResult(
    string Kernel, int M, int N, int K, double RelativeError, double WarmupMs, double Milliseconds, double Tflops);

/// <summary>
/// GEMM micro-benchmarks at DiT-XL/2 shapes (M = 512 or 4096 token rows; the (N, K) of the qkv/out,
/// MLP up, MLP down and adaLN projections): our fp16 tensor-core kernel, our fp32 kernels (3xTF32 on
/// tensor cores, which the fp32 path uses on CUDA, and the SIMT SGEMM), cuBLAS
/// SGEMM and cuBLAS HGEMM (fp16 in, fp16 out), all on y = x W^T; on a compute-capability 9.0 GPU also the Hopper
/// fp16 kernel Linear takes (TMA-loaded; the cp.async one with its diagnostics under SMOOTHCACHE_KERNELS=wgmma). Each result is first compared with
/// cuBLAS SGEMM (relative L2 error), then timed; the first call (compile, driver JIT) is reported apart.
/// </summary>
public static class GemmBench
{
    public static readonly int[] Rows = [512, 4096];
    public static readonly (int N, int K)[] Shapes = [(1152, 1152), (4608, 1152), (1152, 4608), (6912, 1152)];
    /// <summary>DiT-XL/2's 28 blocks' adaLN projections side by side (6 x 1152 columns each).</summary>
    private const int AdaLnColumns = 28 * 6 * 1152;

    /// <param name="extraSplits">split counts to time the fp16 tensor-core GEMM at besides the one
    /// <see cref="SplitK.Choose(int, int, int, int, int, int)"/> picks (a sweep for tuning it)</param>
    /// <param name="tma">time the TMA-loaded wgmma GEMM (<see cref="LinearWgmmaTma"/>) instead of our other
    /// kernels, beside cuBLAS and the cp.async wgmma kernel (needs a compute-capability 9.0 GPU)</param>
    /// <param name="clusters">with <paramref name="tma"/>: only the TMA GEMM in clusters sharing W (<see cref="LinearWgmmaTma.MulticastRing"/>)
    /// beside the one without, L2-hot and on cold weights</param>
    public static BenchResult[] Run(Backend backend, TextWriter log, int iterations = 20, IReadOnlyCollection<int>? extraSplits = null, bool tma = false,
        bool clusters = false)
    {
        if (!backend.IsCuda)
            throw new InvalidOperationException($"GEMM benchmarks need a CUDA device; backend is {backend.DeviceName}");
        using var blas = new CuBlas((CudaAccelerator)backend.Accelerator);
        var results = new List<BenchResult>();
        log.WriteLine($"GEMM y = x W^T on {backend.DeviceName}, {iterations} timed calls each");
        if (tma && !backend.UsesWgmma)
            throw new InvalidOperationException("the TMA GEMM needs a compute-capability 9.0 GPU (H100, H200) and the wgmma or default kernel set");
        if (backend.UsesWgmma && !backend.UsesTma && !tma)
            // The copies decide the wgmma kernel's speed (its "copies only" rows); blocks resident per
            // multiprocessor are the copies in flight.
            log.WriteLine("resident blocks per multiprocessor: tensor-core " +
                backend.ResidentBlocks<LinearTensorCore.Args>(LinearTensorCore.Kernel<IdentityEpilogue, LinearTensorCore.Ptx>, LinearTensorCore.Threads) +
                ", wgmma 128x128 " + WgmmaResidentBlocks<LinearWgmma.OneWarpGroup>(backend) +
                ", wgmma 256x128 " + WgmmaResidentBlocks<LinearWgmma.TwoWarpGroups>(backend));
        log.WriteLine($"{"kernel",-30} {"M",5} {"N",5} {"K",5} {"rel.err",9} {"warm-up ms",10} {"ms",8} {"TFLOP/s",8}");
        var shapes = Rows.SelectMany(m => Shapes.Select(s => (M: m, s.N, s.K))).ToList();
        // With --tma also the conditioning GEMM of a sampling step (all 28 blocks' adaLN projections at batch 16):
        // 446 MB of fp16 weights streamed past any L2 every step, cached or not.
        if (tma) shapes.Add((16, AdaLnColumns, 1152));
        foreach (var (m, n, k) in shapes)
            foreach (var r in RunShape(backend, blas, m, n, k, iterations, extraSplits ?? [], tma, clusters, log))
            {
                results.Add(r);
                log.WriteLine($"{r.Kernel,-30} {r.M,5} {r.N,5} {r.K,5} {r.RelativeError,9:E2} {r.WarmupMs,10:F1} {r.Milliseconds,8:F3} {r.Tflops,8:F1}");
            }
        return results.ToArray();
    }

    private static int WgmmaResidentBlocks<TBlock>(Backend backend) where TBlock : struct, LinearWgmma.IBlock =>
        backend.ResidentBlocks<LinearTensorCore.Args>(LinearWgmma.Kernel<IdentityEpilogue, LinearWgmma.Ptx, TBlock>,
            LinearTensorCore.Threads * default(TBlock).WarpGroups(), LinearWgmma.SharedBytes<TBlock>(), PtxTarget.Hopper);

    private static List<BenchResult> RunShape(Backend backend, CuBlas blas, int m, int n, int k, int iterations,
        IReadOnlyCollection<int> extraSplits, bool tma, bool clusters, TextWriter log)
    {
        var arena = backend.Arena;
        using var x = arena.Upload(GpuChecks.RandomData(1, (long)m * k, 1f), m, k);
        using var w = arena.Upload(GpuChecks.RandomData(2, (long)n * k, 1f / MathF.Sqrt(k)), n, k);
        using var xHalf = HalfConversion.ToHalf(x);
        using var wHalf = HalfConversion.ToHalf(w);
        using var y = arena.Rent(m, n);
        using var scratch = arena.Rent(m, n);
        ILGPU.Runtime.Kernel? driverSplit = null;
        var coldWeights = new List<Tensor>();
        using var yHalf = arena.Rent(DType.Float16, m, n);

        // cuBLAS is column-major: y^T (N x M) = W (K x N, transposed) * x^T (K x M).
        void CublasSgemm() => blas.Gemm(CuBlasOperation.Transpose, CuBlasOperation.NonTranspose, n, m, k,
            1f, w.View, k, x.View, k, 0f, y.View, n);
        void CublasHgemm() => blas.Gemm(CuBlasOperation.Transpose, CuBlasOperation.NonTranspose, n, m, k,
            (ILGPU.Half)1f, wHalf.HalfView, k, xHalf.HalfView, k, (ILGPU.Half)0f, yHalf.HalfView, n);
        Action OurSgemm(int splits) => () => Sgemm.Run<IdentityEpilogue>(backend, x.View, w.View, ArrayView<float>.Empty, y.View, m, n, k, splits);
        Action OurTensorCore(int splits) => () => LinearTensorCore.Run<IdentityEpilogue>(backend, xHalf.HalfView, wHalf, ArrayView<float>.Empty, OutputView.Of(y), m, splits);
        Action OurTf32x3(int splits) => () => LinearTensorCore.RunTf32x3<IdentityEpilogue>(backend, x.View, w, ArrayView<float>.Empty, OutputView.Of(y), m, splits);
        int sms = backend.Accelerator.NumMultiprocessors;
        int tcSplits = SplitK.Choose(sms, m, n, k, LinearTensorCore.Tile, LinearTensorCore.Depth);
        int tfSplits = SplitK.Choose(sms, m, n, k, LinearTensorCore.Tile, LinearTensorCore.DepthTf32);
        int sgSplits = SplitK.Choose(sms, m, n, k, Sgemm.Tile, Sgemm.Depth);

        double warm = Time(backend, CublasSgemm, 1);
        var reference = y.ToArray();
        var kernels = new List<(string Name, Action Launch, Tensor Output, double Warm)>
        {
            ("cuBLAS SGEMM fp32", CublasSgemm, y, warm),
            (tcSplits > 1 ? $"ours tensor-core fp16 split {tcSplits}" : "ours tensor-core fp16", OurTensorCore(tcSplits), y, -1),
            (tfSplits > 1 ? $"ours 3xTF32 fp32 split {tfSplits}" : "ours 3xTF32 fp32", OurTf32x3(tfSplits), y, -1),
            (sgSplits > 1 ? $"ours SGEMM fp32 split {sgSplits}" : "ours SGEMM fp32", OurSgemm(sgSplits), y, -1),
            ("cuBLAS HGEMM fp16", CublasHgemm, yHalf, -1),
        };
        // Where split-K applies, the unsplit kernel in the same run shows what it gains.
        if (tcSplits > 1) kernels.Insert(2, ("ours tensor-core fp16 unsplit", OurTensorCore(1), y, -1));
        // The Hopper kernels (same blocks, so the same split choice).
        Action Tma<TBlock, TLayout, TRing>() where TBlock : struct, LinearWgmma.IBlock where TLayout : struct, LinearWgmmaTma.ILayout
            where TRing : struct, LinearWgmmaTma.IRing => () =>
            LinearWgmmaTma.Run<IdentityEpilogue, TBlock, TLayout, TRing>(backend, xHalf.HalfView, wHalf, ArrayView<float>.Empty, OutputView.Of(y), m, tcSplits);
        // The kernel Linear takes on Hopper (128 x 128, 64-byte swizzle, the default ring) split as given.
        Action OurTma(int splits) => () => LinearWgmmaTma.Run<IdentityEpilogue, LinearWgmma.OneWarpGroup>(
            backend, xHalf.HalfView, wHalf, ArrayView<float>.Empty, OutputView.Of(y), m, splits);
        // W as a forward meets it: read from device memory, not from L2 (each call takes the next of enough copies
        // to pass any L2). At batch 2 the forward's fc1 took 48.8 µs where the L2-hot table row took 25 (eleventh
        // session): with 2 tiles in flight a block waits out device-memory latency; deeper rings, or more splits
        // (shorter chains of tiles per block), may not.
        Action Cold<TBlock, TRing>(int splits) where TBlock : struct, LinearWgmma.IBlock where TRing : struct, LinearWgmmaTma.IRing
        {
            while ((long)coldWeights.Count * n * k * 2 < ColdBytes) coldWeights.Add(HalfConversion.ToHalf(w));
            int call = 0;
            return () => LinearWgmmaTma.Run<IdentityEpilogue, TBlock, LinearWgmmaTma.Swizzled64, TRing>(backend, xHalf.HalfView,
                coldWeights[call++ % coldWeights.Count], ArrayView<float>.Empty, OutputView.Of(y), m, splits);
        }
        // The first headRows rows unsplit, then the rest split over K: two launches of the built-in TMA GEMM variant.
        Action HeadThenTail(int headRows, int tailSplits) => () => Linear.RunFp16Launch<IdentityEpilogue>(backend,
            LinearWgmmaTma.Variant.Default, tailSplits, headRows, xHalf.HalfView, wHalf, ArrayView<float>.Empty, OutputView.Of(y), m);
        if (tma && clusters)
        {
            string split = tcSplits > 1 ? $" split {tcSplits}" : "";
            kernels = [kernels[0],
                ($"ours TMA swizzled fp16{split}", Tma<LinearWgmma.OneWarpGroup, LinearWgmmaTma.Swizzled64, LinearWgmmaTma.BarrierRing>(), y, -1),
                ($"ours TMA swz released fp16{split}", Tma<LinearWgmma.OneWarpGroup, LinearWgmmaTma.Swizzled64, LinearWgmmaTma.ReleasedRing>(), y, -1),
                ($"ours TMA swz 7 stages released{split}", Tma<LinearWgmma.OneWarpGroup, LinearWgmmaTma.Swizzled64, LinearWgmmaTma.DeepReleasedRing>(), y, -1),
                ($"ours TMA swz multicast fp16{split}", Tma<LinearWgmma.OneWarpGroup, LinearWgmmaTma.Swizzled64, LinearWgmmaTma.MulticastRing>(), y, -1),
                // 256 x 128 blocks in clusters: each reads 20 KB per tile for twice the products of a 128 x 128 block's 16.
                ($"ours TMA 256x128 multicast{split}", Tma<LinearWgmma.TwoWarpGroups, LinearWgmmaTma.Swizzled64, LinearWgmmaTma.MulticastRing>(), y, -1),
                ($"TMA swz cold W{split}", Cold<LinearWgmma.OneWarpGroup, LinearWgmmaTma.BarrierRing>(tcSplits), y, -1),
                ($"TMA swz multicast cold W{split}", Cold<LinearWgmma.OneWarpGroup, LinearWgmmaTma.MulticastRing>(tcSplits), y, -1),
                kernels[^1]];
        }
        else if (tma)
        {
            string split = tcSplits > 1 ? $" split {tcSplits}" : "";
            Action copies = () => LinearWgmma.Run<IdentityEpilogue>(backend, xHalf.HalfView, wHalf, ArrayView<float>.Empty, OutputView.Of(y), m, tcSplits);
            kernels = [kernels[0], ($"ours wgmma fp16{split}", copies, y, -1),
                ($"ours TMA 16B boxes fp16{split}", Tma<LinearWgmma.OneWarpGroup, LinearWgmmaTma.Plain, LinearWgmmaTma.BarrierRing>(), y, -1),
                ($"ours TMA swizzled fp16{split}", Tma<LinearWgmma.OneWarpGroup, LinearWgmmaTma.Swizzled64, LinearWgmmaTma.BarrierRing>(), y, -1),
                ($"ours TMA swz 256x128 fp16{split}", Tma<LinearWgmma.TwoWarpGroups, LinearWgmmaTma.Swizzled64, LinearWgmmaTma.BarrierRing>(), y, -1),
                // 64-deep tiles in the 128-byte swizzle: half the waits, barriers and copies per product (1 block a
                // multiprocessor on 4 stages of 32 KB, 2 on 3).
                ($"ours TMA x64 fp16{split}", Tma<LinearWgmma.OneWarpGroup, LinearWgmmaTma.Swizzled128, LinearWgmmaTma.BarrierRing>(), y, -1),
                ($"ours TMA x64 3 stg released{split}", Tma<LinearWgmma.OneWarpGroup, LinearWgmmaTma.Swizzled128, LinearWgmmaTma.ShallowReleasedRing>(), y, -1),
                ($"ours TMA x64 256x128 released{split}", Tma<LinearWgmma.TwoWarpGroups, LinearWgmmaTma.Swizzled128, LinearWgmmaTma.ReleasedRing>(), y, -1),
                // The loads limit it (the "loads only" row): more tiles in flight per multiprocessor, by more stages
                // or by warps releasing stages instead of a block barrier per tile.
                ($"ours TMA swz 6 stages fp16{split}", Tma<LinearWgmma.OneWarpGroup, LinearWgmmaTma.Swizzled64, LinearWgmmaTma.DeepBarrierRing>(), y, -1),
                ($"ours TMA swz released fp16{split}", Tma<LinearWgmma.OneWarpGroup, LinearWgmmaTma.Swizzled64, LinearWgmmaTma.ReleasedRing>(), y, -1),
                ($"ours TMA swz 7 stages released{split}", Tma<LinearWgmma.OneWarpGroup, LinearWgmmaTma.Swizzled64, LinearWgmmaTma.DeepReleasedRing>(), y, -1),
                ($"ours TMA swz 256x128 released{split}", Tma<LinearWgmma.TwoWarpGroups, LinearWgmmaTma.Swizzled64, LinearWgmmaTma.ReleasedRing>(), y, -1),
                // 256 x 128 blocks read a quarter less per product than 128 x 128 but fit one per multiprocessor:
                // 6 stages (144 KB) keep 4 tiles of 24 KB in flight.
                ($"ours TMA swz 256x128 6 stages{split}", Tma<LinearWgmma.TwoWarpGroups, LinearWgmmaTma.Swizzled64, LinearWgmmaTma.DeepBarrierRing>(), y, -1),
                kernels[^1]];
            // Wave quantization: DiT-XL/2's out-projection and fc2 at batch 16 have 288 blocks, all resident at 3 a
            // multiprocessor on 132, so 24 multiprocessors run 3 while 108 run 2 (2.18 on average). Whether the rows
            // of 2 blocks a multiprocessor, then the last rows split over K, take less than the 3 blocks' time.
            int headRows = SplitK.HeadRows(sms, m, n, LinearTensorCore.Tile);
            if (tcSplits == 1 && headRows > 0)
                foreach (int tailSplits in new[] { 2, 4 })
                    kernels.Add(($"TMA swz {headRows} rows, then split {tailSplits}", HeadThenTail(headRows, tailSplits), y, -1));
            kernels.Add(($"TMA swz cold W{split}", Cold<LinearWgmma.OneWarpGroup, LinearWgmmaTma.BarrierRing>(tcSplits), y, -1));
            kernels.Add(($"TMA swz 6 stages cold W{split}", Cold<LinearWgmma.OneWarpGroup, LinearWgmmaTma.DeepBarrierRing>(tcSplits), y, -1));
            kernels.Add(($"TMA swz released cold W{split}", Cold<LinearWgmma.OneWarpGroup, LinearWgmmaTma.ReleasedRing>(tcSplits), y, -1));
            kernels.Add(($"TMA swz 7 stg released cold W{split}", Cold<LinearWgmma.OneWarpGroup, LinearWgmmaTma.DeepReleasedRing>(tcSplits), y, -1));
            kernels.Add(($"TMA 256x128 6 stg cold W{split}", Cold<LinearWgmma.TwoWarpGroups, LinearWgmmaTma.DeepBarrierRing>(tcSplits), y, -1));
            // Where the time goes, as for the cp.async kernel: its loads alone, its multiplies alone (timing only).
            if (tcSplits == 1)
            {
                kernels.Add(("TMA swz loads only (timing)", () => LinearWgmmaTma.RunOn<IdentityEpilogue, LinearWgmma.OneWarpGroup, LinearWgmmaTma.Swizzled64,
                    LinearWgmmaTma.BarrierRing, CopiesOnly, LinearWgmmaTma.Tma>(backend, xHalf.HalfView, wHalf, ArrayView<float>.Empty, OutputView.Of(scratch), m, 1), scratch, -1));
                kernels.Add(("TMA swz multiplies only (timing)", () => LinearWgmmaTma.RunOn<IdentityEpilogue, LinearWgmma.OneWarpGroup, LinearWgmmaTma.Swizzled64,
                    LinearWgmmaTma.BarrierRing, LinearWgmma.Ptx, TmaArrivalsOnly>(backend, xHalf.HalfView, wHalf, ArrayView<float>.Empty, OutputView.Of(scratch), m, 1), scratch, -1));
                // Whether the 32-deep tiles' waits and barriers are what hold the multiplies alone at ~44% of peak.
                kernels.Add(("TMA x64 multiplies only (timing)", () => LinearWgmmaTma.RunOn<IdentityEpilogue, LinearWgmma.OneWarpGroup, LinearWgmmaTma.Swizzled128,
                    LinearWgmmaTma.ShallowRing, LinearWgmma.Ptx, TmaArrivalsOnly>(backend, xHalf.HalfView, wHalf, ArrayView<float>.Empty, OutputView.Of(scratch), m, 1), scratch, -1));
            }
        }
        else if (backend.UsesTma)
            // The default on Hopper, beside the mma.sync kernel; --tma times its layouts and parts.
            kernels.Insert(1, ($"ours TMA fp16{(tcSplits > 1 ? $" split {tcSplits}" : "")}", OurTma(tcSplits), y, -1));
        else if (backend.UsesWgmma)
        {
            // 128 x 128 blocks (what Linear takes) and 256 x 128 (two warpgroups), each as split as the other kernels.
            Action OurWgmma(int splits) => () => LinearWgmma.Run<IdentityEpilogue>(backend, xHalf.HalfView, wHalf, ArrayView<float>.Empty, OutputView.Of(y), m, splits);
            Action OurWgmmaTall(int splits) => () =>
                LinearWgmma.Run<IdentityEpilogue, LinearWgmma.TwoWarpGroups>(backend, xHalf.HalfView, wHalf, ArrayView<float>.Empty, OutputView.Of(y), m, splits);
            string split = tcSplits > 1 ? $" split {tcSplits}" : "";
            kernels.Insert(1, ($"ours wgmma fp16{split}", OurWgmma(tcSplits), y, -1));
            Action OurWgmmaCompact(int splits) => () =>
                LinearWgmma.Run<IdentityEpilogue, LinearWgmma.OneWarpGroupCompact>(backend, xHalf.HalfView, wHalf, ArrayView<float>.Empty, OutputView.Of(y), m, splits);
            kernels.Insert(2, ($"ours wgmma 256x128 fp16{split}", OurWgmmaTall(tcSplits), y, -1));
            kernels.Insert(3, ($"ours wgmma 48 KB fp16{split}", OurWgmmaCompact(tcSplits), y, -1));
            if (tcSplits > 1) kernels.Insert(4, ("ours wgmma fp16 unsplit", OurWgmma(1), y, -1));
            // Where the time goes: the same kernel without its multiplies, and without its copies (wrong
            // results, so a rel.err near 1: timing only). Written into a scratch output, not y.
            if (tcSplits == 1)
            {
                // The 128 x 128 kernel with the L1 / shared split left to the driver (no carveout preference).
                driverSplit = backend.LoadExplicitlyGrouped(((Action<LinearTensorCore.Args>)LinearWgmma.Kernel<IdentityEpilogue, LinearWgmma.Ptx, LinearWgmma.OneWarpGroup>).Method,
                    LinearWgmma.SharedBytes<LinearWgmma.OneWarpGroup>(), PtxTarget.Hopper, preferShared: false);
                var launch = driverSplit.CreateLauncherDelegate<Action<ILGPU.Runtime.AcceleratorStream, ILGPU.KernelConfig, LinearTensorCore.Args>>();
                kernels.Add(("wgmma, driver's carveout", () =>
                    LinearTensorCore.Launch<IdentityEpilogue, ILGPU.Half>(backend, "LinearWgmma", xHalf.HalfView, wHalf.HalfView, wHalf, ArrayView<float>.Empty,
                        OutputView.Of(y), m, 1, 8, LinearTensorCore.Depth, () => (config, args) => launch(backend.Stream, config, args), LinearWgmma.Config<LinearWgmma.OneWarpGroup>), y, -1));
                kernels.Add(("wgmma copies only (timing)", () =>
                    LinearWgmma.RunOn<IdentityEpilogue, LinearWgmma.OneWarpGroup, CopiesOnly>(backend, xHalf.HalfView, wHalf, ArrayView<float>.Empty, OutputView.Of(scratch), m, 1), scratch, -1));
                kernels.Add(("wgmma multiplies only (timing)", () =>
                    LinearWgmma.RunOn<IdentityEpilogue, LinearWgmma.OneWarpGroup, MultipliesOnly>(backend, xHalf.HalfView, wHalf, ArrayView<float>.Empty, OutputView.Of(scratch), m, 1), scratch, -1));
            }
        }
        if (sgSplits > 1 && !tma) kernels.Add(("ours SGEMM fp32 unsplit", OurSgemm(1), y, -1));
        // The split sweep, on the kernel Linear takes too where that is the TMA one (data for SplitK.Choose).
        if (backend.UsesTma && !tma && tcSplits > 1) kernels.Add(("ours TMA fp16 unsplit", OurTma(1), y, -1));
        // The split the device picks, cold, beside the sweep's cold rows (M = 512: the batch-2 forward's GEMMs).
        if (backend.UsesTma && !tma && extraSplits.Count > 0 && m <= 512)
            kernels.Add(($"ours TMA fp16 split {tcSplits} cold W", Cold<LinearWgmma.OneWarpGroup, LinearWgmmaTma.BarrierRing>(tcSplits), y, -1));
        foreach (int s in tma ? [] : extraSplits.Where(s => s != tcSplits && !(s == 1 && tcSplits > 1)).Distinct())
        {
            kernels.Add((s > 1 ? $"ours tensor-core fp16 split {s}" : "ours tensor-core fp16 unsplit", OurTensorCore(s), y, -1));
            if (backend.UsesTma) kernels.Add((s > 1 ? $"ours TMA fp16 split {s}" : "ours TMA fp16 unsplit", OurTma(s), y, -1));
            if (backend.UsesTma && m <= 512) kernels.Add(($"ours TMA fp16 split {s} cold W", Cold<LinearWgmma.OneWarpGroup, LinearWgmmaTma.BarrierRing>(s), y, -1));
        }
        var results = new List<BenchResult>();
        foreach (var (name, launch, output, known) in kernels)
        {
            try
            {
                double warmup = known >= 0 ? known : Time(backend, launch, 1);
                double error = GpuChecks.RelativeL2(output.ToArray(), reference);
                BenchClock.KeepBusy(backend, launch);
                double ms = Time(backend, launch, iterations) / iterations;
                results.Add(new BenchResult(name, m, n, k, error, warmup, ms, 2.0 * m * n * k / (ms * 1e-3) / 1e12));
            }
            catch (Exception e) when (e is ILGPU.Runtime.AcceleratorException or CuBlasException or InvalidOperationException)
            {
                // One failing implementation (a missing cuBLAS, a rejected kernel) should not hide the others.
                log.WriteLine($"{name} at M={m} N={n} K={k} failed: {e.GetType().Name}: {e.Message}");
            }
        }
        driverSplit?.Dispose();
        foreach (var copy in coldWeights) copy.Dispose();
        return results;
    }

    /// <summary>Bytes of weight copies a cold-W row cycles through: well past an H100's or H200's 50 MB of L2.</summary>
    private const long ColdBytes = 160L << 20;

    /// <summary>Milliseconds for `count` back-to-back launches, waiting for the device before and after.</summary>
    private static double Time(Backend backend, Action launch, int count)
    {
        backend.Synchronize();
        var watch = Stopwatch.StartNew();
        for (int i = 0; i < count; i++) launch();
        backend.Synchronize();
        return watch.Elapsed.TotalMilliseconds;
    }

    /// <summary>Writes the results as JSON (temp file, then rename).</summary>
    public static void WriteJson(string path, string device, IReadOnlyList<BenchResult> results, IReadOnlyList<CheckResult> checks) =>
        BenchJson.Write(path, new { device, checks, results });
}
