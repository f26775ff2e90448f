using SmoothCache.Model;
using static SmoothCache.Tests.TestSupport;

namespace SmoothCache.Tests.Model;

/// <summary>A sampling run's modulation computed ahead, several steps to a conditioning GEMM: the same forward,
/// bit for bit on the CPU backend (each output row is its own dot products, whatever the rows around it).</summary>
public class PlannedModulationTests
{
    private static readonly float[] Timesteps = [981f, 761f, 541f, 321f, 101f];

    private static void AssertEveryStepMatchesTheForwardAtItsTimestep(DiTTransformer model, int[] labels, long maxElements, int[] order)
    {
        var c = model.Config;
        int b = labels.Length;
        using var latents = Cpu.Arena.Upload(Random(70, b * c.InChannels * c.SampleSize * c.SampleSize), b, c.InChannels, c.SampleSize, c.SampleSize);
        using var plan = model.PlanModulation(Timesteps, labels, maxElements);
        Assert.Equal(2, plan.StepsPerChunk);
        foreach (int step in order)
        {
            using var planned = model.Forward(latents, plan, step);
            using var direct = model.Forward(latents, Enumerable.Repeat(Timesteps[step], b).ToArray(), labels);
            Assert.Equal(direct.ToArray(), planned.ToArray());
        }
    }

    private static SmoothCache.Kernels.Tensor ZeroLatents(DiTTransformer model, int batch) =>
        Cpu.Arena.Zeros(batch, model.Config.InChannels, model.Config.SampleSize, model.Config.SampleSize);

    private static long TwoStepsOf(DiTTransformer model, int batch) =>
        2L * batch * model.Config.Width * (6 * model.Config.NumLayers + 2);

    [Fact]
    public void SharedConditioningStepsMatchTheForwardInAnyOrder()
    {
        // dit-digits: one embedder, all blocks' projections in one GEMM; chunks of 2 steps of 5, the last one short,
        // visited in order and then backwards (a step outside the current chunk computes its own).
        using var model = DiTTransformer.Load(Cpu, RepoFile("models", "dit-digits", "transformer"));
        Assert.True(model.SharedConditioning);
        int[] labels = [3, 7, model.Config.NullClass, model.Config.NullClass];
        AssertEveryStepMatchesTheForwardAtItsTimestep(model, labels, TwoStepsOf(model, 4), [0, 1, 2, 3, 4, 3, 1, 0]);
    }

    [Fact]
    public void PerBlockConditioningStepsMatchTheForward()
    {
        // dit-small: every block's own embedder and projection, the final layer's on block 0's embedder.
        using var model = DiTTransformer.Load(Cpu, Fixture("random", "dit-small"));
        Assert.False(model.SharedConditioning);
        AssertEveryStepMatchesTheForwardAtItsTimestep(model, [5, 1000], TwoStepsOf(model, 2), [0, 2, 4]);
    }

    [Fact]
    public void APlanLaunchesItsConditioningOnceAChunkAndUploadsNothingAfterTheLabels()
    {
        using var model = DiTTransformer.Load(Cpu, RepoFile("models", "dit-digits", "transformer"));
        using var latents = ZeroLatents(model, 2);
        using var plan = model.PlanModulation(Timesteps, [1, 2]);
        Assert.Equal(Timesteps.Length, plan.StepsPerChunk); // dit-digits' whole run fits the default budget
        model.Forward(latents, plan, 0).Dispose();
        long uploads = Cpu.Uploads;
        int Launches(Action forward)
        {
            using var profile = Cpu.StartProfile();
            forward();
            return profile.Launches;
        }
        int planned = Launches(() => model.Forward(latents, plan, 1).Dispose());
        int direct = Launches(() => model.Forward(latents, [761f, 761f], [1, 2]).Dispose());
        // The direct forward's conditioning: sinusoids, two timestep-MLP GEMMs, the class rows with SiLU, the adaLN GEMM.
        Assert.Equal(direct - 5, planned);
        Assert.Equal(uploads, Cpu.Uploads);
    }

    [Fact]
    public void WrongInputsAreRejected()
    {
        using var model = DiTTransformer.Load(Cpu, RepoFile("models", "dit-digits", "transformer"));
        using var other = DiTTransformer.Load(Cpu, RepoFile("models", "dit-digits", "transformer"));
        using var latents = ZeroLatents(model, 2);
        using var plan = model.PlanModulation(Timesteps, [1, 2, 3]);
        Assert.Contains("batch of 3", Assert.Throws<ArgumentException>(() => model.Forward(latents, plan, 0)).Message);
        using var two = model.PlanModulation(Timesteps, [1, 2]);
        Assert.Contains("another transformer", Assert.Throws<ArgumentException>(() => other.Forward(latents, two, 0)).Message);
        Assert.Contains("outside the plan's 5 steps", Assert.Throws<ArgumentOutOfRangeException>(() => model.Forward(latents, two, 5)).Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => model.PlanModulation(Timesteps, [model.Config.NumClasses + 1]));
        Assert.Equal("stepTimesteps", Assert.Throws<ArgumentException>(() => model.PlanModulation([], [1])).ParamName);
        Assert.Equal("labels", Assert.Throws<ArgumentException>(() => model.PlanModulation(Timesteps, [])).ParamName);
        Assert.Equal("stepTimesteps", Assert.Throws<ArgumentNullException>(() => model.PlanModulation(null!, [1])).ParamName);
        Assert.Equal("plan", Assert.Throws<ArgumentNullException>(() => model.Forward(latents, null!, 0)).ParamName);
        two.Dispose();
        Assert.Throws<ObjectDisposedException>(() => model.Forward(latents, two, 0));
    }

    /// <summary>A plan's step 0 starts a sampling run: the hook starts over, whatever ran before (a sampling loop of one's
    /// own then follows a cache schedule from its start); later steps leave it be.</summary>
    [Fact]
    public void StepZeroOfAPlanResetsTheHook()
    {
        using var model = DiTTransformer.Load(Cpu, RepoFile("models", "dit-digits", "transformer"));
        using var latents = ZeroLatents(model, 2);
        using var plan = model.PlanModulation(Timesteps, [1, 2]);
        var hook = new ResetCounter();
        model.Hook = hook;
        foreach (int step in new[] { 0, 1, 2, 0, 1 }) model.Forward(latents, plan, step).Dispose();
        Assert.Equal(2, hook.Resets);
        model.Forward(latents, [981f, 981f], [1, 2]).Dispose();
        Assert.Equal(2, hook.Resets);
    }

    private sealed class ResetCounter : IComponentHook
    {
        public int Resets { get; private set; }
        public SmoothCache.Kernels.Tensor Run(string component, int block, Func<SmoothCache.Kernels.Tensor> compute) => compute();
        public void Reset() => Resets++;
    }
}
