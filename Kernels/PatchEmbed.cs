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
    public struct Args
    {
        public ArrayView<float> X, W, Bias, Pos, Out;
        public int C, S, P, D;
    }

    public static void Kernel(Index1D index, Args a)
    {
        int grid = a.S / a.P;
        int tokens = grid * grid;
        int d = index % a.D;
        int bt = index / a.D;
        int t = bt % tokens;
        int b = bt / tokens;
        int pi = t / grid, pj = t - (t / grid) * grid;
        float acc = a.Bias[d];
        for (int c = 0; c < a.C; c++)
            for (int kh = 0; kh < a.P; kh++)
                for (int kw = 0; kw < a.P; kw++)
                {
                    float xv = a.X[((b * a.C + c) * a.S + pi * a.P + kh) * a.S + pj * a.P + kw];
                    acc += xv * a.W[((d * a.C + c) * a.P + kh) * a.P + kw];
                }
        a.Out[index] = acc + a.Pos[t * a.D + d];
    }

    public static Tensor Run(Tensor x, Tensor weight, Tensor bias, Tensor pos)
    {
        int b = x.Dim(0), c = x.Dim(1), s = x.Dim(2), d = weight.Dim(0), p = weight.Dim(2);
        if (weight.Dim(1) != c || x.Dim(3) != s || s % p != 0)
            throw new ArgumentException($"PatchEmbed: input {x.ShapeText} does not fit weight {weight.ShapeText}");
        int tokens = (s / p) * (s / p);
        var output = x.Backend.Arena.Rent(b, tokens, d);
        var args = new Args { X = x.View, W = weight.View, Bias = bias.View, Pos = pos.View, Out = output.View, C = c, S = s, P = p, D = d };
        x.Backend.Load<Args>(Kernel)(b * tokens * d, args);
        return output;
    }
}
