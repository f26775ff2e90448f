using ILGPU;
using ILGPU.Backends.EntryPoints;
using ILGPU.Runtime;
using ILGPU.Runtime.CPU;
using ILGPU.Runtime.Cuda;

namespace SmoothCache.Kernels;

/// <summary>Which accelerator to run on: the first CUDA device when present (Auto), or a forced one.</summary>
public enum DeviceKind { Auto, Cuda, Cpu }

/// <summary>
/// A device as a user names it: "auto", "cpu", "cuda" (CUDA device 0) or "cuda:N" (device N, numbered as CUDA numbers
/// them, so after CUDA_VISIBLE_DEVICES). A <see cref="DeviceKind"/> converts to one with index 0.
/// </summary>
public readonly record struct DeviceChoice(DeviceKind Kind, int CudaIndex = 0)
{
    public static implicit operator DeviceChoice(DeviceKind kind) => new(kind);

    /// <summary>Parses auto, cpu, cuda or cuda:N (case-insensitive; gpu is cuda); throws ArgumentException on
    /// anything else.</summary>
    public static DeviceChoice Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        string name = text.Trim().ToLowerInvariant();
        int colon = name.IndexOf(':');
        string kind = colon < 0 ? name : name[..colon];
        if (colon < 0)
            return kind switch
            {
                "auto" => new(DeviceKind.Auto),
                "cuda" or "gpu" => new(DeviceKind.Cuda),
                "cpu" => new(DeviceKind.Cpu),
                _ => throw new ArgumentException($"unknown device '{text}': expected auto, cuda, cuda:N (N from 0) or cpu", nameof(text)),
            };
        if (kind is not ("cuda" or "gpu"))
            throw new ArgumentException($"device '{text}': only a CUDA device takes an index (cuda:N)", nameof(text));
        if (!int.TryParse(name[(colon + 1)..], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int index))
            throw new ArgumentException($"device '{text}': expected cuda:N with N a CUDA device number from 0", nameof(text));
        return new(DeviceKind.Cuda, index);
    }

    public override string ToString() => Kind switch
    {
        DeviceKind.Cuda => $"cuda:{CudaIndex}",
        _ => Kind.ToString().ToLowerInvariant(),
    };
}

/// <summary>
/// Which kernels operators take: Auto picks the GPU-shaped ones (tensor-core GEMMs and attention, warp-
/// per-row LayerNorm, one element per thread) on CUDA and the portable ones on the CPU accelerator;
/// Portable forces the portable ones on CUDA too. On the CPU accelerator, Gpu takes the GPU-shaped
/// kernels but the SIMT SGEMM and fused attention in place of the tensor-core ones, and TensorCores
/// takes exactly what CUDA takes, warp instructions emulated (slow: tiny models only). Wgmma is TensorCores
/// with the fp16 GEMMs on Hopper's warpgroup instructions (<see cref="Gpu.LinearWgmma"/>): on CUDA only
/// on a compute-capability 9.0 GPU, elsewhere emulated; WgmmaTma the same with their tiles loaded by TMA
/// (<see cref="Gpu.LinearWgmmaTma"/>), which Auto takes on a compute-capability 9.0 GPU (H100, H200: 1.2-1.7x the
/// mma.sync GEMM at DiT-XL/2's shapes, BENCHMARKS.md). Forcing is for tests, for timing one kernel against another
/// (TensorCores is the mma.sync GEMM on Hopper too) and for narrowing down a device fault.
/// </summary>
public enum KernelSet { Auto, Gpu, TensorCores, Wgmma, WgmmaTma, Portable }

/// <summary>
/// Owns the ILGPU context, one accelerator and the tensor arena; caches loaded kernels.
/// All tensors of a model live on one backend. Not thread-safe: one stream, used in order, by one thread at a time
/// (any thread; <see cref="Claim"/> refuses a second while one works, and the pipeline's calls claim it).
/// </summary>
public sealed class Backend : IDisposable
{
    private readonly Dictionary<object, Delegate> _kernels = new();
    private readonly TensorArena _arena;
    private LaunchRecording? _recording;
    private readonly object _claimLock = new();
    private int _claimingThread, _claims;
    private bool _disposed;

    /// <summary>
    /// Claims the backend for the calling thread until the result is disposed, and makes its accelerator the thread's
    /// current one (a CUDA context is current per thread). Claims nest on one thread; while a thread holds one, a claim
    /// from another throws <see cref="InvalidOperationException"/> naming <paramref name="work"/>, where the two would
    /// otherwise interleave their launches and buffers on the one stream. DiTPipeline's Generate and Record and a
    /// recorded generation's Run claim it; a program of its own operators on several threads claims it around each
    /// piece of work (or serialises them itself).
    /// </summary>
    public IDisposable Claim(string work) => TakeClaim(work, wait: false, nullIfDisposed: false)!;

    /// <summary>As <see cref="Claim"/>, but waits while another thread holds the backend instead of throwing. Loading a
    /// model and disposing one take it this way: they must not touch the arena while another thread's kernels run, and
    /// a generation ends (or, once its pipeline or backend is being disposed, stops at its next step) soon enough. It
    /// waits without bound: never call it (or a Dispose or Load) on a thread that the working thread waits for, e.g. the
    /// UI thread an onStep callback marshals to.</summary>
    public IDisposable ClaimWhenFree(string work) => TakeClaim(work, wait: true, nullIfDisposed: false)!;

    /// <summary><see cref="ClaimWhenFree"/>, or null once the backend is disposed (everything on it freed): for the Dispose
    /// methods of what holds tensors on it.</summary>
    public IDisposable? ClaimUnlessDisposed(string work) => TakeClaim(work, wait: true, nullIfDisposed: true);

    private BackendClaim? TakeClaim(string work, bool wait, bool nullIfDisposed)
    {
        int thread = Environment.CurrentManagedThreadId;
        lock (_claimLock)
        {
            // A waiter also outlasts a disposal in progress (Dispose holds a claim while it frees), then finds it disposed.
            while (wait && HeldByAnother(thread)) Monitor.Wait(_claimLock);
            if (_disposed && nullIfDisposed) return null;
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (HeldByAnother(thread))
                throw new InvalidOperationException(
                    $"{work}: the backend on {DeviceName} is busy with work from another thread; a backend runs one piece of " +
                    "work at a time: serialise the calls (e.g. with a SemaphoreSlim) or give each thread its own backend");
            _claimingThread = thread;
            _claims++;
        }
        var claim = new BackendClaim(this);
        try
        {
            Accelerator.Bind();
        }
        catch
        {
            claim.Dispose(); // left counted, it would refuse every other thread for good
            throw;
        }
        return claim;
    }

    private bool HeldByAnother(int thread) => _claims > 0 && _claimingThread != thread;

    private sealed class BackendClaim(Backend backend) : IDisposable
    {
        private bool _released;

        public void Dispose()
        {
            if (_released) return;
            _released = true;
            lock (backend._claimLock)
                if (--backend._claims == 0) Monitor.PulseAll(backend._claimLock);
        }
    }

    /// <summary>Whether <see cref="Dispose"/> has been called (work on another thread checks it between steps and stops).</summary>
    public bool IsDisposed => Volatile.Read(ref _disposed);

    /// <summary>The ILGPU context the accelerator lives in (for kernels of one's own; the library's operators need none of it).</summary>
    public Context Context { get; }
    /// <summary>The ILGPU accelerator every launch goes to (CUDA or CPU); for kernels of one's own.</summary>
    public Accelerator Accelerator { get; }

    /// <summary>Where tensors are rented: the backend's arena, or while <see cref="Record"/> runs its body,
    /// the recording's own (a recorded launch keeps the addresses it was recorded with).</summary>
    public TensorArena Arena => _recording?.Arena ?? _arena;

    /// <summary>
    /// The stream every launch and device-side clear goes to: on the CPU accelerator its default stream;
    /// on CUDA a stream of our own, because CUDA cannot record launches on the legacy default stream into
    /// a graph. It is a blocking stream, so ILGPU's copies on the default stream stay ordered with it.
    /// </summary>
    public AcceleratorStream Stream { get; }
    public bool IsCuda => Accelerator.AcceleratorType == AcceleratorType.Cuda;
    /// <summary>The device this backend runs on, resolved: cuda:N or cpu (never auto).</summary>
    public DeviceChoice Device { get; }
    /// <summary>The accelerator's name as ILGPU reports it (e.g. "NVIDIA H200", or the CPU accelerator's).</summary>
    public string DeviceName => Accelerator.Name;

    /// <summary>
    /// True when operators take their GPU-shaped kernels (see <see cref="KernelSet"/>): on CUDA unless
    /// told otherwise, and on the CPU accelerator when asked for, so that the CUDA code path runs in tests.
    /// </summary>
    public bool UsesGpuKernels { get; }

    /// <summary>True when GEMMs and attention take the tensor-core kernels: with GPU kernels on CUDA, and
    /// on the CPU accelerator under <see cref="KernelSet.TensorCores"/> (emulated).</summary>
    public bool UsesTensorCores { get; }

    /// <summary>True when fp16 GEMMs take <see cref="Gpu.LinearWgmma"/> or <see cref="Gpu.LinearWgmmaTma"/>
    /// (<see cref="KernelSet.Wgmma"/>, <see cref="KernelSet.WgmmaTma"/>).</summary>
    public bool UsesWgmma { get; }

    /// <summary>True when fp16 GEMMs take <see cref="Gpu.LinearWgmmaTma"/> (<see cref="KernelSet.WgmmaTma"/>).</summary>
    public bool UsesTma { get; }

    /// <summary>The TMA GEMM variant every fp16 GEMM takes, from SMOOTHCACHE_TMA_GEMM (e.g. "256x128-deep"); null
    /// (unset) leaves the choice to the tuning table, else <see cref="Gpu.LinearWgmmaTma.Variant.Default"/>. For timing whole forwards on each.</summary>
    public Gpu.LinearWgmmaTma.Variant? TmaGemm { get; }

    /// <summary>The tuned fp16 GEMM launches <see cref="Linear"/> takes (per shape: TMA GEMM variant and split), or null
    /// for the built-in choices. When the backend is created: the table SMOOTHCACHE_GEMM_TUNING names (a JSON file
    /// <c>smoothcache tune</c> wrote; "none" for no table), else the table for this device in the program's
    /// <c>tuning</c> folder or built in (<see cref="GemmTuning.ForDevice"/>). Applies only to the kernel it was measured with.</summary>
    public GemmTuning? GemmTuning { get; set; }

    /// <summary>Where set, <see cref="Linear"/> adds every fp16 tensor-core GEMM it launches, with its variant, split
    /// (times NaN), epilogue and output type: the GEMMs a model runs, for <c>smoothcache tune</c>.</summary>
    internal List<GemmLaunch>? GemmLog { get; set; }

    /// <summary>The GEMM tuning table SMOOTHCACHE_GEMM_TUNING names ("none": no table), or, when it is unset, the table
    /// for <paramref name="deviceName"/> in <paramref name="folder"/> or built in (null when there is none).</summary>
    internal static GemmTuning? GemmTuningFromEnvironment(string deviceName, string folder)
    {
        string? path = Environment.GetEnvironmentVariable("SMOOTHCACHE_GEMM_TUNING");
        if (string.IsNullOrWhiteSpace(path)) return GemmTuning.ForDevice(deviceName, folder);
        if (path.Trim().Equals("none", StringComparison.OrdinalIgnoreCase)) return null;
        try
        {
            return GemmTuning.Load(path.Trim());
        }
        catch (Exception e) when (e is InvalidDataException or FileNotFoundException)
        {
            throw new ArgumentException($"SMOOTHCACHE_GEMM_TUNING: {e.Message}", e);
        }
    }

    /// <summary>True on a GPU with programmatic dependent launch (CUDA, compute capability 9.0 and newer): there every
    /// kernel is loaded to wait for the grids before it (a no-op when launched directly), so that recordings may
    /// launch each kernel while the one before it runs (<see cref="DependentLaunches"/>).</summary>
    public bool SupportsDependentLaunches { get; }

    /// <summary>Whether recordings (<see cref="Record"/>) launch each kernel while the one before it is still running
    /// (programmatic dependent launch: its blocks wait on the device instead of being launched after it, which
    /// removes the gap between two kernels of a CUDA graph). From SMOOTHCACHE_PDL (on or off) when the backend is
    /// created, off when unset; without <see cref="SupportsDependentLaunches"/> recordings launch as before either way.
    /// The results are the same: every kernel waits for the one before it to finish before it reads or writes memory.</summary>
    public bool DependentLaunches { get; set; }

    /// <summary>How the fp16 tensor-core attention stages its key tiles: from SMOOTHCACHE_ATTENTION (registers or async)
    /// when the backend is created, async when unset. The results are the same.</summary>
    public Gpu.FlashAttentionTensorCore.Staging AttentionStaging { get; set; } =
        Gpu.FlashAttentionTensorCore.ParseStaging(Environment.GetEnvironmentVariable("SMOOTHCACHE_ATTENTION"));

    /// <summary>Whether fp16 GEMMs of at most 16 rows (the conditioning GEMMs) take <see cref="Gpu.LinearSkinnyTensorCore"/>
    /// instead of the tensor-core GEMM with 128-row tiles: from SMOOTHCACHE_SKINNY (tensorcores, the default, or tiles)
    /// when the backend is created. The same products, summed in another order (H200, DiT-XL/2's stacked adaLN GEMM:
    /// 0.208 ms against the TMA GEMM's 0.240 at 2 rows, 0.219 against 0.223 at 16).</summary>
    public bool SkinnyOnTensorCores { get; set; } = ParseSkinny(Environment.GetEnvironmentVariable("SMOOTHCACHE_SKINNY"));

    /// <summary>Parses SMOOTHCACHE_SKINNY's value: tensorcores or tiles (null or empty: tensorcores).</summary>
    public static bool ParseSkinny(string? text) => text?.Trim().ToLowerInvariant() switch
    {
        "tiles" => false,
        null or "" or "tensorcores" => true,
        _ => throw new ArgumentException($"SMOOTHCACHE_SKINNY='{text}': expected tensorcores or tiles"),
    };

    /// <summary>Columns of W per warp of <see cref="Gpu.LinearSkinnyTensorCore"/> (8, 16 or 32; 128, 64 or 32 deep a step,
    /// <see cref="Gpu.LinearSkinnyTensorCore.IWarpShape"/>): from SMOOTHCACHE_SKINNY_COLUMNS when the backend is created,
    /// 32 when unset (the shape timed on an H200). The same products, summed in the same order per output.</summary>
    public int SkinnyColumns { get; set; } = ParseSkinnyColumns(Environment.GetEnvironmentVariable("SMOOTHCACHE_SKINNY_COLUMNS"));

    /// <summary>Parses SMOOTHCACHE_SKINNY_COLUMNS's value: 8, 16 or 32 (null or empty: 32).</summary>
    public static int ParseSkinnyColumns(string? text) => text?.Trim() switch
    {
        null or "" or "32" => 32,
        "16" => 16,
        "8" => 8,
        _ => throw new ArgumentException($"SMOOTHCACHE_SKINNY_COLUMNS='{text}': expected 8, 16 or 32"),
    };

    /// <summary>Whether kernels marked <see cref="PromoteLocalScalarsAttribute"/> (the tensor-core GEMMs, the asynchronous
    /// attention) are loaded with their asm operands' local variables turned into registers
    /// (<see cref="PtxTarget.PromoteLocalScalars"/>): from SMOOTHCACHE_PROMOTE_LOCALS (on or off; on when unset), for
    /// telling a fault of that edit from one of the kernel. Read when a kernel is first loaded.</summary>
    public bool PromoteLocalScalars { get; set; } =
        ParseOnOff("SMOOTHCACHE_PROMOTE_LOCALS", Environment.GetEnvironmentVariable("SMOOTHCACHE_PROMOTE_LOCALS"), whenUnset: true);

    /// <summary>The kernel choices that differ from the defaults (set by the environment or in code), for a benchmark's
    /// record; null when there are none.</summary>
    public string? KernelOptions
    {
        get
        {
            var options = new List<string>();
            if (TmaGemm is { } variant) options.Add($"every fp16 GEMM on {variant.Name}");
            if (AttentionStaging != Gpu.FlashAttentionTensorCore.Staging.Async) options.Add($"attention staging {AttentionStaging.ToString().ToLowerInvariant()}");
            if (!SkinnyOnTensorCores) options.Add("few-row fp16 GEMMs on 128-row tiles");
            if (SkinnyColumns != 32) options.Add($"few-row fp16 GEMM {SkinnyColumns} columns a warp");
            if (!PromoteLocalScalars) options.Add("asm-operand locals left in local memory");
            if (DependentLaunches) options.Add("recordings with dependent launches");
            return options.Count == 0 ? null : string.Join(", ", options);
        }
    }

    /// <summary>Parses SMOOTHCACHE_PDL's value: on or off (null or empty: off).</summary>
    public static bool ParseDependentLaunches(string? text) => ParseOnOff("SMOOTHCACHE_PDL", text, whenUnset: false);

    /// <summary>An on/off switch's value (null or empty: <paramref name="whenUnset"/>); throws naming
    /// <paramref name="variable"/> for anything else.</summary>
    private static bool ParseOnOff(string variable, string? text, bool whenUnset) => text?.Trim().ToLowerInvariant() switch
    {
        null or "" => whenUnset,
        "on" => true,
        "off" => false,
        _ => throw new ArgumentException($"{variable}='{text}': expected on or off"),
    };

    private Backend(Context context, Accelerator accelerator, DeviceChoice device, KernelSet kernels, Gpu.LinearWgmmaTma.Variant? tmaGemm,
        bool dependentLaunches)
    {
        Device = device;
        DependentLaunches = dependentLaunches;
        SupportsDependentLaunches = accelerator is CudaAccelerator { Architecture.Major: >= 9 };
        TmaGemm = tmaGemm;
        Context = context;
        Accelerator = accelerator;
        if (kernels == KernelSet.Auto && accelerator is CudaAccelerator { Architecture: { Major: 9, Minor: 0 } }) kernels = KernelSet.WgmmaTma;
        UsesGpuKernels = kernels is KernelSet.Gpu or KernelSet.TensorCores or KernelSet.Wgmma or KernelSet.WgmmaTma || (kernels == KernelSet.Auto && IsCuda);
        UsesTensorCores = UsesGpuKernels && (IsCuda || kernels is KernelSet.TensorCores or KernelSet.Wgmma or KernelSet.WgmmaTma);
        UsesWgmma = kernels is KernelSet.Wgmma or KernelSet.WgmmaTma;
        UsesTma = kernels == KernelSet.WgmmaTma;
        if (UsesWgmma && accelerator is CudaAccelerator { Architecture: var arch } && (arch.Major, arch.Minor) != (9, 0))
            throw new ArgumentException($"kernel set wgmma needs a compute-capability 9.0 GPU (H100, H200); {accelerator.Name} is {arch.Major}.{arch.Minor}");
        Stream = accelerator is CudaAccelerator cuda ? cuda.CreateStream(StreamFlags.CU_STREAM_DEFAULT) : accelerator.DefaultStream;
        _arena = new TensorArena(this);
    }

    /// <summary>
    /// Float math in kernels: on CUDA a float division, reciprocal, square root, exp or tanh is PTX's .approx
    /// form (within 2 ulp) instead of the IEEE one, whose slow-path check and call per division were most of
    /// the GELU epilogue (128 per tensor-core GEMM thread, SASS). Double math stays double (not
    /// Fast32BitOnly, which demotes it to float), but its divisions and library functions may be
    /// approximated too: a kernel that needs them exact computes them itself (<see cref="TimestepEmbedding"/>).
    /// The CPU accelerator runs .NET's own arithmetic either way.
    /// </summary>
    public const MathMode KernelMath = MathMode.Fast;

    /// <param name="device">The accelerator: a <see cref="DeviceKind"/> (Auto: CUDA device 0 if there is one, else the
    /// CPU), or CUDA device N (<see cref="DeviceChoice"/>).</param>
    /// <param name="kernels">Which kernel set operators take (Auto: the one that suits the device, or
    /// the environment's SMOOTHCACHE_KERNELS=auto|gpu|tensorcores|wgmma|wgmma-tma|portable, for bisecting a device fault without code).</param>
    /// <param name="gpuShapedCpu">On the CPU accelerator, simulate a GPU-shaped device (<see cref="CpuDevice"/>) even
    /// for the portable kernels, so that GPU-shaped kernels can be launched on the backend directly, as tests do.</param>
    public static Backend Create(DeviceChoice device = default, KernelSet kernels = KernelSet.Auto, bool gpuShapedCpu = false)
    {
        if (kernels == KernelSet.Auto) kernels = KernelSetFromEnvironment();
        var tmaGemm = TmaGemmFromEnvironment();
        bool dependentLaunches = ParseDependentLaunches(Environment.GetEnvironmentVariable("SMOOTHCACHE_PDL"));
        var context = Context.Create(b => CpuDevice(b.Cuda(), gpuShaped: gpuShapedCpu || kernels is not (KernelSet.Auto or KernelSet.Portable)).EnableAlgorithms()
            .Optimize(OptimizationLevel.O2).Math(KernelMath).Profiling());
        try
        {
            var devices = context.GetCudaDevices();
            var cuda = new CudaDevice[devices.Count];
            for (int i = 0; i < cuda.Length; i++) cuda[i] = devices[i];
            if (device.Kind == DeviceKind.Cuda && cuda.Length == 0)
                throw new DeviceUnavailableException(
                    $"{device}: no CUDA device found (it needs an NVIDIA GPU and its driver); take the CPU, or auto to use a GPU where there is one", 0);
            if (device.Kind == DeviceKind.Cuda && (device.CudaIndex < 0 || device.CudaIndex >= cuda.Length))
                throw new DeviceUnavailableException(
                    $"{device}: there is no CUDA device {device.CudaIndex}; this machine has {cuda.Length}: " +
                    string.Join(", ", cuda.Select((d, i) => $"cuda:{i} {d.Name}")), cuda.Length);
            var resolved = device.Kind == DeviceKind.Cpu || cuda.Length == 0
                ? new DeviceChoice(DeviceKind.Cpu)
                : new DeviceChoice(DeviceKind.Cuda, device.Kind == DeviceKind.Cuda ? device.CudaIndex : 0);
            Accelerator accelerator = resolved.Kind == DeviceKind.Cuda
                ? cuda[resolved.CudaIndex].CreateAccelerator(context)
                : context.GetCPUDevice(0).CreateAccelerator(context);
            var backend = new Backend(context, accelerator, resolved, kernels, tmaGemm, dependentLaunches);
            try
            {
                backend.GemmTuning = GemmTuningFromEnvironment(accelerator.Name, Path.Combine(AppContext.BaseDirectory, "tuning"));
            }
            catch
            {
                backend.Dispose();
                throw;
            }
            return backend;
        }
        catch
        {
            context.Dispose();
            throw;
        }
    }

    /// <summary>
    /// The CPU accelerator's simulated device. It runs every simulated thread of a group on an OS thread of its own, and
    /// each launch wakes every thread it has started and takes them through two barriers: on a few cores that, not the
    /// kernel, is most of a small launch (~1.5-3 ms a launch on 2 cores at 64 threads, ~0.1 ms at 2 threads on each of 2
    /// multiprocessors; the same time either way for millions of elements). The portable kernels need no group larger
    /// than 2 (they are element kernels, auto-grouped), so they get 2 threads on a multiprocessor per core; the
    /// GPU-shaped kernels the tests run on the CPU need warps of 32 and blocks of up to 1,024 threads
    /// (<see cref="CPUDeviceKind.Nvidia"/>; the default CPU device allows only 16 threads per group).
    /// </summary>
    private static Context.Builder CpuDevice(Context.Builder builder, bool gpuShaped) =>
        gpuShaped
            ? builder.CPU(CPUDeviceKind.Nvidia)
            : builder.CPU(new CPUDevice(numThreadsPerWarp: 2, numWarpsPerMultiprocessor: 1, numMultiprocessors: Environment.ProcessorCount));

    /// <summary>The kernel set SMOOTHCACHE_KERNELS names (Auto when unset); throws on an unknown name.</summary>
    internal static KernelSet KernelSetFromEnvironment() => Environment.GetEnvironmentVariable("SMOOTHCACHE_KERNELS")?.ToLowerInvariant() switch
    {
        null or "" or "auto" => KernelSet.Auto,
        "gpu" => KernelSet.Gpu,
        "tensorcores" => KernelSet.TensorCores,
        "wgmma" => KernelSet.Wgmma,
        "wgmma-tma" => KernelSet.WgmmaTma,
        "portable" => KernelSet.Portable,
        var other => throw new ArgumentException($"SMOOTHCACHE_KERNELS='{other}': expected auto, gpu, tensorcores, wgmma, wgmma-tma or portable"),
    };

    /// <summary>The TMA GEMM variant SMOOTHCACHE_TMA_GEMM names (null when unset); throws on an unknown name.</summary>
    internal static Gpu.LinearWgmmaTma.Variant? TmaGemmFromEnvironment()
    {
        string? name = Environment.GetEnvironmentVariable("SMOOTHCACHE_TMA_GEMM");
        if (string.IsNullOrWhiteSpace(name)) return null;
        try
        {
            return Gpu.LinearWgmmaTma.Variant.Parse(name);
        }
        catch (ArgumentException e)
        {
            throw new ArgumentException($"SMOOTHCACHE_TMA_GEMM: {e.Message}", e);
        }
    }

    /// <summary>Loads (once per backend) an auto-grouped kernel over a 1D index with one struct argument.
    /// The returned delegate launches on <see cref="Stream"/> and counts its launches in <see cref="LaunchCount"/>.</summary>
    public Action<Index1D, T> Load<T>(Action<Index1D, T> kernel) where T : struct
    {
        if (!_kernels.TryGetValue(kernel.Method, out var loaded))
        {
            string name = KernelName(kernel.Method);
            RefuseFirstUseWhileRecording(name);
            var launch = Timed(() => Kept(LoadCompiled(EntryPointDescription.FromImplicitlyGroupedKernel(kernel.Method), autoGrouped: true))
                .CreateLauncherDelegate<Action<AcceleratorStream, Index1D, T>>());
            loaded = Launcher(name, launch);
            _kernels[kernel.Method] = loaded;
        }
        return (Action<Index1D, T>)loaded;
    }

    /// <summary>Loads (once per backend) an explicitly grouped kernel with one struct argument.
    /// The returned delegate launches on <see cref="Stream"/> and counts its launches in <see cref="LaunchCount"/>.</summary>
    /// <param name="dynamicSharedBytes">the most dynamic shared memory its launches ask for: on CUDA a kernel
    /// must be allowed more than 48 KB before its first launch</param>
    /// <param name="ptxTarget">on CUDA, the PTX target to assemble for in place of ILGPU's (see <see cref="PtxTarget"/>)</param>
    /// <param name="clusterRows">on CUDA with a PTX target, blocks per cluster along the grid's y (launches then come in
    /// clusters of that many; the grid's y must be a multiple of it)</param>
    public Action<KernelConfig, T> LoadGrouped<T>(Action<T> kernel, int dynamicSharedBytes = 0, string? ptxTarget = null, int clusterRows = 1) where T : struct
    {
        if (!_kernels.TryGetValue(kernel.Method, out var loaded))
        {
            string name = KernelName(kernel.Method);
            if (!IsCuda && Accelerator.WarpSize < 32)
                throw new InvalidOperationException(
                    $"{name} is a GPU-shaped kernel: on the CPU accelerator it needs a backend created for such kernels (a GPU kernel set, " +
                    $"or gpuShapedCpu: true); this one runs the portable kernels in groups of {Accelerator.MaxNumThreadsPerGroup} threads");
            RefuseFirstUseWhileRecording(name);
            var launch = Timed(() => Kept(LoadExplicitlyGrouped(kernel.Method, dynamicSharedBytes, ptxTarget, clusterRows: clusterRows))
                .CreateLauncherDelegate<Action<AcceleratorStream, KernelConfig, T>>());
            loaded = Launcher(name, launch);
            _kernels[kernel.Method] = loaded;
        }
        return (Action<KernelConfig, T>)loaded;
    }

    /// <summary>A loaded kernel's launches: added to the recording while one is made, else launched on <see cref="Stream"/>,
    /// counted and (when profiling) timed under <paramref name="name"/>.</summary>
    private Action<TConfig, T> Launcher<TConfig, T>(string name, Action<AcceleratorStream, TConfig, T> launch) where T : struct =>
        (config, args) =>
        {
            if (_recording is { } recording)
            {
                recording.Add(() => launch(Stream, config, args));
                return;
            }
            var start = BeforeLaunch();
            launch(Stream, config, args);
            AfterLaunch(name, start);
        };

    /// <summary>An explicitly grouped kernel loaded as <see cref="LoadGrouped{T}"/> loads it; on CUDA a kernel with a
    /// PTX target or more than 48 KB of dynamic shared memory is allowed <paramref name="dynamicSharedBytes"/>.</summary>
    internal Kernel LoadExplicitlyGrouped(System.Reflection.MethodInfo method, int dynamicSharedBytes, string? ptxTarget, bool preferShared = true, int clusterRows = 1)
    {
        var loaded = LoadCompiled(EntryPointDescription.FromExplicitlyGroupedKernel(method), autoGrouped: false, ptxTarget, clusterRows);
        if (loaded is CudaKernel cuda && dynamicSharedBytes > 0 && (ptxTarget is not null || dynamicSharedBytes > 48 * 1024))
            CudaDriver.AllowDynamicSharedMemory(cuda, dynamicSharedBytes, preferShared);
        return loaded;
    }

    /// <summary>ILGPU's own steps, compile then load, with the PTX edited between them on CUDA: retargeted to
    /// <paramref name="ptxTarget"/> where given, and on a GPU with programmatic dependent launch (compute capability 9.0
    /// and newer) every kernel made to wait for the grids before it (<see cref="DependentLaunches"/>).</summary>
    private Kernel LoadCompiled(EntryPointDescription entry, bool autoGrouped, string? ptxTarget = null, int clusterRows = 1)
    {
        var compiled = Accelerator.CompileKernel(entry);
        if (compiled is ILGPU.Backends.PTX.PTXCompiledKernel ptx)
        {
            if (PtxTarget.HasEdits(entry.MethodSource))
                PtxTarget.Edit(ptx, text => PtxTarget.ApplyEdits(entry.MethodSource, text, PromoteLocalScalars), $"edit {entry.MethodSource.Name}'s PTX");
            if (ptxTarget is not null || SupportsDependentLaunches)
                PtxTarget.Retarget(ptx, ptxTarget ?? PtxTarget.DependentLaunch, clusterRows, waitForPrerequisiteGrids: SupportsDependentLaunches);
        }
        return autoGrouped ? Accelerator.LoadAutoGroupedKernel(compiled) : Accelerator.LoadKernel(compiled);
    }

    // The CUfunctions of the kernels this backend keeps loaded that wait for the grids before them (what a recording
    // may launch early). A kernel loaded for a moment (ResidentBlocks) is left out: once unloaded, its handle may be
    // another function's.
    private readonly HashSet<IntPtr> _waitingFunctions = new();

    /// <summary>A kernel loaded by <see cref="LoadCompiled"/> for as long as the backend lives.</summary>
    private Kernel Kept(Kernel loaded)
    {
        if (loaded is CudaKernel cuda && SupportsDependentLaunches) _waitingFunctions.Add(cuda.FunctionPtr);
        return loaded;
    }

    private readonly Dictionary<(long Address, long Rows, long Cols, int BoxRows, int BoxCols, int Swizzle), MemoryBuffer1D<ulong, Stride1D.Dense>> _tensorMaps = new();

    /// <summary>CUDA only: the device address of a TMA tensor map (<see cref="CudaDriver.EncodeTensorMap"/>) of the
    /// row-major fp16 matrix <paramref name="view"/> (<paramref name="rows"/> x <paramref name="cols"/>), read in boxes
    /// of <paramref name="boxRows"/> x <paramref name="boxCols"/>. Encoded on the host and written to global memory by a
    /// launch on <see cref="Stream"/> (recorded like any), once per buffer, shape and box; kept until the backend goes.</summary>
    internal long TensorMap(ArrayView<ILGPU.Half> view, long rows, long cols, int boxRows, int boxCols, int swizzle)
    {
        long address = Gpu.TensorCore.DeviceAddress(view);
        var key = (address, rows, cols, boxRows, boxCols, swizzle);
        if (!_tensorMaps.TryGetValue(key, out var buffer))
        {
            var map = Gpu.TensorMapArg.FromWords(CudaDriver.EncodeTensorMap(address, rows, cols, boxRows, boxCols, swizzle));
            // cuMemAlloc aligns to 256 bytes; a tensor map needs 64.
            buffer = Accelerator.Allocate1D<ulong>(Gpu.TensorMapArg.Words);
            Load<Gpu.TensorMapArg.StoreArgs>(Gpu.TensorMapArg.Store)(1, new() { Map = map, Target = buffer.View });
            _tensorMaps[key] = buffer;
        }
        return Gpu.TensorCore.DeviceAddress(buffer.View.AsContiguous());
    }

    /// <summary>CUDA only: how many blocks of <paramref name="threads"/> threads of an explicitly grouped kernel
    /// (loaded as <see cref="LoadGrouped{T}"/> would) fit on one multiprocessor at once, by the driver's
    /// occupancy calculator: registers and shared memory. For benchmarks (it compiles the kernel anew).</summary>
    internal int ResidentBlocks<T>(Action<T> kernel, int threads, int dynamicSharedBytes = 0, string? ptxTarget = null) where T : struct
    {
        if (!IsCuda) throw new InvalidOperationException($"ResidentBlocks needs a CUDA device; backend is {DeviceName}");
        using var loaded = LoadExplicitlyGrouped(kernel.Method, dynamicSharedBytes, ptxTarget);
        return Accelerator.EstimateMaxActiveGroupsPerMultiprocessor(loaded, threads, dynamicSharedBytes);
    }

    private readonly List<MemoryBuffer1D<int, Stride1D.Dense>> _splitArrivals = new();

    /// <summary>Split-K's arrival counters (<see cref="Gpu.SplitK.Target"/>) for <paramref name="blocks"/> output
    /// blocks: zero between launches (each launch leaves them so), one set for every GEMM on <see cref="Stream"/>.
    /// A larger set than any before is allocated and cleared; the smaller ones stay allocated until the backend
    /// goes, since recordings may hold them.</summary>
    internal ArrayView<int> SplitArrivals(int blocks)
    {
        if (_splitArrivals.Count == 0 || _splitArrivals[^1].Length < blocks)
        {
            RefuseWhileRecording($"a first split-K GEMM of {blocks} output blocks");
            var counters = Accelerator.Allocate1D<int>(Math.Max(blocks, 1024));
            Clear<int>(counters.View);
            _splitArrivals.Add(counters);
        }
        return _splitArrivals[^1].View.SubView(0, blocks);
    }

    /// <summary>Sets a view to zero on <see cref="Stream"/> (recorded like a launch).</summary>
    public void Clear<T>(ArrayView<T> view) where T : unmanaged
    {
        if (view.Length == 0) return;
        if (_recording is { } recording) recording.Add(() => view.MemSetToZero(Stream));
        else view.MemSetToZero(Stream);
    }

    /// <summary>
    /// Records the launches <paramref name="body"/> makes, without running them, for
    /// <see cref="LaunchRecording.Replay"/> to run again as a whole: on CUDA a graph (one launch for the lot,
    /// the cure for launch-bound small batches), elsewhere the launches in order. The body's tensors come from
    /// the recording's own arena, and the tensor it returns is <see cref="LaunchRecording.Output"/>.
    /// Launch arguments are recorded by value: a replay reads the inputs' current contents (update them with
    /// <see cref="Tensor.CopyFrom"/> between replays) but every scalar, timestep and address as recorded.
    /// Run the work once before recording it: a kernel used for the first time, a host-device copy or a
    /// wait inside the body throw (a CUDA capture can do none of them).
    /// </summary>
    public LaunchRecording Record(Func<Tensor> body)
    {
        if (_recording is not null) throw new InvalidOperationException("already recording: recordings do not nest");
        if (Profile is not null) throw new InvalidOperationException("cannot record while a kernel profile is attached");
        var recording = new LaunchRecording(this);
        try
        {
            _recording = recording;
            if (IsCuda) CudaGraph.BeginCapture(Stream);
            Tensor output;
            try
            {
                output = body();
            }
            catch
            {
                if (IsCuda) CudaGraph.AbandonCapture(Stream);
                throw;
            }
            recording.Finish(output, IsCuda
                ? CudaGraph.EndCapture(Stream, DependentLaunches && SupportsDependentLaunches ? _waitingFunctions.Contains : null)
                : null);
            return recording;
        }
        catch
        {
            recording.Dispose();
            throw;
        }
        finally
        {
            _recording = null;
        }
    }

    /// <summary>True while <see cref="Record"/> runs its body.</summary>
    public bool IsRecording => _recording is not null;

    private void RefuseFirstUseWhileRecording(string kernel)
    {
        if (_recording is not null)
            throw new InvalidOperationException(
                $"kernel {kernel} is used for the first time inside a recording: run the work once before recording it " +
                "(kernels compile on first use, which a CUDA graph capture cannot include)");
    }

    private void RefuseWhileRecording(string what)
    {
        if (_recording is not null)
            throw new InvalidOperationException(
                $"{what} inside a recording: a recording holds device work only (upload inputs before recording, " +
                "read results after a replay)");
    }

    /// <summary>
    /// Waits after every launch and names the kernel that failed (set SMOOTHCACHE_SYNC=1). GPU errors
    /// are otherwise reported at a later, unrelated call; this is for finding them, not for speed.
    /// </summary>
    public bool SynchronizeEachLaunch { get; set; } = Environment.GetEnvironmentVariable("SMOOTHCACHE_SYNC") == "1";

    private MemoryBuffer1D<int, Stride1D.Dense>? _probe;

    /// <summary>The profile launches are recorded in, or null (see <see cref="StartProfile()"/>).</summary>
    public KernelProfile? Profile { get; internal set; }

    private Action<AcceleratorStream, Index1D, ArrayView<float>, int>? _spin;

    /// <summary>The profile's spin kernel (<see cref="KernelProfile.HoldDevice"/>), loaded once: ILGPU's own cache holds
    /// kernels weakly, and a tuner starts a profile per candidate.</summary>
    internal Action<AcceleratorStream, Index1D, ArrayView<float>, int> SpinKernel =>
        _spin ??= Accelerator.LoadAutoGroupedKernel<Index1D, ArrayView<float>, int>(KernelProfile.Spin);

    /// <summary>Records every later launch's device time until the returned profile is disposed.</summary>
    public KernelProfile StartProfile() => StartProfile(KernelProfile.HoldIterations);

    /// <summary><see cref="StartProfile()"/> with the device held for <paramref name="holdIterations"/> steps of the spin
    /// (<see cref="KernelProfile.HoldDevice"/>): a few launches need far less than a forward's hundreds.</summary>
    internal KernelProfile StartProfile(int holdIterations)
    {
        if (Profile is not null) throw new InvalidOperationException("a kernel profile is already recording on this backend");
        RefuseWhileRecording("starting a kernel profile");
        var profile = new KernelProfile(this);
        if (IsCuda) profile.HoldDevice(holdIterations);
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

    /// <summary>"Sgemm&lt;GeluTanhEpilogue&gt;", "LayerNormModulateRow", or for element kernels the operator ("Unpatchify").</summary>
    private static string KernelName(System.Reflection.MethodInfo kernel)
    {
        static string Arguments(Type[] types) => types.Length == 0 ? "" : "<" + string.Join(",", types.Select(Plain)) + ">";
        static string Bare(Type t) => t.IsGenericType ? t.Name[..t.Name.IndexOf('`')] : t.Name;
        static string Plain(Type t) => Bare(t) + Arguments(t.GetGenericArguments());
        var owner = kernel.DeclaringType!;
        if (owner == typeof(ElementLauncher) && kernel.GetGenericArguments() is [var op])
            // An element kernel's Args struct is nested in its operator: name the operator.
            return op.IsNested ? Bare(op.DeclaringType!) + Arguments(op.GetGenericArguments()) : Plain(op);
        // A type with more than one kernel names the others ("FlashAttentionTensorCore.AsyncKernel<PtxPath>").
        return Plain(owner) + (kernel.Name == "Kernel" ? "" : "." + kernel.Name) + Arguments(kernel.GetGenericArguments());
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

    /// <summary>Wall time spent loading kernels so far: ILGPU compiling each on its first use, and on CUDA the
    /// driver assembling its PTX (first launches pay it; the bench reports it apart).</summary>
    public double KernelLoadMilliseconds { get; private set; }

    /// <summary>Loads a kernel with <paramref name="load"/>, counting its time in <see cref="KernelLoadMilliseconds"/>.</summary>
    private TLaunch Timed<TLaunch>(Func<TLaunch> load)
    {
        long start = System.Diagnostics.Stopwatch.GetTimestamp();
        try
        {
            return load();
        }
        finally
        {
            KernelLoadMilliseconds += System.Diagnostics.Stopwatch.GetElapsedTime(start).TotalMilliseconds;
        }
    }

    /// <summary>The kernel methods loaded so far (generic ones instantiated), e.g. to compile them for
    /// another target offline.</summary>
    public IEnumerable<System.Reflection.MethodInfo> LoadedKernels => _kernels.Keys.OfType<System.Reflection.MethodInfo>();

    /// <summary>Waits until every launch and copy queued on the backend's stream has finished (a device fault queued
    /// earlier surfaces here).</summary>
    public void Synchronize()
    {
        RefuseWhileRecording("waiting for the device");
        Accelerator.Synchronize();
    }

    /// <summary>
    /// Copies host data into a device view. ILGPU's copy first waits for the device, so the host cannot
    /// queue work ahead of it: keep uploads out of per-step loops. Counted in <see cref="Uploads"/>.
    /// </summary>
    public void Upload<T>(ArrayView<T> target, T[] data) where T : unmanaged
    {
        RefuseWhileRecording("a host-to-device copy");
        Uploads++;
        target.CopyFromCPU(data);
    }

    /// <summary>Host-to-device copies so far (each one a wait for the device).</summary>
    public long Uploads { get; private set; }

    /// <summary>Frees everything the backend holds: the arena's buffers (every tensor on it, a model's weights included),
    /// loaded kernels, the accelerator and the ILGPU context. Later work on it throws <see cref="ObjectDisposedException"/>.
    /// Where another thread holds a <see cref="Claim"/>, first waits for it to end: a generation throws
    /// ObjectDisposedException at its next step (a host shutting down while a request generates). A second call returns
    /// once the first has freed everything. Like <see cref="ClaimWhenFree"/>, it waits without bound.</summary>
    public void Dispose()
    {
        int thread = Environment.CurrentManagedThreadId;
        lock (_claimLock)
        {
            bool first = !_disposed;
            _disposed = true;
            // Work claimed on another thread (a generation) sees IsDisposed at its next step and stops; freeing its buffers
            // under its running kernels would take the process down. Work on this thread (an onStep callback) cannot be
            // waited for: it finds its tensors disposed.
            while (HeldByAnother(thread)) Monitor.Wait(_claimLock);
            if (!first) return;
            _claimingThread = thread; // held while freeing: a ClaimWhenFree meanwhile waits, then finds the backend disposed
            _claims++;
        }
        using var freeing = new BackendClaim(this);
        try
        {
            Accelerator.Bind(); // CUDA frees need the context current on this thread
            Profile?.Dispose();
            _arena.Dispose();
            _probe?.Dispose();
            foreach (var map in _tensorMaps.Values) map.Dispose();
            foreach (var counters in _splitArrivals) counters.Dispose();
            if (!ReferenceEquals(Stream, Accelerator.DefaultStream)) Stream.Dispose();
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
