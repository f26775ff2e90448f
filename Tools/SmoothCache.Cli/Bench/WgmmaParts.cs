using ILGPU;
using SmoothCache.Kernels;
using SmoothCache.Kernels.Gpu;
using static SmoothCache.Kernels.Gpu.LinearTensorCore;
using Half = ILGPU.Half;

namespace SmoothCache.Cli.Bench;

/// <summary>LinearWgmma's instructions without the multiplies: the K loop's copies, waits and barriers alone
/// (the output is garbage; for timing).</summary>
public readonly struct CopiesOnly : LinearWgmma.IPath
{
    public int ChunkElements() => 8;
    public Half Round(float value) => default(HalfConversion.CudaRounding).Round(value);
    public void Begin() => default(LinearWgmma.Ptx).Begin();
    public uint SharedBase() => default(LinearWgmma.Ptx).SharedBase();
    public void CopyAsync(ArrayView<uint> shared, uint sharedBase, int word, ArrayView<U4> global, long globalAddress, int index, bool valid) =>
        default(LinearWgmma.Ptx).CopyAsync(shared, sharedBase, word, global, globalAddress, index, valid);
    public void CommitCopies() => default(LinearWgmma.Ptx).CommitCopies();
    public void WaitForTile() => default(LinearWgmma.Ptx).WaitForTile();
    public LinearTensorCore.Accumulators Multiply(LinearTensorCore.Accumulators c, ArrayView<uint> shared, long a0, long a1, long a2, long a3, long b0, long b1) => c;
    public void WaitForMultiplies(int inFlight) { }
    public LinearTensorCore.Accumulators Finish(LinearTensorCore.Accumulators c) => default(LinearWgmma.Ptx).Finish(c);
}

/// <summary>LinearWgmma's instructions without the copies: the multiplies, waits and barriers on whatever
/// shared memory holds (the output is garbage; for timing).</summary>
public readonly struct MultipliesOnly : LinearWgmma.IPath
{
    public int ChunkElements() => 8;
    public Half Round(float value) => default(HalfConversion.CudaRounding).Round(value);
    public void Begin() => default(LinearWgmma.Ptx).Begin();
    public uint SharedBase() => default(LinearWgmma.Ptx).SharedBase();
    public void CopyAsync(ArrayView<uint> shared, uint sharedBase, int word, ArrayView<U4> global, long globalAddress, int index, bool valid) { }
    public void CommitCopies() => default(LinearWgmma.Ptx).CommitCopies();
    public void WaitForTile() => default(LinearWgmma.Ptx).WaitForTile();
    public LinearTensorCore.Accumulators Multiply(LinearTensorCore.Accumulators c, ArrayView<uint> shared, long a0, long a1, long a2, long a3, long b0, long b1) =>
        default(LinearWgmma.Ptx).Multiply(c, shared, a0, a1, a2, a3, b0, b1);
    public void WaitForMultiplies(int inFlight) => default(LinearWgmma.Ptx).WaitForMultiplies(inFlight);
    public LinearTensorCore.Accumulators Finish(LinearTensorCore.Accumulators c) => default(LinearWgmma.Ptx).Finish(c);
}

/// <summary>LinearWgmmaTma's loads without the copy engine: each stage's mbarrier completes on the loading
/// thread's arrival alone, so the kernel's waits, barriers and multiplies run on whatever shared memory holds
/// (the output is garbage; for timing, with <see cref="CopiesOnly"/> as the other half).</summary>
public readonly struct TmaArrivalsOnly : LinearWgmmaTma.ILoader
{
    public void Init(Args a, uint barriers, int stages, int releasers) => default(LinearWgmmaTma.Tma).Init(a, barriers, stages, releasers);
    public bool Asynchronous() => true;
    public void Release(uint barrier, int cluster) => default(LinearWgmmaTma.Tma).Release(barrier, cluster);
    public void Wait(uint barrier, int parity) => default(LinearWgmmaTma.Tma).Wait(barrier, parity);
    public void SyncCluster() => default(LinearWgmmaTma.Tma).SyncCluster();
    public int ClusterRank() => default(LinearWgmmaTma.Tma).ClusterRank();
    public void LaunchDependents() => default(LinearWgmmaTma.Tma).LaunchDependents();
    public void Load<TLayout>(Args a, ArrayView<uint> shared, uint stageAt, uint barrier, int tile, int m0, int n0, int xRows, int cluster, int rank)
        where TLayout : struct, LinearWgmmaTma.ILayout =>
        ILGPU.Runtime.Cuda.CudaAsm.Emit("{ .reg .b64 state; mbarrier.arrive.shared::cta.b64 state, [%0]; }", barrier);
}
