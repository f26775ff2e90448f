using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;
using Half = ILGPU.Half;

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

    /// <summary>PTX: the shared-window byte address of the launch's dynamic shared memory (ILGPU names it
    /// <c>__dyn_shared_alloca</c>; a kernel using these helpers takes it as 16-byte elements).</summary>
    public static uint DynamicSharedBase()
    {
        CudaAsm.Emit("mov.u32 %0, __dyn_shared_alloca;", out uint address);
        return address;
    }

    /// <summary>
    /// What the kernels' mma instructions compute, for the emulation: c + a b over a warp's fragments.
    /// fp16 (<c>mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32</c>): lane (g = lane / 4, t = lane % 4)
    /// holds A pairs (row g, k 2t) in a.X, (g + 8, 2t) in a.Y, (g, 2t + 8) in a.Z, (g + 8, 2t + 8) in a.W;
    /// B pairs (k 2t, column g) in b.X and (2t + 8, g) in b.Y. 3xTF32 (<paramref name="tf32x3"/>, three
    /// <c>mma.sync.aligned.m16n8k8 .tf32</c>): the same places hold single floats at k t and t + 4, each
    /// split into big = tf32(v) and small = tf32(v - big), products small x big + big x small + big x big.
    /// C at (g, 2t), (g, 2t + 1), (g + 8, 2t), (g + 8, 2t + 1) in c.X..c.W. Every lane must call. On CUDA
    /// kernels emit the instructions themselves (see <see cref="LinearTensorCore.Ptx"/> for how).
    /// </summary>
    public static F4 EmulatedMma(F4 c, U4 a, U2 b, bool tf32x3 = false)
    {
        int lane = Warp.LaneIdx;
        int g = lane >> 2, t = lane & 3;
        for (int k = 0; k < 4; k++)
        {
            // Lane 4g + k holds rows g and g + 8 at word k and k + 4; lanes 8t + k and 8t + 4 + k hold
            // columns 2t and 2t + 1 at the same words. Whole fragments per shuffle: one exchange each on
            // the CPU accelerator, where every exchange synchronises the group.
            U4 rows = Warp.Shuffle(a, 4 * g + k);
            U2 col0 = Warp.Shuffle(b, 8 * t + k), col1 = Warp.Shuffle(b, 8 * t + 4 + k);
            c.X += Product(rows.X, col0.X, tf32x3) + Product(rows.Z, col0.Y, tf32x3);
            c.Y += Product(rows.X, col1.X, tf32x3) + Product(rows.Z, col1.Y, tf32x3);
            c.Z += Product(rows.Y, col0.X, tf32x3) + Product(rows.W, col0.Y, tf32x3);
            c.W += Product(rows.Y, col1.X, tf32x3) + Product(rows.W, col1.Y, tf32x3);
        }
        return c;
    }

    /// <summary>The product of two fragment words: a pair of fp16 values each, or one float in 3xTF32.</summary>
    private static float Product(uint x, uint y, bool tf32x3) => tf32x3 ? Product3(x, y) : Dot2(x, y);

    private static float Product3(uint xBits, uint yBits)
    {
        float x = Interop.IntAsFloat(xBits), y = Interop.IntAsFloat(yBits);
        float xBig = Tf32(x), yBig = Tf32(y);
        return Tf32(x - xBig) * yBig + xBig * Tf32(y - yBig) + xBig * yBig;
    }

    /// <summary>v rounded to tf32 (10 mantissa bits), to nearest with ties away from zero, as
    /// <c>cvt.rna.tf32.f32</c> does (a carry into the exponent is the correct rounding).</summary>
    public static float Tf32(float v)
    {
        uint bits = Interop.FloatAsInt(v);
        if ((bits & 0x7F800000u) == 0x7F800000u) return v; // inf and NaN as they are
        return Interop.IntAsFloat((bits + 0x1000u) & 0xFFFFE000u);
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

    /// <summary>
    /// The warp instructions as C# values, for kernels without cp.async (in those ptxas keeps ILGPU's
    /// asm operands in registers; see <see cref="LinearTensorCore.Ptx"/>). A kernel takes the path as a
    /// type parameter: <see cref="PtxPath"/> on CUDA, <see cref="EmulatedPath"/> elsewhere. Word indices
    /// address the kernel's one shared allocation as 32-bit words; every lane of a warp must call together.
    /// </summary>
    public interface IWarpPath : HalfConversion.IHalfRounding
    {
        /// <summary>What the path adds to a word index x 4 to address shared memory.</summary>
        uint SharedBase();

        /// <summary>ldmatrix .x4 (see <see cref="EmulatedLoadMatrices"/>).</summary>
        U4 LoadMatrices(ArrayView<uint> shared, uint sharedBase, int word);

        /// <summary>ldmatrix .x4 .trans: component i holds matrix i's halves at (row 2 (lane % 4), column
        /// lane / 4) and (row 2 (lane % 4) + 1, same column) — a B fragment of a row-major k x n tile.</summary>
        U4 LoadMatricesTransposed(ArrayView<uint> shared, uint sharedBase, int word);

        /// <summary>ldmatrix .x2 .trans: matrices 0 and 1 only (lanes 0..15 pass the row addresses).</summary>
        U2 LoadTwoMatricesTransposed(ArrayView<uint> shared, uint sharedBase, int word);

        /// <summary>mma.sync m16n8k16 fp16 x fp16 + fp32 (see <see cref="EmulatedMma"/>).</summary>
        F4 Mma(F4 c, U4 a, U2 b);

        /// <summary>Two floats rounded to fp16 (nearest even), low in the low 16 bits.</summary>
        uint PackHalves(float low, float high);

        /// <summary>2^x: PTX ex2.approx (relative error about 2^-22; -inf gives 0).</summary>
        float Exp2(float x);

        /// <summary>Copies 16 bytes, <paramref name="global"/>[<paramref name="index"/>] (at device address
        /// <paramref name="globalAddress"/> + 16 index), to shared memory at 16-byte chunk <paramref name="chunk"/>:
        /// <c>cp.async</c> on CUDA (visible after <see cref="WaitAllCopies"/> and a barrier), a plain copy elsewhere.</summary>
        void CopyAsync(ArrayView<uint> shared, uint sharedBase, int chunk, ArrayView<U4> global, long globalAddress, int index);

        /// <summary>Closes the group of copies started since the last commit.</summary>
        void CommitCopies();

        /// <summary>Waits until every copy this thread committed has landed.</summary>
        void WaitAllCopies();
    }

    /// <summary>Inline PTX; ILGPU passes the asm outputs through local variables that ptxas promotes.</summary>
    public readonly struct PtxPath : IWarpPath
    {
        public uint SharedBase() => TensorCore.SharedBase();

        public U4 LoadMatrices(ArrayView<uint> shared, uint sharedBase, int word)
        {
            Input<uint> address = sharedBase + 4u * (uint)word;
            Output<uint> r0 = default, r1 = default, r2 = default, r3 = default;
            CudaAsm.EmitRef("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];", ref r0, ref r1, ref r2, ref r3, ref address);
            return new U4 { X = r0.Value, Y = r1.Value, Z = r2.Value, W = r3.Value };
        }

        public U4 LoadMatricesTransposed(ArrayView<uint> shared, uint sharedBase, int word)
        {
            Input<uint> address = sharedBase + 4u * (uint)word;
            Output<uint> r0 = default, r1 = default, r2 = default, r3 = default;
            CudaAsm.EmitRef("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];", ref r0, ref r1, ref r2, ref r3, ref address);
            return new U4 { X = r0.Value, Y = r1.Value, Z = r2.Value, W = r3.Value };
        }

        public U2 LoadTwoMatricesTransposed(ArrayView<uint> shared, uint sharedBase, int word)
        {
            Input<uint> address = sharedBase + 4u * (uint)word;
            Output<uint> r0 = default, r1 = default;
            CudaAsm.EmitRef("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0,%1}, [%2];", ref r0, ref r1, ref address);
            return new U2 { X = r0.Value, Y = r1.Value };
        }

        public F4 Mma(F4 c, U4 a, U2 b)
        {
            Ref<float> d0 = c.X, d1 = c.Y, d2 = c.Z, d3 = c.W;
            Input<uint> a0 = a.X, a1 = a.Y, a2 = a.Z, a3 = a.W, b0 = b.X, b1 = b.Y;
            CudaAsm.EmitRef("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};",
                ref d0, ref d1, ref d2, ref d3, ref a0, ref a1, ref a2, ref a3, ref b0, ref b1);
            return new F4 { X = d0.Value, Y = d1.Value, Z = d2.Value, W = d3.Value };
        }

        public Half Round(float value) => default(HalfConversion.CudaRounding).Round(value);

        public uint PackHalves(float low, float high)
        {
            // cvt.rn.f16x2.f32 d, a, b puts a in the upper half.
            CudaAsm.Emit("cvt.rn.f16x2.f32 %0, %1, %2;", out uint packed, high, low);
            return packed;
        }

        public float Exp2(float x)
        {
            CudaAsm.Emit("ex2.approx.ftz.f32 %0, %1;", out float y, x);
            return y;
        }

        public void CopyAsync(ArrayView<uint> shared, uint sharedBase, int chunk, ArrayView<U4> global, long globalAddress, int index) =>
            TensorCore.CopyAsync(sharedBase + 16u * (uint)chunk, globalAddress + 16L * index, true);

        public void CommitCopies() => TensorCore.CommitCopies();

        public void WaitAllCopies() => CudaAsm.Emit("cp.async.wait_all;");
    }

    /// <summary>The same results with warp shuffles, on any accelerator.</summary>
    public readonly struct EmulatedPath : IWarpPath
    {
        public uint SharedBase() => 0;
        public U4 LoadMatrices(ArrayView<uint> shared, uint sharedBase, int word) => EmulatedLoadMatrices(shared, word);

        public U4 LoadMatricesTransposed(ArrayView<uint> shared, uint sharedBase, int word) => new()
        {
            X = TransposedWord(shared, word, 0), Y = TransposedWord(shared, word, 1),
            Z = TransposedWord(shared, word, 2), W = TransposedWord(shared, word, 3),
        };

        public U2 LoadTwoMatricesTransposed(ArrayView<uint> shared, uint sharedBase, int word) => new()
        {
            X = TransposedWord(shared, word, 0), Y = TransposedWord(shared, word, 1),
        };

        public F4 Mma(F4 c, U4 a, U2 b) => EmulatedMma(c, a, b);

        public Half Round(float value) => default(HalfConversion.PortableRounding).Round(value);

        public uint PackHalves(float low, float high) =>
            HalfConversion.RoundToHalfBits(low) | ((uint)HalfConversion.RoundToHalfBits(high) << 16);

        public float Exp2(float x) => MathF.Exp(x * 0.6931472f);

        public void CopyAsync(ArrayView<uint> shared, uint sharedBase, int chunk, ArrayView<U4> global, long globalAddress, int index) =>
            shared.Cast<U4>()[chunk] = global[index];

        public void CommitCopies() { }

        public void WaitAllCopies() { }

        /// <summary>This lane's word of transposed matrix i: rows 2t and 2t + 1 (passed by lanes 8i + 2t,
        /// 8i + 2t + 1) at column g.</summary>
        private static uint TransposedWord(ArrayView<uint> shared, int word, int matrix)
        {
            int lane = Warp.LaneIdx;
            int g = lane >> 2, t = lane & 3;
            int low = Warp.Shuffle(word, 8 * matrix + 2 * t), high = Warp.Shuffle(word, 8 * matrix + 2 * t + 1);
            return HalfAt(shared, low, g) | (HalfAt(shared, high, g) << 16);
        }

        private static uint HalfAt(ArrayView<uint> shared, int rowWord, int column) =>
            (shared[rowWord + (column >> 1)] >> (16 * (column & 1))) & 0xFFFFu;
    }
}
