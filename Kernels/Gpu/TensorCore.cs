using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;

namespace SmoothCache.Kernels.Gpu;

/// <summary>
/// Warp-level tensor-core instructions (sm_80: <c>mma.sync</c>, <c>ldmatrix</c>, <c>cp.async</c>) and
/// their emulation for accelerators without PTX: the CPU accelerator runs kernels built on these in
/// tests, so their fragment layouts, swizzles and pipelines are checked without a GPU (the PTX spelling
/// is left to ptxas, see scripts/ptxas-check.sh, and the device).
/// The PTX helpers are plain inline asm; a kernel picks PTX or emulation through a struct type
/// parameter, not <c>CudaAsm.IsSupported</c>: ILGPU keeps both sides of that branch and may place a
/// register declaration after its first use in the PTX text.
/// </summary>
public static class TensorCore
{
    /// <summary>
    /// PTX: the shared-window byte address of the kernel's first shared allocation (ILGPU names it
    /// <c>__shared_alloca0</c>; a kernel using these helpers allocates exactly one, of 16-byte elements
    /// so that it is 16-byte aligned).
    /// </summary>
    public static uint SharedBase()
    {
        CudaAsm.Emit("mov.u32 %0, __shared_alloca0;", out uint address);
        return address;
    }

    /// <summary>
    /// What <c>mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32</c> computes, for the emulation: c + a b
    /// for a 16 x 16 fp16 A and a 16 x 8 fp16 B held in fragments across the warp. Lane
    /// (g = lane / 4, t = lane % 4) holds A pairs (row g, k 2t) in a.X, (g + 8, 2t) in a.Y, (g, 2t + 8)
    /// in a.Z, (g + 8, 2t + 8) in a.W; B pairs (k 2t, column g) in b.X and (2t + 8, g) in b.Y; C at
    /// (g, 2t), (g, 2t + 1), (g + 8, 2t), (g + 8, 2t + 1) in c.X..c.W. Every lane must call. On CUDA
    /// kernels emit the instruction itself, on fragments and accumulators kept in named PTX registers
    /// (see <see cref="LinearTensorCore.Ptx"/> for why).
    /// </summary>
    public static F4 EmulatedMma(F4 c, U4 a, U2 b)
    {
        int lane = Warp.LaneIdx;
        int g = lane >> 2, t = lane & 3;
        for (int pair = 0; pair < 4; pair++)
        {
            // Lane g*4 + pair holds rows g and g + 8 at k pairs `pair` and `pair + 4`; lanes 8t + pair and
            // 8t + 4 + pair hold columns 2t and 2t + 1 at the same k pairs.
            int aLane = g * 4 + pair, b0Lane = 8 * t + pair, b1Lane = 8 * t + 4 + pair;
            uint rowLow = Warp.Shuffle(a.X, aLane), rowHigh = Warp.Shuffle(a.Y, aLane);
            uint rowLowFar = Warp.Shuffle(a.Z, aLane), rowHighFar = Warp.Shuffle(a.W, aLane);
            uint col0 = Warp.Shuffle(b.X, b0Lane), col0Far = Warp.Shuffle(b.Y, b0Lane);
            uint col1 = Warp.Shuffle(b.X, b1Lane), col1Far = Warp.Shuffle(b.Y, b1Lane);
            c.X += Dot2(rowLow, col0) + Dot2(rowLowFar, col0Far);
            c.Y += Dot2(rowLow, col1) + Dot2(rowLowFar, col1Far);
            c.Z += Dot2(rowHigh, col0) + Dot2(rowHighFar, col0Far);
            c.W += Dot2(rowHigh, col1) + Dot2(rowHighFar, col1Far);
        }
        return c;
    }

    /// <summary>fp16 products are exact in fp32.</summary>
    private static float Dot2(uint x, uint y) =>
        Vectors.LowHalf(x) * Vectors.LowHalf(y) + Vectors.HighHalf(x) * Vectors.HighHalf(y);

    /// <summary>
    /// What <c>ldmatrix.sync.aligned.m8n8.x4.shared.b16</c> loads, for the emulation: four 8 x 8 matrices
    /// of 16-bit values. Lane l passes the shared word index of row l % 8 of matrix l / 8 (a 16-byte row);
    /// component i of the result is matrix i's word at (row lane / 4, halves 2 (lane % 4), +1), an mma
    /// fragment. Every lane must call.
    /// </summary>
    public static U4 EmulatedLoadMatrices(ArrayView<uint> shared, int word)
    {
        int lane = Warp.LaneIdx;
        int row = lane >> 2, column = lane & 3;
        return new U4
        {
            X = shared[Warp.Shuffle(word, row) + column],
            Y = shared[Warp.Shuffle(word, 8 + row) + column],
            Z = shared[Warp.Shuffle(word, 16 + row) + column],
            W = shared[Warp.Shuffle(word, 24 + row) + column],
        };
    }

    /// <summary>
    /// PTX: starts copying the 16 bytes at globalAddress to shared byte address sharedAddress
    /// (<c>cp.async.cg</c>, bypassing registers and L1), or zero-fills them when !valid.
    /// </summary>
    public static void CopyAsync(uint sharedAddress, long globalAddress, bool valid) =>
        // With a source size of 0 nothing is read.
        CudaAsm.Emit("cp.async.cg.shared.global [%0], [%1], 16, %2;", sharedAddress, globalAddress, valid ? 16u : 0u);

    /// <summary>PTX: closes the group of copies started since the last commit (<c>cp.async.commit_group</c>).</summary>
    public static void CommitCopies() => CudaAsm.Emit("cp.async.commit_group;");

    /// <summary>PTX: waits until at most one committed copy group is in flight (<c>cp.async.wait_group 1</c>):
    /// with a three-stage pipeline, the oldest stage has landed. A barrier must follow before other
    /// threads read it.</summary>
    public static void WaitAllButNewestCopies() => CudaAsm.Emit("cp.async.wait_group 1;");

    /// <summary>The device address of a view's first element, for <see cref="CopyAsync"/> (kernels cannot take one).</summary>
    public static long DeviceAddress<T>(ArrayView<T> view) where T : unmanaged =>
        view.LoadEffectiveAddressAsPtr().ToInt64();
}
