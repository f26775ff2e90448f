using ILGPU;
using SmoothCache.Kernels.Gpu;
using Half = ILGPU.Half;

namespace SmoothCache.Kernels;

/// <summary>
/// y = epilogue(x W^T + b). x is [M, K] row-major, W is [N, K] row-major (PyTorch's Linear layout),
/// b is [N] (or empty for no bias), y is [M, N]. Portable path: each element computes
/// a 4 x 4 block of outputs as plain dot products over K, no barriers — the shape the CPU
/// accelerator runs fastest — and it is the reference for the fast kernels. It reads float32
/// operands, or (for a Float16 weight) float16 x and W, the numbers the tensor-core kernel multiplies.
/// With GPU kernels Run dispatches to the fast ones: a Float16 weight on CUDA to <see cref="LinearSkinnyTensorCore"/> for
/// a few rows (<see cref="Backend.SkinnyOnTensorCores"/>), else to <see cref="LinearTensorCore"/> (<see cref="LinearWgmma"/>
/// under <see cref="KernelSet.Wgmma"/>, <see cref="LinearWgmmaTma"/> under <see cref="KernelSet.WgmmaTma"/>); otherwise up to 16 rows to <see cref="LinearSkinny"/> (a warp per output column),
/// more on CUDA to <see cref="LinearTensorCore"/> (3xTF32 for a Float32 weight), and <see cref="Sgemm"/>
/// for a Float32 weight elsewhere or where K is not a multiple of 4.
/// </summary>
public static class Linear
{
    /// <summary>Where the portable GEMM reads x and W from (flat indices into [M, K] and [N, K]).</summary>
    public interface IOperands
    {
        float X(int i);
        float W(int i);
    }

    public struct Fp32Operands : IOperands
    {
        public ArrayView<float> Xs, Ws;
        public readonly float X(int i) => Xs[i];
        public readonly float W(int i) => Ws[i];
    }

    /// <summary>The fp16 path: both operands float16, widened exactly; products accumulate in float32.</summary>
    public struct Fp16Operands : IOperands
    {
        public ArrayView<Half> Xs, Ws;
        public readonly float X(int i) => (float)Xs[i];
        public readonly float W(int i) => (float)Ws[i];
    }

    public struct Args<TEpilogue, TOperands> : IElementKernel
        where TEpilogue : struct, IEpilogue where TOperands : struct, IOperands
    {
        public TOperands Operands;
        public ArrayView<float> Bias;
        public OutputView Y;
        public int M, N, K;

        /// <summary>Element = a 4 x 4 block of outputs (4 rows of x, 4 rows of W): each value read
        /// feeds 4 products (a register tile, unrolled by hand since ILGPU does not unroll). Rows and
        /// columns past the edges repeat the last one; their results are not stored.</summary>
        public readonly void Compute(int index)
        {
            int quads = (N + 3) / 4;
            int m0 = index / quads * 4;
            int n0 = (index % quads) * 4;
            int x0 = m0 * K, x1 = Clamp(m0 + 1, M) * K, x2 = Clamp(m0 + 2, M) * K, x3 = Clamp(m0 + 3, M) * K;
            int w0 = n0 * K, w1 = Clamp(n0 + 1, N) * K, w2 = Clamp(n0 + 2, N) * K, w3 = Clamp(n0 + 3, N) * K;
            float c00 = 0f, c01 = 0f, c02 = 0f, c03 = 0f, c10 = 0f, c11 = 0f, c12 = 0f, c13 = 0f;
            float c20 = 0f, c21 = 0f, c22 = 0f, c23 = 0f, c30 = 0f, c31 = 0f, c32 = 0f, c33 = 0f;
            for (int k = 0; k < K; k++)
            {
                float b0 = Operands.W(w0 + k), b1 = Operands.W(w1 + k), b2 = Operands.W(w2 + k), b3 = Operands.W(w3 + k);
                float a = Operands.X(x0 + k);
                c00 += a * b0; c01 += a * b1; c02 += a * b2; c03 += a * b3;
                a = Operands.X(x1 + k);
                c10 += a * b0; c11 += a * b1; c12 += a * b2; c13 += a * b3;
                a = Operands.X(x2 + k);
                c20 += a * b0; c21 += a * b1; c22 += a * b2; c23 += a * b3;
                a = Operands.X(x3 + k);
                c30 += a * b0; c31 += a * b1; c32 += a * b2; c33 += a * b3;
            }
            StoreRow(m0, n0, c00, c01, c02, c03);
            StoreRow(m0 + 1, n0, c10, c11, c12, c13);
            StoreRow(m0 + 2, n0, c20, c21, c22, c23);
            StoreRow(m0 + 3, n0, c30, c31, c32, c33);
        }

        private static int Clamp(int i, int count) => i < count ? i : count - 1;

        private readonly void StoreRow(int m, int n0, float v0, float v1, float v2, float v3)
        {
            if (m >= M) return;
            Store(m, n0, v0);
            if (n0 + 1 < N) Store(m, n0 + 1, v1);
            if (n0 + 2 < N) Store(m, n0 + 2, v2);
            if (n0 + 3 < N) Store(m, n0 + 3, v3);
        }

        private readonly void Store(int m, int n, float acc)
        {
            if (Bias.Length > 0) acc += Bias[n];
            Y.Store(m * N + n, default(TEpilogue).Apply(acc));
        }
    }

    /// <summary>
    /// y[..., N] = epilogue(x[..., K] W^T + b); y is rented from the arena. A Float16 weight runs the fp16
    /// path: x is multiplied as float16 (a Float32 x is rounded first) and y may be Float16 too (the
    /// next GEMM's input). A Float32 weight takes and gives Float32.
    /// </summary>
    public static Tensor Run<TEpilogue>(Tensor x, Tensor w, Tensor? bias, DType output = DType.Float32) where TEpilogue : struct, IEpilogue
    {
        int k = w.Dim(1), n = w.Dim(0);
        if (x.Dim(-1) != k)
            throw new ArgumentException($"Linear: input {x.ShapeText} does not end in K={k} (weight {w.ShapeText})");
        if (w.DType == DType.Float32 && (x.DType != DType.Float32 || output != DType.Float32))
            throw new ArgumentException($"Linear: a Float32 weight {w.ShapeText} takes and gives Float32 (input is {x.DType}, output {output})");
        int m = (int)(x.Length / k);
        var shape = (int[])x.Shape.Clone();
        shape[^1] = n;
        var y = x.Backend.Arena.Rent(output, shape);
        try
        {
            Multiply<TEpilogue>(x, w, bias, y, m, n, k);
            return y;
        }
        catch
        {
            y.Dispose();
            throw;
        }
    }

    private static void Multiply<TEpilogue>(Tensor x, Tensor w, Tensor? bias, Tensor y, int m, int n, int k) where TEpilogue : struct, IEpilogue
    {
        var backend = w.Backend;
        var biasView = bias?.View ?? ArrayView<float>.Empty;
        int elements = (m + 3) / 4 * ((n + 3) / 4);
        // A few rows (the conditioning GEMMs, one row per sample): a warp per column reads W once. Not fp16
        // on tensor cores, which are faster even then: DiT-XL/2's 28 blocks' adaLN at once took 0.21 ms there
        // at 2 and at 16 rows, the skinny kernel 0.26 and 1.00 ms (H200, `bench --suite kernels --xl`).
        bool skinny = backend.UsesGpuKernels && LinearSkinny.Suits(m, k) && !(w.DType == DType.Float16 && backend.UsesTensorCores);
        if (w.DType == DType.Float16)
        {
            using var xHalf = x.DType == DType.Float16 ? x.Share() : HalfConversion.ToHalf(x);
            if (skinny)
            {
                // x's few rows widened back to float32 once: the same products, without the skinny
                // kernel widening every x value again for each of W's rows (8 conversions per row and step).
                using var xWide = HalfConversion.ToFloat(xHalf);
                LinearSkinny.Run<TEpilogue>(backend, xWide, w, biasView, OutputView.Of(y), m);
                return;
            }
            if (backend.UsesTensorCores)
            {
                if (backend.SkinnyOnTensorCores && LinearSkinnyTensorCore.Supports(m, n, k, xHalf.HalfView, OutputView.Of(y)))
                {
                    LinearSkinnyTensorCore.Run<TEpilogue>(backend, xHalf.HalfView, w, biasView, OutputView.Of(y), m);
                    return;
                }
                var (variant, splits, headRows) = Fp16Launch(backend, m, n, k);
                // Throws with the reason for an unsupported K.
                RunFp16Launch<TEpilogue>(backend, variant, splits, headRows, xHalf.HalfView, w, biasView, OutputView.Of(y), m);
                return;
            }
            ElementLauncher.Launch(backend, elements, new Args<TEpilogue, Fp16Operands>
            {
                Operands = new Fp16Operands { Xs = xHalf.HalfView, Ws = w.HalfView }, Bias = biasView, Y = OutputView.Of(y), M = m, N = n, K = k,
            });
            return;
        }
        if (skinny)
        {
            LinearSkinny.Run<TEpilogue>(backend, x, w, biasView, OutputView.Of(y), m);
            return;
        }
        if (backend.UsesGpuKernels)
        {
            // With tensor cores (CUDA) an fp32 GEMM runs as 3xTF32 (fp32 accuracy) where K allows
            // 16-byte chunks; the SIMT SGEMM takes the rest.
            if (backend.UsesTensorCores && LinearTensorCore.Unsupported(m, n, k, ((IContiguousArrayView)x.View).Index, chunk: 4) is null)
                LinearTensorCore.RunTf32x3<TEpilogue>(backend, x.View, w, biasView, OutputView.Of(y), m);
            else
                Sgemm.Run<TEpilogue>(backend, x.View, w.View, biasView, y.View, m, n, k);
            return;
        }
        ElementLauncher.Launch(backend, elements, new Args<TEpilogue, Fp32Operands>
        {
            Operands = new Fp32Operands { Xs = x.View, Ws = w.View }, Bias = biasView, Y = OutputView.Of(y), M = m, N = n, K = k,
        });
    }

    public static Tensor Run(Tensor x, Tensor w, Tensor? bias, DType output = DType.Float32) => Run<IdentityEpilogue>(x, w, bias, output);

    /// <summary>The kernel fp16 GEMMs on tensor cores take on <paramref name="backend"/> ("LinearWgmmaTma", "LinearWgmma",
    /// "LinearTensorCore"), or null where they do not run on tensor cores: what a <see cref="GemmTuning"/> is measured with.</summary>
    public static string? Fp16Kernel(Backend backend) =>
        !backend.UsesTensorCores ? null : backend.UsesTma ? "LinearWgmmaTma" : backend.UsesWgmma ? "LinearWgmma" : "LinearTensorCore";

    /// <summary>y = epilogue(x W^T + b) on the fp16 tensor-core GEMM <see cref="Fp16Kernel"/> names, on
    /// <paramref name="variant"/> where that is the TMA GEMM, split <paramref name="splits"/> ways (0: the built-in
    /// choice); logged in <see cref="Backend.GemmLog"/> where set.</summary>
    public static void RunFp16OnTensorCores<TEpilogue>(Backend backend, LinearWgmmaTma.Variant variant, int splits, ArrayView<Half> x, Tensor w,
        ArrayView<float> bias, OutputView y, int m) where TEpilogue : struct, IEpilogue
    {
        int logged = backend.GemmLog?.Count ?? 0;
        if (backend.UsesTma) LinearWgmmaTma.Run<TEpilogue>(backend, variant, x, w, bias, y, m, splits);
        else if (backend.UsesWgmma) LinearWgmma.Run<TEpilogue>(backend, x, w, bias, y, m, splits);
        else LinearTensorCore.Run<TEpilogue>(backend, x, w, bias, y, m, splits);
        // The launch logged the split it used; the variant is known here.
        if (backend.UsesTma && backend.GemmLog is { } log && log.Count > logged) log[^1] = log[^1] with { Choice = log[^1].Choice with { Variant = variant } };
    }

    /// <summary><see cref="RunFp16OnTensorCores{TEpilogue}"/>, or with <paramref name="headRows"/> in (0, m) two launches:
    /// the first <paramref name="headRows"/> rows unsplit, then the rest split <paramref name="splits"/> ways
    /// (<see cref="SplitK.HeadRows"/>).</summary>
    public static void RunFp16Launch<TEpilogue>(Backend backend, LinearWgmmaTma.Variant variant, int splits, int headRows, ArrayView<Half> x,
        Tensor w, ArrayView<float> bias, OutputView y, int m) where TEpilogue : struct, IEpilogue
    {
        if (headRows <= 0 || headRows >= m)
        {
            RunFp16OnTensorCores<TEpilogue>(backend, variant, splits, x, w, bias, y, m);
            return;
        }
        long k = w.Dim(1), n = w.Dim(0);
        RunFp16OnTensorCores<TEpilogue>(backend, variant, 1, x.SubView(0, headRows * k), w, bias, y.Take(headRows * n), headRows);
        RunFp16OnTensorCores<TEpilogue>(backend, variant, splits, x.SubView(headRows * k), w, bias, y.From(headRows * n), m - headRows);
    }

    /// <summary>The TMA GEMM variant (where the backend uses them), split (0: <see cref="SplitK.Choose(int, long, int, int)"/>'s)
    /// and head rows (<see cref="RunFp16Launch{TEpilogue}"/>; 0: none) of an fp16 M x N x K GEMM on tensor cores:
    /// SMOOTHCACHE_TMA_GEMM's variant with the built-in split where set (for timing one variant everywhere), else the
    /// backend's tuning table's entry for the shape, else the built-in choice.</summary>
    public static (LinearWgmmaTma.Variant Variant, int Splits, int HeadRows) Fp16Launch(Backend backend, int m, int n, int k)
    {
        if (backend.TmaGemm is { } forced) return (forced, 0, 0);
        if (backend.GemmTuning is { } table && table.Kernel == Fp16Kernel(backend) && table.Find(m, n, k) is { } tuned)
            return (tuned.Variant ?? LinearWgmmaTma.Variant.Default, tuned.Splits, tuned.HeadRows);
        return (LinearWgmmaTma.Variant.Default, 0, 0);
    }
}
