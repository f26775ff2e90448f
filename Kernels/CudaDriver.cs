using System.Runtime.InteropServices;
using ILGPU.Runtime.Cuda;

namespace SmoothCache.Kernels;

/// <summary>
/// The CUDA driver calls ILGPU does not make for us (graphs, a kernel's shared-memory limit), bound from
/// the driver library ILGPU itself runs on (no other native dependency) on first use; touched only on CUDA.
/// </summary>
internal static unsafe class CudaDriver
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

    /// <summary>What a graph edge carries (CUgraphEdgeData): zero is an ordinary dependency, full completion
    /// of the upstream node with its writes visible.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct EdgeData
    {
        public byte FromPort, ToPort, Type;
        private readonly byte _r0, _r1, _r2, _r3, _r4;

        public readonly bool IsDefault => FromPort == 0 && ToPort == 0 && Type == 0;

        /// <summary>CU_GRAPH_DEPENDENCY_TYPE_PROGRAMMATIC from CU_GRAPH_KERNEL_NODE_PORT_PROGRAMMATIC: the downstream
        /// kernel may launch once every block of the upstream one has run griddepcontrol.launch_dependents (or
        /// exited), and its griddepcontrol.wait returns when the upstream kernel is done, writes visible. What a
        /// launch with programmatic stream serialization captures into.</summary>
        public static EdgeData Programmatic => new() { FromPort = 1, Type = 1 };
    }

    // CU_GRAPH_NODE_TYPE_KERNEL
    public const int KernelNode = 0;

    /// <summary>The graph calls for edges with data and kernel nodes' functions: CUDA 12.3 drivers and newer, bound
    /// on first use (an older driver fails there, not for every driver call).</summary>
    public static unsafe class GraphEdges
    {
        public static readonly delegate* unmanaged<IntPtr, IntPtr*, IntPtr*, EdgeData*, nuint*, int> Get =
            (delegate* unmanaged<IntPtr, IntPtr*, IntPtr*, EdgeData*, nuint*, int>)Export("cuGraphGetEdges_v2");
        public static readonly delegate* unmanaged<IntPtr, IntPtr*, IntPtr*, EdgeData*, nuint, int> Remove =
            (delegate* unmanaged<IntPtr, IntPtr*, IntPtr*, EdgeData*, nuint, int>)Export("cuGraphRemoveDependencies_v2");
        public static readonly delegate* unmanaged<IntPtr, IntPtr*, IntPtr*, EdgeData*, nuint, int> Add =
            (delegate* unmanaged<IntPtr, IntPtr*, IntPtr*, EdgeData*, nuint, int>)Export("cuGraphAddDependencies_v2");
        public static readonly delegate* unmanaged<IntPtr, int*, int> NodeType =
            (delegate* unmanaged<IntPtr, int*, int>)Export("cuGraphNodeGetType");
        // CUDA_KERNEL_NODE_PARAMS_v2: the CUfunction first, 72 bytes in all.
        public static readonly delegate* unmanaged<IntPtr, void*, int> KernelParams =
            (delegate* unmanaged<IntPtr, void*, int>)Export("cuGraphKernelNodeGetParams_v2");
    }

    // cuTensorMapEncodeTiled (CUDA 12+ drivers; resolved on first use so that older drivers still run the rest).
    private static delegate* unmanaged<void*, int, uint, IntPtr, ulong*, ulong*, uint*, uint*, int, int, int, int, int> _encodeTiled;
    // CU_TENSOR_MAP_DATA_TYPE_FLOAT16, CU_TENSOR_MAP_L2_PROMOTION_L2_128B; interleave and out-of-bounds
    // fill 0: none, zeros.
    private const int TensorFloat16 = 6, L2Promotion128B = 2;

    /// <summary>
    /// A TMA tensor map (the driver's 128-byte descriptor, as 16 words) of a row-major fp16 matrix of
    /// <paramref name="rows"/> x <paramref name="cols"/> at device address <paramref name="address"/>, read in boxes of
    /// <paramref name="boxRows"/> rows x <paramref name="boxCols"/> columns; boxes past the matrix's edges read zeros.
    /// </summary>
    /// <param name="swizzle">how the copy engine permutes each box row's 16-byte chunks in shared memory
    /// (CU_TENSOR_MAP_SWIZZLE_*: 0 none, 1 32-byte, 2 64-byte, 3 128-byte)</param>
    public static ulong[] EncodeTensorMap(long address, long rows, long cols, int boxRows, int boxCols, int swizzle)
    {
        if (_encodeTiled == null)
            _encodeTiled = (delegate* unmanaged<void*, int, uint, IntPtr, ulong*, ulong*, uint*, uint*, int, int, int, int, int>)Export("cuTensorMapEncodeTiled");
        // Dimension 0 is the contiguous one; the map itself must be 64-byte aligned, on the host too.
        ulong* dims = stackalloc ulong[] { (ulong)cols, (ulong)rows };
        ulong* strides = stackalloc ulong[] { (ulong)cols * 2 };
        uint* box = stackalloc uint[] { (uint)boxCols, (uint)boxRows };
        uint* elementStrides = stackalloc uint[] { 1, 1 };
        void* map = NativeMemory.AlignedAlloc(128, 64);
        try
        {
            int status = _encodeTiled(map, TensorFloat16, 2, (IntPtr)address, dims, strides, box, elementStrides, 0, swizzle, L2Promotion128B, 0);
            if (status != 0)
                throw new InvalidOperationException(
                    $"cuTensorMapEncodeTiled({rows} x {cols} fp16, box {boxRows} x {boxCols}, swizzle {swizzle}) failed: {(CudaError)status} ({status})");
            return new ReadOnlySpan<ulong>(map, 16).ToArray();
        }
        finally { NativeMemory.AlignedFree(map); }
    }

    // CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, CU_FUNC_ATTRIBUTE_PREFERRED_SHARED_MEMORY_CARVEOUT
    // and its CU_SHAREDMEM_CARVEOUT_MAX_SHARED (percent of the unified L1 / shared memory).
    private const int MaxDynamicSharedSizeBytes = 8, PreferredCarveout = 9, MaxSharedCarveout = 100;

    private static readonly delegate* unmanaged<IntPtr, int, int, int> FuncSetAttribute =
        (delegate* unmanaged<IntPtr, int, int, int>)Export("cuFuncSetAttribute");

    /// <summary>Lets a kernel launch with up to <paramref name="bytes"/> of dynamic shared memory: above 48 KB
    /// CUDA asks for it per function (up to 227 KB on Hopper, less on older GPUs).
    /// The carveout preference asks for all of the unified cache as shared memory, so that as many blocks fit
    /// on a multiprocessor as its registers allow (the driver otherwise picks the split, a hint either way);
    /// <paramref name="preferShared"/> false leaves the split to the driver (the GEMM benchmark compares both).</summary>
    public static void AllowDynamicSharedMemory(CudaKernel kernel, int bytes, bool preferShared = true)
    {
        int status = FuncSetAttribute(kernel.FunctionPtr, MaxDynamicSharedSizeBytes, bytes);
        if (status != 0)
            throw new InvalidOperationException(
                $"cuFuncSetAttribute(MAX_DYNAMIC_SHARED_SIZE_BYTES, {bytes}) failed: {(CudaError)status} ({status}); " +
                "the device has less shared memory per block than this kernel's block shape needs");
        if (!preferShared) return;
        status = FuncSetAttribute(kernel.FunctionPtr, PreferredCarveout, MaxSharedCarveout);
        if (status != 0)
            throw new InvalidOperationException($"cuFuncSetAttribute(PREFERRED_SHARED_MEMORY_CARVEOUT, {MaxSharedCarveout}) failed: {(CudaError)status} ({status})");
    }
}
