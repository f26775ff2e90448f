namespace SmoothCache.Sampling;

/// <summary>
/// The training noise schedule: alpha-bar (alphas_cumprod) per training timestep, as float32 values
/// computed the way diffusers (PyTorch on the CPU) computes them, so the step coefficients derived
/// from them match the reference to the last bit where possible.
/// </summary>
public sealed class TrainingSchedule
{
    /// <summary>alphas_cumprod[t] for t = 0 .. num_train_timesteps-1.</summary>
    public float[] AlphasCumprod { get; }

    /// <summary>Alpha-bar at each training timestep from betas rising linearly from beta_start to beta_end (float32, as torch
    /// computes them).</summary>
    /// <exception cref="ArgumentException">a config built in code with another beta_schedule or fewer than 2 training
    /// timesteps (<see cref="SchedulerConfig.Parse"/> refuses those in a file)</exception>
    public TrainingSchedule(SchedulerConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        if (config.BetaSchedule != "linear")
            throw new ArgumentException($"beta_schedule '{config.BetaSchedule}' of {config.Source}: only 'linear' is supported", nameof(config));
        if (config.NumTrainTimesteps < 2)
            throw new ArgumentException($"num_train_timesteps {config.NumTrainTimesteps} of {config.Source}: expected at least 2", nameof(config));
        int n = config.NumTrainTimesteps;
        var betas = TorchLinspace((float)config.BetaStart, (float)config.BetaEnd, n);
        AlphasCumprod = new float[n];
        // torch.cumprod on the CPU accumulates float32 in double and rounds each partial product.
        double product = 1.0;
        for (int t = 0; t < n; t++)
        {
            product *= 1f - betas[t];
            AlphasCumprod[t] = (float)product;
        }
    }

    /// <summary>
    /// torch.linspace in float32: step = (end - start) / (n - 1) in float32; the first half counts
    /// up from start, the second half down from end (so both ends are exact), each value one fused
    /// multiply-add as PyTorch's compiled kernel does it (unfused products shift alpha-bar at late
    /// timesteps by several float32 ulps; fused, the DDIM fixture is reproduced bit for bit).
    /// </summary>
    private static float[] TorchLinspace(float start, float end, int n)
    {
        var v = new float[n];
        float step = (end - start) / (n - 1);
        int half = n / 2;
        for (int i = 0; i < n; i++)
            v[i] = i < half ? MathF.FusedMultiplyAdd(step, i, start) : MathF.FusedMultiplyAdd(-step, n - 1 - i, end);
        return v;
    }
}
