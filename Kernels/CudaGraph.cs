using System.Runtime.InteropServices;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;

namespace SmoothCache.Kernels;

/// <summary>
/// A CUDA graph captured from a stream and instantiated for replay. ILGPU has no graph API, so the few
/// driver calls it takes are bound here from the driver library ILGPU itself runs on (no other native
/// dependency); they are touched only on CUDA.
/// </summary>
internal sealed unsafe class CudaGraph : IDisposable
{
    // CU_STREAM_CAPTURE_MODE_RELAXED: allocating inside the capture (an arena growing) is allowed.
    private const int RelaxedCapture = 2;

    private IntPtr _graph, _exec;

    /// <summary>Nodes in the captured graph (one per kernel launch or memset).</summary>
    public long Nodes { get; }

    private CudaGraph(IntPtr graph)
    {
        _graph = graph;
        nuint count = 0;
        Check(Driver.GetNodes(graph, null, &count), "cuGraphGetNodes");
        Nodes = (long)count;
        IntPtr exec;
        Check(Driver.Instantiate(&exec, graph, 0), "cuGraphInstantiateWithFlags");
        _exec = exec;
    }

    public static void BeginCapture(AcceleratorStream stream) =>
        Check(Driver.BeginCapture(Handle(stream), RelaxedCapture), "cuStreamBeginCapture");

    public static CudaGraph EndCapture(AcceleratorStream stream)
    {
        IntPtr graph;
        Check(Driver.EndCapture(Handle(stream), &graph), "cuStreamEndCapture");
        try
        {
            return new CudaGraph(graph);
        }
        catch
        {
            Driver.DestroyGraph(graph);
            throw;
        }
    }

    /// <summary>Ends a capture whose body failed; the body's exception is the one to report.</summary>
    public static void AbandonCapture(AcceleratorStream stream)
    {
        IntPtr graph;
        if (Driver.EndCapture(Handle(stream), &graph) == 0 && graph != IntPtr.Zero) Driver.DestroyGraph(graph);
    }

    public void Launch(AcceleratorStream stream) => Check(Driver.Launch(_exec, Handle(stream)), "cuGraphLaunch");

    public void Dispose()
    {
        if (_exec != IntPtr.Zero) Driver.DestroyExec(_exec);
        if (_graph != IntPtr.Zero) Driver.DestroyGraph(_graph);
        _exec = _graph = IntPtr.Zero;
    }

    private static IntPtr Handle(AcceleratorStream stream) => ((CudaStream)stream).StreamPtr;

    private static void Check(int status, string call)
    {
        if (status != 0)
            throw new InvalidOperationException($"{call} failed: {(CudaError)status} ({status})");
    }

    /// <summary>The driver entry points, resolved on first use.</summary>
    private static class Driver
    {
        private static readonly IntPtr Library = NativeLibrary.Load(OperatingSystem.IsWindows() ? "nvcuda.dll" : "libcuda.so.1");

        public static readonly delegate* unmanaged<IntPtr, int, int> BeginCapture =
            (delegate* unmanaged<IntPtr, int, int>)Export("cuStreamBeginCapture_v2");
        public static readonly delegate* unmanaged<IntPtr, IntPtr*, int> EndCapture =
            (delegate* unmanaged<IntPtr, IntPtr*, int>)Export("cuStreamEndCapture");
        public static readonly delegate* unmanaged<IntPtr, IntPtr*, nuint*, int> GetNodes =
            (delegate* unmanaged<IntPtr, IntPtr*, nuint*, int>)Export("cuGraphGetNodes");
        public static readonly delegate* unmanaged<IntPtr*, IntPtr, ulong, int> Instantiate =
            (delegate* unmanaged<IntPtr*, IntPtr, ulong, int>)Export("cuGraphInstantiateWithFlags");
        public static readonly delegate* unmanaged<IntPtr, IntPtr, int> Launch =
            (delegate* unmanaged<IntPtr, IntPtr, int>)Export("cuGraphLaunch");
        public static readonly delegate* unmanaged<IntPtr, int> DestroyExec =
            (delegate* unmanaged<IntPtr, int>)Export("cuGraphExecDestroy");
        public static readonly delegate* unmanaged<IntPtr, int> DestroyGraph =
            (delegate* unmanaged<IntPtr, int>)Export("cuGraphDestroy");

        private static IntPtr Export(string name) => NativeLibrary.GetExport(Library, name);
    }
}
