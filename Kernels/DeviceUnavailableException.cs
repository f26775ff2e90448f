namespace SmoothCache.Kernels;

/// <summary>The device asked for is not on this machine (a CUDA GPU where ILGPU finds none): the caller's choice to
/// change, not a fault of the library.</summary>
public sealed class DeviceUnavailableException(string message) : Exception(message);
