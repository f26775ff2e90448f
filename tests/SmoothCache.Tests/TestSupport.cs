using SmoothCache.Kernels;
using SmoothCache.Model.Checkpoints;

[assembly: Xunit.CollectionBehavior(DisableTestParallelization = true)]

namespace SmoothCache.Tests;

/// <summary>Shared helpers: one CPU backend for the test run, fixture paths, seeded data, error norms.</summary>
public static class TestSupport
{
    private static readonly Lazy<Backend> CpuBackend = new(() => Backend.Create(DeviceKind.Cpu));

    /// <summary>The CPU accelerator, shared by all tests (tests run one at a time).</summary>
    public static Backend Cpu => CpuBackend.Value;

    private static readonly Lazy<Backend> GpuShapedCpuBackend = new(() => Backend.Create(DeviceKind.Cpu, gpuShapedCpu: true));

    /// <summary>The CPU accelerator with the portable kernels, on a device shaped like a GPU (warps of 32, blocks of up to
    /// 1,024 threads): for tests that launch GPU-shaped kernels directly and compare them with the portable ones.</summary>
    public static Backend GpuShapedCpu => GpuShapedCpuBackend.Value;

    private static readonly Lazy<Backend> GpuKernelsBackend = new(() => Backend.Create(DeviceKind.Cpu, KernelSet.Gpu));

    /// <summary>The CPU accelerator running the CUDA path's kernels (all but the tensor-core GEMM); slow, small shapes.</summary>
    public static Backend CpuWithGpuKernels => GpuKernelsBackend.Value;

    public static string Fixture(params string[] parts) =>
        Path.Combine([AppContext.BaseDirectory, "fixtures", .. parts]);

    /// <summary>Repository files copied next to the test binaries (models/, schedules/, data/).</summary>
    public static string RepoFile(params string[] parts) =>
        Path.Combine([AppContext.BaseDirectory, .. parts]);

    public static float[] Random(int seed, long n, float scale = 1f)
    {
        var rng = new System.Random(seed);
        var a = new float[n];
        for (long i = 0; i < n; i++) a[i] = (float)((rng.NextDouble() * 2 - 1) * scale);
        return a;
    }

    /// <summary>Seeded values rounded to fp16 on <paramref name="backend"/>: a Float16 tensor, and the same values widened
    /// into a Float32 one (what a kernel reading float16 must take them for).</summary>
    public static HalfAndWide HalfAndWidened(Backend backend, int seed, params int[] shape)
    {
        using var source = backend.Arena.Upload(Random(seed, shape.Aggregate(1L, (n, d) => n * d)), shape);
        var half = HalfConversion.ToHalf(source);
        return new HalfAndWide(half, backend.Arena.Upload(half.ToArray(), shape));
    }

    public sealed record HalfAndWide(Tensor Half, Tensor Wide) : IDisposable
    {
        public void Dispose()
        {
            Half.Dispose();
            Wide.Dispose();
        }
    }

    /// <summary>||actual - expected||_2 / ||expected||_2.</summary>
    public static double RelativeL2(IReadOnlyList<float> actual, IReadOnlyList<double> expected)
    {
        if (actual.Count != expected.Count) throw new ArgumentException($"length {actual.Count} vs {expected.Count}");
        double num = 0, den = 0;
        for (int i = 0; i < actual.Count; i++)
        {
            double diff = actual[i] - expected[i];
            num += diff * diff;
            den += expected[i] * expected[i];
        }
        return Math.Sqrt(num / den);
    }

    public static double RelativeL2(IReadOnlyList<float> actual, IReadOnlyList<float> expected) =>
        RelativeL2(actual, expected.Select(v => (double)v).ToArray());

    /// <summary>Runs <paramref name="action"/> on a new thread and waits for it; returns what it threw, or null.</summary>
    public static Exception? ThrownOnAnotherThread(Action action)
    {
        var worker = new WorkerThread(action);
        worker.Join(Timeout.Infinite);
        return worker.Thrown;
    }

    /// <summary>An action on a thread of its own, its exception kept for the test (one left unhandled aborts the test run).</summary>
    public sealed class WorkerThread
    {
        private readonly Thread _thread;

        public WorkerThread(Action action)
        {
            _thread = new Thread(() =>
            {
                try { action(); }
                catch (Exception e) { Thrown = e; }
            });
            _thread.Start();
        }

        public Exception? Thrown { get; private set; }

        /// <summary>Whether it ended within the time.</summary>
        public bool Join(int milliseconds) => _thread.Join(milliseconds);

        /// <summary>Waits until the thread blocks (on a lock, a Monitor.Wait, a sleep or a join), or fails after 10 s.</summary>
        public void UntilBlocked() =>
            Assert.True(SpinWait.SpinUntil(() => _thread.ThreadState.HasFlag(ThreadState.WaitSleepJoin), 10_000), "the thread never blocked");
    }

    public static double MaxAbs(IReadOnlyList<float> actual, IReadOnlyList<double> expected) =>
        actual.Select((v, i) => Math.Abs(v - expected[i])).Max();
}

/// <summary>The real file less the tensors a predicate picks.</summary>
public sealed class WeightsWithout(IWeightSource inner, Func<string, bool> removed) : IWeightSource
{
    public string Location => inner.Location;
    public IReadOnlyCollection<string> Names => inner.Names.Where(n => !removed(n)).ToArray();
    public bool Contains(string name) => !removed(name) && inner.Contains(name);
    public TensorEntry Describe(string name) =>
        removed(name) ? throw new MissingTensorException(Location, name) : inner.Describe(name);
    public float[] ReadFloat32(string name, params int[] expectedShape) =>
        removed(name) ? throw new MissingTensorException(Location, name) : inner.ReadFloat32(name, expectedShape);
    public void Dispose() => inner.Dispose();
}
