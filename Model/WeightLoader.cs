using SmoothCache.Kernels;
using SmoothCache.Model.Checkpoints;

namespace SmoothCache.Model;

/// <summary>Uploads checkpoint tensors to the device, checking each shape against the config.</summary>
internal static class WeightLoader
{
    public static Tensor Load(Backend backend, IWeightSource weights, string name, params int[] shape) =>
        backend.Arena.Upload(weights.ReadFloat32(name, shape), shape);

    /// <summary>A GEMM's weight (a Linear's, or a convolution's run as a GEMM) in the storage the precision asks for
    /// (float16 for tensor cores).</summary>
    public static Tensor ForLinear(Tensor weight, Precision precision)
    {
        if (precision == Precision.Fp32) return weight;
        using (weight) return HalfConversion.PrepareWeight(weight, precision);
    }

    /// <summary>Stacks tensors along their first axis (e.g. to_q, to_k, to_v into [3D, D]); the other
    /// axes must agree. Each is read by <paramref name="read"/> (name, shape) where given (a reader that takes
    /// other stored shapes of the same values), else checked against its shape.</summary>
    public static Tensor Stack(Backend backend, IWeightSource weights, (string Name, int[] Shape)[] parts,
        Func<string, int[], float[]>? read = null)
    {
        long total = parts.Sum(p => Tensor.ElementCount(p.Shape));
        var all = new float[total];
        long offset = 0;
        foreach (var (name, shape) in parts)
        {
            var values = read?.Invoke(name, shape) ?? weights.ReadFloat32(name, shape);
            values.CopyTo(all, offset);
            offset += values.Length;
        }
        var stacked = (int[])parts[0].Shape.Clone();
        stacked[0] = parts.Sum(p => p.Shape[0]);
        return backend.Arena.Upload(all, stacked);
    }
}
