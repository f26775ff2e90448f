using System.Runtime.InteropServices;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;

namespace SmoothCache.Kernels;

/// <summary>
/// A CUDA graph captured from a stream and instantiated for replay. ILGPU has no graph API: the few
/// driver calls it takes come from <see cref="CudaDriver"/>.
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
        Check(CudaDriver.GetNodes(graph, null, &count), "cuGraphGetNodes");
        Nodes = (long)count;
        IntPtr exec;
        Check(CudaDriver.Instantiate(&exec, graph, 0), "cuGraphInstantiateWithFlags");
        _exec = exec;
    }

    public static void BeginCapture(AcceleratorStream stream) =>
        Check(CudaDriver.BeginCapture(Handle(stream), RelaxedCapture), "cuStreamBeginCapture");

    public static CudaGraph EndCapture(AcceleratorStream stream)
    {
        IntPtr graph;
        Check(CudaDriver.EndCapture(Handle(stream), &graph), "cuStreamEndCapture");
        try
        {
            return new CudaGraph(graph);
        }
        catch
        {
            CudaDriver.DestroyGraph(graph);
            throw;
        }
    }

    /// <summary>Ends a capture whose body failed; the body's exception is the one to report.</summary>
    public static void AbandonCapture(AcceleratorStream stream)
    {
        IntPtr graph;
        if (CudaDriver.EndCapture(Handle(stream), &graph) == 0 && graph != IntPtr.Zero) CudaDriver.DestroyGraph(graph);
    }

    public void Launch(AcceleratorStream stream) => Check(CudaDriver.Launch(_exec, Handle(stream)), "cuGraphLaunch");

    public void Dispose()
    {
        if (_exec != IntPtr.Zero) CudaDriver.DestroyExec(_exec);
        if (_graph != IntPtr.Zero) CudaDriver.DestroyGraph(_graph);
        _exec = _graph = IntPtr.Zero;
    }

    private static IntPtr Handle(AcceleratorStream stream) => ((CudaStream)stream).StreamPtr;

    private static void Check(int status, string call)
    {
        if (status != 0)
            throw new InvalidOperationException($"{call} failed: {(CudaError)status} ({status})");
    }
}
