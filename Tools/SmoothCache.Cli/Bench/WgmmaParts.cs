using ILGPU;
using SmoothCache.Kernels.Gpu;

namespace SmoothCache.Cli.Bench;

/// <summary>LinearWgmma's instructions without the multiplies: the K loop's copies, waits and barriers alone
/// (the output is garbage; for timing).</summary>
public readonly struct CopiesOnly : LinearWgmma.IPath
{
    public int ChunkElements() => 8;
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
