namespace SmoothCache.Sampling;

/// <summary>
/// Ancestral DDPM sampling as diffusers' DDPMScheduler, over the "leading" (or configured) subset of
/// training timesteps. With a = alpha-bar at t, a' = alpha-bar at the next timestep (1 after the last),
/// alpha = a / a', beta = 1 - alpha:
///   x' = sqrt(a') beta / (1-a) * x0 + sqrt(alpha) (1-a') / (1-a) * x + std * z,   no noise at t = 0.
/// The variance is fixed, from the config's variance_type: "fixed_small" (the default, and what DiT's
/// DDIM config yields: the posterior variance (1-a')/(1-a) beta, clamped at 1e-20), "fixed_small_log"
/// (the same through exp(0.5 log)), or "fixed_large" (beta). DiT's own 250-step sampler uses the
/// learned variance from the model's second half of output channels; that is not implemented here,
/// matching diffusers' DiT pipeline, which drops those channels.
/// </summary>
public sealed class DdpmScheduler : NoiseScheduler
{
    private readonly string _varianceType;

    /// <summary>Ancestral DDPM over <paramref name="steps"/> timesteps spaced as the config's timestep_spacing says, with the
    /// config's variance_type.</summary>
    /// <exception cref="ArgumentOutOfRangeException">steps outside [1, num_train_timesteps]</exception>
    /// <exception cref="ArgumentException">steps_offset takes the first timestep past the last training timestep</exception>
    public DdpmScheduler(SchedulerConfig config, int steps)
        : base(new TrainingSchedule(config), SpacedTimesteps(config, CheckedSteps(config, steps)))
    {
        _varianceType = config.VarianceType;
    }

    /// <inheritdoc/>
    public override bool NeedsNoise => true;

    /// <inheritdoc/>
    protected override StepCoefficients Coefficients(int i)
    {
        int t = Timesteps[i];
        // diffusers steps to the next timestep of the list (for "leading" spacing that is t - T/N).
        int prev = i + 1 < Steps ? Timesteps[i + 1] : -1;
        float a = Schedule.AlphasCumprod[t];
        float aPrev = prev >= 0 ? Schedule.AlphasCumprod[prev] : 1f;
        float betaProd = 1f - a;
        float betaProdPrev = 1f - aPrev;
        float alpha = a / aPrev;
        float beta = 1f - alpha;
        return new StepCoefficients(
            SigmaT: MathF.Sqrt(betaProd),
            InvAlphaT: 1.0 / MathF.Sqrt(a),
            Sample: MathF.Sqrt(alpha) * betaProdPrev / betaProd,
            Eps: 0,
            Data: MathF.Sqrt(aPrev) * beta / betaProd,
            PrevData: 0,
            Noise: t > 0 ? NoiseStd(betaProdPrev / betaProd * beta, beta) : 0);
    }

    private float NoiseStd(float posteriorVariance, float beta)
    {
        float variance = MathF.Max(posteriorVariance, 1e-20f);
        return _varianceType switch
        {
            "fixed_small_log" => MathF.Exp(0.5f * MathF.Log(variance)),
            "fixed_large" => MathF.Sqrt(beta),
            _ => MathF.Sqrt(variance),
        };
    }
}
