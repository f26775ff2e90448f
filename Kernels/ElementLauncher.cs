using ILGPU;

namespace SmoothCache.Kernels;

/// <summary>One output element of an elementwise-indexed kernel; the struct carries its views.</summary>
public interface IElementKernel
{
    void Compute(int index);
}

/// <summary>
/// Launches an element kernel over n indices with each GPU thread taking a contiguous chunk of them.
/// With GPU kernels (<see cref="Backend.UsesGpuKernels"/>) a chunk is one element (coalesced, plenty
/// of threads). On the CPU accelerator every simulated thread is an OS thread woken for each launch
/// (<see cref="Backend"/>'s CPU device: ~1.5-3 ms a launch at 64 threads on 2 cores), so there a thread takes
/// a long run of elements and a launch uses <see cref="CpuThreads"/> threads — the kernel shape that runs fast on both.
/// </summary>
public static class ElementLauncher
{
    public struct Range<T> where T : struct, IElementKernel
    {
        public int N, Chunk;
        public T Op;
    }

    public static void Kernel<T>(Index1D thread, Range<T> r) where T : struct, IElementKernel
    {
        int start = thread * r.Chunk;
        int end = start + r.Chunk < r.N ? start + r.Chunk : r.N;
        for (int i = start; i < end; i++) r.Op.Compute(i);
    }

    public static void Launch<T>(Backend backend, int n, T op) where T : struct, IElementKernel
    {
        if (n == 0) return;
        int chunk = backend.UsesGpuKernels ? 1 : Math.Max(1, (n + CpuThreads - 1) / CpuThreads);
        int threads = (n + chunk - 1) / chunk;
        backend.Load<Range<T>>(Kernel<T>)(threads, new Range<T> { Op = op, N = n, Chunk = chunk });
    }

    /// <summary>Simulated threads per launch on the CPU accelerator.</summary>
    public const int CpuThreads = 64;
}
