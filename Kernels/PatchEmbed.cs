using ILGPU;
using ILGPU.Runtime;

namespace SmoothCache.Kernels;

/// <summary>
/// Patch embedding: a conv with kernel = stride = P on x [B, C, S, S] (weight [D, C, P, P], bias [D]),
/// plus the fixed position table [T, D]; output tokens [B, T, D] in row-major patch order (i*W + j).
/// One thread per output element; the conv is a dot product over the C*P*P patch values.
/// </summary>
public static class PatchEmbed
{
    public struct Args : IElementKernel
    {
        public ArrayView<float> X, W, Bias, Pos, Out;
        public int C, S, P, D;

        public readonly void Compute(int index)
        {
            int grid = S / P;
            int tokens = grid * grid;
            int d = index % D;
            int bt = index / D;
            int t = bt % tokens;
            int b = bt / tokens;
            int pi = t / grid, pj = t - (t / grid) * grid;
            float acc = Bias[d];
            // Indices walk the patch (x) and the weight row (w, contiguous) from starts worked out here:
            // written out per element, ILGPU computed b, pi and pj (three integer divisions) inside the
            // innermost loop, ~90% of the kernel's instructions (0.3 ms at DiT-XL/2 batch 16, H200).
            int xc = ((b * C) * S + pi * P) * S + pj * P, w = d * C * P * P;
            for (int c = 0; c < C; c++, xc += S * S)
            {
                int xr = xc;
                for (int kh = 0; kh < P; kh++, xr += S)
                    for (int kw = 0; kw < P; kw++, w++)
                        acc += X[xr + kw] * W[w];
            }
            Out[index] = acc + Pos[t * D + d];
        }
    }

    public static Tensor Run(Tensor x, Tensor weight, Tensor bias, Tensor pos)
    {
        int b = x.Dim(0), c = x.Dim(1), s = x.Dim(2), d = weight.Dim(0), p = weight.Dim(2);
        if (weight.Dim(1) != c || x.Dim(3) != s || s % p != 0)
            throw new ArgumentException($"PatchEmbed: input {x.ShapeText} does not fit weight {weight.ShapeText}");
        int tokens = (s / p) * (s / p);
        var output = x.Backend.Arena.Rent(b, tokens, d);
        var args = new Args { X = x.View, W = weight.View, Bias = bias.View, Pos = pos.View, Out = output.View, C = c, S = s, P = p, D = d };
        ElementLauncher.Launch(x.Backend, b * tokens * d, args);
        return output;
    }
}
