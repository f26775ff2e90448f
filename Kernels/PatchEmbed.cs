using ILGPU;
using ILGPU.Runtime;

namespace SmoothCache.Kernels;

/// <summary>
/// Patch embedding: a conv with kernel = stride = P on x [B, C, S, S] (weight [D, C, P, P], bias [D]),
/// plus the fixed position table [T, D]; output tokens [B, T, D] in row-major patch order (i*W + j).
/// One thread per output element; the conv is a dot product over the C*P*P patch values. The weight is
/// taken channels-last, [C, P, P, D] (<see cref="ChannelsLast"/>, once at load): neighbouring threads
/// (neighbouring d) then read neighbouring weights. Read as [D, C, P, P], a warp's loads were 64 bytes
/// apart at DiT-XL/2's shape, 16 cache lines each, and the kernel took 0.29 ms at batch 16 on an H200.
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
            for (int c = 0; c < C; c++)
                for (int kh = 0; kh < P; kh++)
                    for (int kw = 0; kw < P; kw++)
                    {
                        float xv = X[((b * C + c) * S + pi * P + kh) * S + pj * P + kw];
                        acc += xv * W[((c * P + kh) * P + kw) * D + d];
                    }
            Out[index] = acc + Pos[t * D + d];
        }
    }

    /// <summary>A conv weight [D, C, P, P] as [C, P, P, D], the layout <see cref="Run"/> takes.</summary>
    public static Tensor ChannelsLast(Tensor weight)
    {
        if (weight.Shape.Length != 4)
            throw new ArgumentException($"PatchEmbed: expected a conv weight [D, C, P, P], got {weight.ShapeText}");
        int d = weight.Dim(0), c = weight.Dim(1), p = weight.Dim(2);
        using var flat = weight.Reshape(1, d, c * p * p);
        using var transposed = Transpose.Run(flat);
        return transposed.Reshape(c, p, p, d);
    }

    /// <param name="x">[B, C, S, S]</param>
    /// <param name="weight">[C, P, P, D], see <see cref="ChannelsLast"/></param>
    /// <param name="bias">[D]</param>
    /// <param name="pos">[T, D]</param>
    public static Tensor Run(Tensor x, Tensor weight, Tensor bias, Tensor pos)
    {
        int b = x.Dim(0), c = x.Dim(1), s = x.Dim(2), p = weight.Dim(1), d = weight.Dim(3);
        if (weight.Dim(0) != c || weight.Dim(2) != p || x.Dim(3) != s || s % p != 0)
            throw new ArgumentException($"PatchEmbed: input {x.ShapeText} does not fit channels-last weight {weight.ShapeText}");
        int tokens = (s / p) * (s / p);
        var output = x.Backend.Arena.Rent(b, tokens, d);
        var args = new Args { X = x.View, W = weight.View, Bias = bias.View, Pos = pos.View, Out = output.View, C = c, S = s, P = p, D = d };
        ElementLauncher.Launch(x.Backend, b * tokens * d, args);
        return output;
    }
}
