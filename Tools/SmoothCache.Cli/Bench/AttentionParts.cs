using ILGPU;
using ILGPU.Runtime.Cuda;
using SmoothCache.Kernels.Gpu;
using Half = ILGPU.Half;

namespace SmoothCache.Cli.Bench;

/// <summary>What <see cref="AttentionWithout{TOmit}"/> leaves out; each answer is a constant of the type, so ILGPU
/// compiles the other branch away.</summary>
public interface IAttentionPart
{
    bool Copies { get; }
    bool Multiplies { get; }
    bool Exponentials { get; }
}

/// <summary>
/// The fp16 attention's warp instructions with one kind left out, for timing what each costs (the outputs are garbage).
/// Each delegates the rest to <see cref="TensorCore.PtxPath"/>; <typeparamref name="TOmit"/> says what is left out.
/// </summary>
public readonly struct AttentionWithout<TOmit> : TensorCore.IWarpPath where TOmit : struct, IAttentionPart
{
    private static TensorCore.PtxPath Ptx => default;
    private static TOmit Omit => default;

    public uint SharedBase() => Ptx.SharedBase();
    public U4 LoadMatrices(ArrayView<uint> shared, uint sharedBase, int word) => Ptx.LoadMatrices(shared, sharedBase, word);
    public U4 LoadMatricesTransposed(ArrayView<uint> shared, uint sharedBase, int word) => Ptx.LoadMatricesTransposed(shared, sharedBase, word);
    public U2 LoadTwoMatricesTransposed(ArrayView<uint> shared, uint sharedBase, int word) => Ptx.LoadTwoMatricesTransposed(shared, sharedBase, word);

    /// <summary>Without multiplies, one xor of the fragments stands for each mma, so that their ldmatrix loads stay.</summary>
    public F4 Mma(F4 c, U4 a, U2 b)
    {
        if (!Omit.Multiplies) return Ptx.Mma(c, a, b);
        CudaAsm.Emit("xor.b32 %0, %1, %2;", out uint mixed, a.X ^ a.Y ^ a.Z ^ a.W, b.X ^ b.Y);
        return new F4 { X = c.X + Interop.IntAsFloat(mixed), Y = c.Y, Z = c.Z, W = c.W };
    }

    public Half Round(float value) => Ptx.Round(value);
    public uint PackHalves(float low, float high) => Ptx.PackHalves(low, high);
    public float Exp2(float x) => Omit.Exponentials ? x : Ptx.Exp2(x);

    public void CopyAsync(ArrayView<uint> shared, uint sharedBase, int chunk, ArrayView<U4> global, long globalAddress, int index)
    {
        if (!Omit.Copies) Ptx.CopyAsync(shared, sharedBase, chunk, global, globalAddress, index);
    }

    public void CommitCopies() => Ptx.CommitCopies();
    public void WaitAllCopies() => Ptx.WaitAllCopies();
}

/// <summary>The key tiles' copies left out: the attention on whatever shared memory holds.</summary>
public readonly struct NoCopies : IAttentionPart
{
    public bool Copies => true;
    public bool Multiplies => false;
    public bool Exponentials => false;
}

/// <summary>The mma left out (the ldmatrix loads stay).</summary>
public readonly struct NoMultiplies : IAttentionPart
{
    public bool Copies => false;
    public bool Multiplies => true;
    public bool Exponentials => false;
}

/// <summary>The softmax's ex2 left out.</summary>
public readonly struct NoExponentials : IAttentionPart
{
    public bool Copies => false;
    public bool Multiplies => false;
    public bool Exponentials => true;
}
