using System.Runtime.InteropServices;
using ILGPU;

namespace SmoothCache.Kernels.Gpu;

/// <summary>
/// A TMA tensor map (the driver's opaque 128-byte descriptor, <see cref="CudaDriver.EncodeTensorMap"/>) as a value,
/// and the kernel that writes one into global memory, where <see cref="LinearWgmmaTma"/> hands its address to the
/// copy engine. It is written by a launch, not a host copy, so that a map made while recording is replayed with the
/// launches that use it (a CUDA capture cannot hold a copy from pageable host memory).
/// Not in the kernel's parameters: a 64-byte-aligned parameter sits 48 bytes into CUDA's parameter area on Hopper,
/// which ILGPU's packed argument buffer does not know, so every argument was read 48 bytes off (eleventh session).
/// </summary>
[StructLayout(LayoutKind.Sequential)]
public struct TensorMapArg
{
    public ulong W0, W1, W2, W3, W4, W5, W6, W7, W8, W9, W10, W11, W12, W13, W14, W15;

    public const int Bytes = 128;
    public const int Words = 16;

    public static TensorMapArg FromWords(ReadOnlySpan<ulong> words) => MemoryMarshal.Read<TensorMapArg>(MemoryMarshal.AsBytes(words));

    public struct StoreArgs
    {
        public TensorMapArg Map;
        /// <summary>The map's 16 words in global memory (64-byte aligned).</summary>
        public ArrayView<ulong> Target;
    }

    /// <summary>One thread writes the map's 16 words.</summary>
    public static void Store(Index1D index, StoreArgs a)
    {
        var m = a.Map;
        var t = a.Target;
        t[0] = m.W0; t[1] = m.W1; t[2] = m.W2; t[3] = m.W3; t[4] = m.W4; t[5] = m.W5; t[6] = m.W6; t[7] = m.W7;
        t[8] = m.W8; t[9] = m.W9; t[10] = m.W10; t[11] = m.W11; t[12] = m.W12; t[13] = m.W13; t[14] = m.W14; t[15] = m.W15;
    }
}
