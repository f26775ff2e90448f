using ILGPU;
using ILGPU.Runtime;

namespace SmoothCache.Kernels;

/// <summary>
/// Sinusoidal timestep features, [B, 2 * Half]: with f_i = exp(-ln(10000) * i / (Half - 1)) and
/// a = t * f_i, the row is [cos(a_0..), sin(a_0..)] (cosine first, frequency shift 1, as DiT's
/// embedder). The reference computes f and a in float32 even in a float64 model, so this kernel
/// rounds the same intermediates to float32 (otherwise t up to 999 moves the angle by ~1e-4).
/// </summary>
public static class TimestepEmbedding
{
    public const int Channels = 256;

    public struct Args : IElementKernel
    {
        public ArrayView<float> Timesteps, Out;
        public int Half;

        public readonly void Compute(int index)
        {
            int b = index / Half;
            int i = index - b * Half;
            float exponent = (float)(-9.210340371976184 * i);          // -ln(10000) * i, in float32
            float f = (float)Math.Exp((float)((double)exponent / (Half - 1)));
            float angle = (float)((double)Timesteps[b] * f);
            Out[b * 2 * Half + i] = (float)Math.Cos(angle);
            Out[b * 2 * Half + Half + i] = (float)Math.Sin(angle);
        }
    }

    /// <param name="timesteps">[B]</param>
    /// <returns>[B, 256]</returns>
    public static Tensor Run(Tensor timesteps)
    {
        int b = (int)timesteps.Length;
        var output = timesteps.Backend.Arena.Rent(b, Channels);
        var args = new Args { Timesteps = timesteps.View, Out = output.View, Half = Channels / 2 };
        ElementLauncher.Launch(timesteps.Backend, b * Channels / 2, args);
        return output;
    }
}
