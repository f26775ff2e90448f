using SmoothCache.Cli.Bench;
using SmoothCache.Kernels;
using SmoothCache.Model;
using SmoothCache.Model.Checkpoints;
using SmoothCache.Sampling;
using static SmoothCache.Tests.TestSupport;

namespace SmoothCache.Tests.Model;

/// <summary>
/// The CUDA code path — tiled SGEMM, warp-per-row LayerNorm, fused attention, one element per thread —
/// run on the CPU accelerator and compared with the portable path, so it is checked in CI without a GPU.
/// The tensor-core kernels' emulation is slow: a tiny model runs through them (KernelSet.TensorCores).
/// </summary>
public class GpuKernelPathTests
{
    private static readonly Backend Gpu = CpuWithGpuKernels;

    [Fact]
    public void DitSmallForwardMatchesTheFloat64Reference()
    {
        using var inputs = SafetensorsFile.Open(Fixture("random", "dit-small-forward.safetensors"));
        using var model = DiTTransformer.Load(Gpu, Fixture("random", "dit-small"));
        using var x = Gpu.Arena.Upload(inputs.ReadFloat32("x", 3, 4, 8, 8), 3, 4, 8, 8);
        var labels = inputs.ReadFloat32("class_labels", 3).Select(v => (int)v).ToArray();
        using var output = model.Forward(x, inputs.ReadFloat32("timestep", 3), labels);
        Assert.True(RelativeL2(output.ToArray(), inputs.ReadFloat64("out_f64")) < 1e-5);
    }

    /// <summary>One batch-2 forward of a synthetic model (fixed weights and noise) on a backend.</summary>
    private static float[] SyntheticForward(Backend backend, DiTConfig config, Precision precision)
    {
        var noise = Random(41, 2L * config.InChannels * config.SampleSize * config.SampleSize);
        using var weights = new SyntheticWeights(config, seed: 3);
        using var model = new DiTTransformer(backend, config, weights, precision);
        using var latents = backend.Arena.Upload(noise, 2, config.InChannels, config.SampleSize, config.SampleSize);
        using var y = model.Forward(latents, [999f, 301f], [1, config.NullClass]);
        return y.ToArray();
    }

    [Theory]
    [InlineData(Precision.Fp32)]
    [InlineData(Precision.Fp16)] // float16 activations out of the warp LayerNorm and the fused attention
    public void FusedAttentionModelMatchesThePortablePath(Precision precision)
    {
        // Head dim 72 (the fused kernel's), 81 tokens (ragged tiles), separate per-block embedders.
        var config = GpuChecks.SmallConfig;
        double error = RelativeL2(SyntheticForward(Gpu, config, precision), SyntheticForward(Cpu, config, precision));
        Assert.True(error < 1e-5, $"{error:E2}");
    }

    [Fact]
    public void DitDigitsTwoStepJobMatchesThePortablePath()
    {
        // The job that faulted on CUDA: RepeatBatch, the forward (Unpatchify after the N = 8 proj_out),
        // Guidance and the scheduler step, each launched one element per thread.
        string folder = RepoFile("models", "dit-digits");
        float[] Job(Backend backend)
        {
            using var pipeline = DiTPipeline.Load(folder, backend);
            return pipeline.Generate(new GenerationOptions { Labels = [3, 8], Steps = 2, Scheduler = "ddim" }).Latents;
        }
        Assert.True(RelativeL2(Job(Gpu), Job(Cpu)) < 1e-5);
    }

    [Theory]
    [InlineData(Precision.Fp32)] // 3xTF32 GEMMs: fp32 accuracy (2.6e-7 here)
    [InlineData(Precision.Fp16)] // plus the tensor-core attention with fp16 probabilities (3.2e-7 here)
    public void TinyModelThroughEveryKernelCudaTakesMatchesThePortablePath(Precision precision)
    {
        // Exactly the CUDA dispatch (tensor-core GEMMs and attention, emulated here): head dim 72,
        // 2 x 16 token rows (more than the few-row GEMM's 16), one block.
        var config = GpuChecks.SmallConfig with { NumHeads = 1, NumLayers = 1, SampleSize = 8 };
        using var cuda = Backend.Create(DeviceKind.Cpu, KernelSet.TensorCores);
        double error = RelativeL2(SyntheticForward(cuda, config, precision), SyntheticForward(Cpu, config, precision));
        Assert.True(error < 1e-5, $"{error:E2}");
        Assert.Contains(cuda.LoadedKernels, k => k.DeclaringType == typeof(SmoothCache.Kernels.Gpu.LinearTensorCore));
        if (precision == Precision.Fp16)
            Assert.Contains(cuda.LoadedKernels, k => k.DeclaringType == typeof(SmoothCache.Kernels.Gpu.FlashAttentionTensorCore));
    }

    [Theory]
    [InlineData(KernelSet.Wgmma, typeof(SmoothCache.Kernels.Gpu.LinearWgmma))]
    [InlineData(KernelSet.WgmmaTma, typeof(SmoothCache.Kernels.Gpu.LinearWgmmaTma))]
    public void TinyModelWithHopperGemmsMatchesThePortablePath(KernelSet kernels, Type hopperKernel)
    {
        // The fp16 GEMMs on a Hopper kernel (emulated from its descriptors), the rest as above.
        var config = GpuChecks.SmallConfig with { NumHeads = 1, NumLayers = 1, SampleSize = 8 };
        using var hopper = Backend.Create(DeviceKind.Cpu, kernels);
        double error = RelativeL2(SyntheticForward(hopper, config, Precision.Fp16), SyntheticForward(Cpu, config, Precision.Fp16));
        Assert.True(error < 1e-5, $"{error:E2}");
        Assert.Contains(hopper.LoadedKernels, k => k.DeclaringType == hopperKernel);
    }
}
