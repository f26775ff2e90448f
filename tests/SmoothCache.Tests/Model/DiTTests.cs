using SmoothCache.Kernels;
using SmoothCache.Model;
using SmoothCache.Model.Checkpoints;
using static SmoothCache.Tests.TestSupport;

namespace SmoothCache.Tests.Model;

public class DiTTests
{
    private static readonly string SmallFolder = Fixture("random", "dit-small");

    /// <summary>Runs dit-small on the fixture inputs; records each block's attn1, ff and output.</summary>
    private static (float[] Out, Dictionary<string, float[]> Blocks) RunSmall(Precision precision = Precision.Fp32)
    {
        using var inputs = SafetensorsFile.Open(Fixture("random", "dit-small-forward.safetensors"));
        using var model = DiTTransformer.Load(Cpu, SmallFolder, precision);
        var recorder = new RecordingHook();
        var blocks = recorder.Outputs;
        model.Hook = recorder;
        model.BlockOutputObserver = (i, x) => blocks[$"block{i}.out"] = x.ToArray();
        using var x = Cpu.Arena.Upload(inputs.ReadFloat32("x", 3, 4, 8, 8), 3, 4, 8, 8);
        var t = inputs.ReadFloat32("timestep", 3);
        var labels = inputs.ReadFloat32("class_labels", 3).Select(v => (int)v).ToArray();
        using var output = model.Forward(x, t, labels);
        Assert.Equal(new[] { 3, 8, 8, 8 }, output.Shape);
        return (output.ToArray(), blocks);
    }

    [Fact]
    public void DitSmallForwardMatchesTheFloat64Reference()
    {
        var (output, _) = RunSmall();
        using var reference = SafetensorsFile.Open(Fixture("random", "dit-small-forward.safetensors"));
        double error = RelativeL2(output, reference.ReadFloat64("out_f64"));
        Assert.True(error < 1e-5, $"relative L2 error {error:E2}");
    }

    [Fact]
    public void DitSmallFp16ForwardIsWithinHalfRoundingOfTheReference()
    {
        // The fp16 path (float16 weights and GEMM inputs, float32 accumulation) on the portable GEMM:
        // off the float64 reference by fp16 rounding — clearly more than fp32's 1e-5, well under 1e-2.
        var (output, _) = RunSmall(Precision.Fp16);
        using var reference = SafetensorsFile.Open(Fixture("random", "dit-small-forward.safetensors"));
        double error = RelativeL2(output, reference.ReadFloat64("out_f64"));
        Assert.InRange(error, 1e-5, 1e-2);
    }

    [Fact]
    public void Fp16ComponentOutputsAreFloat16WithinHalfRoundingOfTheReference()
    {
        // What SmoothCache keeps and the next adaLN adds to x: Float16 on the fp16 path, as the GEMM rounds it; and x,
        // the residual stream, too.
        using var inputs = SafetensorsFile.Open(Fixture("random", "dit-small-forward.safetensors"));
        using var model = DiTTransformer.Load(Cpu, SmallFolder, Precision.Fp16);
        var recorder = new RecordingHook();
        model.Hook = recorder;
        var blockOutputs = new Dictionary<string, float[]>();
        model.BlockOutputObserver = (i, x) =>
        {
            Assert.Equal(DType.Float16, x.DType);
            blockOutputs[$"block{i}.out"] = x.ToArray();
        };
        using var x = Cpu.Arena.Upload(inputs.ReadFloat32("x", 3, 4, 8, 8), 3, 4, 8, 8);
        var labels = inputs.ReadFloat32("class_labels", 3).Select(v => (int)v).ToArray();
        model.Forward(x, inputs.ReadFloat32("timestep", 3), labels).Dispose();
        Assert.Equal(4, recorder.Types.Count);
        Assert.All(recorder.Types.Values, t => Assert.Equal(DType.Float16, t));
        foreach (var name in new[] { "block0.attn1", "block0.ff", "block1.attn1", "block1.ff" })
            Assert.InRange(RelativeL2(recorder.Outputs[name], inputs.ReadFloat64(name)), 1e-6, 1e-2);
        foreach (var name in new[] { "block0.out", "block1.out" })
            Assert.InRange(RelativeL2(blockOutputs[name], inputs.ReadFloat64(name)), 1e-6, 1e-2);
    }

    [Fact]
    public void SyntheticXlBlockFp16IsWithinHalfRoundingOfFp32()
    {
        // DiT-XL/2's shapes (width 1152, 16 heads of 72, 256 tokens, 4 -> 8 channels), one block to keep
        // the CPU accelerator's run short; the fp16 path differs from fp32 by fp16 rounding only.
        var config = SyntheticWeights.XL2_256 with { NumLayers = 1 };
        var noise = Random(30, config.InChannels * config.SampleSize * config.SampleSize);
        float[] Forward(Precision precision)
        {
            using var weights = new SyntheticWeights(config, seed: 5);
            using var model = new DiTTransformer(Cpu, config, weights, precision);
            using var latents = Cpu.Arena.Upload(noise, 1, config.InChannels, config.SampleSize, config.SampleSize);
            using var output = model.Forward(latents, [500f], [207]);
            return output.ToArray();
        }
        Assert.InRange(RelativeL2(Forward(Precision.Fp16), Forward(Precision.Fp32)), 1e-5, 1e-2);
    }

    [Fact]
    public void ASamplingStepsForwardUploadsNothing()
    {
        // Same labels, one timestep for the batch: nothing to copy, so the host never waits for the
        // device between steps (ILGPU's upload synchronises) and can queue the next step ahead.
        using var model = DiTTransformer.Load(Cpu, RepoFile("models", "dit-digits", "transformer"));
        var c = model.Config;
        using var latents = Cpu.Arena.Upload(Random(60, 4 * c.InChannels * c.SampleSize * c.SampleSize), 4, c.InChannels, c.SampleSize, c.SampleSize);
        int[] labels = [1, 2, c.NullClass, c.NullClass];
        model.Forward(latents, [981f, 981f, 981f, 981f], labels).Dispose();
        long before = Cpu.Uploads;
        model.Forward(latents, [961f, 961f, 961f, 961f], labels).Dispose();
        Assert.Equal(before, Cpu.Uploads);
        model.Forward(latents, [961f, 961f, 961f, 961f], [3, 2, c.NullClass, c.NullClass]).Dispose();
        Assert.Equal(before + 1, Cpu.Uploads); // new labels are uploaded
    }

    [Fact]
    public void DitSmallPerBlockIntermediatesMatch()
    {
        var (_, blocks) = RunSmall();
        using var reference = SafetensorsFile.Open(Fixture("random", "dit-small-forward.safetensors"));
        foreach (var name in new[] { "block0.attn1", "block0.ff", "block0.out", "block1.attn1", "block1.ff", "block1.out" })
        {
            double error = RelativeL2(blocks[name], reference.ReadFloat64(name));
            Assert.True(error < 1e-5, $"{name}: relative L2 error {error:E2}");
        }
    }

    [Fact]
    public void DitSmallHasSeparateEmbeddersPerBlockAndDigitsSharesThem()
    {
        using var small = DiTTransformer.Load(Cpu, SmallFolder);
        Assert.False(small.SharedConditioning); // random weights: every block's embedder differs
        using var digits = DiTTransformer.Load(Cpu, RepoFile("models", "dit-digits", "transformer"));
        Assert.True(digits.SharedConditioning);
    }

    [Fact]
    public void DitDigitsRunsAForwardAtBatch20WithGuidanceLabels()
    {
        using var model = DiTTransformer.Load(Cpu, RepoFile("models", "dit-digits", "transformer"));
        var c = model.Config;
        Assert.Equal((6, 64, 1, 2, 16), (c.NumLayers, c.Width, c.InChannels, c.OutChannels, c.SampleSize));
        int[] labels = [.. Enumerable.Range(0, 10), .. Enumerable.Repeat(c.NullClass, 10)];
        var xs = Random(7, 20 * 256);
        using var x = Cpu.Arena.Upload(xs, 20, 1, 16, 16);
        using var output = model.Forward(x, Enumerable.Repeat(500f, 20).ToArray(), labels);
        Assert.Equal(new[] { 20, 2, 16, 16 }, output.Shape);
        var values = output.ToArray();
        Assert.All(values, v => Assert.True(float.IsFinite(v)));
        // The conditional and unconditional halves see the same input but different labels.
        Assert.NotEqual(values[..512], values[(10 * 512)..(11 * 512)]);
        // Each sample is computed on its own: a sample's rows equal a forward of it alone (the same sums).
        foreach (int r in new[] { 3, 13 })
        {
            using var alone = Cpu.Arena.Upload(xs[(r * 256)..((r + 1) * 256)], 1, 1, 16, 16);
            using var one = model.Forward(alone, [500f], [labels[r]]);
            Assert.Equal(values[(r * 512)..((r + 1) * 512)], one.ToArray());
        }
    }

    [Fact]
    public void ALabelOutsideTheClassesIsRejected()
    {
        using var model = DiTTransformer.Load(Cpu, SmallFolder);
        using var x = Cpu.Arena.Zeros(1, 4, 8, 8);
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => model.Forward(x, [1f], [1001]));
        Assert.Contains("1001", e.Message);
    }

    /// <summary>Computes every component and keeps a host copy of its output.</summary>
    private sealed class RecordingHook : IComponentHook
    {
        public Dictionary<string, float[]> Outputs { get; } = new();
        public Dictionary<string, DType> Types { get; } = new();

        public Tensor Run(string component, int block, Func<Tensor> compute)
        {
            var y = compute();
            Outputs[$"block{block}.{component}"] = y.ToArray();
            Types[$"block{block}.{component}"] = y.DType;
            return y;
        }
    }

    /// <summary>A checkpoint missing its last tensor: the weights read before it go back to the arena, so loading the
    /// whole model afterwards takes no more memory than on a fresh backend.</summary>
    [Fact]
    public void AFailedLoadLeavesNoWeightsRented()
    {
        long whole;
        using (var fresh = Backend.Create(DeviceKind.Cpu))
        using (DiTTransformer.Load(fresh, SmallFolder))
            whole = fresh.Arena.AllocatedBytes;
        using var backend = Backend.Create(DeviceKind.Cpu);
        var config = DiTConfig.Load(Path.Combine(SmallFolder, "config.json"));
        using (var weights = new WeightsWithout(WeightSources.OpenModelFolder(SmallFolder), n => n == "proj_out_1.bias"))
            Assert.Equal("proj_out_1.bias", Assert.Throws<MissingTensorException>(() => new DiTTransformer(backend, config, weights)).TensorName);
        Assert.True(backend.Arena.AllocatedBytes > 0);
        using var model = DiTTransformer.Load(backend, SmallFolder);
        Assert.Equal(whole, backend.Arena.AllocatedBytes);
    }
}
