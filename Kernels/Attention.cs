using ILGPU;
using SmoothCache.Kernels.Gpu;

namespace SmoothCache.Kernels;

/// <summary>
/// Multi-head softmax attention, out = softmax(q k^T * Scale) v per head.
/// Input qkv is [B, T, 3D]: q, k and v side by side in each token row (the fused QKV projection),
/// head h occupying columns h*HeadDim .. of each third. Output is [B, T, D] with heads side by side.
/// Portable path: one element per (sample, head, 4 consecutive queries), so every k and v value read
/// feeds four queries (the CPU accelerator pays per access); scores go to a [B, H, T, T] scratch buffer
/// so each is computed once. Sums run in the same order as a one-query-per-thread loop. On the GPU
/// path, head dims 16, 32, 64 and 72 run a fused kernel instead, which never materialises the scores:
/// with tensor cores (<see cref="Backend.UsesTensorCores"/>) an fp16 qkv with head dim 64 or 72 takes
/// <see cref="FlashAttentionTensorCore"/>, everything else <see cref="FlashAttention"/>. Other head dims on the GPU path (the
/// VAE's mid-block attention: one head of 512 over 1,024 tokens) run as two GEMMs per sample and head
/// (<see cref="AttentionAsGemms"/>), where the portable kernel would give the GPU one thread per 4 queries.
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
            int quads = (T + 3) / 4;
            int i0 = index % quads * 4;
            int bh = index / quads;
            int h = bh % Heads;
            int b = bh / Heads;
            int d = Heads * HeadDim;
            int stride = 3 * d;
            // Rows past the last query repeat it; their results are not stored.
            int i1 = Clamp(i0 + 1), i2 = Clamp(i0 + 2), i3 = Clamp(i0 + 3);
            int q0 = (b * T + i0) * stride + h * HeadDim, q1 = (b * T + i1) * stride + h * HeadDim;
            int q2 = (b * T + i2) * stride + h * HeadDim, q3 = (b * T + i3) * stride + h * HeadDim;
            int s0 = (bh * T + i0) * T, s1 = (bh * T + i1) * T, s2 = (bh * T + i2) * T, s3 = (bh * T + i3) * T;

            float m0 = float.NegativeInfinity, m1 = m0, m2 = m0, m3 = m0;
            for (int j = 0; j < T; j++)
            {
                int k0 = (b * T + j) * stride + d + h * HeadDim;
                float a0 = 0f, a1 = 0f, a2 = 0f, a3 = 0f;
                for (int c = 0; c < HeadDim; c++)
                {
                    float kc = Qkv[k0 + c];
                    a0 += Qkv[q0 + c] * kc;
                    a1 += Qkv[q1 + c] * kc;
                    a2 += Qkv[q2 + c] * kc;
                    a3 += Qkv[q3 + c] * kc;
                }
                a0 *= Scale; a1 *= Scale; a2 *= Scale; a3 *= Scale;
                Scores[s0 + j] = a0; Scores[s1 + j] = a1; Scores[s2 + j] = a2; Scores[s3 + j] = a3;
                m0 = MathF.Max(m0, a0); m1 = MathF.Max(m1, a1); m2 = MathF.Max(m2, a2); m3 = MathF.Max(m3, a3);
            }
            float l0 = 0f, l1 = 0f, l2 = 0f, l3 = 0f;
            for (int j = 0; j < T; j++)
            {
                float p0 = MathF.Exp(Scores[s0 + j] - m0), p1 = MathF.Exp(Scores[s1 + j] - m1);
                float p2 = MathF.Exp(Scores[s2 + j] - m2), p3 = MathF.Exp(Scores[s3 + j] - m3);
                Scores[s0 + j] = p0; Scores[s1 + j] = p1; Scores[s2 + j] = p2; Scores[s3 + j] = p3;
                l0 += p0; l1 += p1; l2 += p2; l3 += p3;
            }
            float inv0 = 1f / l0, inv1 = 1f / l1, inv2 = 1f / l2, inv3 = 1f / l3;
            // out[c] = sum_j p_j v_j[c], j ascending as a row-at-a-time accumulation would add them.
            for (int c = 0; c < HeadDim; c++)
            {
                float o0 = 0f, o1 = 0f, o2 = 0f, o3 = 0f;
                for (int j = 0; j < T; j++)
                {
                    float vc = Qkv[(b * T + j) * stride + 2 * d + h * HeadDim + c];
                    o0 += Scores[s0 + j] * inv0 * vc;
                    o1 += Scores[s1 + j] * inv1 * vc;
                    o2 += Scores[s2 + j] * inv2 * vc;
                    o3 += Scores[s3 + j] * inv3 * vc;
                }
                int o = (b * T + i0) * d + h * HeadDim + c;
                Out[o] = o0;
                if (i0 + 1 < T) Out[o + d] = o1;
                if (i0 + 2 < T) Out[o + 2 * d] = o2;
                if (i0 + 3 < T) Out[o + 3 * d] = o3;
            }
        }

        private readonly int Clamp(int i) => i < T ? i : T - 1;
    }

    /// <param name="qkv">Float32, or Float16 on the fp16 path (the fused kernel reads it as it is, the
    /// portable one widens it first)</param>
    /// <param name="output">Float16 for the fp16 path's next GEMM (the fused kernel rounds as it
    /// writes; the portable one computes float32 and converts)</param>
    /// <param name="staging">the tensor-core kernel's key-tile staging (null: the backend's)</param>
    public static Tensor Run(Tensor qkv, int heads, int headDim, DType output = DType.Float32, FlashAttentionTensorCore.Staging? staging = null)
    {
        int b = qkv.Dim(0), t = qkv.Dim(1), d = heads * headDim;
        if (qkv.Dim(2) != 3 * d)
            throw new ArgumentException($"Attention: qkv {qkv.ShapeText} is not [B,T,{3 * d}]");
        var arena = qkv.Backend.Arena;
        if (qkv.Backend.UsesGpuKernels && FlashAttention.SupportsHeadDim(headDim))
        {
            var fused = arena.Rent(output, b, t, d);
            if (qkv.Backend.UsesTensorCores && qkv.DType == DType.Float16 && FlashAttentionTensorCore.SupportsHeadDim(headDim))
                FlashAttentionTensorCore.Run(qkv.Backend, qkv, fused, b, t, heads, headDim, staging);
            else
                FlashAttention.Run(qkv.Backend, qkv, fused, b, t, heads, headDim);
            return fused;
        }
        Tensor result;
        using (var input = qkv.DType == DType.Float32 ? qkv.Share() : HalfConversion.ToFloat(qkv))
            result = qkv.Backend.UsesGpuKernels ? AttentionAsGemms.Run(input, heads, headDim) : RunPortable(input, heads, headDim);
        if (output == DType.Float32) return result;
        using (result) return HalfConversion.ToHalf(result);
    }

    /// <summary>The portable kernel (<see cref="Args"/>) on Float32 qkv [B, T, 3 heads headDim].</summary>
    public static Tensor RunPortable(Tensor qkv, int heads, int headDim)
    {
        CheckFloat32(qkv, heads, headDim);
        int b = qkv.Dim(0), t = qkv.Dim(1);
        var arena = qkv.Backend.Arena;
        var result = arena.Rent(b, t, heads * headDim);
        using var scores = arena.Rent(b, heads, t, t);
        var args = new Args
        {
            Qkv = qkv.View, Scores = scores.View, Out = result.View, T = t, Heads = heads, HeadDim = headDim,
            Scale = 1f / MathF.Sqrt(headDim),
        };
        ElementLauncher.Launch(qkv.Backend, b * heads * ((t + 3) / 4), args);
        return result;
    }

    internal static void CheckFloat32(Tensor qkv, int heads, int headDim)
    {
        if (qkv.Shape.Length != 3 || qkv.Dim(2) != 3 * heads * headDim || qkv.DType != DType.Float32)
            throw new ArgumentException($"Attention: qkv {qkv.ShapeText} ({qkv.DType}) is not Float32 [B,T,{3 * heads * headDim}]");
    }
}
