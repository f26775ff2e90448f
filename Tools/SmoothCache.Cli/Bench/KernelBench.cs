using System.Diagnostics;
using ILGPU;
using ILGPU.Runtime;
using SmoothCache.Kernels;
using SmoothCache.Kernels.Gpu;
using SmoothCache.Caching;
using SmoothCache.Model;
using SmoothCache.Sampling;

namespace SmoothCache.Cli.Bench;

public sealed record KernelTiming(string Kernel, string Shape, double Milliseconds, double Gflops);

/// <summary>
/// Times each operator of a sampling step on the current backend at the shapes of one forward of a model (dit-digits at
/// batch 20 by default), every kernel the model, the sampler and the cache run (the VAE's too with vaeImages): one
/// warm-up call (compile), then the mean of several calls.
/// </summary>
public static class KernelBench
{
    /// <param name="model">the model whose forward's shapes are timed (width, heads, tokens, channels, patch; its num_layers
    /// blocks' adaLN projections are the conditioning GEMM)</param>
    /// <param name="vaeImages">also time the VAE decoder's mid-block attention (portable and as GEMMs), 3 x 3 convolutions
    /// (direct and as a GEMM), GroupNorm and upsampling for this many images at DiT-XL/2-256's shapes (sd-vae-ft-ema: one
    /// head of 512 over 1,024 pixels; 512 channels at 32 x 32, 256 at 128 x 128, 128 at 256 x 256) (0: not)</param>
    public static KernelTiming[] Run(Backend backend, DiTConfig model, int batch, int iterations, TextWriter log, int vaeImages = 0)
    {
        var arena = backend.Arena;
        int tokens = model.Tokens, d = model.Width, heads = model.NumHeads, depth = model.NumLayers;
        int m = batch * tokens;
        var results = new List<KernelTiming>();
        using var x = arena.Upload(Random(m * d), batch, tokens, d);
        using var wQkv = arena.Upload(Random(3 * d * d), 3 * d, d);
        using var wUp = arena.Upload(Random(4 * d * d), 4 * d, d);
        using var wDown = arena.Upload(Random(4 * d * d), d, 4 * d);
        using var bias = arena.Upload(Random(4 * d), 4 * d);
        using var hidden = arena.Upload(Random(m * 4 * d), batch, tokens, 4 * d);
        using var mod = arena.Upload(Random(batch * 6 * d), batch, 6 * d);
        using var qkv = arena.Upload(Random(m * 3 * d), batch, tokens, 3 * d);
        using var b3 = arena.Upload(Random(3 * d), 3 * d);
        using var b1 = arena.Upload(Random(d), d);

        log.WriteLine($"{"kernel",-46} {"shape",-22} {$"ms (mean of {iterations})",16} {"GFLOP/s",9}");
        void Time(string name, string shape, double flops, Func<Tensor?> op)
        {
            op()?.Dispose();
            BenchClock.KeepBusy(backend, () => op()?.Dispose());
            backend.Synchronize();
            var watch = Stopwatch.StartNew();
            for (int i = 0; i < iterations; i++) op()?.Dispose();
            backend.Synchronize();
            double ms = watch.Elapsed.TotalMilliseconds / iterations;
            var timing = new KernelTiming(name, shape, ms, flops / (ms * 1e6));
            results.Add(timing);
            // Kernels that only move data count no arithmetic.
            log.WriteLine($"{name,-46} {shape,-22} {ms,16:F3} {(flops > 0 ? timing.Gflops.ToString("F2") : "-"),9}");
        }

        foreach (var precision in new[] { Precision.Fp32, Precision.Fp16 })
        {
            // The fp16 path as the model runs it: float16 weights, inputs and outputs (qkv, fc1's hidden layer, fc2's
            // output, which SmoothCache keeps).
            string p = precision == Precision.Fp16 ? " fp16" : "";
            var act = HalfConversion.ActivationType(precision);
            using var wq = HalfConversion.PrepareWeight(wQkv, precision);
            using var wu = HalfConversion.PrepareWeight(wUp, precision);
            using var wd = HalfConversion.PrepareWeight(wDown, precision);
            using var xa = precision == Precision.Fp16 ? HalfConversion.ToHalf(x) : x.Share();
            using var ha = precision == Precision.Fp16 ? HalfConversion.ToHalf(hidden) : hidden.Share();
            Time("Linear qkv" + p, $"{m}x{3 * d}x{d}", 2.0 * m * 3 * d * d, () => Linear.Run(xa, wq, b3, act));
            Time("Linear fc1 + GELU" + p, $"{m}x{4 * d}x{d}", 2.0 * m * 4 * d * d, () => Linear.Run<GeluTanhEpilogue>(xa, wu, bias, act));
            Time("Linear fc2" + p, $"{m}x{d}x{4 * d}", 2.0 * m * 4 * d * d, () => Linear.Run(ha, wd, b1, act));
            // Until the eighteenth session the fp16 path's fc2 wrote float32.
            if (precision == Precision.Fp16)
                Time("Linear fc2 fp16 into float32", $"{m}x{d}x{4 * d}", 2.0 * m * 4 * d * d, () => Linear.Run(ha, wd, b1));
        }
        // The conditioning GEMM of all blocks' adaLN at once (one row per sample, N = depth x 6 x width) on
        // the skinny and the tensor-core kernel: why Linear gives fp16 GEMMs of any M to tensor cores.
        // Timing only: the weight is zeros. On tensor cores only (elsewhere they would be emulated).
        if (backend.UsesTensorCores)
        {
            using var wAdaLN = arena.Rent(DType.Float16, depth * 6 * d, d);
            backend.Clear(wAdaLN.HalfView);
            foreach (int rows in new[] { 2, batch }.Distinct())
            {
                using var c = arena.Upload(Random(rows * d), rows, d);
                using var cHalf = HalfConversion.ToHalf(c);
                using var y = arena.Rent(rows, depth * 6 * d);
                string shape = $"{rows}x{depth * 6 * d}x{d}";
                double flops = 2.0 * rows * depth * 6 * d * d;
                if (rows <= LinearSkinny.MaxRows)
                    Time("adaLN skinny fp16", shape, flops, () => { LinearSkinny.Run<IdentityEpilogue>(backend, c, wAdaLN, ArrayView<float>.Empty, OutputView.Of(y), rows); return null; });
                Time("adaLN tensor-core fp16", shape, flops, () => { LinearTensorCore.Run<IdentityEpilogue>(backend, cHalf.HalfView, wAdaLN, ArrayView<float>.Empty, OutputView.Of(y), rows); return null; });
                if (rows <= LinearSkinnyTensorCore.MaxRows)
                {
                    // Each warp shape: which reads the 446 MB fastest (BENCHMARKS.md, eighteenth session).
                    Time("adaLN few-row tensor-core fp16", shape, flops, () => { LinearSkinnyTensorCore.Run<IdentityEpilogue, LinearSkinnyTensorCore.Columns32>(backend, cHalf.HalfView, wAdaLN, ArrayView<float>.Empty, OutputView.Of(y), rows); return null; });
                    Time("adaLN few-row 16 columns", shape, flops, () => { LinearSkinnyTensorCore.Run<IdentityEpilogue, LinearSkinnyTensorCore.Columns16>(backend, cHalf.HalfView, wAdaLN, ArrayView<float>.Empty, OutputView.Of(y), rows); return null; });
                    Time("adaLN few-row 8 columns", shape, flops, () => { LinearSkinnyTensorCore.Run<IdentityEpilogue, LinearSkinnyTensorCore.Columns8>(backend, cHalf.HalfView, wAdaLN, ArrayView<float>.Empty, OutputView.Of(y), rows); return null; });
                }
            }
            // The same GEMM as a sampling run launches it (PlannedModulation): a chunk of steps' rows at once, on Linear's
            // choice of kernel. A step's share is this over the steps.
            int steps = (int)Math.Max(1, PlannedModulation.DefaultMaxElements / ((long)batch * (depth * 6 + 2) * d));
            using (var rows = arena.Upload(Random(steps * batch * d), steps * batch, d))
            using (var planned = HalfConversion.ToHalf(rows))
                Time($"adaLN planned, {steps} steps", $"{steps * batch}x{depth * 6 * d}x{d}", 2.0 * steps * batch * depth * 6 * d * d,
                    () => Linear.Run(planned, wAdaLN, null));
        }
        Time("Attention", $"{batch}x{heads}x{tokens}x{d / heads}", 4.0 * batch * tokens * tokens * d, () => Attention.Run(qkv, heads, d / heads));
        // On tensor cores, both stagings of the key tiles (elsewhere the fp16 attention is one kernel).
        using (var qkvHalf = HalfConversion.ToHalf(qkv))
        {
            string attentionShape = $"{batch}x{heads}x{tokens}x{d / heads}";
            double attentionFlops = 4.0 * batch * tokens * tokens * d;
            foreach (var staging in backend.UsesTensorCores ? Enum.GetValues<FlashAttentionTensorCore.Staging>() : [FlashAttentionTensorCore.Staging.Registers])
                Time("Attention fp16" + (backend.UsesTensorCores ? $", {staging.ToString().ToLowerInvariant()} staging" : ""),
                    attentionShape, attentionFlops, () => Attention.Run(qkvHalf, heads, d / heads, DType.Float16, staging));
            // What limits the default (async) kernel: the same kernel with each kind of instruction left out (garbage out).
            if (backend.IsCuda && backend.UsesTensorCores && FlashAttentionTensorCore.SupportsHeadDim(d / heads))
                using (var garbage = arena.Rent(DType.Float16, batch, tokens, d))
                {
                    void TimeWithout<TPart>(string what) where TPart : struct, IAttentionPart =>
                        Time($"Attention fp16 without {what}", attentionShape, attentionFlops, () =>
                        {
                            FlashAttentionTensorCore.Run<AttentionWithout<TPart>>(backend, qkvHalf, garbage, batch, tokens, heads, d / heads,
                                FlashAttentionTensorCore.Staging.Async);
                            return null;
                        });
                    TimeWithout<NoCopies>("key-tile copies");
                    TimeWithout<NoMultiplies>("mma");
                    TimeWithout<NoExponentials>("ex2");
                }
        }
        Time("LayerNormModulate", $"{m}x{d}", 8.0 * m * d, () => LayerNormModulate.Run(x, mod, 0, d, 1e-6f));
        // The form every block norm but the first takes: the gated residual waiting for x added on the same pass
        // (a residual of zeros, so x stays as it is however often the row runs).
        using (var residual = arena.Zeros(batch, tokens, d))
        using (var halfResidual = HalfConversion.ToHalf(residual))
        using (var halfX = HalfConversion.ToHalf(x))
        {
            Time("LayerNormModulate after residual", $"{m}x{d}", 11.0 * m * d, () => LayerNormModulate.RunAfterResiduals(x, mod, 0, d, 1e-6f, residual, 2 * d));
            // As the fp16 forward runs it: x, the component's output and y float16 (until the nineteenth session x was
            // float32: the row above with a float16 y and residual).
            Time("LayerNormModulate fp16 after fp16 residual", $"{m}x{d}", 11.0 * m * d,
                () => LayerNormModulate.RunAfterResiduals(halfX, mod, 0, d, 1e-6f, halfResidual, 2 * d, output: DType.Float16));
            Time("GatedResidual fp16", $"{m}x{d}", 2.0 * m * d, () => { GatedResidual.Run(halfX, mod, halfResidual, 2 * d); return null; });
        }
        Time("GatedResidual", $"{m}x{d}", 2.0 * m * d, () => { GatedResidual.Run(x, mod, x, 2 * d); return null; });
        TimeAroundTheBlocks(backend, model, batch, x, Time);
        if (vaeImages > 0)
        {
            // The VAE's mid-block attention: one head of 512 over the latent's 1,024 pixels.
            using var vaeQkv = arena.Upload(Random(vaeImages * 1024 * 3 * 512), vaeImages, 1024, 3 * 512);
            string shape = $"{vaeImages}x1x1024x512";
            double flops = 4.0 * vaeImages * 1024 * 1024 * 512;
            Time("Attention portable (VAE)", shape, flops, () => Attention.RunPortable(vaeQkv, 1, 512));
            Time("Attention as GEMMs (VAE)", shape, flops, () => AttentionAsGemms.Run(vaeQkv, 1, 512));
        }
        foreach (var (channels, size) in vaeImages > 0 ? new[] { (512, 32), (256, 128), (128, 256) } : [])
        {
            using var image = arena.Upload(Random(vaeImages * channels * size * size), vaeImages, channels, size, size);
            using var kernel = arena.Upload(Random(channels * channels * 9), channels, channels, 3, 3);
            using var convBias = arena.Upload(Random(channels), channels);
            string shape = $"{vaeImages}x{channels}x{size}x{size}";
            double flops = 2.0 * vaeImages * channels * size * size * channels * 9;
            Time("Conv2d 3x3 direct", shape, flops, () => Conv2d.RunDirect<IdentityEpilogue>(image, kernel, convBias));
            Time("Conv2d 3x3 as GEMM", shape, flops, () => Conv2d.RunAsGemm<IdentityEpilogue>(image, kernel, convBias));
            using var halfKernel = HalfConversion.ToHalf(kernel);
            Time("Conv2d 3x3 as fp16 GEMM", shape, flops, () => Conv2d.RunAsGemm<IdentityEpilogue>(image, halfKernel, convBias));
            using var gamma = arena.Upload(Random(channels), channels);
            Time("GroupNorm + SiLU", shape, 8.0 * image.Length, () => GroupNorm.Run<SiluEpilogue>(image, 32, gamma, convBias, 1e-6f));
            if (size < 256) Time("Upsample x2", shape, 0, () => Upsample.Run(image));
        }
        if (vaeImages > 0)
        {
            using var decoded = arena.Upload(Random(vaeImages * 3 * 256 * 256), vaeImages, 3, 256, 256);
            Time("images to NHWC in [0, 1]", $"{vaeImages}x3x256x256", 0, () => ImageOutput.ToImages(decoded));
        }
        return results.ToArray();
    }

    /// <summary>The kernels of a step outside the blocks: the conditioning's embeddings, patches in and out, the CFG batch
    /// and guidance, the scheduler's update, the cache's error measure, the fp16 conversions and the VAE's input scaling.</summary>
    private static void TimeAroundTheBlocks(Backend backend, DiTConfig model, int batch, Tensor x, Action<string, string, double, Func<Tensor?>> time)
    {
        var arena = backend.Arena;
        int d = model.Width, p = model.PatchSize, s = model.SampleSize, tokens = model.Tokens;
        using var latents = arena.Upload(Random(batch * model.InChannels * s * s), batch, model.InChannels, s, s);
        string latentShape = $"{batch}x{model.InChannels}x{s}x{s}";
        var timesteps = Enumerable.Range(0, batch).Select(i => 999f - i).ToArray();
        time("TimestepEmbedding", $"{batch}x{TimestepEmbedding.Channels}", 0, () => TimestepEmbedding.Run(backend, timesteps));
        using (var labels = backend.Accelerator.Allocate1D<int>(batch))
        using (var table = arena.Upload(Random((model.NumClasses + 1) * d), model.NumClasses + 1, d))
        using (var temb = arena.Upload(Random(batch * d), batch, d))
        {
            labels.View.CopyFromCPU(Enumerable.Range(0, batch).Select(i => i % (model.NumClasses + 1)).ToArray());
            time("ClassEmbedding + SiLU", $"{batch}x{d}", 0, () => ClassEmbedding.Run<SiluEpilogue>(labels.View, table, temb));
        }
        using (var weight = arena.Upload(Random(d * model.InChannels * p * p), d, model.InChannels, p, p))
        using (var bias = arena.Upload(Random(d), d))
        using (var positions = PositionTable.Run(backend, model.Grid, d))
            time("PatchEmbed", $"{latentShape} -> {tokens}x{d}", 2.0 * batch * tokens * d * model.InChannels * p * p,
                () => PatchEmbed.Run(latents, weight, bias, positions));
        using (var y = arena.Upload(Random(batch * tokens * p * p * model.OutChannels), batch, tokens, p * p * model.OutChannels))
            time("Unpatchify", $"{batch}x{tokens}x{p * p * model.OutChannels}", 0, () => Unpatchify.Run(y, p, model.OutChannels));
        time("RepeatBatch (CFG input)", latentShape, 0, () => RepeatBatch.Run(latents, 2));
        using (var modelOut = arena.Upload(Random(batch * model.OutChannels * s * s), batch, model.OutChannels, s, s))
            time("Guidance", $"{batch}x{model.OutChannels}x{s}x{s}", 3.0 * batch / 2 * model.InChannels * s * s,
                () => Guidance.Run(modelOut, model.InChannels, 4f, doubled: batch % 2 == 0));
        using (var e = arena.Upload(Random((int)latents.Length), latents.Shape))
        using (var sample = arena.Upload(Random((int)latents.Length), latents.Shape))
        using (var data = arena.Rent(latents.Shape))
        {
            // A DPM-Solver++ 2M step's terms (all read); coefficients near 1 keep the sample bounded however often it runs.
            var step = new StepCoefficients(0.5, 1.1, 0.9, 0.05, 0.05, 0.02, 0);
            time("SchedulerStep", latentShape, 8.0 * latents.Length, () => { SchedulerStep.Apply(backend, step, sample, e, data, null); return null; });
            time("ImageOutput.Scale (VAE input)", latentShape, latents.Length, () => ImageOutput.Scale(latents, 1f / 0.18215f));
        }
        using (var earlier = arena.Upload(Random((int)x.Length), x.Shape))
            time("RelativeL1 (calibration)", $"{batch}x{tokens}x{d}", 3.0 * x.Length, () => { RelativeL1Kernel.Compute(x, [earlier]); return null; });
        using var half = HalfConversion.ToHalf(x);
        time("HalfConversion to fp16", $"{batch}x{tokens}x{d}", 0, () => HalfConversion.ToHalf(x));
        time("HalfConversion to fp32", $"{batch}x{tokens}x{d}", 0, () => HalfConversion.ToFloat(half));
        time("Transpose", $"{batch}x{tokens}x{d}", 0, () => Transpose.Run(x));
    }

    private static float[] Random(int n)
    {
        var rng = new System.Random(1);
        return Enumerable.Range(0, n).Select(_ => (float)(rng.NextDouble() - 0.5) * 0.1f).ToArray();
    }
}
