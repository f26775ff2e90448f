using ILGPU;
using SmoothCache.Kernels;

namespace SmoothCache.Sampling;

/// <summary>One scheduler step for one element: the buffers and the step's coefficients; x and mPrev
/// are updated in place (see <see cref="StepCoefficients"/>).</summary>
public struct SchedulerStepArgs : IElementKernel
{
    public ArrayView<float> X;
    public ArrayView<float> E;
    public ArrayView<float> MPrev;
    /// <summary>Read only when Noise != 0.</summary>
    public ArrayView<float> Z;
    public float SigmaT, InvAlphaT, Sample, Eps, Data, PrevData, Noise;

    public readonly void Compute(int i)
    {
        float x = X[i];
        float e = E[i];
        float m = (x - SigmaT * e) * InvAlphaT;
        float r = Sample * x + Eps * e + Data * m;
        // Skipped terms are not read: mPrev is undefined before the first step, z absent without noise.
        if (PrevData != 0f) r += PrevData * MPrev[i];
        if (Noise != 0f) r += Noise * Z[i];
        X[i] = r;
        MPrev[i] = m;
    }
}

/// <summary>Applies one scheduler step (<see cref="StepCoefficients"/>) on the device, elementwise, in place.</summary>
public static class SchedulerStep
{
    /// <summary>
    /// The step in float64 on the host, in place: x becomes x' and mPrev becomes m. The reference the
    /// device kernel is checked against. z may be null when c.Noise is 0.
    /// </summary>
    public static void Reference(StepCoefficients c, double[] x, double[] e, double[] mPrev, double[]? z)
    {
        if (e.Length != x.Length || mPrev.Length != x.Length)
            throw new ArgumentException($"x, e and mPrev must have the same length (got {x.Length}, {e.Length}, {mPrev.Length})");
        if (c.Noise != 0 && (z is null || z.Length != x.Length))
            throw new ArgumentException($"this step adds noise: z must have {x.Length} values (got {z?.Length.ToString() ?? "none"})");
        for (int i = 0; i < x.Length; i++)
        {
            double m = (x[i] - c.SigmaT * e[i]) * c.InvAlphaT;
            double r = c.Sample * x[i] + c.Eps * e[i] + c.Data * m;
            if (c.PrevData != 0) r += c.PrevData * mPrev[i];
            if (c.Noise != 0) r += c.Noise * z![i];
            x[i] = r;
            mPrev[i] = m;
        }
    }

    /// <summary>
    /// x ← x', mPrev ← m for one step. e and mPrev have x's element count; z (standard normal) is
    /// needed only when c.Noise != 0. Queued on the backend's stream; nothing is waited for.
    /// </summary>
    public static void Apply(Backend backend, StepCoefficients c, Tensor x, Tensor e, Tensor mPrev, Tensor? z)
    {
        if (e.Length != x.Length || mPrev.Length != x.Length)
            throw new ArgumentException($"scheduler step: e {e.ShapeText} and mPrev {mPrev.ShapeText} must have as many elements as x {x.ShapeText}");
        if (c.Noise != 0 && (z is null || z.Length != x.Length))
            throw new ArgumentException($"scheduler step adds noise: z must have as many elements as x {x.ShapeText} (got {z?.ShapeText ?? "none"})");
        if (x.Length == 0) return;
        var args = new SchedulerStepArgs
        {
            X = x.View,
            E = e.View,
            MPrev = mPrev.View,
            // A placeholder that the kernel never reads when there is no noise term.
            Z = c.Noise != 0 ? z!.View : x.View,
            SigmaT = (float)c.SigmaT,
            InvAlphaT = (float)c.InvAlphaT,
            Sample = (float)c.Sample,
            Eps = (float)c.Eps,
            Data = (float)c.Data,
            PrevData = (float)c.PrevData,
            Noise = (float)c.Noise,
        };
        ElementLauncher.Launch(backend, (int)x.Length, args);
    }
}
