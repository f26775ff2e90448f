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
