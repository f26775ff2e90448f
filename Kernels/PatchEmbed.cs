using ILGPU;

namespace SmoothCache.Kernels;

/// <summary>
/// Patch embedding: a conv with kernel = stride = P on x [B, C, S, S] (weight [D, C, P, P], bias [D]),
/// plus the fixed position table [T, D]; output tokens [B, T, D] in row-major patch order (i*W + j).
/// An element computes one output channel d for up to <see cref="TokensPerElement"/> neighbouring patches of a
/// patch row: each weight value is loaded once for all of them (a warp's lanes are neighbouring channels, whose
/// weight rows lie C*P*P floats apart: loaded per output, those scattered loads were most of the kernel's time),
/// the patch values are the same for all lanes, and the lanes store neighbouring channels of each token.
/// Each output is the same dot product over the C*P*P patch values, in the same order, as one thread per output.
/// </summary>
public static class PatchEmbed
{
    public const int TokensPerElement = 8;

    public struct Args : IElementKernel
    {
        public ArrayView<float> X, W, Bias, Pos;
        public OutputView Out;
        public int C, S, P, D;

        public readonly void Compute(int index)
        {
            int grid = S / P;
            int groups = (grid + TokensPerElement - 1) / TokensPerElement;
            int d = index % D;
            int rest = index / D;
            int j0 = rest % groups * TokensPerElement;
            rest /= groups;
            int i = rest % grid, b = rest / grid;
            // Patches past the row repeat its last one; their sums are not stored. Offsets from patch j0's.
            int last = grid - 1 - j0;
            int o1 = P * Math.Min(1, last), o2 = P * Math.Min(2, last), o3 = P * Math.Min(3, last);
            int o4 = P * Math.Min(4, last), o5 = P * Math.Min(5, last), o6 = P * Math.Min(6, last), o7 = P * Math.Min(7, last);
            float bias = Bias[d];
            float a0 = bias, a1 = bias, a2 = bias, a3 = bias, a4 = bias, a5 = bias, a6 = bias, a7 = bias;
            // Indices walk the patch (x) and the weight row (w, contiguous) from starts worked out here: written out
            // per use, ILGPU computed the coordinates (integer divisions) inside the innermost loop (fourth session).
            int xc = ((b * C) * S + i * P) * S + j0 * P, w = d * C * P * P;
            for (int c = 0; c < C; c++, xc += S * S)
            {
                int xr = xc;
                for (int kh = 0; kh < P; kh++, xr += S)
                    for (int kw = 0; kw < P; kw++, w++)
                    {
                        float wv = W[w];
                        int x = xr + kw;
                        a0 += X[x] * wv; a1 += X[x + o1] * wv; a2 += X[x + o2] * wv; a3 += X[x + o3] * wv;
                        a4 += X[x + o4] * wv; a5 += X[x + o5] * wv; a6 += X[x + o6] * wv; a7 += X[x + o7] * wv;
                    }
            }
            int t = i * grid + j0;
            int at = (b * grid * grid + t) * D + d, pos = t * D + d;
            Out.Store(at, a0 + Pos[pos]);
            if (1 <= last) Out.Store(at + D, a1 + Pos[pos + D]);
            if (2 <= last) Out.Store(at + 2 * D, a2 + Pos[pos + 2 * D]);
            if (3 <= last) Out.Store(at + 3 * D, a3 + Pos[pos + 3 * D]);
            if (4 <= last) Out.Store(at + 4 * D, a4 + Pos[pos + 4 * D]);
            if (5 <= last) Out.Store(at + 5 * D, a5 + Pos[pos + 5 * D]);
            if (6 <= last) Out.Store(at + 6 * D, a6 + Pos[pos + 6 * D]);
            if (7 <= last) Out.Store(at + 7 * D, a7 + Pos[pos + 7 * D]);
        }
    }

    /// <param name="type">Float16 for the fp16 path's residual stream (rounded to nearest even)</param>
    public static Tensor Run(Tensor x, Tensor weight, Tensor bias, Tensor pos, DType type = DType.Float32)
    {
        int b = x.Dim(0), c = x.Dim(1), s = x.Dim(2), d = weight.Dim(0), p = weight.Dim(2);
        if (weight.Dim(1) != c || x.Dim(3) != s || s % p != 0)
            throw new ArgumentException($"PatchEmbed: input {x.ShapeText} does not fit weight {weight.ShapeText}");
        int grid = s / p, groups = (grid + TokensPerElement - 1) / TokensPerElement;
        var output = x.Backend.Arena.Rent(type, b, grid * grid, d);
        var args = new Args { X = x.View, W = weight.View, Bias = bias.View, Pos = pos.View, Out = OutputView.Of(output), C = c, S = s, P = p, D = d };
        ElementLauncher.Launch(x.Backend, b * grid * groups * d, args);
        return output;
    }
}
