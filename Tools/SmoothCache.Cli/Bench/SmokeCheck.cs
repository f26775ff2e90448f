using ILGPU.Runtime;
using SmoothCache.Cli.Commands;
using SmoothCache.Kernels;
using SmoothCache.Sampling;

namespace SmoothCache.Cli.Bench;

/// <summary>
/// Runs every DiT operator once on small random tensors, waiting and reading back after each launch,
/// and compares each result with the CPU backend: the first thing to run on a new device. It prints
/// which step fails and how. The steps go from single kernels at toy shapes, through the same kernels
/// at dit-digits' shapes and short chains of them, to one whole dit-digits forward — so a fault that
/// only shows inside the model is narrowed to the smallest sequence that still shows it.
/// </summary>
public static class SmokeCheck
{
    private const double Tolerance = 1e-5;

    public static bool Run(Backend backend, TextWriter log, string? digitsFolder = null)
    {
        backend.SynchronizeEachLaunch = true;
        // The reference: the portable kernels, whatever SMOOTHCACHE_KERNELS asks of the device under test.
        using var cpu = backend.IsCuda ? Backend.Create(DeviceKind.Cpu, KernelSet.Portable) : null;
        var steps = Steps(digitsFolder ?? SamplingOptions.ResolveModel(SamplingOptions.DefaultModel)).Select(s => (s.Name, s.Op, Tolerance))
            .Concat(TensorCoreAttentionSteps().Select(s => (s.Name, s.Op, TensorCoreAttentionTolerance)))
            .Concat(Fp16Steps(digitsFolder ?? SamplingOptions.ResolveModel(SamplingOptions.DefaultModel)).Select(s => (s.Name, s.Op, Fp16Tolerance)));
        foreach (var (name, op, tolerance) in steps)
        {
            try
            {
                var got = op(backend);
                if (cpu is null)
                {
                    log.WriteLine($"ok   {name}");
                    continue;
                }
                double error = GpuChecks.RelativeL2(got, op(cpu));
                bool passed = error <= tolerance;
                log.WriteLine($"{(passed ? "ok  " : "FAIL")} {name}: rel.err vs CPU {error:E2}");
                if (!passed) return false;
            }
            catch (Exception e)
            {
                log.WriteLine($"FAIL {name}: {e.GetType().Name}: {e.Message}");
                return false;
            }
        }
        return true;
    }

    /// <summary>Float16 results on a GPU against the CPU's: fp16 roundings of values whose float32 sums differ in order (a
    /// warp's tree, fused multiply-adds), a unit apart where they fall on either side of a rounding boundary (the adaLN
    /// over float16 residuals came out ~1e-5 apart in a model of the GPU's arithmetic).</summary>
    private const double Fp16Tolerance = 1e-3;

    /// <summary>The adaLN over float16 residuals; dit-digits on the fp16 path: its components' outputs float16 (the adaLN
    /// widening them), a forward, then a 4-step job whose cache reuses them (the gated residuals of reused components
    /// added on launches of their own).</summary>
    private static IEnumerable<(string Name, Func<Backend, float[]> Op)> Fp16Steps(string digitsFolder)
    {
        yield return ("LayerNormModulate [2,16,1152] fp16 after two fp16 residuals, x then y", b =>
        {
            using var x = Upload(b, 41, 2, 16, 1152);
            using var r = Upload(b, 42, 2, 16, 1152);
            using var r2 = Upload(b, 43, 2, 16, 1152);
            using var xHalf = HalfConversion.ToHalf(x);
            using var rHalf = HalfConversion.ToHalf(r);
            using var r2Half = HalfConversion.ToHalf(r2);
            using var m = Upload(b, 44, 2, 6 * 1152);
            using var y = LayerNormModulate.RunAfterResiduals(xHalf, m, 0, 1152, 1e-6f, rHalf, 2 * 1152, r2Half, 5 * 1152, DType.Float16);
            return [.. Read(xHalf.Share()), .. Read(y.Share())];
        });
        if (!Directory.Exists(digitsFolder)) yield break;
        yield return ("dit-digits fp16 forward, batch 2", b => DigitsForward(b, digitsFolder, Precision.Fp16));
        yield return ("dit-digits fp16 DDIM 4 steps, 1 image with CFG, SmoothCache reusing steps 1 and 2", b =>
        {
            using var pipeline = DiTPipeline.Load(digitsFolder, b, Precision.Fp16);
            var schedule = Caching.CacheSchedule.Parse("{\"attn1\": [1, 0, 1, 1], \"ff\": [1, 1, 0, 1]}", "smoke schedule");
            using var cache = Caching.SmoothCacheHelper.Enable(pipeline.Transformer, schedule);
            return pipeline.Generate(new GenerationOptions { Labels = [7], Steps = 4, Scheduler = "ddim" }).Latents;
        });
    }

    /// <summary>The fp16 tensor-core attention rounds its probabilities to fp16 for the product with v, where the
    /// reference keeps floats: ~1e-4 apart (as in bench-gemm's checks).</summary>
    private const double TensorCoreAttentionTolerance = 1e-3;

    /// <summary>The fp16 attention at head dims 72 and 64 on both of its key-tile stagings (on a GPU with tensor cores;
    /// elsewhere the portable kernel), against the CPU's float attention of the same fp16 qkv: 70 and 130 tokens, so
    /// two and three key tiles (both buffers of the asynchronous staging, reused), the last one cut at T.</summary>
    private static IEnumerable<(string Name, Func<Backend, float[]> Op)> TensorCoreAttentionSteps()
    {
        foreach (var (t, heads, headDim, seed) in new[] { (70, 3, 72, 32), (130, 2, 64, 33) })
            foreach (var staging in Enum.GetValues<Kernels.Gpu.FlashAttentionTensorCore.Staging>())
                yield return ($"Attention fp16, {t} tokens, {heads} heads of {headDim}, {staging.ToString().ToLowerInvariant()} staging", b =>
                {
                    using var q = Upload(b, seed, 2, t, 3 * heads * headDim);
                    using var half = HalfConversion.ToHalf(q);
                    return Read(Attention.Run(half, heads, headDim, staging: staging));
                });
    }

    private static float[] Random(int seed, long n) => GpuChecks.RandomData(seed, n, 1f);

    private static Tensor Upload(Backend backend, int seed, params int[] shape) =>
        backend.Arena.Upload(Random(seed, Tensor.ElementCount(shape)), shape);

    private static float[] Read(Tensor t)
    {
        using (t) return t.ToArray();
    }

    private static float[] DigitsForward(Backend backend, string digitsFolder, Precision precision = Precision.Fp32)
    {
        using var pipeline = DiTPipeline.Load(digitsFolder, backend, precision);
        var c = pipeline.Transformer.Config;
        using var latents = Upload(backend, 25, 2, c.InChannels, c.SampleSize, c.SampleSize);
        return Read(pipeline.Transformer.Forward(latents, [999f, 500f], [3, c.NullClass]));
    }

    /// <summary>2 x 1152 by 200 x 1152 fp16 on <see cref="Kernels.Gpu.LinearSkinnyTensorCore"/> in warps of
    /// <typeparamref name="TShape"/> (on tensor cores; elsewhere the portable fp16 product it is compared with).</summary>
    private static float[] FewRows<TShape>(Backend b) where TShape : struct, Kernels.Gpu.LinearSkinnyTensorCore.IWarpShape
    {
        using var x = Upload(b, 34, 2, 1152);
        using var w = Upload(b, 35, 200, 1152);
        using var half = HalfConversion.ToHalf(w);
        using var bias = Upload(b, 36, 200);
        if (!b.UsesTensorCores) return Read(Linear.Run(x, half, bias));
        using var xHalf = HalfConversion.ToHalf(x);
        var y = b.Arena.Rent(2, 200);
        Kernels.Gpu.LinearSkinnyTensorCore.Run<IdentityEpilogue, TShape>(b, xHalf.HalfView, half, bias.View, OutputView.Of(y), 2);
        return Read(y);
    }

    private static IEnumerable<(string Name, Func<Backend, float[]> Op)> Steps(string digitsFolder)
    {
        yield return ("Unpatchify [2,16,8]", b => { using var y = Upload(b, 1, 2, 16, 8); return Read(Unpatchify.Run(y, 2, 2)); });
        yield return ("Unpatchify at dit-digits' shape [2,64,8]", b => { using var y = Upload(b, 2, 2, 64, 8); return Read(Unpatchify.Run(y, 2, 2)); });
        yield return ("Guidance", b => { using var m = Upload(b, 3, 4, 2, 4, 4); return Read(Guidance.Run(m, 1, 4f)); });
        yield return ("RepeatBatch", b => { using var x = Upload(b, 4, 2, 1, 4, 4); return Read(RepeatBatch.Run(x, 2)); });
        yield return ("PositionTable", b => Read(PositionTable.Run(b, 4, 8)));
        yield return ("TimestepEmbedding", b => Read(TimestepEmbedding.Run(b, [999f, 1f])));
        yield return ("TimestepEmbedding at one timestep", b => Read(TimestepEmbedding.Run(b, [500f, 500f])));
        yield return ("ClassEmbedding with SiLU", b =>
        {
            using var labels = b.Accelerator.Allocate1D<int>(2);
            labels.View.CopyFromCPU(new[] { 1, 0 });
            using var table = Upload(b, 5, 3, 8);
            using var add = Upload(b, 6, 2, 8);
            return Read(ClassEmbedding.Run<SiluEpilogue>(labels.View, table, add));
        });
        yield return ("PatchEmbed", b =>
        {
            using var x = Upload(b, 7, 2, 1, 8, 8);
            using var w = Upload(b, 8, 8, 1, 2, 2);
            using var bias = Upload(b, 9, 8);
            using var pos = Upload(b, 10, 16, 8);
            return Read(PatchEmbed.Run(x, w, bias, pos));
        });
        yield return ("Elementwise SiLU", b => { using var x = Upload(b, 11, 2, 8); return Read(Elementwise.Run<SiluEpilogue>(x)); });
        yield return ("Linear [32,8] x [24,8]", b =>
        {
            using var x = Upload(b, 12, 2, 16, 8);
            using var w = Upload(b, 13, 24, 8);
            using var bias = Upload(b, 14, 24);
            return Read(Linear.Run(x, w, bias));
        });
        // fp16 weights: the tensor-core GEMM on CUDA (or LinearWgmma under SMOOTHCACHE_KERNELS=wgmma), the
        // portable fp16 product on the CPU; both multiply the same fp16-rounded values in fp32.
        yield return ("Linear fp16 [32,8] x [24,8]", b =>
        {
            using var x = Upload(b, 26, 2, 16, 8);
            using var w = Upload(b, 27, 24, 8);
            using var half = HalfConversion.ToHalf(w);
            using var bias = Upload(b, 28, 24);
            return Read(Linear.Run(x, half, bias));
        });
        yield return ("Linear fp16 [300,136] x [200,136], blocks cut at the edges", b =>
        {
            using var x = Upload(b, 29, 300, 136);
            using var w = Upload(b, 30, 200, 136);
            using var half = HalfConversion.ToHalf(w);
            using var bias = Upload(b, 31, 200);
            return Read(Linear.Run<GeluTanhEpilogue>(x, half, bias));
        });
        // The conditioning GEMMs' few rows on tensor cores without tiles, in each warp shape (the 16- and 8-column ones new in
        // the eighteenth session, not yet run on a GPU) against the portable fp16 product.
        yield return ("Linear fp16 [2,1152] x [200,1152], few rows on tensor cores, 32 columns a warp", FewRows<Kernels.Gpu.LinearSkinnyTensorCore.Columns32>);
        yield return ("Linear fp16 [2,1152] x [200,1152], few rows on tensor cores, 16 columns a warp", FewRows<Kernels.Gpu.LinearSkinnyTensorCore.Columns16>);
        yield return ("Linear fp16 [2,1152] x [200,1152], few rows on tensor cores, 8 columns a warp", FewRows<Kernels.Gpu.LinearSkinnyTensorCore.Columns8>);
        yield return ("LayerNormModulate", b =>
        {
            using var x = Upload(b, 15, 2, 16, 8);
            using var m = Upload(b, 16, 2, 48);
            return Read(LayerNormModulate.Run(x, m, 0, 8, 1e-6f));
        });
        yield return ("GatedResidual", b =>
        {
            var x = Upload(b, 17, 2, 16, 8);
            using var y = Upload(b, 18, 2, 16, 8);
            using var m = Upload(b, 19, 2, 48);
            GatedResidual.Run(x, m, y, 16);
            return Read(x);
        });
        // The fp16 path's residual stream and component outputs (float16 widened and x rounded in the float4 kernels).
        yield return ("GatedResidual, fp16 x and two fp16 residuals", b =>
        {
            using var x = Upload(b, 37, 2, 16, 8);
            using var y = Upload(b, 38, 2, 16, 8);
            using var y2 = Upload(b, 39, 2, 16, 8);
            var xHalf = HalfConversion.ToHalf(x);
            using var yHalf = HalfConversion.ToHalf(y);
            using var y2Half = HalfConversion.ToHalf(y2);
            using var m = Upload(b, 40, 2, 48);
            GatedResidual.Run(xHalf, m, yHalf, 16, y2Half, 32);
            return Read(xHalf);
        });
        yield return ("Attention head dim 4", b => { using var q = Upload(b, 20, 2, 16, 24); return Read(Attention.Run(q, 2, 4)); });
        yield return ("Attention at dit-digits' shape (4 heads of 16, 64 tokens)", b =>
        {
            using var q = Upload(b, 21, 2, 64, 192);
            return Read(Attention.Run(q, 4, 16));
        });
        // The VAE decoder's operators: on GPU kernels a convolution runs as a GEMM (patches unfolded, transposed back), and
        // its attention (one head of 512) as two GEMMs a sample.
        yield return ("Attention, one head of 512, 40 tokens", b => { using var q = Upload(b, 46, 2, 40, 3 * 512); return Read(Attention.Run(q, 1, 512)); });
        yield return ("Conv2d 3x3 [2,12,9,10] -> 20 channels, SiLU, plus a residual", b =>
        {
            using var x = Upload(b, 37, 2, 12, 9, 10);
            using var w = Upload(b, 38, 20, 12, 3, 3);
            using var bias = Upload(b, 39, 20);
            using var residual = Upload(b, 40, 2, 20, 9, 10);
            return Read(Conv2d.Run<SiluEpilogue>(x, w, bias, residual));
        });
        yield return ("Conv2d 3x3 [2,16,9,10] -> 3 channels, fp16 weight (the fp16 VAE's conv_out), plus a residual", b =>
        {
            using var x = Upload(b, 47, 2, 16, 9, 10);
            using var w = Upload(b, 48, 3, 16, 3, 3);
            using var wHalf = HalfConversion.ToHalf(w);
            using var bias = Upload(b, 49, 3);
            using var residual = Upload(b, 50, 2, 3, 9, 10);
            return Read(Conv2d.Run(x, wHalf, bias, residual));
        });
        yield return ("Conv2d 1x1 [2,16,8,8] -> 3 channels", b =>
        {
            using var x = Upload(b, 41, 2, 16, 8, 8);
            using var w = Upload(b, 42, 3, 16, 1, 1);
            return Read(Conv2d.Run(x, w, null));
        });
        yield return ("GroupNorm with SiLU [2,32,6,6], 8 groups, then Upsample", b =>
        {
            using var x = Upload(b, 43, 2, 32, 6, 6);
            using var gamma = Upload(b, 44, 32);
            using var beta = Upload(b, 45, 32);
            using var normed = GroupNorm.Run<SiluEpilogue>(x, 8, gamma, beta, 1e-6f);
            return Read(Upsample.Run(normed));
        });
        // dit-digits' final layer: proj_out (N = 8) feeding Unpatchify, where a whole forward faulted.
        yield return ("proj_out [128,64] x [8,64] then Unpatchify", b =>
        {
            using var h = Upload(b, 22, 2, 64, 64);
            using var w = Upload(b, 23, 8, 64);
            using var bias = Upload(b, 24, 8);
            using var y = Linear.Run(h, w, bias);
            return Read(Unpatchify.Run(y, 2, 2));
        });
        if (!Directory.Exists(digitsFolder)) yield break;
        // First with the portable kernels (a second context on the device, before anything can have
        // faulted this one), then with the GPU kernels: tells a device-specific kernel from the rest.
        yield return ("dit-digits forward, batch 2, portable kernels", b =>
        {
            if (!b.IsCuda) return DigitsForward(b, digitsFolder);
            float[] result;
            using (var portable = Backend.Create(b.Device, KernelSet.Portable))
            {
                portable.SynchronizeEachLaunch = true;
                portable.Accelerator.Bind();
                result = DigitsForward(portable, digitsFolder);
            }
            b.Accelerator.Bind();
            return result;
        });
        yield return ("dit-digits forward, batch 2", b => DigitsForward(b, digitsFolder));
        yield return ("dit-digits DDIM 2 steps, 1 image with CFG", b =>
        {
            using var pipeline = DiTPipeline.Load(digitsFolder, b);
            return pipeline.Generate(new GenerationOptions { Labels = [7], Steps = 2, Scheduler = "ddim" }).Latents;
        });
        // On CUDA one graph: captured from the backend's stream, launched as a whole.
        float[] RecordedJob(Backend b)
        {
            using var pipeline = DiTPipeline.Load(digitsFolder, b);
            using var recorded = pipeline.Record(new GenerationOptions { Labels = [7], Steps = 2, Scheduler = "ddim" });
            recorded.Run();
            return recorded.Run().Latents;
        }
        yield return ("dit-digits DDIM 2 steps, recorded and replayed", RecordedJob);
        // On a GPU with programmatic dependent launch: the graph's kernels launched while the one before them runs.
        yield return ("dit-digits DDIM 2 steps, recorded with dependent launches and replayed",
            b => ModelBench.WithDependentLaunches(b, true, () => RecordedJob(b)));
    }
}
