using ILGPU;

namespace SmoothCache.Kernels;

/// <summary>
/// Float32 attention as GEMMs on <see cref="Linear"/>, per sample and head: scores = (q Scale) k^T [T, T], their softmax
/// by rows in place, then scores v (v transposed first, as the GEMM's weight), merged into the head's columns of the
/// output. <see cref="Attention"/> takes it on the GPU path for head dims its fused kernels lack (the VAE's mid-block
/// attention: one head of 512 over 1,024 tokens), where the portable kernel would give the GPU one thread per 4 queries.
/// qkv is [B, T, 3D] as for <see cref="Attention"/>; the output [B, T, D].
/// </summary>
public static class AttentionAsGemms
{
    /// <summary>One head of one sample out of qkv [B, T, 3D]: q scaled by Scale and k as [T, HeadDim] rows, v transposed
    /// to [HeadDim, T] (the second GEMM's weight). Element = (token, column).</summary>
    public struct SplitHeadArgs : IElementKernel
    {
        public ArrayView<float> Qkv, Q, K, ValuesT;
        public int Sample, Head, T, Heads, HeadDim;
        public float Scale;

        public readonly void Compute(int index)
        {
            int c = index % HeadDim, token = index / HeadDim;
            int d = Heads * HeadDim;
            int at = (Sample * T + token) * 3 * d + Head * HeadDim + c;
            Q[index] = Qkv[at] * Scale;
            K[index] = Qkv[at + d];
            ValuesT[c * T + token] = Qkv[at + 2 * d];
        }
    }

    /// <summary>Each row of scores [rows, Columns] replaced by its softmax, in place. Element = row.</summary>
    public struct SoftmaxRowsArgs : IElementKernel
    {
        public ArrayView<float> Scores;
        public int Columns;

        public readonly void Compute(int row)
        {
            var r = Scores.SubView((long)row * Columns, Columns);
            float max = float.NegativeInfinity;
            for (int j = 0; j < Columns; j++) max = MathF.Max(max, r[j]);
            float sum = 0f;
            for (int j = 0; j < Columns; j++)
            {
                float p = MathF.Exp(r[j] - max);
                r[j] = p;
                sum += p;
            }
            float inverse = 1f / sum;
            for (int j = 0; j < Columns; j++) r[j] *= inverse;
        }
    }

    /// <summary>One head's output [T, HeadDim] into its columns of out [B, T, D]. Element = (token, column).</summary>
    public struct MergeHeadArgs : IElementKernel
    {
        public ArrayView<float> Head, Out;
        public int Sample, HeadIndex, T, Heads, HeadDim;

        public readonly void Compute(int index)
        {
            int c = index % HeadDim, token = index / HeadDim;
            Out[(Sample * T + token) * Heads * HeadDim + HeadIndex * HeadDim + c] = Head[index];
        }
    }

    /// <param name="qkv">Float32 [B, T, 3 heads headDim]</param>
    /// <returns>[B, T, heads headDim], rented from the arena</returns>
    public static Tensor Run(Tensor qkv, int heads, int headDim)
    {
        Attention.CheckFloat32(qkv, heads, headDim);
        int b = qkv.Dim(0), t = qkv.Dim(1);
        var backend = qkv.Backend;
        var arena = backend.Arena;
        var result = arena.Rent(b, t, heads * headDim);
        try
        {
            using var q = arena.Rent(t, headDim);
            using var k = arena.Rent(t, headDim);
            using var valuesT = arena.Rent(headDim, t);
            for (int sample = 0; sample < b; sample++)
                for (int head = 0; head < heads; head++)
                {
                    ElementLauncher.Launch(backend, t * headDim, new SplitHeadArgs
                    {
                        Qkv = qkv.View, Q = q.View, K = k.View, ValuesT = valuesT.View, Sample = sample, Head = head,
                        T = t, Heads = heads, HeadDim = headDim, Scale = 1f / MathF.Sqrt(headDim),
                    });
                    using var scores = Linear.Run(q, k, null);
                    ElementLauncher.Launch(backend, t, new SoftmaxRowsArgs { Scores = scores.View, Columns = t });
                    using var one = Linear.Run(scores, valuesT, null);
                    ElementLauncher.Launch(backend, t * headDim, new MergeHeadArgs
                    {
                        Head = one.View, Out = result.View, Sample = sample, HeadIndex = head, T = t, Heads = heads, HeadDim = headDim,
                    });
                }
            return result;
        }
        catch
        {
            result.Dispose();
            throw;
        }
    }
}
