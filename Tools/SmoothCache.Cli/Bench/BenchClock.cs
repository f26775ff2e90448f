using System.Diagnostics;
using SmoothCache.Kernels;

namespace SmoothCache.Cli.Bench;

/// <summary>Timing helpers shared by the benchmarks.</summary>
public static class BenchClock
{
    /// <summary>
    /// On CUDA, repeats <paramref name="work"/> for 20 ms before anything is timed: after seconds of
    /// compiling the GPU has lowered its clocks, and the first kernel timed after a compile measured up
    /// to 2x slow (H100, 20 calls of 30 µs). Elsewhere it does nothing.
    /// </summary>
    public static void KeepBusy(Backend backend, Action work)
    {
        if (!backend.IsCuda) return;
        var watch = Stopwatch.StartNew();
        while (watch.Elapsed.TotalMilliseconds < 20)
        {
            work();
            backend.Synchronize();
        }
    }
}
