using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.CPU;
using ILGPU.Runtime.Cuda;

namespace SmoothCache.Kernels;

/// <summary>Which accelerator to run on: the first CUDA device when present (Auto), or a forced one.</summary>
public enum DeviceKind { Auto, Cuda, Cpu }

/// <summary>
/// Which kernels operators take: Auto picks the GPU-shaped ones (tensor-core GEMMs and attention, warp-
/// per-row LayerNorm, one element per thread) on CUDA and the portable ones on the CPU accelerator;
/// Portable forces the portable ones on CUDA too. On the CPU accelerator, Gpu takes the GPU-shaped
/// kernels but the SIMT SGEMM and fused attention in place of the tensor-core ones, and TensorCores
/// takes exactly what CUDA takes, warp instructions emulated (slow: tiny models only). Forcing is for
/// tests and for narrowing down a device fault.
/// </summary>
public enum KernelSet { Auto, Gpu, TensorCores, Portable }

/// <summary>
/// Owns the ILGPU context, one accelerator and the tensor arena; caches loaded kernels.
/// All tensors of a model live on one backend. Not thread-safe: one stream, used in order.
/// </summary>
public sealed class Backend : IDisposable
{
    private readonly Dictionary<object, Delegate> _kernels = new();

    public Context Context { get; }
    public Accelerator Accelerator { get; }
    public TensorArena Arena { get; }
    public bool IsCuda => Accelerator.AcceleratorType == AcceleratorType.Cuda;
    public string DeviceName => Accelerator.Name;

    /// <summary>
    /// True when operators take their GPU-shaped kernels (see <see cref="KernelSet"/>): on CUDA unless
    /// told otherwise, and on the CPU accelerator when asked for, so that the CUDA code path runs in tests.
    /// </summary>
    public bool UsesGpuKernels { get; }

    /// <summary>True when GEMMs and attention take the tensor-core kernels: with GPU kernels on CUDA, and
    /// on the CPU accelerator under <see cref="KernelSet.TensorCores"/> (emulated).</summary>
    public bool UsesTensorCores { get; }

    private Backend(Context context, Accelerator accelerator, KernelSet kernels)
    {
        Context = context;
        Accelerator = accelerator;
        UsesGpuKernels = kernels is KernelSet.Gpu or KernelSet.TensorCores || (kernels == KernelSet.Auto && IsCuda);
        UsesTensorCores = UsesGpuKernels && (IsCuda || kernels == KernelSet.TensorCores);
        Arena = new TensorArena(this);
    }

    /// <summary>Parses "auto", "cuda" or "cpu" (case-insensitive).</summary>
    public static DeviceKind ParseKind(string text) => text.ToLowerInvariant() switch
    {
        "auto" => DeviceKind.Auto,
        "cuda" or "gpu" => DeviceKind.Cuda,
        "cpu" => DeviceKind.Cpu,
        _ => throw new ArgumentException($"unknown device '{text}': expected auto, cuda or cpu"),
    };

    /// <param name="kernels">Which kernel set operators take (Auto: the one that suits the device, or
    /// the environment's SMOOTHCACHE_KERNELS=gpu|portable, for bisecting a device fault without code).</param>
    public static Backend Create(DeviceKind kind = DeviceKind.Auto, KernelSet kernels = KernelSet.Auto)
    {
        if (kernels == KernelSet.Auto) kernels = KernelSetFromEnvironment();
        // CPUDeviceKind.Nvidia: the default CPU device allows only 16 threads per group.
        var context = Context.Create(b => b.Cuda().CPU(CPUDeviceKind.Nvidia).EnableAlgorithms()
            .Optimize(OptimizationLevel.O2).Profiling());
        try
        {
            var cuda = context.GetCudaDevices();
            Accelerator accelerator = kind switch
            {
                DeviceKind.Cpu => context.GetCPUDevice(0).CreateAccelerator(context),
                DeviceKind.Cuda when cuda.Count == 0 =>
                    throw new InvalidOperationException("--device cuda: no CUDA device found"),
                _ when cuda.Count > 0 => cuda[0].CreateAccelerator(context),
                _ => context.GetCPUDevice(0).CreateAccelerator(context),
            };
            return new Backend(context, accelerator, kernels);
        }
        catch
        {
            context.Dispose();
            throw;
        }
    }

    private static KernelSet KernelSetFromEnvironment() => Environment.GetEnvironmentVariable("SMOOTHCACHE_KERNELS")?.ToLowerInvariant() switch
    {
        null or "" or "auto" => KernelSet.Auto,
        "gpu" => KernelSet.Gpu,
        "tensorcores" => KernelSet.TensorCores,
        "portable" => KernelSet.Portable,
        var other => throw new ArgumentException($"SMOOTHCACHE_KERNELS='{other}': expected auto, gpu, tensorcores or portable"),
    };

    /// <summary>Loads (once per backend) an auto-grouped kernel over a 1D index with one struct argument.
    /// The returned delegate counts its launches in <see cref="LaunchCount"/>.</summary>
    public Action<Index1D, T> Load<T>(Action<Index1D, T> kernel) where T : struct
    {
        if (!_kernels.TryGetValue(kernel.Method, out var loaded))
        {
            var launch = Accelerator.LoadAutoGroupedStreamKernel(kernel);
            string name = KernelName(kernel.Method);
            loaded = new Action<Index1D, T>((n, args) =>
            {
                var start = BeforeLaunch();
                launch(n, args);
                AfterLaunch(name, start);
            });
            _kernels[kernel.Method] = loaded;
        }
        return (Action<Index1D, T>)loaded;
    }

    /// <summary>Loads (once per backend) an explicitly grouped kernel with one struct argument.
    /// The returned delegate counts its launches in <see cref="LaunchCount"/>.</summary>
    public Action<KernelConfig, T> LoadGrouped<T>(Action<T> kernel) where T : struct
    {
        if (!_kernels.TryGetValue(kernel.Method, out var loaded))
        {
            var launch = Accelerator.LoadStreamKernel(kernel);
            string name = KernelName(kernel.Method);
            loaded = new Action<KernelConfig, T>((config, args) =>
            {
                var start = BeforeLaunch();
                launch(config, args);
                AfterLaunch(name, start);
            });
            _kernels[kernel.Method] = loaded;
        }
        return (Action<KernelConfig, T>)loaded;
    }

    /// <summary>
    /// Waits after every launch and names the kernel that failed (set SMOOTHCACHE_SYNC=1). GPU errors
    /// are otherwise reported at a later, unrelated call; this is for finding them, not for speed.
    /// </summary>
    public bool SynchronizeEachLaunch { get; set; } = Environment.GetEnvironmentVariable("SMOOTHCACHE_SYNC") == "1";

    private MemoryBuffer1D<int, Stride1D.Dense>? _probe;

    /// <summary>The profile launches are recorded in, or null (see <see cref="StartProfile"/>).</summary>
    public KernelProfile? Profile { get; internal set; }

    /// <summary>Records every later launch's device time until the returned profile is disposed.</summary>
    public KernelProfile StartProfile()
    {
        if (Profile is not null) throw new InvalidOperationException("a kernel profile is already recording on this backend");
        var profile = new KernelProfile(this);
        if (IsCuda) profile.HoldDevice();
        Profile = profile;
        return profile;
    }

    private ProfilingMarker? BeforeLaunch()
    {
        LaunchCount++;
        return Profile?.Start();
    }

    private void AfterLaunch(string name, ProfilingMarker? start)
    {
        if (start is { } marker) Profile?.Stop(name, marker);
        if (SynchronizeEachLaunch) CheckLaunch(name);
    }

    /// <summary>"Sgemm&lt;GeluTanhEpilogue&gt;", "LayerNormModulateWarp", or for element kernels the operator ("Unpatchify").</summary>
    private static string KernelName(System.Reflection.MethodInfo kernel)
    {
        static string Arguments(Type[] types) => types.Length == 0 ? "" : "<" + string.Join(",", types.Select(Plain)) + ">";
        static string Bare(Type t) => t.IsGenericType ? t.Name[..t.Name.IndexOf('`')] : t.Name;
        static string Plain(Type t) => Bare(t) + Arguments(t.GetGenericArguments());
        var owner = kernel.DeclaringType!;
        if (owner == typeof(ElementLauncher) && kernel.GetGenericArguments() is [var op])
            // An element kernel's Args struct is nested in its operator: name the operator.
            return op.IsNested ? Bare(op.DeclaringType!) + Arguments(op.GetGenericArguments()) : Plain(op);
        return Plain(owner) + Arguments(kernel.GetGenericArguments());
    }

    private void CheckLaunch(string name)
    {
        try
        {
            Accelerator.Synchronize();
            // A device-to-host copy reports a pending fault even where a synchronize might not.
            _probe ??= Accelerator.Allocate1D<int>(1);
            _probe.GetAsArray1D();
        }
        catch (Exception e)
        {
            // Written here too: disposal during unwinding may raise further CUDA errors that hide this one.
            Console.Error.WriteLine($"kernel {name} failed: {e.Message}");
            throw new InvalidOperationException($"kernel {name} failed: {e.Message}", e);
        }
    }

    /// <summary>Kernel launches through <see cref="Load{T}"/> and <see cref="LoadGrouped{T}"/> so far
    /// (one increment per launch: cheap enough to stay on).</summary>
    public long LaunchCount { get; private set; }

    /// <summary>Number of kernels compiled so far (compile time is reported apart from run time).</summary>
    public int LoadedKernelCount => _kernels.Count;

    /// <summary>The kernel methods loaded so far (generic ones instantiated), e.g. to compile them for
    /// another target offline.</summary>
    public IEnumerable<System.Reflection.MethodInfo> LoadedKernels => _kernels.Keys.OfType<System.Reflection.MethodInfo>();

    public void Synchronize() => Accelerator.Synchronize();

    /// <summary>
    /// Copies host data into a device view. ILGPU's copy first waits for the device, so the host cannot
    /// queue work ahead of it: keep uploads out of per-step loops. Counted in <see cref="Uploads"/>.
    /// </summary>
    public void Upload<T>(ArrayView<T> target, T[] data) where T : unmanaged
    {
        Uploads++;
        target.CopyFromCPU(data);
    }

    /// <summary>Host-to-device copies so far (each one a wait for the device).</summary>
    public long Uploads { get; private set; }

    public void Dispose()
    {
        try
        {
            Profile?.Dispose();
            Arena.Dispose();
            _probe?.Dispose();
            Accelerator.Dispose();
        }
        catch (Exception) when (IsCuda)
        {
            // After a device fault CUDA refuses every call, frees included; the fault itself was
            // already thrown to the caller, and this teardown error would only replace it.
        }
        Context.Dispose();
    }
}
