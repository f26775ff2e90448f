namespace SmoothCache.Kernels;

/// <summary>
/// An elementwise function applied to a kernel's result before it is stored. Kernels take the
/// epilogue as a struct type argument, so ILGPU compiles one specialised kernel per epilogue.
/// </summary>
public interface IEpilogue
{
    float Apply(float v);
}

public readonly struct IdentityEpilogue : IEpilogue
{
    public float Apply(float v) => v;
}

/// <summary>
/// GELU, tanh approximation: 0.5 v (1 + tanh(u)) with u = sqrt(2/pi) (v + 0.044715 v^3), computed as
/// the identical v / (1 + exp(-2u)): on PTX MathF.Tanh is tanh.approx (about 2^-11 relative error),
/// while exp is ex2.approx (about 2^-22), which keeps the fp32 GPU path within 1e-5 of the CPU.
/// </summary>
public readonly struct GeluTanhEpilogue : IEpilogue
{
    public float Apply(float v)
    {
        const float c = 0.7978845608028654f;
        float u = c * (v + 0.044715f * v * v * v);
        return v / (1f + MathF.Exp(-2f * u));
    }
}

/// <summary>An image value in [-1, 1] as displayed: clamp(v / 2 + 0.5, 0, 1), as diffusers' pipelines return images.</summary>
public readonly struct UnitRangeEpilogue : IEpilogue
{
    public float Apply(float v)
    {
        float u = v * 0.5f + 0.5f;
        return u < 0f ? 0f : u > 1f ? 1f : u;
    }
}

/// <summary>SiLU: v * sigmoid(v).</summary>
public readonly struct SiluEpilogue : IEpilogue
{
    public float Apply(float v) => v / (1f + MathF.Exp(-v));
}
