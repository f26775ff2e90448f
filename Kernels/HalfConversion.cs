using ILGPU;
using ILGPU.Runtime;
using Half = ILGPU.Half;

namespace SmoothCache.Kernels;

/// <summary>
/// Arithmetic of the GEMMs. Fp32: weights and products in float32. Fp16: weights stored as float16
/// (convert them once with <see cref="HalfConversion.PrepareWeight"/>), activations rounded to float16
/// on the fly, products accumulated in float32 on tensor cores (CUDA only). Activations stay float32 tensors.
/// </summary>
public enum Precision { Fp32, Fp16 }

/// <summary>float32 &lt;-&gt; float16 tensors, and weights prepared for a <see cref="Precision"/>.</summary>
public static class HalfConversion
{
    /// <summary>Parses "fp32" or "fp16" (case-insensitive).</summary>
    public static Precision ParsePrecision(string text) => text.ToLowerInvariant() switch
    {
        "fp32" or "float32" => Precision.Fp32,
        "fp16" or "float16" or "half" => Precision.Fp16,
        _ => throw new ArgumentException($"unknown precision '{text}': expected fp32 or fp16"),
    };

    public struct Args
    {
        public ArrayView<float> Source;
        public ArrayView<Half> Target;
    }

    public static void ToHalfKernel(Index1D i, Args a) => a.Target[i] = (Half)a.Source[i];

    public static void ToFloatKernel(Index1D i, Args a) => a.Source[i] = (float)a.Target[i];

    /// <summary>A new Float16 tensor of the same shape holding x rounded to nearest float16.</summary>
    public static Tensor ToHalf(Tensor x)
    {
        if (x.DType != DType.Float32) throw new ArgumentException($"ToHalf: tensor {x.ShapeText} is {x.DType}, not Float32");
        var y = x.Backend.Arena.Rent(DType.Float16, x.Shape);
        if (x.Length > 0)
            x.Backend.Load<Args>(ToHalfKernel)((int)x.Length, new Args { Source = x.View, Target = y.HalfView });
        return y;
    }

    /// <summary>A new Float32 tensor of the same shape holding the float16 values of x exactly.</summary>
    public static Tensor ToFloat(Tensor x)
    {
        if (x.DType != DType.Float16) throw new ArgumentException($"ToFloat: tensor {x.ShapeText} is {x.DType}, not Float16");
        var y = x.Backend.Arena.Rent(DType.Float32, x.Shape);
        if (x.Length > 0)
            x.Backend.Load<Args>(ToFloatKernel)((int)x.Length, new Args { Source = y.View, Target = x.HalfView });
        return y;
    }

    /// <summary>The weight as the GEMMs of this precision want it: itself (shared) for Fp32, a float16 copy for Fp16.</summary>
    public static Tensor PrepareWeight(Tensor weight, Precision precision) =>
        precision == Precision.Fp16 ? ToHalf(weight) : weight.Share();
}
