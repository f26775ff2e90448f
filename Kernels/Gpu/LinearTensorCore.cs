using ILGPU;
using ILGPU.Runtime.Cuda;
using Half = ILGPU.Half;

namespace SmoothCache.Kernels.Gpu;

/// <summary>
/// Tensor-core GEMM for CUDA: y = epilogue(x W^T + b) with x [M, K], W [N, K] both fp16 (<see cref="Run{TEpilogue}"/>,
/// <c>mma.sync.aligned.m16n8k16</c>) or both fp32 (<see cref="RunTf32x3{TEpilogue}"/>, 3xTF32 on
/// <c>mma.sync.aligned.m16n8k8</c>), b fp32 [N], y [M, N] fp32 or fp16 (rounded to nearest even), all
/// row-major; products accumulate in fp32. The warp instructions come from an <see cref="IPath"/>.
/// A group of 4 warps computes a 128 x 128 block of y, each warp a 64 x 64 tile (4 x 8 mma tiles,
/// 128 fp32 accumulators per thread: each A fragment feeds 8 mma, each B fragment 4). K advances 32 at a time through a three-stage pipeline: the
/// tile two steps ahead is copied global -> shared with <c>cp.async</c> (16 bytes per copy, no
/// registers) while the current one is multiplied, one barrier per tile. Fragments come out of shared
/// memory with <c>ldmatrix</c> (8 per 16-deep step per warp for 32 mma). Shared rows are
/// four 16-byte chunks (32 halves or 16 floats) with chunk c of row r stored at c ^ ((r / 2) % 4), which makes both
/// the copies and every 8-row ldmatrix phase conflict-free without padding; 3 stages x (x tile + W
/// tile) x 8 KB = 48 KB, the static limit. With split-K (<see cref="SplitK"/>) the grid's z slice takes
/// a range of K tiles. Requires K to be a multiple of a chunk (8 halves, 4 floats) and 16-byte-aligned
/// views (whole 16-byte copies; the model's K are 16, 72, 256, 288, 1152, 4608); M and N are free (copies past the edges are
/// zero-filled, stores guarded). Other accelerators emulate the warp instructions (tests).
/// </summary>
public static class LinearTensorCore
{
    public const int Tile = 128;
    /// <summary>K per tile: four 16-byte chunks, 32 halves (fp16) or 16 floats (<see cref="DepthTf32"/>).</summary>
    public const int Depth = 32;
    public const int DepthTf32 = 16;
    public const int Threads = 128;
    private const int Stages = 3;
    /// <summary>Words per shared row: four 16-byte chunks, no padding (the swizzle avoids bank conflicts).</summary>
    private const int RowWords = 16;
    private const int TileWords = Tile * RowWords;
    private const int StageWords = 2 * TileWords;

    public struct Args
    {
        /// <summary>x and W as 16-byte groups (8 halves or 4 floats), and their device addresses (for cp.async).</summary>
        public ArrayView<U4> X, W;
        public long XAddress, WAddress;
        public ArrayView<float> Bias;
        public OutputView Y;
        public int M, N, K;
        /// <summary>K tiles each z slice of the grid multiplies (all of them without split-K).</summary>
        public int TilesPerSplit;
        /// <summary>1 when two neighbouring outputs go in one store (N even and y aligned for it).</summary>
        public int PairedStores;
        /// <summary><see cref="LinearWgmmaTma"/> only: the device addresses of x's and W's TMA tensor maps
        /// (<see cref="Backend.TensorMap"/>).</summary>
        public long XMap, WMap;
        /// <summary>With split-K: where the blocks finish (Y then holds the raw partial sums, Bias is empty).</summary>
        public SplitK.Target Split;
    }

    /// <summary>A warp's 64 x 64 accumulator tile: rows 16 i, columns 8 j in field C{i}{j}.</summary>
    public struct Accumulators
    {
        public F4 C00, C01, C02, C03, C04, C05, C06, C07, C10, C11, C12, C13, C14, C15, C16, C17,
            C20, C21, C22, C23, C24, C25, C26, C27, C30, C31, C32, C33, C34, C35, C36, C37;

        /// <summary>Tile C{t / 8}{t % 8}.</summary>
        public readonly F4 Tile(int t) => t switch
        {
            0 => C00, 1 => C01, 2 => C02, 3 => C03, 4 => C04, 5 => C05, 6 => C06, 7 => C07,
            8 => C10, 9 => C11, 10 => C12, 11 => C13, 12 => C14, 13 => C15, 14 => C16, 15 => C17,
            16 => C20, 17 => C21, 18 => C22, 19 => C23, 20 => C24, 21 => C25, 22 => C26, 23 => C27,
            24 => C30, 25 => C31, 26 => C32, 27 => C33, 28 => C34, 29 => C35, 30 => C36, _ => C37,
        };
    }

    /// <summary>Why a problem cannot run on this kernel, or null when it can; chunk is the elements per
    /// 16 bytes (8 halves, or 4 floats for 3xTF32).</summary>
    public static string? Unsupported(int m, int n, int k, long xOffset, int chunk = 8) =>
        k % chunk != 0 ? $"K={k} is not a multiple of {chunk}"
        : !Sgemm.FitsInt32(m, n, k) ? $"M={m}, N={n}, K={k} overflow 32-bit indexing"
        : xOffset % chunk != 0 ? $"input view starts at element {xOffset}, not a multiple of {chunk} (16-byte loads)"
        : null;

    /// <summary>How a kernel instance stages tiles into shared memory: cp.async on CUDA, plain copies in the
    /// emulation (shared with <see cref="LinearWgmma"/>). Word indices address the shared allocation as 32-bit words.</summary>
    public interface IStagePath : HalfConversion.IHalfRounding
    {
        /// <summary>Elements per 16-byte chunk: 8 halves (fp16) or 4 floats (3xTF32).</summary>
        int ChunkElements();
        /// <summary>Once, first: sets up what the path keeps outside C# values.</summary>
        void Begin();
        uint SharedBase();
        void CopyAsync(ArrayView<uint> shared, uint sharedBase, int word, ArrayView<U4> global, long globalAddress, int index, bool valid);
        void CommitCopies();
    }

    /// <summary>
    /// How a kernel instance runs the warp instructions: <see cref="Ptx"/> on CUDA, <see cref="Emulated"/>
    /// elsewhere (a type parameter rather than a CudaAsm.IsSupported branch, see <see cref="TensorCore"/>).
    /// </summary>
    public interface IPath : IStagePath
    {
        void WaitAllButNewestCopies();
        /// <summary>One step over two chunks (16 halves or 8 floats): ldmatrix at the four x words a0..a3
        /// (A fragments 0..3) and the four W words b0..b3 (B fragments 2p and 2p + 1 at word bp), then
        /// C{i}{j} += A_i B_j.</summary>
        Accumulators MultiplyStep(Accumulators c, ArrayView<uint> shared, uint sharedBase, int a0, int a1, int a2, int a3, int b0, int b1, int b2, int b3);
        /// <summary>Once, after the K loop: the accumulators as C# values.</summary>
        Accumulators Finish(Accumulators c);
    }

    /// <summary>
    /// Inline PTX. Fragments and the 64 accumulators live in named PTX registers (fa, fb, acc; tile
    /// C{i}{j} in acc[4 (4i + j) ..]) declared once at the top of the kernel. ILGPU passes asm outputs
    /// through local variables; ptxas turns those back into registers, but not in a function that also
    /// issues cp.async (measured with ptxas: 1.5 KB of stack and 747 local loads and stores per thread).
    /// </summary>
    public readonly struct Ptx : IPath
    {
        private const string DeclareAndZero =
            ".reg .f32 acc<128>; .reg .b32 fa<16>; .reg .b32 fb<16>;" +
            // The 3xTF32 path's big and small parts: one A fragment's at a time, all B fragments'.
            ".reg .b32 ah<4>; .reg .b32 al<4>; .reg .b32 bh<16>; .reg .b32 bl<16>; .reg .f32 rest;" +
            "mov.f32 acc0, 0f00000000; mov.f32 acc1, 0f00000000; mov.f32 acc2, 0f00000000; mov.f32 acc3, 0f00000000; mov.f32 acc4, 0f00000000; mov.f32 acc5, 0f00000000; mov.f32 acc6, 0f00000000; mov.f32 acc7, 0f00000000;" +
            "mov.f32 acc8, 0f00000000; mov.f32 acc9, 0f00000000; mov.f32 acc10, 0f00000000; mov.f32 acc11, 0f00000000; mov.f32 acc12, 0f00000000; mov.f32 acc13, 0f00000000; mov.f32 acc14, 0f00000000; mov.f32 acc15, 0f00000000;" +
            "mov.f32 acc16, 0f00000000; mov.f32 acc17, 0f00000000; mov.f32 acc18, 0f00000000; mov.f32 acc19, 0f00000000; mov.f32 acc20, 0f00000000; mov.f32 acc21, 0f00000000; mov.f32 acc22, 0f00000000; mov.f32 acc23, 0f00000000;" +
            "mov.f32 acc24, 0f00000000; mov.f32 acc25, 0f00000000; mov.f32 acc26, 0f00000000; mov.f32 acc27, 0f00000000; mov.f32 acc28, 0f00000000; mov.f32 acc29, 0f00000000; mov.f32 acc30, 0f00000000; mov.f32 acc31, 0f00000000;" +
            "mov.f32 acc32, 0f00000000; mov.f32 acc33, 0f00000000; mov.f32 acc34, 0f00000000; mov.f32 acc35, 0f00000000; mov.f32 acc36, 0f00000000; mov.f32 acc37, 0f00000000; mov.f32 acc38, 0f00000000; mov.f32 acc39, 0f00000000;" +
            "mov.f32 acc40, 0f00000000; mov.f32 acc41, 0f00000000; mov.f32 acc42, 0f00000000; mov.f32 acc43, 0f00000000; mov.f32 acc44, 0f00000000; mov.f32 acc45, 0f00000000; mov.f32 acc46, 0f00000000; mov.f32 acc47, 0f00000000;" +
            "mov.f32 acc48, 0f00000000; mov.f32 acc49, 0f00000000; mov.f32 acc50, 0f00000000; mov.f32 acc51, 0f00000000; mov.f32 acc52, 0f00000000; mov.f32 acc53, 0f00000000; mov.f32 acc54, 0f00000000; mov.f32 acc55, 0f00000000;" +
            "mov.f32 acc56, 0f00000000; mov.f32 acc57, 0f00000000; mov.f32 acc58, 0f00000000; mov.f32 acc59, 0f00000000; mov.f32 acc60, 0f00000000; mov.f32 acc61, 0f00000000; mov.f32 acc62, 0f00000000; mov.f32 acc63, 0f00000000;" +
            "mov.f32 acc64, 0f00000000; mov.f32 acc65, 0f00000000; mov.f32 acc66, 0f00000000; mov.f32 acc67, 0f00000000; mov.f32 acc68, 0f00000000; mov.f32 acc69, 0f00000000; mov.f32 acc70, 0f00000000; mov.f32 acc71, 0f00000000;" +
            "mov.f32 acc72, 0f00000000; mov.f32 acc73, 0f00000000; mov.f32 acc74, 0f00000000; mov.f32 acc75, 0f00000000; mov.f32 acc76, 0f00000000; mov.f32 acc77, 0f00000000; mov.f32 acc78, 0f00000000; mov.f32 acc79, 0f00000000;" +
            "mov.f32 acc80, 0f00000000; mov.f32 acc81, 0f00000000; mov.f32 acc82, 0f00000000; mov.f32 acc83, 0f00000000; mov.f32 acc84, 0f00000000; mov.f32 acc85, 0f00000000; mov.f32 acc86, 0f00000000; mov.f32 acc87, 0f00000000;" +
            "mov.f32 acc88, 0f00000000; mov.f32 acc89, 0f00000000; mov.f32 acc90, 0f00000000; mov.f32 acc91, 0f00000000; mov.f32 acc92, 0f00000000; mov.f32 acc93, 0f00000000; mov.f32 acc94, 0f00000000; mov.f32 acc95, 0f00000000;" +
            "mov.f32 acc96, 0f00000000; mov.f32 acc97, 0f00000000; mov.f32 acc98, 0f00000000; mov.f32 acc99, 0f00000000; mov.f32 acc100, 0f00000000; mov.f32 acc101, 0f00000000; mov.f32 acc102, 0f00000000; mov.f32 acc103, 0f00000000;" +
            "mov.f32 acc104, 0f00000000; mov.f32 acc105, 0f00000000; mov.f32 acc106, 0f00000000; mov.f32 acc107, 0f00000000; mov.f32 acc108, 0f00000000; mov.f32 acc109, 0f00000000; mov.f32 acc110, 0f00000000; mov.f32 acc111, 0f00000000;" +
            "mov.f32 acc112, 0f00000000; mov.f32 acc113, 0f00000000; mov.f32 acc114, 0f00000000; mov.f32 acc115, 0f00000000; mov.f32 acc116, 0f00000000; mov.f32 acc117, 0f00000000; mov.f32 acc118, 0f00000000; mov.f32 acc119, 0f00000000;" +
            "mov.f32 acc120, 0f00000000; mov.f32 acc121, 0f00000000; mov.f32 acc122, 0f00000000; mov.f32 acc123, 0f00000000; mov.f32 acc124, 0f00000000; mov.f32 acc125, 0f00000000; mov.f32 acc126, 0f00000000; mov.f32 acc127, 0f00000000;";

        private const string MultiplyFragments =
            "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {acc0,acc1,acc2,acc3}, {fa0,fa1,fa2,fa3}, {fb0,fb1}, {acc0,acc1,acc2,acc3};" +
            "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {acc4,acc5,acc6,acc7}, {fa0,fa1,fa2,fa3}, {fb2,fb3}, {acc4,acc5,acc6,acc7};" +
            "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {acc8,acc9,acc10,acc11}, {fa0,fa1,fa2,fa3}, {fb4,fb5}, {acc8,acc9,acc10,acc11};" +
            "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {acc12,acc13,acc14,acc15}, {fa0,fa1,fa2,fa3}, {fb6,fb7}, {acc12,acc13,acc14,acc15};" +
            "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {acc16,acc17,acc18,acc19}, {fa0,fa1,fa2,fa3}, {fb8,fb9}, {acc16,acc17,acc18,acc19};" +
            "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {acc20,acc21,acc22,acc23}, {fa0,fa1,fa2,fa3}, {fb10,fb11}, {acc20,acc21,acc22,acc23};" +
            "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {acc24,acc25,acc26,acc27}, {fa0,fa1,fa2,fa3}, {fb12,fb13}, {acc24,acc25,acc26,acc27};" +
            "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {acc28,acc29,acc30,acc31}, {fa0,fa1,fa2,fa3}, {fb14,fb15}, {acc28,acc29,acc30,acc31};" +
            "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {acc32,acc33,acc34,acc35}, {fa4,fa5,fa6,fa7}, {fb0,fb1}, {acc32,acc33,acc34,acc35};" +
            "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {acc36,acc37,acc38,acc39}, {fa4,fa5,fa6,fa7}, {fb2,fb3}, {acc36,acc37,acc38,acc39};" +
            "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {acc40,acc41,acc42,acc43}, {fa4,fa5,fa6,fa7}, {fb4,fb5}, {acc40,acc41,acc42,acc43};" +
            "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {acc44,acc45,acc46,acc47}, {fa4,fa5,fa6,fa7}, {fb6,fb7}, {acc44,acc45,acc46,acc47};" +
            "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {acc48,acc49,acc50,acc51}, {fa4,fa5,fa6,fa7}, {fb8,fb9}, {acc48,acc49,acc50,acc51};" +
            "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {acc52,acc53,acc54,acc55}, {fa4,fa5,fa6,fa7}, {fb10,fb11}, {acc52,acc53,acc54,acc55};" +
            "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {acc56,acc57,acc58,acc59}, {fa4,fa5,fa6,fa7}, {fb12,fb13}, {acc56,acc57,acc58,acc59};" +
            "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {acc60,acc61,acc62,acc63}, {fa4,fa5,fa6,fa7}, {fb14,fb15}, {acc60,acc61,acc62,acc63};" +
            "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {acc64,acc65,acc66,acc67}, {fa8,fa9,fa10,fa11}, {fb0,fb1}, {acc64,acc65,acc66,acc67};" +
            "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {acc68,acc69,acc70,acc71}, {fa8,fa9,fa10,fa11}, {fb2,fb3}, {acc68,acc69,acc70,acc71};" +
            "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {acc72,acc73,acc74,acc75}, {fa8,fa9,fa10,fa11}, {fb4,fb5}, {acc72,acc73,acc74,acc75};" +
            "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {acc76,acc77,acc78,acc79}, {fa8,fa9,fa10,fa11}, {fb6,fb7}, {acc76,acc77,acc78,acc79};" +
            "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {acc80,acc81,acc82,acc83}, {fa8,fa9,fa10,fa11}, {fb8,fb9}, {acc80,acc81,acc82,acc83};" +
            "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {acc84,acc85,acc86,acc87}, {fa8,fa9,fa10,fa11}, {fb10,fb11}, {acc84,acc85,acc86,acc87};" +
            "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {acc88,acc89,acc90,acc91}, {fa8,fa9,fa10,fa11}, {fb12,fb13}, {acc88,acc89,acc90,acc91};" +
            "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {acc92,acc93,acc94,acc95}, {fa8,fa9,fa10,fa11}, {fb14,fb15}, {acc92,acc93,acc94,acc95};" +
            "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {acc96,acc97,acc98,acc99}, {fa12,fa13,fa14,fa15}, {fb0,fb1}, {acc96,acc97,acc98,acc99};" +
            "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {acc100,acc101,acc102,acc103}, {fa12,fa13,fa14,fa15}, {fb2,fb3}, {acc100,acc101,acc102,acc103};" +
            "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {acc104,acc105,acc106,acc107}, {fa12,fa13,fa14,fa15}, {fb4,fb5}, {acc104,acc105,acc106,acc107};" +
            "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {acc108,acc109,acc110,acc111}, {fa12,fa13,fa14,fa15}, {fb6,fb7}, {acc108,acc109,acc110,acc111};" +
            "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {acc112,acc113,acc114,acc115}, {fa12,fa13,fa14,fa15}, {fb8,fb9}, {acc112,acc113,acc114,acc115};" +
            "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {acc116,acc117,acc118,acc119}, {fa12,fa13,fa14,fa15}, {fb10,fb11}, {acc116,acc117,acc118,acc119};" +
            "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {acc120,acc121,acc122,acc123}, {fa12,fa13,fa14,fa15}, {fb12,fb13}, {acc120,acc121,acc122,acc123};" +
            "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {acc124,acc125,acc126,acc127}, {fa12,fa13,fa14,fa15}, {fb14,fb15}, {acc124,acc125,acc126,acc127};";

        public int ChunkElements() => 8;
        public Half Round(float value) => default(HalfConversion.CudaRounding).Round(value);
        public void Begin() => CudaAsm.Emit(DeclareAndZero);
        public uint SharedBase() => TensorCore.SharedBase();
        public void CopyAsync(ArrayView<uint> shared, uint sharedBase, int word, ArrayView<U4> global, long globalAddress, int index, bool valid) =>
            TensorCore.CopyAsync(sharedBase + 4u * (uint)word, valid ? globalAddress + 16L * index : globalAddress, valid);
        public void CommitCopies() => TensorCore.CommitCopies();
        public void WaitAllButNewestCopies() => TensorCore.WaitAllButNewestCopies();

        public Accumulators MultiplyStep(Accumulators c, ArrayView<uint> shared, uint sharedBase, int a0, int a1, int a2, int a3, int b0, int b1, int b2, int b3)
        {
            LoadFragments(sharedBase, a0, a1, a2, a3, b0, b1, b2, b3);
            CudaAsm.Emit(MultiplyFragments);
            return c;
        }

        /// <summary>The step's fragments into fa and fb (ldmatrix moves 16-bit pairs: for fp32 data each
        /// word is one float, at the same place in the fragment).</summary>
        public static void LoadFragments(uint sharedBase, int a0, int a1, int a2, int a3, int b0, int b1, int b2, int b3)
        {
            CudaAsm.Emit("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {fa0,fa1,fa2,fa3}, [%0];", sharedBase + 4u * (uint)a0);
            CudaAsm.Emit("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {fa4,fa5,fa6,fa7}, [%0];", sharedBase + 4u * (uint)a1);
            CudaAsm.Emit("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {fa8,fa9,fa10,fa11}, [%0];", sharedBase + 4u * (uint)a2);
            CudaAsm.Emit("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {fa12,fa13,fa14,fa15}, [%0];", sharedBase + 4u * (uint)a3);
            CudaAsm.Emit("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {fb0,fb1,fb2,fb3}, [%0];", sharedBase + 4u * (uint)b0);
            CudaAsm.Emit("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {fb4,fb5,fb6,fb7}, [%0];", sharedBase + 4u * (uint)b1);
            CudaAsm.Emit("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {fb8,fb9,fb10,fb11}, [%0];", sharedBase + 4u * (uint)b2);
            CudaAsm.Emit("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {fb12,fb13,fb14,fb15}, [%0];", sharedBase + 4u * (uint)b3);
        }

        public Accumulators Finish(Accumulators c)
        {
            float x, y, z, w;
            CudaAsm.Emit("mov.f32 %0, acc0;", out x); CudaAsm.Emit("mov.f32 %0, acc1;", out y); CudaAsm.Emit("mov.f32 %0, acc2;", out z); CudaAsm.Emit("mov.f32 %0, acc3;", out w);
            c.C00 = new F4 { X = x, Y = y, Z = z, W = w };
            CudaAsm.Emit("mov.f32 %0, acc4;", out x); CudaAsm.Emit("mov.f32 %0, acc5;", out y); CudaAsm.Emit("mov.f32 %0, acc6;", out z); CudaAsm.Emit("mov.f32 %0, acc7;", out w);
            c.C01 = new F4 { X = x, Y = y, Z = z, W = w };
            CudaAsm.Emit("mov.f32 %0, acc8;", out x); CudaAsm.Emit("mov.f32 %0, acc9;", out y); CudaAsm.Emit("mov.f32 %0, acc10;", out z); CudaAsm.Emit("mov.f32 %0, acc11;", out w);
            c.C02 = new F4 { X = x, Y = y, Z = z, W = w };
            CudaAsm.Emit("mov.f32 %0, acc12;", out x); CudaAsm.Emit("mov.f32 %0, acc13;", out y); CudaAsm.Emit("mov.f32 %0, acc14;", out z); CudaAsm.Emit("mov.f32 %0, acc15;", out w);
            c.C03 = new F4 { X = x, Y = y, Z = z, W = w };
            CudaAsm.Emit("mov.f32 %0, acc16;", out x); CudaAsm.Emit("mov.f32 %0, acc17;", out y); CudaAsm.Emit("mov.f32 %0, acc18;", out z); CudaAsm.Emit("mov.f32 %0, acc19;", out w);
            c.C04 = new F4 { X = x, Y = y, Z = z, W = w };
            CudaAsm.Emit("mov.f32 %0, acc20;", out x); CudaAsm.Emit("mov.f32 %0, acc21;", out y); CudaAsm.Emit("mov.f32 %0, acc22;", out z); CudaAsm.Emit("mov.f32 %0, acc23;", out w);
            c.C05 = new F4 { X = x, Y = y, Z = z, W = w };
            CudaAsm.Emit("mov.f32 %0, acc24;", out x); CudaAsm.Emit("mov.f32 %0, acc25;", out y); CudaAsm.Emit("mov.f32 %0, acc26;", out z); CudaAsm.Emit("mov.f32 %0, acc27;", out w);
            c.C06 = new F4 { X = x, Y = y, Z = z, W = w };
            CudaAsm.Emit("mov.f32 %0, acc28;", out x); CudaAsm.Emit("mov.f32 %0, acc29;", out y); CudaAsm.Emit("mov.f32 %0, acc30;", out z); CudaAsm.Emit("mov.f32 %0, acc31;", out w);
            c.C07 = new F4 { X = x, Y = y, Z = z, W = w };
            CudaAsm.Emit("mov.f32 %0, acc32;", out x); CudaAsm.Emit("mov.f32 %0, acc33;", out y); CudaAsm.Emit("mov.f32 %0, acc34;", out z); CudaAsm.Emit("mov.f32 %0, acc35;", out w);
            c.C10 = new F4 { X = x, Y = y, Z = z, W = w };
            CudaAsm.Emit("mov.f32 %0, acc36;", out x); CudaAsm.Emit("mov.f32 %0, acc37;", out y); CudaAsm.Emit("mov.f32 %0, acc38;", out z); CudaAsm.Emit("mov.f32 %0, acc39;", out w);
            c.C11 = new F4 { X = x, Y = y, Z = z, W = w };
            CudaAsm.Emit("mov.f32 %0, acc40;", out x); CudaAsm.Emit("mov.f32 %0, acc41;", out y); CudaAsm.Emit("mov.f32 %0, acc42;", out z); CudaAsm.Emit("mov.f32 %0, acc43;", out w);
            c.C12 = new F4 { X = x, Y = y, Z = z, W = w };
            CudaAsm.Emit("mov.f32 %0, acc44;", out x); CudaAsm.Emit("mov.f32 %0, acc45;", out y); CudaAsm.Emit("mov.f32 %0, acc46;", out z); CudaAsm.Emit("mov.f32 %0, acc47;", out w);
            c.C13 = new F4 { X = x, Y = y, Z = z, W = w };
            CudaAsm.Emit("mov.f32 %0, acc48;", out x); CudaAsm.Emit("mov.f32 %0, acc49;", out y); CudaAsm.Emit("mov.f32 %0, acc50;", out z); CudaAsm.Emit("mov.f32 %0, acc51;", out w);
            c.C14 = new F4 { X = x, Y = y, Z = z, W = w };
            CudaAsm.Emit("mov.f32 %0, acc52;", out x); CudaAsm.Emit("mov.f32 %0, acc53;", out y); CudaAsm.Emit("mov.f32 %0, acc54;", out z); CudaAsm.Emit("mov.f32 %0, acc55;", out w);
            c.C15 = new F4 { X = x, Y = y, Z = z, W = w };
            CudaAsm.Emit("mov.f32 %0, acc56;", out x); CudaAsm.Emit("mov.f32 %0, acc57;", out y); CudaAsm.Emit("mov.f32 %0, acc58;", out z); CudaAsm.Emit("mov.f32 %0, acc59;", out w);
            c.C16 = new F4 { X = x, Y = y, Z = z, W = w };
            CudaAsm.Emit("mov.f32 %0, acc60;", out x); CudaAsm.Emit("mov.f32 %0, acc61;", out y); CudaAsm.Emit("mov.f32 %0, acc62;", out z); CudaAsm.Emit("mov.f32 %0, acc63;", out w);
            c.C17 = new F4 { X = x, Y = y, Z = z, W = w };
            CudaAsm.Emit("mov.f32 %0, acc64;", out x); CudaAsm.Emit("mov.f32 %0, acc65;", out y); CudaAsm.Emit("mov.f32 %0, acc66;", out z); CudaAsm.Emit("mov.f32 %0, acc67;", out w);
            c.C20 = new F4 { X = x, Y = y, Z = z, W = w };
            CudaAsm.Emit("mov.f32 %0, acc68;", out x); CudaAsm.Emit("mov.f32 %0, acc69;", out y); CudaAsm.Emit("mov.f32 %0, acc70;", out z); CudaAsm.Emit("mov.f32 %0, acc71;", out w);
            c.C21 = new F4 { X = x, Y = y, Z = z, W = w };
            CudaAsm.Emit("mov.f32 %0, acc72;", out x); CudaAsm.Emit("mov.f32 %0, acc73;", out y); CudaAsm.Emit("mov.f32 %0, acc74;", out z); CudaAsm.Emit("mov.f32 %0, acc75;", out w);
            c.C22 = new F4 { X = x, Y = y, Z = z, W = w };
            CudaAsm.Emit("mov.f32 %0, acc76;", out x); CudaAsm.Emit("mov.f32 %0, acc77;", out y); CudaAsm.Emit("mov.f32 %0, acc78;", out z); CudaAsm.Emit("mov.f32 %0, acc79;", out w);
            c.C23 = new F4 { X = x, Y = y, Z = z, W = w };
            CudaAsm.Emit("mov.f32 %0, acc80;", out x); CudaAsm.Emit("mov.f32 %0, acc81;", out y); CudaAsm.Emit("mov.f32 %0, acc82;", out z); CudaAsm.Emit("mov.f32 %0, acc83;", out w);
            c.C24 = new F4 { X = x, Y = y, Z = z, W = w };
            CudaAsm.Emit("mov.f32 %0, acc84;", out x); CudaAsm.Emit("mov.f32 %0, acc85;", out y); CudaAsm.Emit("mov.f32 %0, acc86;", out z); CudaAsm.Emit("mov.f32 %0, acc87;", out w);
            c.C25 = new F4 { X = x, Y = y, Z = z, W = w };
            CudaAsm.Emit("mov.f32 %0, acc88;", out x); CudaAsm.Emit("mov.f32 %0, acc89;", out y); CudaAsm.Emit("mov.f32 %0, acc90;", out z); CudaAsm.Emit("mov.f32 %0, acc91;", out w);
            c.C26 = new F4 { X = x, Y = y, Z = z, W = w };
            CudaAsm.Emit("mov.f32 %0, acc92;", out x); CudaAsm.Emit("mov.f32 %0, acc93;", out y); CudaAsm.Emit("mov.f32 %0, acc94;", out z); CudaAsm.Emit("mov.f32 %0, acc95;", out w);
            c.C27 = new F4 { X = x, Y = y, Z = z, W = w };
            CudaAsm.Emit("mov.f32 %0, acc96;", out x); CudaAsm.Emit("mov.f32 %0, acc97;", out y); CudaAsm.Emit("mov.f32 %0, acc98;", out z); CudaAsm.Emit("mov.f32 %0, acc99;", out w);
            c.C30 = new F4 { X = x, Y = y, Z = z, W = w };
            CudaAsm.Emit("mov.f32 %0, acc100;", out x); CudaAsm.Emit("mov.f32 %0, acc101;", out y); CudaAsm.Emit("mov.f32 %0, acc102;", out z); CudaAsm.Emit("mov.f32 %0, acc103;", out w);
            c.C31 = new F4 { X = x, Y = y, Z = z, W = w };
            CudaAsm.Emit("mov.f32 %0, acc104;", out x); CudaAsm.Emit("mov.f32 %0, acc105;", out y); CudaAsm.Emit("mov.f32 %0, acc106;", out z); CudaAsm.Emit("mov.f32 %0, acc107;", out w);
            c.C32 = new F4 { X = x, Y = y, Z = z, W = w };
            CudaAsm.Emit("mov.f32 %0, acc108;", out x); CudaAsm.Emit("mov.f32 %0, acc109;", out y); CudaAsm.Emit("mov.f32 %0, acc110;", out z); CudaAsm.Emit("mov.f32 %0, acc111;", out w);
            c.C33 = new F4 { X = x, Y = y, Z = z, W = w };
            CudaAsm.Emit("mov.f32 %0, acc112;", out x); CudaAsm.Emit("mov.f32 %0, acc113;", out y); CudaAsm.Emit("mov.f32 %0, acc114;", out z); CudaAsm.Emit("mov.f32 %0, acc115;", out w);
            c.C34 = new F4 { X = x, Y = y, Z = z, W = w };
            CudaAsm.Emit("mov.f32 %0, acc116;", out x); CudaAsm.Emit("mov.f32 %0, acc117;", out y); CudaAsm.Emit("mov.f32 %0, acc118;", out z); CudaAsm.Emit("mov.f32 %0, acc119;", out w);
            c.C35 = new F4 { X = x, Y = y, Z = z, W = w };
            CudaAsm.Emit("mov.f32 %0, acc120;", out x); CudaAsm.Emit("mov.f32 %0, acc121;", out y); CudaAsm.Emit("mov.f32 %0, acc122;", out z); CudaAsm.Emit("mov.f32 %0, acc123;", out w);
            c.C36 = new F4 { X = x, Y = y, Z = z, W = w };
            CudaAsm.Emit("mov.f32 %0, acc124;", out x); CudaAsm.Emit("mov.f32 %0, acc125;", out y); CudaAsm.Emit("mov.f32 %0, acc126;", out z); CudaAsm.Emit("mov.f32 %0, acc127;", out w);
            c.C37 = new F4 { X = x, Y = y, Z = z, W = w };
            return c;
        }
    }

    /// <summary>The same steps on C# values: warp shuffles for ldmatrix and mma, copies done at once.</summary>
    public readonly struct Emulated : IPath
    {
        public int ChunkElements() => 8;
        public Half Round(float value) => default(HalfConversion.PortableRounding).Round(value);
        public void Begin() { }
        public uint SharedBase() => 0;
        public void CopyAsync(ArrayView<uint> shared, uint sharedBase, int word, ArrayView<U4> global, long globalAddress, int index, bool valid) =>
            shared.Cast<U4>()[word >> 2] = valid ? global[index] : default;
        public void CommitCopies() { }
        public void WaitAllButNewestCopies() { }

        public Accumulators MultiplyStep(Accumulators c, ArrayView<uint> shared, uint sharedBase, int a0, int a1, int a2, int a3, int b0, int b1, int b2, int b3) =>
            Step(c, shared, a0, a1, a2, a3, b0, b1, b2, b3, tf32: false);

        /// <summary>The emulated step: fp16 mma, or 3xTF32 (see <see cref="TensorCore.EmulatedMma"/>).</summary>
        public static Accumulators Step(Accumulators c, ArrayView<uint> shared, int a0, int a1, int a2, int a3, int b0, int b1, int b2, int b3, bool tf32)
        {
            U4 x0 = TensorCore.EmulatedLoadMatrices(shared, a0), x1 = TensorCore.EmulatedLoadMatrices(shared, a1);
            U4 x2 = TensorCore.EmulatedLoadMatrices(shared, a2), x3 = TensorCore.EmulatedLoadMatrices(shared, a3);
            U4 w01 = TensorCore.EmulatedLoadMatrices(shared, b0), w23 = TensorCore.EmulatedLoadMatrices(shared, b1);
            U4 w45 = TensorCore.EmulatedLoadMatrices(shared, b2), w67 = TensorCore.EmulatedLoadMatrices(shared, b3);
            U2 w0 = new() { X = w01.X, Y = w01.Y }, w1 = new() { X = w01.Z, Y = w01.W };
            U2 w2 = new() { X = w23.X, Y = w23.Y }, w3 = new() { X = w23.Z, Y = w23.W };
            U2 w4 = new() { X = w45.X, Y = w45.Y }, w5 = new() { X = w45.Z, Y = w45.W };
            U2 w6 = new() { X = w67.X, Y = w67.Y }, w7 = new() { X = w67.Z, Y = w67.W };
            c.C00 = Mma(c.C00, x0, w0, tf32); c.C01 = Mma(c.C01, x0, w1, tf32); c.C02 = Mma(c.C02, x0, w2, tf32); c.C03 = Mma(c.C03, x0, w3, tf32);
            c.C04 = Mma(c.C04, x0, w4, tf32); c.C05 = Mma(c.C05, x0, w5, tf32); c.C06 = Mma(c.C06, x0, w6, tf32); c.C07 = Mma(c.C07, x0, w7, tf32);
            c.C10 = Mma(c.C10, x1, w0, tf32); c.C11 = Mma(c.C11, x1, w1, tf32); c.C12 = Mma(c.C12, x1, w2, tf32); c.C13 = Mma(c.C13, x1, w3, tf32);
            c.C14 = Mma(c.C14, x1, w4, tf32); c.C15 = Mma(c.C15, x1, w5, tf32); c.C16 = Mma(c.C16, x1, w6, tf32); c.C17 = Mma(c.C17, x1, w7, tf32);
            c.C20 = Mma(c.C20, x2, w0, tf32); c.C21 = Mma(c.C21, x2, w1, tf32); c.C22 = Mma(c.C22, x2, w2, tf32); c.C23 = Mma(c.C23, x2, w3, tf32);
            c.C24 = Mma(c.C24, x2, w4, tf32); c.C25 = Mma(c.C25, x2, w5, tf32); c.C26 = Mma(c.C26, x2, w6, tf32); c.C27 = Mma(c.C27, x2, w7, tf32);
            c.C30 = Mma(c.C30, x3, w0, tf32); c.C31 = Mma(c.C31, x3, w1, tf32); c.C32 = Mma(c.C32, x3, w2, tf32); c.C33 = Mma(c.C33, x3, w3, tf32);
            c.C34 = Mma(c.C34, x3, w4, tf32); c.C35 = Mma(c.C35, x3, w5, tf32); c.C36 = Mma(c.C36, x3, w6, tf32); c.C37 = Mma(c.C37, x3, w7, tf32);
            return c;
        }

        private static F4 Mma(F4 c, U4 a, U2 b, bool tf32) => TensorCore.EmulatedMma(c, a, b, tf32);

        public Accumulators Finish(Accumulators c) => c;
    }

    /// <summary>
    /// fp32 x and W on tensor cores, as accurate as an fp32 GEMM: each value v splits into big = tf32(v)
    /// and small = tf32(v - big) (tf32: 10 mantissa bits), and each product is big x big + big x small
    /// + small x big (<c>mma.sync.aligned.m16n8k8 .tf32</c>, small terms first), which leaves out only
    /// small x small, about 2^-22 of it. Same staging and fragments as fp16 with 4 floats per chunk.
    /// </summary>
    public readonly struct PtxTf32x3 : IPath
    {
        /// <summary>Every B fragment word into its big (bh) and small (bl) parts.</summary>
        private const string SplitB =
            "cvt.rna.tf32.f32 bh0, fb0; sub.f32 rest, fb0, bh0; cvt.rna.tf32.f32 bl0, rest;" +
            "cvt.rna.tf32.f32 bh1, fb1; sub.f32 rest, fb1, bh1; cvt.rna.tf32.f32 bl1, rest;" +
            "cvt.rna.tf32.f32 bh2, fb2; sub.f32 rest, fb2, bh2; cvt.rna.tf32.f32 bl2, rest;" +
            "cvt.rna.tf32.f32 bh3, fb3; sub.f32 rest, fb3, bh3; cvt.rna.tf32.f32 bl3, rest;" +
            "cvt.rna.tf32.f32 bh4, fb4; sub.f32 rest, fb4, bh4; cvt.rna.tf32.f32 bl4, rest;" +
            "cvt.rna.tf32.f32 bh5, fb5; sub.f32 rest, fb5, bh5; cvt.rna.tf32.f32 bl5, rest;" +
            "cvt.rna.tf32.f32 bh6, fb6; sub.f32 rest, fb6, bh6; cvt.rna.tf32.f32 bl6, rest;" +
            "cvt.rna.tf32.f32 bh7, fb7; sub.f32 rest, fb7, bh7; cvt.rna.tf32.f32 bl7, rest;" +
            "cvt.rna.tf32.f32 bh8, fb8; sub.f32 rest, fb8, bh8; cvt.rna.tf32.f32 bl8, rest;" +
            "cvt.rna.tf32.f32 bh9, fb9; sub.f32 rest, fb9, bh9; cvt.rna.tf32.f32 bl9, rest;" +
            "cvt.rna.tf32.f32 bh10, fb10; sub.f32 rest, fb10, bh10; cvt.rna.tf32.f32 bl10, rest;" +
            "cvt.rna.tf32.f32 bh11, fb11; sub.f32 rest, fb11, bh11; cvt.rna.tf32.f32 bl11, rest;" +
            "cvt.rna.tf32.f32 bh12, fb12; sub.f32 rest, fb12, bh12; cvt.rna.tf32.f32 bl12, rest;" +
            "cvt.rna.tf32.f32 bh13, fb13; sub.f32 rest, fb13, bh13; cvt.rna.tf32.f32 bl13, rest;" +
            "cvt.rna.tf32.f32 bh14, fb14; sub.f32 rest, fb14, bh14; cvt.rna.tf32.f32 bl14, rest;" +
            "cvt.rna.tf32.f32 bh15, fb15; sub.f32 rest, fb15, bh15; cvt.rna.tf32.f32 bl15, rest;";

        /// <summary>Per A fragment: its four words split into ah and al, then its 8 tiles. Splitting A one
        /// fragment at a time keeps 8 registers for its parts instead of 32.</summary>
        private const string SplitAAndMultiply =
            // A fragment 0: its big and small parts, then its 8 tiles, small products first.
            "cvt.rna.tf32.f32 ah0, fa0; sub.f32 rest, fa0, ah0; cvt.rna.tf32.f32 al0, rest; cvt.rna.tf32.f32 ah1, fa1; sub.f32 rest, fa1, ah1; cvt.rna.tf32.f32 al1, rest;" +
            "cvt.rna.tf32.f32 ah2, fa2; sub.f32 rest, fa2, ah2; cvt.rna.tf32.f32 al2, rest; cvt.rna.tf32.f32 ah3, fa3; sub.f32 rest, fa3, ah3; cvt.rna.tf32.f32 al3, rest;" +
            "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {acc0,acc1,acc2,acc3}, {al0,al1,al2,al3}, {bh0,bh1}, {acc0,acc1,acc2,acc3}; mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {acc0,acc1,acc2,acc3}, {ah0,ah1,ah2,ah3}, {bl0,bl1}, {acc0,acc1,acc2,acc3}; mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {acc0,acc1,acc2,acc3}, {ah0,ah1,ah2,ah3}, {bh0,bh1}, {acc0,acc1,acc2,acc3};" +
            "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {acc4,acc5,acc6,acc7}, {al0,al1,al2,al3}, {bh2,bh3}, {acc4,acc5,acc6,acc7}; mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {acc4,acc5,acc6,acc7}, {ah0,ah1,ah2,ah3}, {bl2,bl3}, {acc4,acc5,acc6,acc7}; mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {acc4,acc5,acc6,acc7}, {ah0,ah1,ah2,ah3}, {bh2,bh3}, {acc4,acc5,acc6,acc7};" +
            "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {acc8,acc9,acc10,acc11}, {al0,al1,al2,al3}, {bh4,bh5}, {acc8,acc9,acc10,acc11}; mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {acc8,acc9,acc10,acc11}, {ah0,ah1,ah2,ah3}, {bl4,bl5}, {acc8,acc9,acc10,acc11}; mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {acc8,acc9,acc10,acc11}, {ah0,ah1,ah2,ah3}, {bh4,bh5}, {acc8,acc9,acc10,acc11};" +
            "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {acc12,acc13,acc14,acc15}, {al0,al1,al2,al3}, {bh6,bh7}, {acc12,acc13,acc14,acc15}; mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {acc12,acc13,acc14,acc15}, {ah0,ah1,ah2,ah3}, {bl6,bl7}, {acc12,acc13,acc14,acc15}; mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {acc12,acc13,acc14,acc15}, {ah0,ah1,ah2,ah3}, {bh6,bh7}, {acc12,acc13,acc14,acc15};" +
            "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {acc16,acc17,acc18,acc19}, {al0,al1,al2,al3}, {bh8,bh9}, {acc16,acc17,acc18,acc19}; mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {acc16,acc17,acc18,acc19}, {ah0,ah1,ah2,ah3}, {bl8,bl9}, {acc16,acc17,acc18,acc19}; mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {acc16,acc17,acc18,acc19}, {ah0,ah1,ah2,ah3}, {bh8,bh9}, {acc16,acc17,acc18,acc19};" +
            "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {acc20,acc21,acc22,acc23}, {al0,al1,al2,al3}, {bh10,bh11}, {acc20,acc21,acc22,acc23}; mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {acc20,acc21,acc22,acc23}, {ah0,ah1,ah2,ah3}, {bl10,bl11}, {acc20,acc21,acc22,acc23}; mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {acc20,acc21,acc22,acc23}, {ah0,ah1,ah2,ah3}, {bh10,bh11}, {acc20,acc21,acc22,acc23};" +
            "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {acc24,acc25,acc26,acc27}, {al0,al1,al2,al3}, {bh12,bh13}, {acc24,acc25,acc26,acc27}; mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {acc24,acc25,acc26,acc27}, {ah0,ah1,ah2,ah3}, {bl12,bl13}, {acc24,acc25,acc26,acc27}; mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {acc24,acc25,acc26,acc27}, {ah0,ah1,ah2,ah3}, {bh12,bh13}, {acc24,acc25,acc26,acc27};" +
            "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {acc28,acc29,acc30,acc31}, {al0,al1,al2,al3}, {bh14,bh15}, {acc28,acc29,acc30,acc31}; mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {acc28,acc29,acc30,acc31}, {ah0,ah1,ah2,ah3}, {bl14,bl15}, {acc28,acc29,acc30,acc31}; mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {acc28,acc29,acc30,acc31}, {ah0,ah1,ah2,ah3}, {bh14,bh15}, {acc28,acc29,acc30,acc31};" +
            // A fragment 1: its big and small parts, then its 8 tiles, small products first.
            "cvt.rna.tf32.f32 ah0, fa4; sub.f32 rest, fa4, ah0; cvt.rna.tf32.f32 al0, rest; cvt.rna.tf32.f32 ah1, fa5; sub.f32 rest, fa5, ah1; cvt.rna.tf32.f32 al1, rest;" +
            "cvt.rna.tf32.f32 ah2, fa6; sub.f32 rest, fa6, ah2; cvt.rna.tf32.f32 al2, rest; cvt.rna.tf32.f32 ah3, fa7; sub.f32 rest, fa7, ah3; cvt.rna.tf32.f32 al3, rest;" +
            "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {acc32,acc33,acc34,acc35}, {al0,al1,al2,al3}, {bh0,bh1}, {acc32,acc33,acc34,acc35}; mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {acc32,acc33,acc34,acc35}, {ah0,ah1,ah2,ah3}, {bl0,bl1}, {acc32,acc33,acc34,acc35}; mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {acc32,acc33,acc34,acc35}, {ah0,ah1,ah2,ah3}, {bh0,bh1}, {acc32,acc33,acc34,acc35};" +
            "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {acc36,acc37,acc38,acc39}, {al0,al1,al2,al3}, {bh2,bh3}, {acc36,acc37,acc38,acc39}; mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {acc36,acc37,acc38,acc39}, {ah0,ah1,ah2,ah3}, {bl2,bl3}, {acc36,acc37,acc38,acc39}; mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {acc36,acc37,acc38,acc39}, {ah0,ah1,ah2,ah3}, {bh2,bh3}, {acc36,acc37,acc38,acc39};" +
            "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {acc40,acc41,acc42,acc43}, {al0,al1,al2,al3}, {bh4,bh5}, {acc40,acc41,acc42,acc43}; mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {acc40,acc41,acc42,acc43}, {ah0,ah1,ah2,ah3}, {bl4,bl5}, {acc40,acc41,acc42,acc43}; mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {acc40,acc41,acc42,acc43}, {ah0,ah1,ah2,ah3}, {bh4,bh5}, {acc40,acc41,acc42,acc43};" +
            "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {acc44,acc45,acc46,acc47}, {al0,al1,al2,al3}, {bh6,bh7}, {acc44,acc45,acc46,acc47}; mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {acc44,acc45,acc46,acc47}, {ah0,ah1,ah2,ah3}, {bl6,bl7}, {acc44,acc45,acc46,acc47}; mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {acc44,acc45,acc46,acc47}, {ah0,ah1,ah2,ah3}, {bh6,bh7}, {acc44,acc45,acc46,acc47};" +
            "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {acc48,acc49,acc50,acc51}, {al0,al1,al2,al3}, {bh8,bh9}, {acc48,acc49,acc50,acc51}; mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {acc48,acc49,acc50,acc51}, {ah0,ah1,ah2,ah3}, {bl8,bl9}, {acc48,acc49,acc50,acc51}; mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {acc48,acc49,acc50,acc51}, {ah0,ah1,ah2,ah3}, {bh8,bh9}, {acc48,acc49,acc50,acc51};" +
            "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {acc52,acc53,acc54,acc55}, {al0,al1,al2,al3}, {bh10,bh11}, {acc52,acc53,acc54,acc55}; mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {acc52,acc53,acc54,acc55}, {ah0,ah1,ah2,ah3}, {bl10,bl11}, {acc52,acc53,acc54,acc55}; mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {acc52,acc53,acc54,acc55}, {ah0,ah1,ah2,ah3}, {bh10,bh11}, {acc52,acc53,acc54,acc55};" +
            "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {acc56,acc57,acc58,acc59}, {al0,al1,al2,al3}, {bh12,bh13}, {acc56,acc57,acc58,acc59}; mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {acc56,acc57,acc58,acc59}, {ah0,ah1,ah2,ah3}, {bl12,bl13}, {acc56,acc57,acc58,acc59}; mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {acc56,acc57,acc58,acc59}, {ah0,ah1,ah2,ah3}, {bh12,bh13}, {acc56,acc57,acc58,acc59};" +
            "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {acc60,acc61,acc62,acc63}, {al0,al1,al2,al3}, {bh14,bh15}, {acc60,acc61,acc62,acc63}; mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {acc60,acc61,acc62,acc63}, {ah0,ah1,ah2,ah3}, {bl14,bl15}, {acc60,acc61,acc62,acc63}; mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {acc60,acc61,acc62,acc63}, {ah0,ah1,ah2,ah3}, {bh14,bh15}, {acc60,acc61,acc62,acc63};" +
            // A fragment 2: its big and small parts, then its 8 tiles, small products first.
            "cvt.rna.tf32.f32 ah0, fa8; sub.f32 rest, fa8, ah0; cvt.rna.tf32.f32 al0, rest; cvt.rna.tf32.f32 ah1, fa9; sub.f32 rest, fa9, ah1; cvt.rna.tf32.f32 al1, rest;" +
            "cvt.rna.tf32.f32 ah2, fa10; sub.f32 rest, fa10, ah2; cvt.rna.tf32.f32 al2, rest; cvt.rna.tf32.f32 ah3, fa11; sub.f32 rest, fa11, ah3; cvt.rna.tf32.f32 al3, rest;" +
            "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {acc64,acc65,acc66,acc67}, {al0,al1,al2,al3}, {bh0,bh1}, {acc64,acc65,acc66,acc67}; mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {acc64,acc65,acc66,acc67}, {ah0,ah1,ah2,ah3}, {bl0,bl1}, {acc64,acc65,acc66,acc67}; mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {acc64,acc65,acc66,acc67}, {ah0,ah1,ah2,ah3}, {bh0,bh1}, {acc64,acc65,acc66,acc67};" +
            "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {acc68,acc69,acc70,acc71}, {al0,al1,al2,al3}, {bh2,bh3}, {acc68,acc69,acc70,acc71}; mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {acc68,acc69,acc70,acc71}, {ah0,ah1,ah2,ah3}, {bl2,bl3}, {acc68,acc69,acc70,acc71}; mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {acc68,acc69,acc70,acc71}, {ah0,ah1,ah2,ah3}, {bh2,bh3}, {acc68,acc69,acc70,acc71};" +
            "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {acc72,acc73,acc74,acc75}, {al0,al1,al2,al3}, {bh4,bh5}, {acc72,acc73,acc74,acc75}; mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {acc72,acc73,acc74,acc75}, {ah0,ah1,ah2,ah3}, {bl4,bl5}, {acc72,acc73,acc74,acc75}; mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {acc72,acc73,acc74,acc75}, {ah0,ah1,ah2,ah3}, {bh4,bh5}, {acc72,acc73,acc74,acc75};" +
            "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {acc76,acc77,acc78,acc79}, {al0,al1,al2,al3}, {bh6,bh7}, {acc76,acc77,acc78,acc79}; mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {acc76,acc77,acc78,acc79}, {ah0,ah1,ah2,ah3}, {bl6,bl7}, {acc76,acc77,acc78,acc79}; mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {acc76,acc77,acc78,acc79}, {ah0,ah1,ah2,ah3}, {bh6,bh7}, {acc76,acc77,acc78,acc79};" +
            "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {acc80,acc81,acc82,acc83}, {al0,al1,al2,al3}, {bh8,bh9}, {acc80,acc81,acc82,acc83}; mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {acc80,acc81,acc82,acc83}, {ah0,ah1,ah2,ah3}, {bl8,bl9}, {acc80,acc81,acc82,acc83}; mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {acc80,acc81,acc82,acc83}, {ah0,ah1,ah2,ah3}, {bh8,bh9}, {acc80,acc81,acc82,acc83};" +
            "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {acc84,acc85,acc86,acc87}, {al0,al1,al2,al3}, {bh10,bh11}, {acc84,acc85,acc86,acc87}; mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {acc84,acc85,acc86,acc87}, {ah0,ah1,ah2,ah3}, {bl10,bl11}, {acc84,acc85,acc86,acc87}; mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {acc84,acc85,acc86,acc87}, {ah0,ah1,ah2,ah3}, {bh10,bh11}, {acc84,acc85,acc86,acc87};" +
            "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {acc88,acc89,acc90,acc91}, {al0,al1,al2,al3}, {bh12,bh13}, {acc88,acc89,acc90,acc91}; mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {acc88,acc89,acc90,acc91}, {ah0,ah1,ah2,ah3}, {bl12,bl13}, {acc88,acc89,acc90,acc91}; mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {acc88,acc89,acc90,acc91}, {ah0,ah1,ah2,ah3}, {bh12,bh13}, {acc88,acc89,acc90,acc91};" +
            "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {acc92,acc93,acc94,acc95}, {al0,al1,al2,al3}, {bh14,bh15}, {acc92,acc93,acc94,acc95}; mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {acc92,acc93,acc94,acc95}, {ah0,ah1,ah2,ah3}, {bl14,bl15}, {acc92,acc93,acc94,acc95}; mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {acc92,acc93,acc94,acc95}, {ah0,ah1,ah2,ah3}, {bh14,bh15}, {acc92,acc93,acc94,acc95};" +
            // A fragment 3: its big and small parts, then its 8 tiles, small products first.
            "cvt.rna.tf32.f32 ah0, fa12; sub.f32 rest, fa12, ah0; cvt.rna.tf32.f32 al0, rest; cvt.rna.tf32.f32 ah1, fa13; sub.f32 rest, fa13, ah1; cvt.rna.tf32.f32 al1, rest;" +
            "cvt.rna.tf32.f32 ah2, fa14; sub.f32 rest, fa14, ah2; cvt.rna.tf32.f32 al2, rest; cvt.rna.tf32.f32 ah3, fa15; sub.f32 rest, fa15, ah3; cvt.rna.tf32.f32 al3, rest;" +
            "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {acc96,acc97,acc98,acc99}, {al0,al1,al2,al3}, {bh0,bh1}, {acc96,acc97,acc98,acc99}; mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {acc96,acc97,acc98,acc99}, {ah0,ah1,ah2,ah3}, {bl0,bl1}, {acc96,acc97,acc98,acc99}; mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {acc96,acc97,acc98,acc99}, {ah0,ah1,ah2,ah3}, {bh0,bh1}, {acc96,acc97,acc98,acc99};" +
            "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {acc100,acc101,acc102,acc103}, {al0,al1,al2,al3}, {bh2,bh3}, {acc100,acc101,acc102,acc103}; mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {acc100,acc101,acc102,acc103}, {ah0,ah1,ah2,ah3}, {bl2,bl3}, {acc100,acc101,acc102,acc103}; mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {acc100,acc101,acc102,acc103}, {ah0,ah1,ah2,ah3}, {bh2,bh3}, {acc100,acc101,acc102,acc103};" +
            "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {acc104,acc105,acc106,acc107}, {al0,al1,al2,al3}, {bh4,bh5}, {acc104,acc105,acc106,acc107}; mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {acc104,acc105,acc106,acc107}, {ah0,ah1,ah2,ah3}, {bl4,bl5}, {acc104,acc105,acc106,acc107}; mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {acc104,acc105,acc106,acc107}, {ah0,ah1,ah2,ah3}, {bh4,bh5}, {acc104,acc105,acc106,acc107};" +
            "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {acc108,acc109,acc110,acc111}, {al0,al1,al2,al3}, {bh6,bh7}, {acc108,acc109,acc110,acc111}; mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {acc108,acc109,acc110,acc111}, {ah0,ah1,ah2,ah3}, {bl6,bl7}, {acc108,acc109,acc110,acc111}; mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {acc108,acc109,acc110,acc111}, {ah0,ah1,ah2,ah3}, {bh6,bh7}, {acc108,acc109,acc110,acc111};" +
            "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {acc112,acc113,acc114,acc115}, {al0,al1,al2,al3}, {bh8,bh9}, {acc112,acc113,acc114,acc115}; mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {acc112,acc113,acc114,acc115}, {ah0,ah1,ah2,ah3}, {bl8,bl9}, {acc112,acc113,acc114,acc115}; mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {acc112,acc113,acc114,acc115}, {ah0,ah1,ah2,ah3}, {bh8,bh9}, {acc112,acc113,acc114,acc115};" +
            "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {acc116,acc117,acc118,acc119}, {al0,al1,al2,al3}, {bh10,bh11}, {acc116,acc117,acc118,acc119}; mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {acc116,acc117,acc118,acc119}, {ah0,ah1,ah2,ah3}, {bl10,bl11}, {acc116,acc117,acc118,acc119}; mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {acc116,acc117,acc118,acc119}, {ah0,ah1,ah2,ah3}, {bh10,bh11}, {acc116,acc117,acc118,acc119};" +
            "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {acc120,acc121,acc122,acc123}, {al0,al1,al2,al3}, {bh12,bh13}, {acc120,acc121,acc122,acc123}; mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {acc120,acc121,acc122,acc123}, {ah0,ah1,ah2,ah3}, {bl12,bl13}, {acc120,acc121,acc122,acc123}; mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {acc120,acc121,acc122,acc123}, {ah0,ah1,ah2,ah3}, {bh12,bh13}, {acc120,acc121,acc122,acc123};" +
            "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {acc124,acc125,acc126,acc127}, {al0,al1,al2,al3}, {bh14,bh15}, {acc124,acc125,acc126,acc127}; mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {acc124,acc125,acc126,acc127}, {ah0,ah1,ah2,ah3}, {bl14,bl15}, {acc124,acc125,acc126,acc127}; mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {acc124,acc125,acc126,acc127}, {ah0,ah1,ah2,ah3}, {bh14,bh15}, {acc124,acc125,acc126,acc127};";

        public int ChunkElements() => 4;
        public Half Round(float value) => default(HalfConversion.CudaRounding).Round(value);
        public void Begin() => default(Ptx).Begin();
        public uint SharedBase() => TensorCore.SharedBase();
        public void CopyAsync(ArrayView<uint> shared, uint sharedBase, int word, ArrayView<U4> global, long globalAddress, int index, bool valid) =>
            default(Ptx).CopyAsync(shared, sharedBase, word, global, globalAddress, index, valid);
        public void CommitCopies() => TensorCore.CommitCopies();
        public void WaitAllButNewestCopies() => TensorCore.WaitAllButNewestCopies();

        public Accumulators MultiplyStep(Accumulators c, ArrayView<uint> shared, uint sharedBase, int a0, int a1, int a2, int a3, int b0, int b1, int b2, int b3)
        {
            Ptx.LoadFragments(sharedBase, a0, a1, a2, a3, b0, b1, b2, b3);
            CudaAsm.Emit(SplitB);
            CudaAsm.Emit(SplitAAndMultiply);
            return c;
        }

        public Accumulators Finish(Accumulators c) => default(Ptx).Finish(c);
    }

    /// <summary>The 3xTF32 step emulated.</summary>
    public readonly struct EmulatedTf32x3 : IPath
    {
        public int ChunkElements() => 4;
        public Half Round(float value) => default(HalfConversion.PortableRounding).Round(value);
        public void Begin() { }
        public uint SharedBase() => 0;
        public void CopyAsync(ArrayView<uint> shared, uint sharedBase, int word, ArrayView<U4> global, long globalAddress, int index, bool valid) =>
            default(Emulated).CopyAsync(shared, sharedBase, word, global, globalAddress, index, valid);
        public void CommitCopies() { }
        public void WaitAllButNewestCopies() { }
        public Accumulators MultiplyStep(Accumulators c, ArrayView<uint> shared, uint sharedBase, int a0, int a1, int a2, int a3, int b0, int b1, int b2, int b3) =>
            Emulated.Step(c, shared, a0, a1, a2, a3, b0, b1, b2, b3, tf32: true);
        public Accumulators Finish(Accumulators c) => c;
    }

    /// <summary>The shared word where 16-byte chunk <paramref name="chunk"/> (0..3) of tile row <paramref name="row"/> lives.</summary>
    private static int Swizzled(int row, int chunk) => row * RowWords + ((chunk ^ ((row >> 1) & 3)) << 2);

    /// <summary>
    /// Where a thread's copies and fragments are, worked out once per thread so that the K loop only adds
    /// offsets: thread e always copies chunk e % 4 of tile rows e / 4 + 32 i (i = 0..3) of x and of W, and a
    /// lane's ldmatrix rows for a step are those of step 0 with chunk bits flipped (see <see cref="MultiplyStep{TPath}"/>).
    /// The K loop went from ~410 to ~270 SASS instructions per tile (fp16 at 4096 x 4608 x 1152 on an H200:
    /// 254 -> 286 TFLOP/s, BENCHMARKS.md).
    /// </summary>
    internal struct Placement
    {
        /// <summary>The K chunk (of a tile) and first tile row the thread copies, and that row's shared word.</summary>
        public int Chunk, Row, Word;
        /// <summary>The 16-byte index of the thread's first x and W chunk in K tile 0.</summary>
        public int XIndex, WIndex;
        /// <summary>The lane's ldmatrix words for step 0 of stage 0: A rows (fragment 0) and B rows (fragments 0, 1).</summary>
        public int AWord, BWord;
    }

    /// <summary>The thread's placement when it copies K chunk <paramref name="chunk"/> of tile row <paramref name="row"/>
    /// (and the rows a pass further on).</summary>
    internal static Placement Place<TPath>(Args a, int m0, int n0, int warpRow, int warpCol, int chunk, int row) where TPath : struct, IStagePath
    {
        int kChunks = a.K / default(TPath).ChunkElements();
        int lane = Warp.LaneIdx;
        int matrix = lane >> 3, r = lane & 7;
        // x: matrices (rows 0-7 | 8-15) x (k 0-7 | 8-15) give an A fragment in order.
        int aRow = warpRow + (matrix & 1) * 8 + r;
        // W: matrices (columns 0-7 | 8-15) x (k 0-7 | 8-15) give B fragments j and j + 1.
        int bRow = warpCol + (matrix >> 1) * 8 + r;
        return new Placement
        {
            Chunk = chunk, Row = row, Word = Swizzled(row, chunk),
            XIndex = (m0 + row) * kChunks + chunk, WIndex = (n0 + row) * kChunks + chunk,
            AWord = Swizzled(aRow, matrix >> 1), BWord = TileWords + Swizzled(bRow, matrix & 1),
        };
    }

    /// <summary>Starts the copies of K tile <paramref name="tile"/> into the stage at word <paramref name="stageWord"/>
    /// (its W tile <paramref name="wWord"/> words further): each thread its chunk of 4 x rows and the first
    /// <paramref name="wPasses"/> (4 or 2) of 4 W rows, <paramref name="passRows"/> rows apart (the group's threads / 4).
    /// Both kernels' layouts give a row 16 words on average, so rows passRows apart are 16 passRows words apart.
    /// x and W rows share a loop: split in two, or unrolled, the copies took more instructions or more registers (SASS).</summary>
    internal static void StageTile<TPath>(Args a, ArrayView<uint> shared, uint sharedBase, int tile, int m0, int n0, Placement p,
        int stageWord, int wWord, int passRows, int wPasses) where TPath : struct, IStagePath
    {
        int kChunks = a.K / default(TPath).ChunkElements();
        bool inK = tile * 4 + p.Chunk < kChunks;
        int word = stageWord + p.Word;
        int x = p.XIndex + tile * 4, w = p.WIndex + tile * 4;
        for (int i = 0; i < wPasses; i++)
        {
            int row = p.Row + passRows * i, at = word + passRows * i * RowWords, offset = passRows * i * kChunks;
            default(TPath).CopyAsync(shared, sharedBase, at, a.X, a.XAddress, x + offset, inK & (m0 + row < a.M));
            default(TPath).CopyAsync(shared, sharedBase, at + wWord, a.W, a.WAddress, w + offset, inK & (n0 + row < a.N));
        }
        for (int i = wPasses; i < 4; i++)
        {
            int row = p.Row + passRows * i;
            default(TPath).CopyAsync(shared, sharedBase, word + passRows * i * RowWords, a.X, a.XAddress, x + passRows * i * kChunks, inK & (m0 + row < a.M));
        }
    }

    /// <summary>One 16-deep step (chunks 2 step and 2 step + 1 of the stage) of the warp's 64 x 64 tile.
    /// The swizzle only flips chunk bits and 2 step + (0 or 1) is 2 step ^ (0 or 1), so step 1's words are
    /// step 0's with bit 3 flipped; fragment i lies 16 i rows (with the same swizzle) below fragment 0.</summary>
    private static Accumulators MultiplyStep<TPath>(Accumulators c, ArrayView<uint> shared, uint sharedBase, int stageAt, Placement p, int step)
        where TPath : struct, IPath
    {
        int a = stageAt + (p.AWord ^ (8 * step)), b = stageAt + (p.BWord ^ (8 * step));
        const int rows16 = 16 * RowWords;
        return default(TPath).MultiplyStep(c, shared, sharedBase,
            a, a + rows16, a + 2 * rows16, a + 3 * rows16, b, b + rows16, b + 2 * rows16, b + 3 * rows16);
    }

    /// <summary>
    /// Stores one mma tile's accumulators, c.X, c.Y at (row, col), (row, col + 1) and c.Z, c.W eight rows
    /// below, with bias and epilogue; two neighbouring columns per store where y allows it. A warp whose
    /// whole tile lies inside y (<paramref name="inside"/>, the same for all its lanes) skips the bounds tests.
    /// </summary>
    private static void StoreFragment<TEpilogue, TRound>(Args a, int slice, int row, int col, F4 c, bool inside)
        where TEpilogue : struct, IEpilogue where TRound : struct, HalfConversion.IHalfRounding
    {
        if (!inside && col >= a.N) return;
        bool second = inside || col + 1 < a.N;
        float bias0 = 0f, bias1 = 0f;
        if (a.Bias.Length > 0)
        {
            bias0 = a.Bias[col];
            if (second) bias1 = a.Bias[col + 1];
        }
        StorePair<TEpilogue, TRound>(a, slice, row, col, c.X + bias0, c.Y + bias1, inside, second);
        StorePair<TEpilogue, TRound>(a, slice, row + 8, col, c.Z + bias0, c.W + bias1, inside, second);
    }

    private static void StorePair<TEpilogue, TRound>(Args a, int slice, int row, int col, float first, float second, bool inside, bool both)
        where TEpilogue : struct, IEpilogue where TRound : struct, HalfConversion.IHalfRounding
    {
        if (!inside && row >= a.M) return;
        // Split z writes its own [M, N] slice (there is one slice without split-K), raw: its finish applies the epilogue.
        int i = slice + row * a.N + col;
        if (!a.Split.Active)
        {
            first = default(TEpilogue).Apply(first);
            second = default(TEpilogue).Apply(second);
        }
        if (!both)
        {
            a.Y.Store<TRound>(i, first);
            return;
        }
        if (a.PairedStores != 0)
        {
            a.Y.StorePair<TRound>(i, first, second);
        }
        else
        {
            a.Y.Store<TRound>(i, first);
            a.Y.Store<TRound>(i + 1, second);
        }
    }

    /// <summary>
    /// Stores a thread's accumulators with bias and epilogue: tile C{i}{j} at rows row_i and row_i + 8,
    /// columns col_i + 8 j (+ 0, 1), as mma fragments lie (both kernels' accumulators have that shape).
    /// With split-K the grid's z slice writes its own [M, N] slice, raw (bias and epilogue come with the finish).
    /// </summary>
    internal static void StoreTile<TEpilogue, TRound>(Args a, Accumulators c, int row0, int row1, int row2, int row3,
        int col0, int col1, int col2, int col3, bool inside) where TEpilogue : struct, IEpilogue where TRound : struct, HalfConversion.IHalfRounding
    {
        int slice = Grid.IdxZ * a.M * a.N;
        // The common cases, a tile wholly inside y (or inside a split's slice), in straight-line stores (the checked
        // path tests each pair and recomputes its address: ~170 instructions a tile, where this takes ~10 and the
        // epilogue's, SASS).
        if (inside && a.PairedStores != 0)
        {
            var rows = new TileRows { Row0 = row0, Row1 = row1, Row2 = row2, Row3 = row3, Col0 = col0, Col1 = col1, Col2 = col2, Col3 = col3 };
            if (a.Split.Active) StoreWhole<IdentityEpilogue, FloatPairs>(a.Y.From(slice), ArrayView<float>.Empty, a.N, c, rows);
            else if (a.Y.F16.Length > 0) StoreWhole<TEpilogue, HalfPairs<TRound>>(a.Y, a.Bias, a.N, c, rows);
            else StoreWhole<TEpilogue, FloatPairs>(a.Y, a.Bias, a.N, c, rows);
            return;
        }
        // The checked path (tiles on y's edges, odd N): a loop over the 32 tiles rather than 32 copies of the checks,
        // which were most of every GEMM kernel's code (PTX and compile time) for a case whole tiles never take.
        for (int t = 0; t < 32; t++)
        {
            int i = t >> 3, offset = 8 * (t & 7);
            int row = i == 0 ? row0 : i == 1 ? row1 : i == 2 ? row2 : row3;
            int col = (i == 0 ? col0 : i == 1 ? col1 : i == 2 ? col2 : col3) + offset;
            StoreFragment<TEpilogue, TRound>(a, slice, row, col, c.Tile(t), inside);
        }
    }

    /// <summary>Where a thread's four rows of tiles start (<see cref="StoreTile{TEpilogue, TRound}"/>'s row_i, col_i).</summary>
    private struct TileRows
    {
        public int Row0, Row1, Row2, Row3, Col0, Col1, Col2, Col3;
    }

    /// <summary>Two neighbouring results, pair <c>pair</c> of y (elements 2 pair, 2 pair + 1), in one store: the output
    /// type a type argument rather than a test per store.</summary>
    private interface IPairStore
    {
        void Store(OutputView y, int pair, float first, float second);
    }

    private readonly struct HalfPairs<TRound> : IPairStore where TRound : struct, HalfConversion.IHalfRounding
    {
        public void Store(OutputView y, int pair, float first, float second) => y.StoreHalfPair<TRound>(pair, first, second);
    }

    private readonly struct FloatPairs : IPairStore
    {
        public void Store(OutputView y, int pair, float first, float second) => y.StoreFloatPair(pair, first, second);
    }

    /// <summary><see cref="StoreTile{TEpilogue, TRound}"/>'s common case: every pair inside y, stored as <typeparamref name="TPair"/>
    /// (y has <paramref name="n"/> columns; an empty bias adds nothing).</summary>
    private static void StoreWhole<TEpilogue, TPair>(OutputView y, ArrayView<float> bias, int n, Accumulators c, TileRows r)
        where TEpilogue : struct, IEpilogue where TPair : struct, IPairStore
    {
        StoreWholeRows<TEpilogue, TPair>(y, bias, n, r.Row0, r.Col0, c.C00, c.C01, c.C02, c.C03, c.C04, c.C05, c.C06, c.C07);
        StoreWholeRows<TEpilogue, TPair>(y, bias, n, r.Row1, r.Col1, c.C10, c.C11, c.C12, c.C13, c.C14, c.C15, c.C16, c.C17);
        StoreWholeRows<TEpilogue, TPair>(y, bias, n, r.Row2, r.Col2, c.C20, c.C21, c.C22, c.C23, c.C24, c.C25, c.C26, c.C27);
        StoreWholeRows<TEpilogue, TPair>(y, bias, n, r.Row3, r.Col3, c.C30, c.C31, c.C32, c.C33, c.C34, c.C35, c.C36, c.C37);
    }

    /// <summary>Tiles t0..t7 (columns col + 8 j) of rows row and row + 8: y and the bias are moved to (row, col) once,
    /// so each tile's offset is a constant in its instructions.</summary>
    private static void StoreWholeRows<TEpilogue, TPair>(OutputView y, ArrayView<float> bias, int n, int row, int col,
        F4 t0, F4 t1, F4 t2, F4 t3, F4 t4, F4 t5, F4 t6, F4 t7)
        where TEpilogue : struct, IEpilogue where TPair : struct, IPairStore
    {
        long upper = (long)row * n + col;
        OutputView above = y.From(upper), below = y.From(upper + 8L * n);
        bool biased = bias.Length > 0;
        var from = bias.SubView(biased ? col : 0);
        StoreWholeTile<TEpilogue, TPair>(above, below, from, biased, 0, t0);
        StoreWholeTile<TEpilogue, TPair>(above, below, from, biased, 1, t1);
        StoreWholeTile<TEpilogue, TPair>(above, below, from, biased, 2, t2);
        StoreWholeTile<TEpilogue, TPair>(above, below, from, biased, 3, t3);
        StoreWholeTile<TEpilogue, TPair>(above, below, from, biased, 4, t4);
        StoreWholeTile<TEpilogue, TPair>(above, below, from, biased, 5, t5);
        StoreWholeTile<TEpilogue, TPair>(above, below, from, biased, 6, t6);
        StoreWholeTile<TEpilogue, TPair>(above, below, from, biased, 7, t7);
    }

    private static void StoreWholeTile<TEpilogue, TPair>(OutputView above, OutputView below, ArrayView<float> bias, bool biased, int j, F4 t)
        where TEpilogue : struct, IEpilogue where TPair : struct, IPairStore
    {
        float bias0 = biased ? bias[8 * j] : 0f, bias1 = biased ? bias[8 * j + 1] : 0f;
        var epilogue = default(TEpilogue);
        default(TPair).Store(above, 4 * j, epilogue.Apply(t.X + bias0), epilogue.Apply(t.Y + bias1));
        default(TPair).Store(below, 4 * j, epilogue.Apply(t.Z + bias0), epilogue.Apply(t.W + bias1));
    }

    [PromoteLocalScalars]
    public static void Kernel<TEpilogue, TPath>(Args a) where TEpilogue : struct, IEpilogue where TPath : struct, IPath
    {
        // Stage s: x tile at words s * StageWords, W tile TileWords after it. One allocation of 16-byte
        // elements: TensorCore.SharedBase names it, and 16-byte alignment suits cp.async and ldmatrix.
        var shared = SharedMemory.Allocate<U4>(Stages * StageWords / 4).Cast<uint>();
        default(TPath).Begin();
        uint sharedBase = default(TPath).SharedBase();
        int warp = Group.IdxX >> 5;
        int warpRow = (warp >> 1) * 64, warpCol = (warp & 1) * 64;
        int m0 = Grid.IdxY * Tile, n0 = Grid.IdxX * Tile;
        int tileBegin = Grid.IdxZ * a.TilesPerSplit;
        int depth = 4 * default(TPath).ChunkElements();
        int tiles = Math.Min(a.TilesPerSplit, (a.K + depth - 1) / depth - tileBegin);
        var place = Place<TPath>(a, m0, n0, warpRow, warpCol, Group.IdxX & 3, Group.IdxX >> 2);

        for (int s = 0; s < Stages - 1; s++)
        {
            if (s < tiles) StageTile<TPath>(a, shared, sharedBase, tileBegin + s, m0, n0, place, s * StageWords, TileWords, 32, 4);
            default(TPath).CommitCopies();
        }
        Accumulators c = default;
        // Stages rotate: tile t is read from stage t % 3 while tile t + 2 is written to (t + 2) % 3.
        int readStage = 0, writeStage = Stages - 1;
        for (int tile = 0; tile < tiles; tile++)
        {
            // Tile `tile` has landed; every warp is done with tile - 1, whose stage the next copy reuses.
            default(TPath).WaitAllButNewestCopies();
            Group.Barrier();
            if (tile + Stages - 1 < tiles)
                StageTile<TPath>(a, shared, sharedBase, tileBegin + tile + Stages - 1, m0, n0, place, writeStage * StageWords, TileWords, 32, 4);
            // An empty group keeps the count of groups in flight the same on the last tiles.
            default(TPath).CommitCopies();
            int stageAt = readStage * StageWords;
            c = MultiplyStep<TPath>(c, shared, sharedBase, stageAt, place, 0);
            c = MultiplyStep<TPath>(c, shared, sharedBase, stageAt, place, 1);
            writeStage = readStage;
            readStage = readStage == Stages - 1 ? 0 : readStage + 1;
        }

        c = default(TPath).Finish(c);
        int lane = Warp.LaneIdx;
        int row = m0 + warpRow + (lane >> 2), col = n0 + warpCol + 2 * (lane & 3);
        bool inside = m0 + warpRow + 64 <= a.M && n0 + warpCol + 64 <= a.N;
        StoreTile<TEpilogue, TPath>(a, c, row, row + 16, row + 32, row + 48, col, col, col, col, inside);
        if (a.Split.Active) SplitK.Finish<TEpilogue, TPath>(a.Split, a.Y.F32, a.M, a.N, m0, n0, Tile);
    }

    /// <summary>The launch shape: one group of 128 threads per 128 x 128 block of y.</summary>
    public static KernelConfig Config(int m, int n, int splits = 1) =>
        new(new Index3D((n + Tile - 1) / Tile, (m + Tile - 1) / Tile, splits), new Index3D(Threads, 1, 1));

    /// <summary>x holds M x K halves, w is a Float16 [N, K] tensor, y M x N values. Meant for CUDA; other
    /// accelerators emulate the warp instructions (slowly: for tests).</summary>
    /// <param name="splits">ways to split K (<see cref="SplitK"/>); 0 chooses from the device's size</param>
    public static void Run<TEpilogue>(Backend backend, ArrayView<Half> x, Tensor w, ArrayView<float> bias,
        OutputView y, int m, int splits = 0) where TEpilogue : struct, IEpilogue
    {
        if (w.DType != DType.Float16)
            throw new ArgumentException($"LinearTensorCore: weight {w.ShapeText} is {w.DType}, not Float16");
        Launch<TEpilogue, Ptx, Emulated, Half>(backend, x, w.HalfView, w, bias, y, m, splits, 8);
    }

    /// <summary>fp32 x (M x K floats) and a Float32 [N, K] weight through 3xTF32 (<see cref="PtxTf32x3"/>):
    /// the fp32 path on tensor cores.</summary>
    public static void RunTf32x3<TEpilogue>(Backend backend, ArrayView<float> x, Tensor w, ArrayView<float> bias,
        OutputView y, int m, int splits = 0) where TEpilogue : struct, IEpilogue
    {
        if (w.DType != DType.Float32)
            throw new ArgumentException($"LinearTensorCore: weight {w.ShapeText} is {w.DType}, not Float32");
        Launch<TEpilogue, PtxTf32x3, EmulatedTf32x3, float>(backend, x, w.View, w, bias, y, m, splits, 4);
    }

    private static void Launch<TEpilogue, TPtx, TEmulated, T>(Backend backend, ArrayView<T> x, ArrayView<T> w,
        Tensor weight, ArrayView<float> bias, OutputView y, int m, int splits, int chunk)
        where TEpilogue : struct, IEpilogue where TPtx : struct, IPath where TEmulated : struct, IPath where T : unmanaged =>
        Launch<TEpilogue, T>(backend, "LinearTensorCore", x, w, weight, bias, y, m, splits, chunk, 4 * chunk,
            () => Load<TEpilogue, TPtx, TEmulated>(backend), Config);

    /// <summary>
    /// Checks a GEMM, splits K when the output has too few blocks for the device (<see cref="SplitK"/>)
    /// and launches it; shared with <see cref="LinearWgmma"/> and <see cref="LinearWgmmaTma"/>, whose K tiles are
    /// <paramref name="depth"/> deep (four chunks of <paramref name="chunk"/> elements, or 64 halves in the TMA GEMM's
    /// 128-byte swizzle). <paramref name="kernel"/> is asked for the kernel once the GEMM is checked and not empty.
    /// </summary>
    internal static void Launch<TEpilogue, T>(Backend backend, string name, ArrayView<T> x, ArrayView<T> w,
        Tensor weight, ArrayView<float> bias, OutputView y, int m, int splits, int chunk, int depth,
        Func<Action<KernelConfig, Args>> kernel, Func<int, int, int, KernelConfig> config)
        where TEpilogue : struct, IEpilogue where T : unmanaged
    {
        int n = weight.Dim(0), k = weight.Dim(1);
        if (Unsupported(m, n, k, ((IContiguousArrayView)x).Index, chunk) is { } why)
            throw new ArgumentException($"{name}: weight {weight.ShapeText}: {why}");
        if (m == 0 || n == 0) return;
        if (splits == 0)
        {
            var whole = config(m, n, 1).GridDim;
            splits = SplitK.Choose(backend.Accelerator.NumMultiprocessors, (long)whole.X * whole.Y, k, depth);
        }
        var (perSplit, used) = SplitK.Partition(k, depth, splits);
        if (!Sgemm.FitsInt32(m, n, k, used))
            throw new ArgumentException($"{name}: M={m}, N={n}, K={k} in {used} splits overflow 32-bit indexing");
        // The fp16 GEMMs, which a tuning table covers (not 3xTF32's float ones).
        if (typeof(T) == typeof(Half))
            backend.GemmLog?.Add(new GemmLaunch(new GemmChoice(m, n, k, null, used, double.NaN, double.NaN), typeof(TEpilogue), y.F16.Length > 0));
        var args = new Args
        {
            X = x.SubView(0, (long)m * k).Cast<U4>(), W = w.Cast<U4>(),
            XAddress = TensorCore.DeviceAddress(x), WAddress = TensorCore.DeviceAddress(w),
            Bias = bias, Y = y, M = m, N = n, K = k, TilesPerSplit = perSplit,
            PairedStores = n % 2 == 0 && y.PairsAligned ? 1 : 0,
        };
        var launch = config(m, n, used);
        if (used == 1)
        {
            kernel()(launch, args);
            return;
        }
        SplitK.Run(backend, m, n, launch, bias, y, (sums, target) =>
            kernel()(launch, args with
            {
                Bias = ArrayView<float>.Empty, Y = new OutputView { F32 = sums }, PairedStores = n % 2 == 0 ? 1 : 0, Split = target,
            }));
    }

    private static Action<KernelConfig, Args> Load<TEpilogue, TPtx, TEmulated>(Backend backend)
        where TEpilogue : struct, IEpilogue where TPtx : struct, IPath where TEmulated : struct, IPath =>
        backend.IsCuda ? backend.LoadGrouped<Args>(Kernel<TEpilogue, TPtx>) : backend.LoadGrouped<Args>(Kernel<TEpilogue, TEmulated>);
}
