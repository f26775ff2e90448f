using ILGPU;
using ILGPU.Runtime;
using SmoothCache.Kernels.Gpu;

namespace SmoothCache.Kernels;

/// <summary>
/// Multi-head softmax attention, out = softmax(q k^T * Scale) v per head.
/// Input qkv is [B, T, 3D]: q, k and v side by side in each token row (the fused QKV projection),
/// head h occupying columns h*HeadDim .. of each third. Output is [B, T, D] with heads side by side.
/// Portable path: one thread per (sample, head, query) row; scores go to a [B, H, T, T] scratch
/// buffer so each is computed once. On a CUDA backend, head dims 64 and 72 run the fused
/// <see cref="FlashAttention"/> kernel instead, which never materialises the scores.
/// </summary>
public static class Attention
{
    public struct Args : IElementKernel
    {
        public ArrayView<float> Qkv, Scores, Out;
        public int T, Heads, HeadDim;
        public float Scale;

        public readonly void Compute(int index)
        {
            int i = index % T;
            int bh = index / T;
            int h = bh % Heads;
            int b = bh / Heads;
            int d = Heads * HeadDim;
            int stride = 3 * d;
            int q0 = (b * T + i) * stride + h * HeadDim;
            int s0 = index * T;

            float max = float.NegativeInfinity;
            for (int j = 0; j < T; j++)
            {
                int k0 = (b * T + j) * stride + d + h * HeadDim;
                float s = 0f;
                for (int c = 0; c < HeadDim; c++) s += Qkv[q0 + c] * Qkv[k0 + c];
                s *= Scale;
                Scores[s0 + j] = s;
                max = MathF.Max(max, s);
            }
            float sum = 0f;
            for (int j = 0; j < T; j++)
            {
                float p = MathF.Exp(Scores[s0 + j] - max);
                Scores[s0 + j] = p;
                sum += p;
            }
            // out = sum_j p_j v_j / sum, accumulated row by row so v is read contiguously.
            float inv = 1f / sum;
            int o0 = (b * T + i) * d + h * HeadDim;
            for (int c = 0; c < HeadDim; c++) Out[o0 + c] = 0f;
            for (int j = 0; j < T; j++)
            {
                float p = Scores[s0 + j] * inv;
                int v0 = (b * T + j) * stride + 2 * d + h * HeadDim;
                for (int c = 0; c < HeadDim; c++) Out[o0 + c] += p * Qkv[v0 + c];
            }
        }
    }

    /// <param name="qkv">[B, T, 3 * heads * headDim]</param>
    /// <returns>[B, T, heads * headDim]</returns>
    /// <param name="output">Float16 for the fp16 path's next GEMM (the fused kernel rounds as it
    /// writes; the portable one computes float32 and converts)</param>
    public static Tensor Run(Tensor qkv, int heads, int headDim, DType output = DType.Float32)
    {
        int b = qkv.Dim(0), t = qkv.Dim(1), d = heads * headDim;
        if (qkv.Dim(2) != 3 * d)
            throw new ArgumentException($"Attention: qkv {qkv.ShapeText} is not [B,T,{3 * d}]");
        var arena = qkv.Backend.Arena;
        if (qkv.Backend.UsesGpuKernels && FlashAttention.SupportsHeadDim(headDim))
        {
            var fused = arena.Rent(output, b, t, d);
            FlashAttention.Run(qkv.Backend, qkv.View, fused, b, t, heads, headDim);
            return fused;
        }
        var result = arena.Rent(b, t, d);
        using (var scores = arena.Rent(b, heads, t, t))
        {
            var args = new Args
            {
                Qkv = qkv.View, Scores = scores.View, Out = result.View, T = t, Heads = heads, HeadDim = headDim,
                Scale = 1f / MathF.Sqrt(headDim),
            };
            ElementLauncher.Launch(qkv.Backend, b * heads * t, args);
        }
        if (output == DType.Float32) return result;
        using (result) return HalfConversion.ToHalf(result);
    }
}
