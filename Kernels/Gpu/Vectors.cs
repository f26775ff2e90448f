using System.Runtime.InteropServices;
using ILGPU;

namespace SmoothCache.Kernels.Gpu;

/// <summary>Four floats in 16 bytes: a view cast to it makes ILGPU emit 16-byte (v4) loads and stores.</summary>
[StructLayout(LayoutKind.Sequential, Size = 16)]
public struct F4
{
    public float X, Y, Z, W;
}

/// <summary>Four 32-bit words in 16 bytes (eight fp16 values, or four packed half2 pairs).</summary>
[StructLayout(LayoutKind.Sequential, Size = 16)]
public struct U4
{
    public uint X, Y, Z, W;
}

/// <summary>Two 32-bit words: an mma B fragment (two half2 pairs).</summary>
public struct U2
{
    public uint X, Y;
}

public static class Vectors
{
    /// <summary>The float16 in the low 16 bits of a packed word, widened exactly.</summary>
    public static float LowHalf(uint word) => (float)Interop.IntAsFloat((ushort)(word & 0xFFFF));

    /// <summary>The float16 in the high 16 bits of a packed word, widened exactly.</summary>
    public static float HighHalf(uint word) => (float)Interop.IntAsFloat((ushort)(word >> 16));

    /// <summary>Whether every view starts at a multiple of 4 floats, so that cast to float4s its
    /// elements are 16-byte aligned (host-side check before a float4 kernel).</summary>
    public static bool Float4Aligned(params ArrayView<float>[] views) =>
        views.All(v => ((IContiguousArrayView)v).Index % 4 == 0);

    /// <summary>The sum of v over the 32 lanes of a warp, in every lane (butterfly shuffles).</summary>
    public static float WarpSum(float v)
    {
        v += Warp.ShuffleXor(v, 16);
        v += Warp.ShuffleXor(v, 8);
        v += Warp.ShuffleXor(v, 4);
        v += Warp.ShuffleXor(v, 2);
        v += Warp.ShuffleXor(v, 1);
        return v;
    }
}
