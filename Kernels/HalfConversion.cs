using ILGPU;
using Half = ILGPU.Half;

namespace SmoothCache.Kernels;

/// <summary>
/// Arithmetic of the model. Fp32: everything float32. Fp16: block and adaLN GEMM weights stored as
/// float16 (converted once with <see cref="HalfConversion.PrepareWeight"/>), the GEMM inputs a block makes
/// stored as float16, products accumulated in float32 — on tensor cores on CUDA, in the portable GEMM on
/// the CPU accelerator (same numbers up to summation order). The residual stream is float16 too, its updates summed
/// in float32; the conditioning and the final layer stay float32. A VAE decoder at Fp16 multiplies its convolutions'
/// float16 operands the same way (all but those over its 4 latent channels); its activations stay float32.
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

    /// <summary>The name <see cref="ParsePrecision"/> reads for <paramref name="precision"/>: fp32 or fp16.</summary>
    public static string PrecisionName(Precision precision) => precision == Precision.Fp16 ? "fp16" : "fp32";

    /// <summary>The type of a model's activations at <paramref name="precision"/>: Float16 on the fp16 path, else Float32.</summary>
    public static DType ActivationType(Precision precision) => precision == Precision.Fp16 ? DType.Float16 : DType.Float32;

    /// <summary>One element each way between a float32 and a float16 view of the same length.</summary>
    public struct RoundToHalf : IElementKernel
    {
        public ArrayView<float> Source;
        public ArrayView<Half> Target;
        public readonly void Compute(int i) => Target[i] = Round(Source[i]);
    }

    public struct WidenToFloat : IElementKernel
    {
        public ArrayView<Half> Source;
        public ArrayView<float> Target;
        public readonly void Compute(int i) => Target[i] = (float)Source[i];
    }

    /// <summary>
    /// float32 -> float16 rounded to nearest even inside a kernel: on CUDA ILGPU's conversion, one
    /// <c>cvt.rn.f16.f32</c>; elsewhere <see cref="RoundToHalfBits"/>, because ILGPU's conversion truncates on the
    /// CPU accelerator. ILGPU folds the test only after its last control-flow pass, so the PTX keeps the software
    /// side (ptxas drops it): kernels that round in many places take an <see cref="IHalfRounding"/> instead.
    /// </summary>
    public static Half Round(float value) =>
        ILGPU.Runtime.Cuda.CudaAsm.IsSupported ? default(CudaRounding).Round(value) : default(PortableRounding).Round(value);

    /// <summary>float32 -> float16 rounded to nearest even, chosen by type: a kernel instance for CUDA holds
    /// only <see cref="CudaRounding"/>'s one instruction per value. In the GEMMs' stores the software side that
    /// <see cref="Round"/> leaves in the PTX was two thirds of each kernel's PTX, compiled by ILGPU and ptxas for nothing.</summary>
    public interface IHalfRounding
    {
        Half Round(float value);
    }

    /// <summary>On CUDA: <c>cvt.rn.f16.f32</c>.</summary>
    public readonly struct CudaRounding : IHalfRounding
    {
        public Half Round(float value) => (Half)value;
    }

    /// <summary>On any accelerator: <see cref="RoundToHalfBits"/>.</summary>
    public readonly struct PortableRounding : IHalfRounding
    {
        public Half Round(float value) => Interop.IntAsFloat(RoundToHalfBits(value));
    }

    /// <summary><see cref="Round"/>: for kernels with one instance for every accelerator.</summary>
    public readonly struct RoundingOnAnyAccelerator : IHalfRounding
    {
        public Half Round(float value) => HalfConversion.Round(value);
    }

    /// <summary>
    /// float32 -> float16 bits, rounded to nearest even (like System.Half and PTX cvt.rn), written out
    /// because ILGPU.Half's own conversion truncates on the CPU accelerator. Overflow gives infinity.
    /// </summary>
    public static ushort RoundToHalfBits(float value)
    {
        uint f = Interop.FloatAsInt(value);
        uint sign = (f >> 16) & 0x8000u;
        uint abs = f & 0x7FFFFFFFu;
        if (abs > 0x7F800000u) return (ushort)(sign | 0x7E00u);  // NaN
        if (abs >= 0x477FF000u) return (ushort)(sign | 0x7C00u); // >= 65520 rounds past the largest half
        uint bits, rest, halfway;
        if (abs >= 0x38800000u)
        {
            // Normal half: rebias the exponent (127 -> 15), keep 10 of 23 mantissa bits.
            bits = (abs - 0x38000000u) >> 13;
            rest = abs & 0x1FFFu;
            halfway = 0x1000u;
        }
        else
        {
            // Subnormal half (|value| < 2^-14): the result counts units of 2^-24.
            int shift = 126 - (int)(abs >> 23);
            if (shift > 24) return (ushort)sign;
            uint mantissa = (abs & 0x7FFFFFu) | 0x800000u;
            bits = mantissa >> shift;
            rest = mantissa & ((1u << shift) - 1u);
            halfway = 1u << (shift - 1);
        }
        if (rest > halfway || (rest == halfway && (bits & 1u) != 0)) bits++;
        return (ushort)(sign | bits);
    }

    /// <summary>target = source rounded to nearest float16 (views of equal length).</summary>
    public static void ToHalf(Backend backend, ArrayView<float> source, ArrayView<Half> target)
    {
        if (source.Length != target.Length)
            throw new ArgumentException($"ToHalf: {source.Length} floats into {target.Length} halves");
        ElementLauncher.Launch(backend, (int)source.Length, new RoundToHalf { Source = source, Target = target });
    }

    /// <summary>A new Float16 tensor of the same shape holding x rounded to nearest float16.</summary>
    public static Tensor ToHalf(Tensor x)
    {
        if (x.DType != DType.Float32) throw new ArgumentException($"ToHalf: tensor {x.ShapeText} is {x.DType}, not Float32");
        var y = x.Backend.Arena.Rent(DType.Float16, x.Shape);
        ToHalf(x.Backend, x.View, y.HalfView);
        return y;
    }

    /// <summary>A new Float32 tensor of the same shape holding the float16 values of x exactly.</summary>
    public static Tensor ToFloat(Tensor x)
    {
        if (x.DType != DType.Float16) throw new ArgumentException($"ToFloat: tensor {x.ShapeText} is {x.DType}, not Float16");
        var y = x.Backend.Arena.Rent(DType.Float32, x.Shape);
        ElementLauncher.Launch(x.Backend, (int)x.Length, new WidenToFloat { Source = x.HalfView, Target = y.View });
        return y;
    }

    /// <summary>The weight as the GEMMs of this precision want it: itself (shared) for Fp32, a float16 copy for Fp16.</summary>
    public static Tensor PrepareWeight(Tensor weight, Precision precision) =>
        precision == Precision.Fp16 ? ToHalf(weight) : weight.Share();
}
