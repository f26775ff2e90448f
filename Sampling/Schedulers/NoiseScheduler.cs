namespace SmoothCache.Sampling;

/// <summary>
/// The coefficients of one denoising step in a form shared by every scheduler, so one elementwise
/// device kernel (<see cref="SchedulerStep"/>) applies any of them. With model output e (noise
/// prediction), sample x, the previous step's data prediction mPrev and standard-normal noise z:
/// <code>
///   m     = (x - SigmaT * e) * InvAlphaT          data prediction x0 at this step
///   x'    = Sample * x + Eps * e + Data * m + PrevData * mPrev + Noise * z
///   mPrev = m                                     kept for the next step
/// </code>
/// mPrev is read only when PrevData != 0 and z only when Noise != 0, so they may hold anything then.
/// </summary>
public readonly record struct StepCoefficients(
    double SigmaT, double InvAlphaT, double Sample, double Eps, double Data, double PrevData, double Noise);

/// <summary>
/// A noise scheduler over a fixed number of steps: its timesteps (descending, as the model is
/// called with them) and, per step, the <see cref="StepCoefficients"/> that move the sample on.
/// Coefficients are computed on the host, reproducing diffusers' float32 arithmetic.
/// </summary>
public abstract class NoiseScheduler
{
    private readonly int[] _timesteps;

    /// <summary>The model timestep of each step, in the order the steps run.</summary>
    public IReadOnlyList<int> Timesteps => _timesteps;

    /// <summary>Number of denoising steps (model calls) in a run.</summary>
    public int Steps => _timesteps.Length;

    /// <summary>Whether some step adds fresh noise z (the caller then supplies it).</summary>
    public abstract bool NeedsNoise { get; }

    /// <summary>The training schedule's alpha-bars the coefficients are computed from.</summary>
    protected TrainingSchedule Schedule { get; }

    /// <summary>Keeps <paramref name="schedule"/> and <paramref name="timesteps"/> (descending, one a step; the array itself,
    /// not a copy).</summary>
    protected NoiseScheduler(TrainingSchedule schedule, int[] timesteps)
    {
        Schedule = schedule;
        _timesteps = timesteps;
    }

    /// <summary><paramref name="steps"/> where it lies in [1, num_train_timesteps], else ArgumentOutOfRangeException (for the
    /// schedulers' constructors, before they space their timesteps).</summary>
    protected static int CheckedSteps(SchedulerConfig config, int steps) =>
        steps >= 1 && steps <= config.NumTrainTimesteps ? steps : throw new ArgumentOutOfRangeException(nameof(steps),
            $"sampling steps must be between 1 and num_train_timesteps ({config.NumTrainTimesteps}) of {config.Source}, got {steps}");

    /// <summary>The coefficients of step <paramref name="i"/> (0 = first, at the noisiest timestep).</summary>
    public StepCoefficients Step(int i)
    {
        if ((uint)i >= (uint)Steps) throw new ArgumentOutOfRangeException(nameof(i), i, $"step index must be in [0, {Steps})");
        return Coefficients(i);
    }

    /// <summary>The coefficients of step <paramref name="i"/>, already checked to lie in [0, Steps) by <see cref="Step"/>.</summary>
    protected abstract StepCoefficients Coefficients(int i);

    /// <summary>Creates the scheduler "ddim", "dpm" (DPM-Solver++ 2M) or "ddpm" (ancestral) for a number of steps.</summary>
    public static NoiseScheduler Create(string kind, SchedulerConfig config, int steps)
    {
        ArgumentNullException.ThrowIfNull(kind);
        ArgumentNullException.ThrowIfNull(config);
        return kind.ToLowerInvariant() switch
        {
            "ddim" => new DdimScheduler(config, steps),
            "dpm" => new DpmSolverScheduler(config.ForDpmSolver(), steps),
            "ddpm" => new DdpmScheduler(config, steps),
            _ => throw new ArgumentException($"unknown scheduler '{kind}': expected ddim, dpm or ddpm", nameof(kind)),
        };
    }

    /// <summary>
    /// Timesteps of DDIM/DDPM as diffusers' set_timesteps makes them: "leading" k*(T/N) (integer ratio)
    /// plus steps_offset, "linspace" round(linspace(0, T-1, N)), "trailing" round(T - k*T/N) - 1; descending.
    /// </summary>
    protected static int[] SpacedTimesteps(SchedulerConfig config, int steps)
    {
        int trainSteps = config.NumTrainTimesteps;
        // The largest "leading" timestep, in 64 bits: a config built in code may hold any steps_offset.
        long first = (long)(steps - 1) * (trainSteps / steps) + config.StepsOffset;
        if (config.TimestepSpacing == "leading" && (config.StepsOffset < 0 || first >= trainSteps))
            throw new ArgumentException($"{config.Source}: steps_offset {config.StepsOffset} takes {steps} leading steps to timestep {first}, " +
                                        $"outside num_train_timesteps ({trainSteps}): use fewer steps or a smaller steps_offset (at least 0)");
        // np.arange(T, 0, -T/N) fills element j with T + j * ((T - T/N) - T), a step rounded once more than T/N: at
        // some N a value then lies just below a half where T - j * T/N is on it, and rounds the other way.
        double arangeStep = (trainSteps - (double)trainSteps / steps) - trainSteps;
        var t = new int[steps];
        for (int k = 0; k < steps; k++)
        {
            // Index k counts from the end: t[steps-1-k] is the k-th smallest timestep.
            t[steps - 1 - k] = config.TimestepSpacing switch
            {
                "leading" => k * (trainSteps / steps) + config.StepsOffset,
                "linspace" => (int)Math.Round(NumpyLinspace(0, trainSteps - 1, steps, k), MidpointRounding.ToEven),
                // "trailing": the arange counts down from T, element steps-1-k here so that k = 0 is the smallest.
                _ => (int)Math.Round(trainSteps + (steps - 1 - k) * arangeStep, MidpointRounding.ToEven) - 1,
            };
        }
        return t;
    }

    /// <summary>Element k of numpy.linspace(start, stop, num): k * ((stop - start) / (num - 1)) + start, the last exactly stop.</summary>
    protected static double NumpyLinspace(double start, double stop, int num, int k)
    {
        if (num == 1) return start;
        if (k == num - 1) return stop;
        return k * ((stop - start) / (num - 1)) + start;
    }
}
