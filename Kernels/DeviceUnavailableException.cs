namespace SmoothCache.Kernels;

/// <summary>The device asked for is not on this machine (a CUDA GPU where ILGPU finds none): the caller's choice to
/// change, not a fault of the library. <see cref="CudaDevices"/>: how many CUDA devices the machine has.</summary>
public sealed class DeviceUnavailableException(string message, int cudaDevices) : Exception(message)
{
    public int CudaDevices { get; } = cudaDevices;
}
