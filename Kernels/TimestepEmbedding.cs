using ILGPU;

namespace SmoothCache.Kernels;

/// <summary>
/// Sinusoidal timestep features, [B, 2 * Half]: with f_i = exp(-ln(10000) * i / (Half - 1)) and
/// a = t * f_i, the row is [cos(a_0..), sin(a_0..)] (cosine first, frequency shift 1, as DiT's
/// embedder). The reference computes f and a in float32 even in a float64 model, so this kernel
/// rounds the same intermediates to float32 (otherwise t up to 999 moves the angle by ~1e-4).
/// exp, cos and sin are evaluated here in double from adds and multiplies only: the kernel context's fast
/// math (<see cref="Backend.KernelMath"/>) turns library calls and divisions into approximations, and
/// cos.approx of an angle near 999 is off by ~2e-5.
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
        /// <summary>1 / (Half - 1), from the host (a division in the kernel would be approximate).</summary>
        public double Step;

        public readonly void Compute(int index)
        {
            int b = index / Half;
            int i = index - b * Half;
            float exponent = (float)(-9.210340371976184 * i);          // -ln(10000) * i, in float32
            float f = (float)Exp((float)(exponent * Step));
            float t = Timesteps.Length > 0 ? Timesteps[b] : Shared;
            float angle = (float)((double)t * f);
            var (cos, sin) = CosSin(angle);
            Out[b * 2 * Half + i] = (float)cos;
            Out[b * 2 * Half + Half + i] = (float)sin;
        }
    }

    // ln 2 and pi / 2 in two parts, the high ones with few enough bits that n x high is exact (Cody-Waite).
    private const double Ln2High = 6.93147180369123816490e-01, Ln2Low = 1.90821492927058770002e-10;
    private const double HalfPiHigh = 1.57079632673412561417e+00, HalfPiLow = 6.07710050650619224932e-11;

    /// <summary>e^x for x in [-745, 709] to double accuracy: x = n ln 2 + r with |r| &lt;= ln 2 / 2, e^r from
    /// its series to r^13 (the next term is under 1e-17), times 2^n (n halvings or doublings: exact).</summary>
    public static double Exp(double x)
    {
        double n = Math.Round(x * 1.4426950408889634);
        double r = x - n * Ln2High - n * Ln2Low;
        double e = 1 + r * (1 + r * (1.0 / 2 + r * (1.0 / 6 + r * (1.0 / 24 + r * (1.0 / 120 + r * (1.0 / 720 + r * (1.0 / 5040
            + r * (1.0 / 40320 + r * (1.0 / 362880 + r * (1.0 / 3628800 + r * (1.0 / 39916800 + r * (1.0 / 479001600 + r * (1.0 / 6227020800)))))))))))));
        for (int k = (int)-n; k > 0; k--) e *= 0.5;
        for (int k = (int)n; k > 0; k--) e *= 2;
        return e;
    }

    /// <summary>cos x and sin x for |x| up to ~1e6 to double accuracy: x = k pi / 2 + r with |r| &lt;= pi / 4,
    /// the series of r to r^17 (the next term is under 1e-17), rotated by k quarter turns.</summary>
    public static (double Cos, double Sin) CosSin(double x)
    {
        double k = Math.Round(x * 0.63661977236758134);
        double r = x - k * HalfPiHigh - k * HalfPiLow, r2 = r * r;
        double sin = r * (1 + r2 * (-1.0 / 6 + r2 * (1.0 / 120 + r2 * (-1.0 / 5040 + r2 * (1.0 / 362880 + r2 * (-1.0 / 39916800
            + r2 * (1.0 / 6227020800 + r2 * (-1.0 / 1307674368000 + r2 * (1.0 / 355687428096000)))))))));
        double cos = 1 + r2 * (-1.0 / 2 + r2 * (1.0 / 24 + r2 * (-1.0 / 720 + r2 * (1.0 / 40320 + r2 * (-1.0 / 3628800
            + r2 * (1.0 / 479001600 + r2 * (-1.0 / 87178291200 + r2 * (1.0 / 20922789888000))))))));
        return ((long)k & 3) switch
        {
            0 => (cos, sin),
            1 => (-sin, cos),
            2 => (-cos, -sin),
            _ => (sin, -cos),
        };
    }

    /// <summary>
    /// The sinusoids of one timestep per sample, [B, 256]. A batch at a single timestep (every sampling
    /// step) passes it in the kernel's arguments instead of uploading it (<see cref="Fill"/>): an upload makes
    /// the host wait for the device, so the next step's launches could not be queued while this one runs.
    /// </summary>
    public static Tensor Run(Backend backend, float[] timesteps)
    {
        int b = timesteps.Length;
        var output = backend.Arena.Rent(b, Channels);
        if (b > 0 && timesteps.All(t => t.Equals(timesteps[0])))
        {
            Fill(output, timesteps[0]);
            return output;
        }
        using var uploaded = backend.Arena.Upload(timesteps, b);
        Launch(output, new Args { Timesteps = uploaded.View });
        return output;
    }

    /// <summary>Every row of <paramref name="output"/> [R, 256] (e.g. one step's rows of a larger tensor) at timestep t.</summary>
    public static void Fill(Tensor output, float t) => Launch(output, new Args { Timesteps = ArrayView<float>.Empty, Shared = t });

    private static void Launch(Tensor output, Args args)
    {
        if (output.Shape.Length != 2 || output.Dim(1) != Channels)
            throw new ArgumentException($"TimestepEmbedding: output {output.ShapeText} is not [R, {Channels}]");
        ElementLauncher.Launch(output.Backend, output.Dim(0) * Channels / 2,
            args with { Out = output.View, Half = Channels / 2, Step = 1.0 / (Channels / 2 - 1) });
    }
}
