namespace SmoothCache.Sampling;

/// <summary>
/// DDIM with eta 0 (deterministic), as diffusers' DDIMScheduler: with a = alpha-bar at t and
/// a' = alpha-bar at t - T/N (or 1 / alphas_cumprod[0] before timestep 0, per set_alpha_to_one),
/// x0 = (x - sqrt(1-a) e) / sqrt(a), x' = sqrt(a') x0 + sqrt(1-a') e. The square roots and
/// differences are float32, as diffusers computes them on float32 alpha-bars.
/// </summary>
public sealed class DdimScheduler : NoiseScheduler
{
    private readonly int _stride;
    private readonly float _finalAlphaCumprod;

    /// <summary>DDIM over <paramref name="steps"/> timesteps spaced as the config's timestep_spacing says, each stepping
    /// num_train_timesteps / steps back.</summary>
    /// <exception cref="ArgumentOutOfRangeException">steps outside [1, num_train_timesteps]</exception>
    /// <exception cref="ArgumentException">steps_offset takes the first timestep past the last training timestep</exception>
    public DdimScheduler(SchedulerConfig config, int steps)
        : base(new TrainingSchedule(config), SpacedTimesteps(config, CheckedSteps(config, steps)))
    {
        _stride = config.NumTrainTimesteps / steps;
        _finalAlphaCumprod = config.SetAlphaToOne ? 1f : Schedule.AlphasCumprod[0];
    }

    /// <inheritdoc/>
    public override bool NeedsNoise => false;

    /// <inheritdoc/>
    protected override StepCoefficients Coefficients(int i)
    {
        int t = Timesteps[i];
        int prev = t - _stride;
        float a = Schedule.AlphasCumprod[t];
        float aPrev = prev >= 0 ? Schedule.AlphasCumprod[prev] : _finalAlphaCumprod;
        return new StepCoefficients(
            SigmaT: MathF.Sqrt(1f - a),
            InvAlphaT: 1.0 / MathF.Sqrt(a),
            Sample: 0,
            Eps: MathF.Sqrt(1f - aPrev),
            Data: MathF.Sqrt(aPrev),
            PrevData: 0,
            Noise: 0);
    }
}
