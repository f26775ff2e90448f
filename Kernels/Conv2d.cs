using ILGPU;

namespace SmoothCache.Kernels;

/// <summary>
/// "Same" 2-D convolution, stride 1: y = epilogue(conv(x, W) + b) + residual.
/// x is NCHW [B, Cin, H, W]; W is [Cout, Cin, K, K] (PyTorch's layout) with K odd and zero padding
/// K/2 on every side, so y is [B, Cout, H, W]; b is [Cout] (or empty); the optional residual is a
/// [B, Cout, H, W] addend (a ResNet shortcut), added after the epilogue so no copy is needed.
/// Portable path (<see cref="RunDirect{TEpilogue}"/>, the reference): one thread per output element, a dot product over
/// Cin x K x K. With GPU kernels it runs as a GEMM instead (<see cref="RunAsGemm{TEpilogue}"/>): the patches unfolded into
/// rows (<see cref="UnfoldArgs"/>), times W viewed as [Cout, Cin K K] on the backend's GEMM (3xTF32 tensor cores on CUDA),
/// then transposed to NCHW with the residual added. The direct form reads every input once per output channel with no
/// tensor core; a VAE decode is ~5 TFLOP for 8 images at 256 x 256.
/// A Float16 weight (the fp16 path) always runs as a GEMM: the patches unfolded as float16, multiplied as float16 with
/// float32 sums (fp16 tensor cores on CUDA, which take Cin K K in multiples of 8), x, the residual and y stay float32.
/// </summary>
public static class Conv2d
{
    /// <summary>Unfolded patches (im2col): col[n H W + p, (ci K + ky) K + kx] = x[n, ci, py + ky - K/2, px + kx - K/2],
    /// 0 outside the image. x is NCHW [N, Cin, H, W]; col is [N H W, Cin K K] row-major, W's order in each row, float32 or
    /// (for a float16 GEMM) float16.</summary>
    public struct UnfoldArgs : IElementKernel
    {
        public ArrayView<float> X;
        public OutputView Col;
        public int Cin, H, Width, K;

        public readonly void Compute(int index)
        {
            int taps = K * K;
            int columns = Cin * taps;
            int column = index % columns, row = index / columns;
            int plane = H * Width;
            int n = row / plane, p = row % plane;
            int ci = column / taps, tap = column % taps;
            int y = p / Width + tap / K - K / 2, x = p % Width + tap % K - K / 2;
            bool inside = y >= 0 & y < H & x >= 0 & x < Width;
            Col.Store(index, inside ? X[((n * Cin + ci) * H + y) * Width + x] : 0f);
        }
    }

    /// <summary>Unfolded elements a GEMM chunk may hold by default (2^28 floats, 1 GiB): the images of a batch go a few
    /// at a time.</summary>
    public const long MaxUnfoldedElements = 1L << 28;

    public struct Args<TEpilogue> : IElementKernel where TEpilogue : struct, IEpilogue
    {
        public ArrayView<float> X, W, Bias, Residual, Y;
        public int Cin, Cout, H, Width, K;

        public readonly void Compute(int index)
        {
            int ox = index % Width;
            int rest = index / Width;
            int oy = rest % H;
            rest /= H;
            int co = rest % Cout;
            int b = rest / Cout;
            int pad = K / 2;
            // Clip the window to the image instead of testing each tap: padding contributes zeros.
            int ky0 = Math.Max(0, pad - oy), ky1 = Math.Min(K, H + pad - oy);
            int kx0 = Math.Max(0, pad - ox), kx1 = Math.Min(K, Width + pad - ox);
            int plane = H * Width;
            int taps = K * K;
            float acc = 0f;
            for (int ci = 0; ci < Cin; ci++)
            {
                int x0 = (b * Cin + ci) * plane;
                int w0 = (co * Cin + ci) * taps;
                for (int ky = ky0; ky < ky1; ky++)
                {
                    int xRow = x0 + (oy + ky - pad) * Width + ox - pad;
                    int wRow = w0 + ky * K;
                    for (int kx = kx0; kx < kx1; kx++)
                        acc += X[xRow + kx] * W[wRow + kx];
                }
            }
            if (Bias.Length > 0) acc += Bias[co];
            float y = default(TEpilogue).Apply(acc);
            if (Residual.Length > 0) y += Residual[index];
            Y[index] = y;
        }
    }

    /// <param name="x">[B, Cin, H, W]</param>
    /// <param name="weight">[Cout, Cin, K, K], K odd</param>
    /// <param name="bias">[Cout] or null</param>
    /// <param name="residual">[B, Cout, H, W] added to the result, or null</param>
    /// <returns>[B, Cout, H, W], rented from the arena</returns>
    public static Tensor Run<TEpilogue>(Tensor x, Tensor weight, Tensor? bias, Tensor? residual = null)
        where TEpilogue : struct, IEpilogue
    {
        Check(x, weight, bias, residual);
        return weight.DType == DType.Float16 || x.Backend.UsesGpuKernels && UnfoldedPerImage(x, weight) <= int.MaxValue
            ? RunAsGemm<TEpilogue>(x, weight, bias, residual)
            : RunDirect<TEpilogue>(x, weight, bias, residual);
    }

    /// <summary>One thread per output element (the portable path and the reference).</summary>
    public static Tensor RunDirect<TEpilogue>(Tensor x, Tensor weight, Tensor? bias, Tensor? residual = null)
        where TEpilogue : struct, IEpilogue
    {
        Check(x, weight, bias, residual);
        if (weight.DType != DType.Float32)
            throw new ArgumentException($"Conv2d: the direct convolution takes a Float32 weight, not {weight.DType} {weight.ShapeText}");
        int b = x.Dim(0), cin = x.Dim(1), h = x.Dim(2), w = x.Dim(3);
        int cout = weight.Dim(0), k = weight.Dim(2);
        var y = x.Backend.Arena.Rent(b, cout, h, w);
        var args = new Args<TEpilogue>
        {
            X = x.View, W = weight.View, Bias = bias?.View ?? ArrayView<float>.Empty,
            Residual = residual?.View ?? ArrayView<float>.Empty, Y = y.View,
            Cin = cin, Cout = cout, H = h, Width = w, K = k,
        };
        ElementLauncher.Launch(x.Backend, (int)y.Length, args);
        return y;
    }

    /// <summary>As a GEMM, a few images at a time: their patches unfolded (in W's precision), times W^T on <see cref="Linear"/>
    /// (epilogue and bias there), transposed to NCHW with the residual added.</summary>
    /// <param name="maxUnfolded">how many unfolded elements a chunk of images may take (at least one image's)</param>
    public static Tensor RunAsGemm<TEpilogue>(Tensor x, Tensor weight, Tensor? bias, Tensor? residual = null,
        long maxUnfolded = MaxUnfoldedElements) where TEpilogue : struct, IEpilogue
    {
        Check(x, weight, bias, residual);
        int b = x.Dim(0), cin = x.Dim(1), h = x.Dim(2), w = x.Dim(3);
        int cout = weight.Dim(0), k = weight.Dim(2), plane = h * w, columns = cin * k * k;
        long perImage = UnfoldedPerImage(x, weight);
        if (perImage > int.MaxValue)
            throw new ArgumentException($"Conv2d: one image of {x.ShapeText} unfolds into {perImage} elements, more than 32-bit indexing reaches");
        int chunk = (int)Math.Clamp(maxUnfolded / perImage, 1, Math.Max(1, b));
        var arena = x.Backend.Arena;
        var y = arena.Rent(b, cout, h, w);
        try
        {
            using var matrix = weight.Reshape(cout, columns);
            for (int first = 0; first < b; first += chunk)
            {
                int n = Math.Min(chunk, b - first);
                using var images = x.Rows(first, n);
                using var col = arena.Rent(weight.DType, n * plane, columns);
                ElementLauncher.Launch(x.Backend, (int)col.Length,
                    new UnfoldArgs { X = images.View, Col = OutputView.Of(col), Cin = cin, H = h, Width = w, K = k });
                using var pixels = Linear.Run<TEpilogue>(col, matrix, bias);
                using var rows = pixels.Reshape(n, plane, cout);
                using var addend = residual?.Rows(first, n);
                using var output = y.Rows(first, n);
                Transpose.Into(rows, addend, output);
            }
            return y;
        }
        catch
        {
            y.Dispose();
            throw;
        }
    }

    /// <summary>Elements one image of x unfolds into: pixels x Cin x K x K.</summary>
    private static long UnfoldedPerImage(Tensor x, Tensor weight) => (long)x.Dim(2) * x.Dim(3) * x.Dim(1) * weight.Dim(2) * weight.Dim(3);

    private static void Check(Tensor x, Tensor weight, Tensor? bias, Tensor? residual)
    {
        if (x.Shape.Length != 4 || weight.Shape.Length != 4)
            throw new ArgumentException($"Conv2d: expected NCHW input and [Cout,Cin,K,K] weight, got {x.ShapeText} and {weight.ShapeText}");
        int b = x.Dim(0), cin = x.Dim(1), h = x.Dim(2), w = x.Dim(3);
        int cout = weight.Dim(0), k = weight.Dim(2);
        if (weight.Dim(1) != cin || weight.Dim(3) != k || k % 2 == 0)
            throw new ArgumentException($"Conv2d: weight {weight.ShapeText} is not [Cout,{cin},K,K] with K odd (input {x.ShapeText})");
        if (bias is not null && bias.Length != cout)
            throw new ArgumentException($"Conv2d: bias {bias.ShapeText} is not [{cout}]");
        if (residual is not null && !residual.Shape.SequenceEqual(new[] { b, cout, h, w }))
            throw new ArgumentException($"Conv2d: residual {residual.ShapeText} is not [{b},{cout},{h},{w}]");
    }

    public static Tensor Run(Tensor x, Tensor weight, Tensor? bias, Tensor? residual = null) =>
        Run<IdentityEpilogue>(x, weight, bias, residual);
}
