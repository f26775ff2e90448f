using System.Runtime.InteropServices;

namespace SmoothCache.Kernels.Gpu;

/// <summary>
/// A TMA tensor map (the driver's opaque 128-byte descriptor, <see cref="CudaDriver.EncodeTensorMap"/>) carried in
/// a kernel's arguments by value: a kernel hands the copy engine its address there (<see cref="LinearWgmmaTma"/>),
/// so the map travels with each launch, recorded launches included, and never needs an upload.
/// </summary>
[StructLayout(LayoutKind.Sequential)]
public struct TensorMapArg
{
    public ulong W0, W1, W2, W3, W4, W5, W6, W7, W8, W9, W10, W11, W12, W13, W14, W15;

    public const int Bytes = 128;

    public static TensorMapArg FromWords(ReadOnlySpan<ulong> words) => MemoryMarshal.Read<TensorMapArg>(MemoryMarshal.AsBytes(words));
}
