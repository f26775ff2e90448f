namespace SmoothCache.Sampling;

/// <summary>
/// DPM-Solver++ 2M (multistep, second order, midpoint) as diffusers' DPMSolverMultistepScheduler
/// with final sigma 0. Timesteps round(linspace(0, T'-1, N+1)) (half to even), descending, the last
/// (0) dropped; T' = T unless lambda_min_clipped cuts the schedule. Per step i, with
/// sigma_i = sqrt((1-a)/a) at the step's timestep (sigma_N = 0), alpha = 1/sqrt(sigma^2+1),
/// s = sigma*alpha, lambda = ln alpha - ln s, h = lambda_{i+1} - lambda_i, m_i = (x - s_i e)/alpha_i:
///   first order (i = 0 and the last step): x' = (s_{i+1}/s_i) x - alpha_{i+1}(e^-h - 1) m_i
///   second order: r = (lambda_i - lambda_{i-1})/h, D1 = (m_i - m_{i-1})/r,
///                 x' = (s_{i+1}/s_i) x - alpha_{i+1}(e^-h - 1) (m_i + D1/2).
/// The last step goes to sigma 0, where the formula gives x' = m exactly: s_{i+1} = 0, alpha_{i+1} = 1,
/// lambda_{i+1} = +inf, e^-h = 0. All scalars are float32 as in diffusers.
/// </summary>
public sealed class DpmSolverScheduler : NoiseScheduler
{
    // Per step i = 0..N: alpha_i, s_i and lambda_i of sigma_i (index N is the final sigma 0).
    private readonly float[] _alpha;
    private readonly float[] _sigma;
    private readonly float[] _lambda;

    /// <summary>DPM-Solver++ 2M over <paramref name="steps"/> "linspace" timesteps (whatever the config's spacing) of the config's
    /// betas.</summary>
    /// <exception cref="ArgumentOutOfRangeException">steps outside [1, num_train_timesteps - 1] (at num_train_timesteps two
    /// steps would share a timestep)</exception>
    /// <exception cref="SchedulerConfigException">fewer than <paramref name="steps"/> training timesteps are left (after
    /// lambda_min_clipped cuts the noisiest)</exception>
    public DpmSolverScheduler(SchedulerConfig config, int steps)
        : this(config, new TrainingSchedule(config), steps) { }

    private DpmSolverScheduler(SchedulerConfig config, TrainingSchedule schedule, int steps)
        : base(schedule, LinspaceTimesteps(config, schedule, CheckedSteps(config, steps)))
    {
        _alpha = new float[steps + 1];
        _sigma = new float[steps + 1];
        _lambda = new float[steps + 1];
        for (int i = 0; i <= steps; i++)
        {
            float sigma = 0f;
            if (i < steps)
            {
                float a = schedule.AlphasCumprod[Timesteps[i]];
                sigma = MathF.Sqrt((1f - a) / a);
            }
            _alpha[i] = 1f / MathF.Sqrt(sigma * sigma + 1f);
            _sigma[i] = sigma * _alpha[i];
            _lambda[i] = MathF.Log(_alpha[i]) - MathF.Log(_sigma[i]);
        }
    }

    /// <inheritdoc/>
    public override bool NeedsNoise => false;

    /// <inheritdoc/>
    protected override StepCoefficients Coefficients(int i)
    {
        float h = _lambda[i + 1] - _lambda[i];
        float dataWeight = _alpha[i + 1] * (MathF.Exp(-h) - 1f);
        double data = -dataWeight, prevData = 0;
        // Lower order at the first step (no previous m) and at the last (final sigma 0).
        if (i > 0 && i < Steps - 1)
        {
            float r = (_lambda[i] - _lambda[i - 1]) / h;
            double d1Weight = 0.5f * dataWeight * (double)(1f / r);
            data -= d1Weight;
            prevData = d1Weight;
        }
        return new StepCoefficients(
            SigmaT: _sigma[i],
            InvAlphaT: 1.0 / _alpha[i],
            Sample: _sigma[i + 1] / _sigma[i],
            Eps: 0,
            Data: data,
            PrevData: prevData,
            Noise: 0);
    }

    private static int[] LinspaceTimesteps(SchedulerConfig config, TrainingSchedule schedule, int steps)
    {
        int lastTimestep = config.NumTrainTimesteps - ClippedCount(config, schedule);
        if (lastTimestep < steps)
            throw new SchedulerConfigException(config.Source,
                $"key 'lambda_min_clipped' ({config.LambdaMinClipped}) leaves {lastTimestep} timesteps, fewer than {steps} steps");
        // steps + 1 points over fewer than steps + 1 timesteps round two onto one: a zero step, then NaN latents (as in
        // diffusers today; older releases dropped the repeat and ran a step fewer).
        if (steps == lastTimestep)
            throw new ArgumentOutOfRangeException(nameof(steps), steps,
                $"dpm takes at most {lastTimestep - 1} steps over {lastTimestep} timesteps: at {steps} it would step from a timestep to itself");
        var t = new int[steps];
        for (int i = 0; i < steps; i++)
            t[i] = (int)Math.Round(NumpyLinspace(0, lastTimestep - 1, steps + 1, steps - i), MidpointRounding.ToEven);
        return t;
    }

    /// <summary>How many of the noisiest training timesteps have a log-SNR below lambda_min_clipped.</summary>
    private static int ClippedCount(SchedulerConfig config, TrainingSchedule schedule)
    {
        if (double.IsNegativeInfinity(config.LambdaMinClipped)) return 0;
        int count = 0;
        foreach (float a in schedule.AlphasCumprod)
        {
            float lambda = MathF.Log(MathF.Sqrt(a)) - MathF.Log(MathF.Sqrt(1f - a));
            if (lambda < config.LambdaMinClipped) count++;
        }
        return count;
    }
}
