using System.Buffers.Binary;
using System.Text.Json;
using SmoothCache.Kernels;
using SmoothCache.Sampling;

namespace SmoothCache.Tests.Sampling;

public class SchedulerTests
{
    private static string Fixture(string name) => Path.Combine(AppContext.BaseDirectory, "fixtures", "random", name);

    private static readonly JsonElement Cases =
        JsonDocument.Parse(File.ReadAllText(Fixture("schedulers.json"))).RootElement.GetProperty("cases");

    private static NoiseScheduler Create(string kind, int steps) => NoiseScheduler.Create(kind, DitConfig(), steps);

    /// <summary>DiT's DDIM config, as shipped with the embedded model.</summary>
    private static SchedulerConfig DitConfig() => SchedulerConfig.Parse("""
        {"_class_name": "DDIMScheduler", "beta_end": 0.02, "beta_schedule": "linear", "beta_start": 0.0001,
         "clip_sample": false, "num_train_timesteps": 1000, "prediction_type": "epsilon",
         "set_alpha_to_one": true, "steps_offset": 0, "timestep_spacing": "leading", "trained_betas": null}
        """, "dit-ddim.json");

    private static double[] Doubles(JsonElement array) => array.EnumerateArray().Select(v => v.GetDouble()).ToArray();

    [Theory]
    [InlineData("ddim", 50)]
    [InlineData("ddim", 30)]
    [InlineData("ddim", 250)]
    [InlineData("dpm", 20)]
    [InlineData("dpm", 25)]
    [InlineData("dpm", 50)]
    public void TimestepsEqualDiffusers(string kind, int steps)
    {
        var expected = Cases.GetProperty($"{kind}{steps}").GetProperty("timesteps").EnumerateArray().Select(v => v.GetInt32());
        Assert.Equal(expected, Create(kind, steps).Timesteps);
    }

    [Fact]
    public void SchedulersBuiltDirectlyCheckTheirStepsAndConfig()
    {
        var config = SchedulerConfig.DitDefault;
        Assert.Throws<ArgumentOutOfRangeException>(() => new DdimScheduler(config, 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => new DdpmScheduler(config, config.NumTrainTimesteps + 1));
        Assert.Throws<ArgumentOutOfRangeException>(() => new DpmSolverScheduler(config.ForDpmSolver(), config.NumTrainTimesteps + 1));
        var cosine = Assert.Throws<ArgumentException>(() => new DdimScheduler(config with { BetaSchedule = "squaredcos_cap_v2" }, 10));
        Assert.Contains("beta_schedule 'squaredcos_cap_v2'", cosine.Message);
        Assert.Throws<ArgumentException>(() => new TrainingSchedule(config with { NumTrainTimesteps = 1 }));
        Assert.Throws<ArgumentOutOfRangeException>(() => GaussianNoise.Sample(1, 0, -1));
        Assert.Equal(10, new DdimScheduler(config, 10).Steps);
    }

    [Fact]
    public void DpmSyntheticRunReproducesDiffusers()
    {
        var fixture = Cases.GetProperty("dpm20");
        var (afterStep1, final) = ReplaySyntheticRun("dpm", 20, SchedulerStep.Reference);
        AssertClose(Doubles(fixture.GetProperty("after_step1")), afterStep1, 1e-6);
        AssertClose(Doubles(fixture.GetProperty("final")), final, 1e-6);
    }

    [Fact]
    public void DdimSyntheticRunReproducesDiffusersToFloat64Rounding()
    {
        var fixture = Cases.GetProperty("ddim50");
        var (afterStep1, final) = ReplaySyntheticRun("ddim", 50, SchedulerStep.Reference);
        AssertClose(Doubles(fixture.GetProperty("after_step1")), afterStep1, 1e-14);
        AssertClose(Doubles(fixture.GetProperty("final")), final, 1e-14);
    }

    [Fact]
    public void DpmCoefficientsAreDiffusersFloat32Arithmetic()
    {
        // diffusers' DPM step casts the sample to float32 before (s_{i+1}/s_i) * sample, which alone
        // moves the float64 run by ~1e-7. Replaying that cast, step 1 is reproduced to float64 rounding.
        // The final sample stays 6.6e-8 off: PyTorch's float32 exp(-h) at step 16 is one ulp below the
        // correctly rounded value .NET computes (checked by perturbing that one value).
        static void ApplyWithFloat32Sample(StepCoefficients c, double[] x, double[] e, double[] mPrev, double[]? z)
        {
            for (int j = 0; j < x.Length; j++)
            {
                double m = (x[j] - c.SigmaT * e[j]) * c.InvAlphaT;
                x[j] = (float)c.Sample * (float)x[j] + c.Data * m + c.PrevData * mPrev[j];
                mPrev[j] = m;
            }
        }
        var fixture = Cases.GetProperty("dpm20");
        var (afterStep1, final) = ReplaySyntheticRun("dpm", 20, ApplyWithFloat32Sample);
        AssertClose(Doubles(fixture.GetProperty("after_step1")), afterStep1, 1e-14);
        AssertClose(Doubles(fixture.GetProperty("final")), final, 1e-7);
    }

    private delegate void StepApplier(StepCoefficients c, double[] x, double[] e, double[] mPrev, double[]? z);

    /// <summary>
    /// The fixture's synthetic run: initial sample draws[0]; at step k the "model" returns
    /// 0.7 x + 0.3 draws[k+1]. Returns the sample after the first step and at the end.
    /// </summary>
    private static (double[] AfterStep1, double[] Final) ReplaySyntheticRun(string kind, int steps, StepApplier apply)
    {
        var draws = ReadF64(Fixture($"scheduler-draws-{kind}{steps}.safetensors"), "draws");
        int n = draws.Length / (steps + 1);
        var x = draws[..n];
        Assert.Equal(Doubles(Cases.GetProperty($"{kind}{steps}").GetProperty("initial")), x);
        var scheduler = Create(kind, steps);
        var mPrev = new double[n];
        var e = new double[n];
        double[]? afterStep1 = null;
        for (int k = 0; k < steps; k++)
        {
            for (int j = 0; j < n; j++) e[j] = 0.7 * x[j] + 0.3 * draws[(k + 1) * n + j];
            apply(scheduler.Step(k), x, e, mPrev, null);
            afterStep1 ??= (double[])x.Clone();
        }
        return (afterStep1!, x);
    }

    [Fact]
    public void DpmFirstAndLastStepsAreFirstOrderAndLastReturnsDataPrediction()
    {
        var s = Create("dpm", 20);
        Assert.Equal(0, s.Step(0).PrevData);
        Assert.NotEqual(0, s.Step(1).PrevData);
        var last = s.Step(19);
        Assert.Equal(new StepCoefficients(last.SigmaT, last.InvAlphaT, 0, 0, 1, 0, 0), last);
        Assert.True(double.IsFinite(last.InvAlphaT) && double.IsFinite(last.SigmaT));
    }

    [Fact]
    public void DdpmUsesLeadingTimestepsAndEndsOnTheDataPrediction()
    {
        var s = Create("ddpm", 250);
        Assert.Equal(Enumerable.Range(0, 250).Select(k => 4 * (249 - k)), s.Timesteps);
        Assert.True(s.NeedsNoise);
        for (int i = 0; i < s.Steps - 1; i++)
        {
            var c = s.Step(i);
            Assert.True(c.Noise > 0 && double.IsFinite(c.Noise) && c.Sample > 0 && c.Data > 0, $"step {i}: {c}");
        }
        // At t = 0 no noise is added and the result is the data prediction itself.
        Assert.Equal(new StepCoefficients(s.Step(249).SigmaT, s.Step(249).InvAlphaT, 0, 0, 1, 0, 0), s.Step(249));

        var x = new[] { 0.3, -1.2 };
        var e = new[] { 0.1, 0.4 };
        var c0 = s.Step(249);
        var expected = x.Select((v, j) => (v - c0.SigmaT * e[j]) * c0.InvAlphaT).ToArray();
        SchedulerStep.Reference(c0, x, e, new double[2], null);
        Assert.Equal(expected, x);
    }

    [Fact]
    public void DdpmStepIsTheGaussianPosteriorOfTheMarginals()
    {
        // From x_t = sqrt(a) x0 + sqrt(1-a) eps, the ancestral step with the exact eps must give
        // x_t' ~ sqrt(a') x0 + N(0, 1-a'): the x0 weight and the total variance are those of the
        // marginal at the next timestep, which DDIM (same timesteps) exposes as Data and Eps.
        var ddpm = Create("ddpm", 10);
        var ddim = Create("ddim", 10);
        Assert.Equal(ddim.Timesteps, ddpm.Timesteps);
        for (int i = 0; i < ddpm.Steps; i++)
        {
            var c = ddpm.Step(i);
            var target = ddim.Step(i);
            double epsWeight = c.Sample * c.SigmaT;
            Assert.Equal(target.Data, c.Data + c.Sample / c.InvAlphaT, tolerance: 1e-6);
            Assert.Equal(target.Eps * target.Eps, c.Noise * c.Noise + epsWeight * epsWeight, tolerance: 1e-6);
        }
    }

    [Theory]
    [InlineData("ddim", 7)]
    [InlineData("dpm", 7)]
    [InlineData("ddpm", 7)]
    public void DeviceKernelMatchesHostReference(string kind, int steps)
    {
        using var backend = Backend.Create(DeviceKind.Cpu);
        var scheduler = Create(kind, steps);
        var rng = new Random(11);
        const int n = 300;
        float[] Uniform() => Enumerable.Range(0, n).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
        var x0 = Uniform();
        var hostX = x0.Select(v => (double)v).ToArray();
        var hostM = new double[n];
        using var x = backend.Arena.Upload(x0, n);
        using var mPrev = backend.Arena.Rent(n);
        mPrev.CopyFrom(Enumerable.Repeat(float.NaN, n).ToArray()); // must not be read at the first step
        for (int i = 0; i < steps; i++)
        {
            var e = Uniform();
            var z = Uniform();
            var c = scheduler.Step(i);
            using var eDev = backend.Arena.Upload(e, n);
            using var zDev = backend.Arena.Upload(z, n);
            SchedulerStep.Apply(backend, c, x, eDev, mPrev, scheduler.NeedsNoise ? zDev : null);
            SchedulerStep.Reference(c, hostX, e.Select(v => (double)v).ToArray(), hostM,
                scheduler.NeedsNoise ? z.Select(v => (double)v).ToArray() : null);
            AssertClose(hostX, x.ToArray().Select(v => (double)v).ToArray(), 1e-6);
            AssertClose(hostM, mPrev.ToArray().Select(v => (double)v).ToArray(), 1e-6);
        }
    }

    [Fact]
    public void LoadsTheEmbeddedModelsConfig()
    {
        var path = Path.Combine(AppContext.BaseDirectory, "models", "dit-digits", "scheduler", "scheduler_config.json");
        var config = SchedulerConfig.Load(path);
        Assert.Equal(SchedulerConfig.DdimClass, config.ClassName);
        Assert.Equal(DitConfig() with { Source = path }, config);
        Assert.Equal(SchedulerConfig.DitDefault with { Source = path }, config);
    }

    [Fact]
    public void MissingKeysTakeTheClassDefaults()
    {
        var dpm = SchedulerConfig.Parse("""{"_class_name": "DPMSolverMultistepScheduler", "lambda_min_clipped": -Infinity}""", "dpm.json");
        Assert.Equal("linspace", dpm.TimestepSpacing);
        Assert.Equal(double.NegativeInfinity, dpm.LambdaMinClipped);
        Assert.Equal(Cases.GetProperty("dpm20").GetProperty("timesteps").EnumerateArray().Select(v => v.GetInt32()),
            NoiseScheduler.Create("dpm", dpm, 20).Timesteps);
        var ddpm = SchedulerConfig.Parse("""{"_class_name": "DDPMScheduler", "clip_sample": false}""", "ddpm.json");
        Assert.Equal("fixed_small", ddpm.VarianceType);
        Assert.Equal("leading", ddpm.TimestepSpacing);
    }

    [Theory]
    [InlineData("""{"_class_name": "EulerDiscreteScheduler"}""", "_class_name")]
    [InlineData("""{"beta_schedule": "linear"}""", "_class_name")]
    [InlineData("""{"_class_name": "DDIMScheduler", "clip_sample": false, "beta_schedule": "scaled_linear"}""", "beta_schedule")]
    [InlineData("""{"_class_name": "DDIMScheduler", "clip_sample": false, "prediction_type": "v_prediction"}""", "prediction_type")]
    [InlineData("""{"_class_name": "DDIMScheduler"}""", "key 'clip_sample' is 'missing'; expected false (without it DDIMScheduler clips")]
    [InlineData("""{"_class_name": "DDIMScheduler", "clip_sample": false, "num_train_timesteps": "1000"}""", "num_train_timesteps")]
    [InlineData("""{"_class_name": "DDIMScheduler", "clip_sample": false, "timestep_spacing": "odd"}""", "timestep_spacing")]
    [InlineData("""{"_class_name": "DDPMScheduler", "clip_sample": false, "variance_type": "learned_range"}""", "variance_type")]
    [InlineData("""{"_class_name": "DPMSolverMultistepScheduler", "solver_order": 3}""", "solver_order")]
    [InlineData("""{"_class_name": "DDIMScheduler", "clip_sample": false,""", "not valid JSON")]
    [InlineData("""{"_class_name": "DDIMScheduler", "clip_sample": false, "steps_offset": 2147483000}""", "steps_offset")]
    [InlineData("""{"_class_name": "DDIMScheduler", "clip_sample": false, "num_train_timesteps": 2147483647}""", "num_train_timesteps")]
    public void BadConfigsNameTheFileAndKey(string json, string key)
    {
        var ex = Assert.Throws<SchedulerConfigException>(() => SchedulerConfig.Parse(json, "bad/scheduler_config.json"));
        Assert.StartsWith("bad/scheduler_config.json: ", ex.Message);
        Assert.Contains(key, ex.Message);
        // A model folder's fault like any other: a caller catching CheckpointException around DiTPipeline.Load sees it.
        Assert.Equal("bad/scheduler_config.json", Assert.IsAssignableFrom<SmoothCache.Model.Checkpoints.CheckpointException>(ex).File);
    }

    [Theory]
    [InlineData("ddim", 0)]
    [InlineData("dpm", -3)]
    [InlineData("ddpm", 1001)]
    public void StepCountsOutsideTheTrainingRangeAreRejected(string kind, int steps)
    {
        var ex = Assert.Throws<ArgumentOutOfRangeException>(() => Create(kind, steps));
        Assert.Contains("num_train_timesteps (1000)", ex.Message);
    }

    [Theory]
    [InlineData("ddim", 1000, 1)]   // every timestep, shifted by one: the first is 1000
    [InlineData("ddpm", 10, 901)]
    [InlineData("ddim", 50, int.MaxValue - 10)]  // built in code: past int's range on the way
    [InlineData("ddim", 10, -1)]
    public void AStepsOffsetPastTheLastTimestepIsRejected(string kind, int steps, int offset)
    {
        var config = DitConfig() with { StepsOffset = offset, Source = "scheduler_config.json" };
        var ex = Assert.Throws<ArgumentException>(() => NoiseScheduler.Create(kind, config, steps));
        Assert.StartsWith($"scheduler_config.json: steps_offset {offset} takes {steps} leading steps to timestep", ex.Message);
    }

    /// <summary>"trailing" is np.round(np.arange(T, 0, -T/N)) - 1, and numpy's arange adds a step rounded once more than
    /// T/N: at N = 48 its elements 3, 15, 27 and 39 fall just below a half (937.4999...) and round down.</summary>
    [Fact]
    public void TrailingTimestepsRoundAsNumpysArangeDoes()
    {
        var trailing = DitConfig() with { TimestepSpacing = "trailing" };
        var t48 = NoiseScheduler.Create("ddim", trailing, 48).Timesteps;
        Assert.Equal(999, t48[0]);
        Assert.Equal([936, 686, 436, 186], new[] { t48[3], t48[15], t48[27], t48[39] });
        Assert.Equal(Enumerable.Range(0, 50).Select(j => 999 - 20 * j), NoiseScheduler.Create("ddim", trailing, 50).Timesteps);
    }

    /// <summary>DPM-Solver's N + 1 linspace points over N timesteps put two on one timestep: a zero step, then NaN latents.</summary>
    [Fact]
    public void DpmAtAsManyStepsAsTimestepsIsRefused()
    {
        var ex = Assert.Throws<ArgumentOutOfRangeException>(() => Create("dpm", 1000));
        Assert.Contains("dpm takes at most 999 steps over 1000 timesteps", ex.Message);
        var most = Create("dpm", 999).Timesteps;
        Assert.Equal(999, most.Distinct().Count());
    }

    [Fact]
    public void UnknownSchedulerKindIsRejected()
    {
        var ex = Assert.Throws<ArgumentException>(() => Create("euler", 10));
        Assert.Contains("'euler'", ex.Message);
        Assert.Contains("ddim, dpm or ddpm", ex.Message);
    }

    private static void AssertClose(double[] expected, double[] actual, double relTol)
    {
        Assert.Equal(expected.Length, actual.Length);
        double diff = 0, norm = 0;
        for (int i = 0; i < expected.Length; i++)
        {
            diff += (expected[i] - actual[i]) * (expected[i] - actual[i]);
            norm += expected[i] * expected[i];
        }
        double rel = Math.Sqrt(diff / norm);
        Assert.True(rel <= relTol, $"relative L2 error {rel:E3} exceeds {relTol:E1}");
    }

    /// <summary>A minimal safetensors reader for one F64 tensor: 8-byte header length, JSON header, raw data.</summary>
    private static double[] ReadF64(string path, string name)
    {
        var bytes = File.ReadAllBytes(path);
        long headerLength = BinaryPrimitives.ReadInt64LittleEndian(bytes);
        using var header = JsonDocument.Parse(bytes.AsMemory(8, (int)headerLength));
        var entry = header.RootElement.GetProperty(name);
        Assert.Equal("F64", entry.GetProperty("dtype").GetString());
        var offsets = entry.GetProperty("data_offsets");
        int begin = 8 + (int)headerLength + offsets[0].GetInt32();
        int count = (offsets[1].GetInt32() - offsets[0].GetInt32()) / 8;
        var values = new double[count];
        for (int i = 0; i < count; i++) values[i] = BinaryPrimitives.ReadDoubleLittleEndian(bytes.AsSpan(begin + 8 * i));
        return values;
    }
}
