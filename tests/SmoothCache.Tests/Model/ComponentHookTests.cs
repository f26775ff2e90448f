using SmoothCache.Kernels;
using SmoothCache.Model;
using SmoothCache.Model.Checkpoints;
using static SmoothCache.Tests.TestSupport;

namespace SmoothCache.Tests.Model;

/// <summary>DESIGN §2: a hook that returns a stored tensor replaces only the component's own work;
/// the block still applies the current step's gate and residual to it.</summary>
public class ComponentHookTests
{
    private static DiTTransformer Load() => DiTTransformer.Load(Cpu, Fixture("random", "dit-small"));

    /// <summary>Block 1's attention recorded at t = 700 and returned at t = 300, its MLP returning zeros: the block
    /// adds exactly gate1(t = 300) x stored to its input, the gate of the step it runs at, not the recorded one's.</summary>
    [Fact]
    public void AStoredAttentionOutputIsGatedAndAddedAtTheCurrentStep()
    {
        using var model = Load(); // dit-small: each block its own conditioning
        int d = model.Config.Width;
        using var x = Cpu.Arena.Upload(Random(3, 2 * 4 * 64), 2, 4, 8, 8);
        int[] y = [5, 9];
        var record = new CapturingHook(block: 1);
        model.Hook = record;
        float[] recordedOutput;
        var outputs = new Dictionary<int, float[]>();
        model.BlockOutputObserver = (i, h) => outputs[i] = h.ToArray();
        using (model.Forward(x, [700f, 700f], y)) recordedOutput = outputs[1];

        // The recorded attention returned at the step it was recorded at reproduces the block bit for bit.
        using var stored = Cpu.Arena.Upload(record.Attention!, 2, 16, d);
        model.Hook = new ReplacingHook(block: 1, stored);
        using (model.Forward(x, [700f, 700f], y)) Assert.Equal(recordedOutput, outputs[1]);

        using var zeros = Cpu.Arena.Zeros(2, 16, d);
        model.Hook = new ReplacingHook(block: 1, stored, feedForward: zeros);
        using (model.Forward(x, [300f, 300f], y)) { }
        float[] input = outputs[0], output = outputs[1], attention = record.Attention!;
        float[] gateNow = Gate1OfBlock1(model, 300f, y), gateRecorded = Gate1OfBlock1(model, 700f, y);
        Assert.True(MaxAbs(gateNow, gateRecorded.Select(v => (double)v).ToArray()) > 1e-2); // the step matters
        var expected = new double[output.Length];
        for (int i = 0; i < expected.Length; i++)
            expected[i] = input[i] + (double)gateNow[i / (16 * d) * d + i % d] * attention[i];
        Assert.True(MaxAbs(output, expected) < 1e-6, $"max abs {MaxAbs(output, expected):E2}");
    }

    /// <summary>gate1 rows [B, width] of block 1 at timestep t: the third of its adaLN projection's six chunks.</summary>
    private static float[] Gate1OfBlock1(DiTTransformer model, float t, int[] labels)
    {
        int d = model.Config.Width;
        using var sinusoid = TimestepEmbedding.Run(Cpu, [t, t]);
        using var modulation = model.Modulation(1, sinusoid, model.UploadLabels(labels));
        var rows = modulation.ToArray();
        return Enumerable.Range(0, labels.Length).SelectMany(b => rows.Skip(b * 6 * d + 2 * d).Take(d)).ToArray();
    }

    [Fact]
    public void WithoutAHookTheOutputEqualsAComputingHook()
    {
        using var model = Load();
        using var x = Cpu.Arena.Upload(Random(4, 64 * 4), 1, 4, 8, 8);
        float[] plain, hooked;
        using (var o = model.Forward(x, [10f], [3])) plain = o.ToArray();
        model.Hook = new CapturingHook(block: 0);
        using (var o = model.Forward(x, [10f], [3])) hooked = o.ToArray();
        Assert.Equal(plain, hooked);
    }

    [Fact]
    public void AReusedComponentCostsNoLaunchOfItsOwnAndGivesTheSameBlockOutput()
    {
        using var model = Load();
        using var x = Cpu.Arena.Upload(Random(5, 2 * 4 * 64), 2, 4, 8, 8);
        float[] t = [600f, 600f];
        int[] y = [2, 7];
        var store = new StoringHook();
        model.Hook = store;
        float[] computed;
        using (var o = model.Forward(x, t, y)) computed = o.ToArray();

        // Every component of every block from the store: only each block's two gated residuals run, in one
        // launch (the adaLNs belong to the components), plus the final layer's adaLN.
        store.Replay = (_, _) => true;
        IReadOnlyList<KernelTime> kernels;
        float[] replayed;
        using (var profile = Cpu.StartProfile())
        {
            using (var o = model.Forward(x, t, y)) replayed = o.ToArray();
            kernels = profile.Read();
        }
        Assert.Equal(computed, replayed);
        int Launches(string kernel) => kernels.Where(k => k.Kernel == kernel).Sum(k => k.Launches);
        Assert.Equal(1, Launches("LayerNormModulate"));
        Assert.Equal(model.NumBlocks, Launches("GatedResidual"));
        Assert.Equal(0, Launches("Attention"));
        store.Dispose();
    }

    /// <summary>Three blocks sharing one embedder (as converted checkpoints do), so all adaLNs read one
    /// modulation tensor and a block's MLP residual can wait for the next adaLN over x.</summary>
    private static DiTTransformer LoadShared(SyntheticWeights weights) => new(Cpu, weights.Config, weights, Precision.Fp32);

    private static SyntheticWeights SharedWeights() =>
        new(new DiTConfig { NumHeads = 2, HeadDim = 16, NumLayers = 3, SampleSize = 8, NumClasses = 10 }, seed: 7);

    /// <summary>
    /// Residuals wait for the next adaLN that runs: a computed MLP's for the next block's attention norm, and a
    /// reused component's (which runs no norm) together with what waited before it, up to two per launch. Whatever
    /// the pattern of reuse, the output is the one of adding every residual as it comes (bit for bit), with fewer
    /// launches: (gated-residual launches adding as they come, the same waiting, adaLN launches) for 3 blocks.
    /// </summary>
    [Theory]
    [InlineData("none", 3, 0, 7)]    // every MLP residual rides on the next norm
    [InlineData("all", 3, 2, 1)]     // each block's two wait; a block's pair is added when the next block's joins
    [InlineData("attn", 3, 0, 4)]    // the MLP norm adds the block before's MLP residual and the reused attention's
    [InlineData("ff", 3, 0, 4)]      // the attention norm adds the block before's attention and MLP residuals
    [InlineData("block1", 3, 1, 5)]  // block 1 reused whole: block 0's MLP and block 1's attention added together
    public void ResidualsWaitForTheNextAdaLNWithTheSameResult(string reused, int separateResiduals, int fusedResiduals, int norms)
    {
        using var weights = SharedWeights();
        using var model = LoadShared(weights);
        Assert.True(model.SharedConditioning);
        using var x = Cpu.Arena.Upload(Random(6, 2 * 4 * 64), 2, 4, 8, 8);
        float[] t = [400f, 900f];
        int[] y = [1, 8];
        using var store = new StoringHook();
        model.Hook = store;
        using (model.Forward(x, t, y)) { }
        store.Replay = (component, block) => reused switch
        {
            "all" => true,
            "attn" => component == Components.Attention,
            "ff" => component == Components.FeedForward,
            "block1" => block == 1,
            _ => false,
        };

        (float[] Output, int Residuals, int Norms) Run()
        {
            using var profile = Cpu.StartProfile();
            using var o = model.Forward(x, t, y);
            var kernels = profile.Read();
            int Launches(string kernel) => kernels.Where(k => k.Kernel == kernel).Sum(k => k.Launches);
            return (o.ToArray(), Launches("GatedResidual"), Launches("LayerNormModulate"));
        }

        var fused = Run();
        // An observer sees each block's whole output, so every residual is added before it is called.
        model.BlockOutputObserver = (_, _) => { };
        var separate = Run();
        Assert.Equal(separate.Output, fused.Output);
        Assert.Equal((separateResiduals, norms), (separate.Residuals, separate.Norms));
        Assert.Equal((fusedResiduals, norms), (fused.Residuals, fused.Norms));
    }

    /// <summary>Computes and keeps every component's output, or (Replay) returns the kept ones.</summary>
    private sealed class StoringHook : IComponentHook, IDisposable
    {
        private readonly Dictionary<(string, int), Tensor> _kept = new();
        /// <summary>Which components return the kept output instead of computing.</summary>
        public Func<string, int, bool> Replay { get; set; } = (_, _) => false;

        public Tensor Run(string component, int block, Func<Tensor> compute)
        {
            if (Replay(component, block)) return _kept[(component, block)].Share();
            var y = compute();
            _kept[(component, block)] = y.Share();
            return y;
        }

        public void Dispose()
        {
            foreach (var t in _kept.Values) t.Dispose();
        }
    }

    private sealed class CapturingHook(int block) : IComponentHook
    {
        public float[]? Attention { get; private set; }

        public Tensor Run(string component, int b, Func<Tensor> compute)
        {
            var y = compute();
            if (b == block && component == Components.Attention) Attention = y.ToArray();
            return y;
        }
    }

    /// <summary>Returns the given tensors for one block's attention and (where given) MLP.</summary>
    private sealed class ReplacingHook(int block, Tensor attention, Tensor? feedForward = null) : IComponentHook
    {
        public Tensor Run(string component, int b, Func<Tensor> compute) =>
            b != block ? compute()
            : component == Components.Attention ? attention.Share()
            : feedForward?.Share() ?? compute();
    }
}
