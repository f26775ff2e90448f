using ILGPU;
using ILGPU.Runtime;

namespace SmoothCache.Kernels;

/// <summary>
/// "Same" 2-D convolution, stride 1: y = epilogue(conv(x, W) + b) + residual.
/// x is NCHW [B, Cin, H, W]; W is [Cout, Cin, K, K] (PyTorch's layout) with K odd and zero padding
/// K/2 on every side, so y is [B, Cout, H, W]; b is [Cout] (or empty); the optional residual is a
/// [B, Cout, H, W] addend (a ResNet shortcut), added after the epilogue so no copy is needed.
/// Implicit GEMM, portable fp32: one thread per output element, a dot product over Cin x K x K.
/// </summary>
public static class Conv2d
{
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

    public static Tensor Run(Tensor x, Tensor weight, Tensor? bias, Tensor? residual = null) =>
        Run<IdentityEpilogue>(x, weight, bias, residual);
}
