using ILGPU;
using ILGPU.Runtime;

namespace SmoothCache.Kernels;

/// <summary>Device time of one kernel over a profiled run: how often it ran and for how long in all.</summary>
public readonly record struct KernelTime(string Kernel, int Launches, double Milliseconds);

/// <summary>
/// Per-kernel device time of the launches a backend makes while the profile is attached
/// (<see cref="Backend.StartProfile()"/>): an ILGPU profiling marker (a CUDA event on a GPU) is recorded
/// before and after each launch and read once the run is over, so the run is not synchronised.
/// A marker pair brackets a kernel exactly only when the device is behind the host; on CUDA the
/// profile therefore starts by queueing a spin kernel (<see cref="HoldDevice"/>) that keeps the device busy while the
/// host queues the run, and the gaps a launch-bound run would show are not counted as kernel time.
/// </summary>
public sealed class KernelProfile : IDisposable
{
    private readonly Backend _backend;
    private readonly List<(string Kernel, ProfilingMarker Start, ProfilingMarker End)> _launches = new();

    internal KernelProfile(Backend backend) => _backend = backend;

    internal ProfilingMarker Start() => _backend.Stream.AddProfilingMarker();

    internal void Stop(string kernel, ProfilingMarker start) =>
        _launches.Add((kernel, start, _backend.Stream.AddProfilingMarker()));

    /// <summary>Launches recorded so far.</summary>
    public int Launches => _launches.Count;

    /// <summary>
    /// Waits for the device, then sums each kernel's time; kernels in order of total time, largest first.
    /// </summary>
    public IReadOnlyList<KernelTime> Read()
    {
        _backend.Synchronize();
        return _launches
            .GroupBy(l => l.Kernel)
            .Select(g => new KernelTime(g.Key, g.Count(), g.Sum(l => l.End.MeasureFrom(l.Start).TotalMilliseconds)))
            .OrderByDescending(k => k.Milliseconds)
            .ToArray();
    }

    public void Dispose()
    {
        if (ReferenceEquals(_backend.Profile, this)) _backend.Profile = null;
        foreach (var (_, start, end) in _launches)
        {
            start.Dispose();
            end.Dispose();
        }
        _launches.Clear();
        _sink?.Dispose();
    }

    /// <summary>Spin steps that hold the device while a forward's launches are queued: ~20 ms on a current GPU.</summary>
    internal const int HoldIterations = 10_000_000;

    /// <summary>
    /// Queues one thread that spins through a chain of <paramref name="iterations"/> dependent multiply-adds (about
    /// 2 ns each on a current GPU), so that the launches queued after it find the device busy. Not recorded.
    /// </summary>
    internal void HoldDevice(int iterations)
    {
        _sink ??= _backend.Accelerator.Allocate1D<float>(1);
        _backend.SpinKernel(_backend.Stream, 1, _sink.View, iterations);
    }

    // Freed with the profile, not after the spin: freeing device memory waits for the device.
    private MemoryBuffer1D<float, Stride1D.Dense>? _sink;

    internal static void Spin(Index1D i, ArrayView<float> sink, int iterations)
    {
        float v = i;
        for (int k = 0; k < iterations; k++) v = v * 0.999999f + 1e-7f;
        sink[i] = v;
    }
}
