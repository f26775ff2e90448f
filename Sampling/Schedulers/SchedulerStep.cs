using ILGPU;
using ILGPU.Runtime;
using SmoothCache.Kernels;

namespace SmoothCache.Sampling;

/// <summary>The arguments of <see cref="SchedulerStep.SchedulerStepKernel"/>: the buffers and the step's coefficients.</summary>
public struct SchedulerStepArgs
{
    public ArrayView<float> X;
    public ArrayView<float> E;
    public ArrayView<float> MPrev;
    /// <summary>Read only when Noise != 0.</summary>
    public ArrayView<float> Z;
    public float SigmaT, InvAlphaT, Sample, Eps, Data, PrevData, Noise;
}

/// <summary>Applies one scheduler step (<see cref="StepCoefficients"/>) on the device, elementwise, in place.</summary>
public static class SchedulerStep
{
    /// <summary>One thread per element: x and mPrev are updated in place (see <see cref="StepCoefficients"/>).</summary>
    public static void SchedulerStepKernel(Index1D i, SchedulerStepArgs a)
    {
        float x = a.X[i];
        float e = a.E[i];
        float m = (x - a.SigmaT * e) * a.InvAlphaT;
        float r = a.Sample * x + a.Eps * e + a.Data * m;
        // Skipped terms are not read: mPrev is undefined before the first step, z absent without noise.
        if (a.PrevData != 0f) r += a.PrevData * a.MPrev[i];
        if (a.Noise != 0f) r += a.Noise * a.Z[i];
        a.X[i] = r;
        a.MPrev[i] = m;
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
        backend.Load<SchedulerStepArgs>(SchedulerStepKernel)((int)x.Length, args);
    }
}
