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
        /// <summary>One timestep per sample, or empty when every sample is at <see cref="Shared"/>.</summary>
        public ArrayView<float> Timesteps;
        public ArrayView<float> Out;
        public float Shared;
        public int Half;

        public readonly void Compute(int index)
        {
            int b = index / Half;
            int i = index - b * Half;
            float exponent = (float)(-9.210340371976184 * i);          // -ln(10000) * i, in float32
            float f = (float)Math.Exp((float)((double)exponent / (Half - 1)));
            float t = Timesteps.Length > 0 ? Timesteps[b] : Shared;
            float angle = (float)((double)t * f);
            Out[b * 2 * Half + i] = (float)Math.Cos(angle);
            Out[b * 2 * Half + Half + i] = (float)Math.Sin(angle);
        }
    }

    /// <param name="timesteps">[B]</param>
    /// <returns>[B, 256]</returns>
    /// <summary>
    /// The sinusoids of one timestep per sample, [B, 256]. A batch at a single timestep (every sampling
    /// step) passes it in the kernel's arguments instead of uploading it: an upload makes the host wait
    /// for the device, so the next step's launches could not be queued while this one runs.
    /// </summary>
    public static Tensor Run(Backend backend, float[] timesteps)
    {
        int b = timesteps.Length;
        var output = backend.Arena.Rent(b, Channels);
        var args = new Args { Out = output.View, Half = Channels / 2, Timesteps = ArrayView<float>.Empty };
        bool shared = b > 0 && timesteps.All(t => t.Equals(timesteps[0]));
        if (shared)
        {
            ElementLauncher.Launch(backend, b * Channels / 2, args with { Shared = timesteps[0] });
            return output;
        }
        using var uploaded = backend.Arena.Upload(timesteps, b);
        ElementLauncher.Launch(backend, b * Channels / 2, args with { Timesteps = uploaded.View });
        return output;
    }
}
