using ILGPU;
using ILGPU.Runtime;

namespace SmoothCache.Kernels;

/// <summary>
/// Multi-head softmax attention, out = softmax(q k^T * Scale) v per head.
/// Input qkv is [B, T, 3D]: q, k and v side by side in each token row (the fused QKV projection),
/// head h occupying columns h*HeadDim .. of each third. Output is [B, T, D] with heads side by side.
/// Portable path: one thread per (sample, head, query) row; scores go to a [B, H, T, T] scratch
/// buffer so each is computed once (the fused GPU kernel never materialises them).
/// </summary>
public static class Attention
{
    public struct Args
    {
        public ArrayView<float> Qkv, Scores, Out;
        public int T, Heads, HeadDim;
        public float Scale;
    }

    public static void Kernel(Index1D index, Args a)
    {
        int i = index % a.T;
        int bh = index / a.T;
        int h = bh % a.Heads;
        int b = bh / a.Heads;
        int d = a.Heads * a.HeadDim;
        int stride = 3 * d;
        int q0 = (b * a.T + i) * stride + h * a.HeadDim;
        int s0 = index * a.T;

        float max = float.NegativeInfinity;
        for (int j = 0; j < a.T; j++)
        {
            int k0 = (b * a.T + j) * stride + d + h * a.HeadDim;
            float s = 0f;
            for (int c = 0; c < a.HeadDim; c++) s += a.Qkv[q0 + c] * a.Qkv[k0 + c];
            s *= a.Scale;
            a.Scores[s0 + j] = s;
            max = MathF.Max(max, s);
        }
        float sum = 0f;
        for (int j = 0; j < a.T; j++)
        {
            float p = MathF.Exp(a.Scores[s0 + j] - max);
            a.Scores[s0 + j] = p;
            sum += p;
        }
        float inv = 1f / sum;
        int o0 = (b * a.T + i) * d + h * a.HeadDim;
        for (int c = 0; c < a.HeadDim; c++)
        {
            float acc = 0f;
            for (int j = 0; j < a.T; j++)
                acc += a.Scores[s0 + j] * a.Qkv[(b * a.T + j) * stride + 2 * d + h * a.HeadDim + c];
            a.Out[o0 + c] = acc * inv;
        }
    }

    /// <param name="qkv">[B, T, 3 * heads * headDim]</param>
    /// <returns>[B, T, heads * headDim]</returns>
    public static Tensor Run(Tensor qkv, int heads, int headDim)
    {
        int b = qkv.Dim(0), t = qkv.Dim(1), d = heads * headDim;
        if (qkv.Dim(2) != 3 * d)
            throw new ArgumentException($"Attention: qkv {qkv.ShapeText} is not [B,T,{3 * d}]");
        var arena = qkv.Backend.Arena;
        var output = arena.Rent(b, t, d);
        using var scores = arena.Rent(b, heads, t, t);
        var args = new Args
        {
            Qkv = qkv.View, Scores = scores.View, Out = output.View, T = t, Heads = heads, HeadDim = headDim,
            Scale = 1f / MathF.Sqrt(headDim),
        };
        qkv.Backend.Load<Args>(Kernel)(b * heads * t, args);
        return output;
    }
}
