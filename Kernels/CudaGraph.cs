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

    /// <summary>Edges made programmatic dependencies (see <see cref="EndCapture"/>).</summary>
    public int DependentLaunches { get; }

    private CudaGraph(IntPtr graph, Func<IntPtr, bool>? waitsForPrerequisites)
    {
        _graph = graph;
        nuint count = 0;
        Check(CudaDriver.GetNodes(graph, null, &count), "cuGraphGetNodes");
        Nodes = (long)count;
        if (waitsForPrerequisites is not null) DependentLaunches = LaunchDependentsEarly(graph, waitsForPrerequisites);
        IntPtr exec;
        Check(CudaDriver.Instantiate(&exec, graph, 0), "cuGraphInstantiateWithFlags");
        _exec = exec;
    }

    public static void BeginCapture(AcceleratorStream stream) =>
        Check(CudaDriver.BeginCapture(Handle(stream), RelaxedCapture), "cuStreamBeginCapture");

    /// <param name="waitsForPrerequisites">when given, whether a kernel (its CUfunction) begins with
    /// griddepcontrol.wait (<see cref="PtxTarget.Retarget(string, string, int, bool)"/>): each ordinary edge from a
    /// kernel into such a kernel becomes a programmatic dependency, so that the second kernel's blocks are
    /// launched while the first runs and start work the moment it ends (no launch gap between them). Edges into
    /// anything else (a kernel that does not wait, a memset) stay as captured.</param>
    public static CudaGraph EndCapture(AcceleratorStream stream, Func<IntPtr, bool>? waitsForPrerequisites = null)
    {
        IntPtr graph;
        Check(CudaDriver.EndCapture(Handle(stream), &graph), "cuStreamEndCapture");
        try
        {
            return new CudaGraph(graph, waitsForPrerequisites);
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

    /// <summary>Turns the graph's kernel-to-waiting-kernel edges into programmatic ones; returns how many.</summary>
    private static int LaunchDependentsEarly(IntPtr graph, Func<IntPtr, bool> waitsForPrerequisites)
    {
        nuint count = 0;
        try
        {
            Check(CudaDriver.GraphEdges.Get(graph, null, null, null, &count), "cuGraphGetEdges");
        }
        catch (TypeInitializationException e) when (e.InnerException is EntryPointNotFoundException)
        {
            throw new InvalidOperationException(
                $"dependent launches (SMOOTHCACHE_PDL=on) need a CUDA 12.3 or newer driver: {e.InnerException.Message}", e.InnerException);
        }
        var from = new IntPtr[(int)count];
        var to = new IntPtr[(int)count];
        var data = new CudaDriver.EdgeData[(int)count];
        fixed (IntPtr* f = from, t = to)
        fixed (CudaDriver.EdgeData* d = data)
            Check(CudaDriver.GraphEdges.Get(graph, f, t, d, &count), "cuGraphGetEdges");
        var chosen = Enumerable.Range(0, (int)count)
            .Where(i => data[i].IsDefault && IsKernel(from[i]) && IsKernel(to[i]) && waitsForPrerequisites(Function(to[i])))
            .ToArray();
        if (chosen.Length == 0) return 0;
        var upstream = chosen.Select(i => from[i]).ToArray();
        var downstream = chosen.Select(i => to[i]).ToArray();
        var programmatic = Enumerable.Repeat(CudaDriver.EdgeData.Programmatic, chosen.Length).ToArray();
        fixed (IntPtr* f = upstream, t = downstream)
        fixed (CudaDriver.EdgeData* p = programmatic)
        {
            Check(CudaDriver.GraphEdges.Remove(graph, f, t, null, (nuint)chosen.Length), "cuGraphRemoveDependencies");
            Check(CudaDriver.GraphEdges.Add(graph, f, t, p, (nuint)chosen.Length), "cuGraphAddDependencies");
        }
        return chosen.Length;
    }

    private static bool IsKernel(IntPtr node)
    {
        int type;
        Check(CudaDriver.GraphEdges.NodeType(node, &type), "cuGraphNodeGetType");
        return type == CudaDriver.KernelNode;
    }

    private static IntPtr Function(IntPtr kernelNode)
    {
        var parameters = stackalloc IntPtr[16];
        Check(CudaDriver.GraphEdges.KernelParams(kernelNode, parameters), "cuGraphKernelNodeGetParams");
        return parameters[0];
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
