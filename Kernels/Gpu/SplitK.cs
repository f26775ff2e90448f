using ILGPU;
using ILGPU.Runtime;

namespace SmoothCache.Kernels.Gpu;

/// <summary>
/// Split-K for the GPU GEMMs. An output with few 128 x 128 blocks (DiT-XL/2 at batch 2: the
/// out-projection and fc2 have 36) leaves most of a GPU idle however long K is. Then the K tiles are
/// shared among <c>splits</c> groups per block (the grid's z index): each writes its partial
/// x W^T to its own [M, N] slice of a workspace, and <see cref="Reduce{TEpilogue}"/> sums the slices,
/// adds the bias and applies the epilogue — one extra launch and 2 x splits x M x N floats of traffic.
/// </summary>
public static class SplitK
{
    /// <summary>Groups per multiprocessor to aim for: the GEMMs fit two or three (SGEMM 8 warps, the tensor-core
    /// GEMM 4), and two keep at least two warps on each of a multiprocessor's four schedulers.</summary>
    private const int GroupsPerMultiprocessor = 2;

    /// <summary>Fewest K tiles a split gets, so each still amortises its prologue and epilogue.</summary>
    private const int MinTilesPerSplit = 8;

    public const int MaxSplits = 8;

    /// <summary>How many ways to split K: none when the blocks already cover half the multiprocessors,
    /// else enough groups for one wave on the device, at most 8. Measured on an H100 (132 SMs, fp16
    /// tensor-core GEMM at M = 512, BENCHMARKS.md): with 36 blocks, 3 to 7 splits ran 1.4x (K = 1152)
    /// to 2.5x (K = 4608) faster than none; with 144 blocks any split was slower (2 ways: 0.053 ms
    /// against 0.045), the extra partial-sum traffic and reduction costing more than the idle SMs.</summary>
    public static int Choose(int multiprocessors, int m, int n, int k, int tile, int depth)
    {
        long blocks = (long)((m + tile - 1) / tile) * ((n + tile - 1) / tile);
        if (2 * blocks > multiprocessors) return 1;
        int kTiles = (k + depth - 1) / depth;
        long wanted = GroupsPerMultiprocessor * (long)multiprocessors / Math.Max(1, blocks);
        return (int)Math.Max(1, Math.Min(Math.Min(wanted, MaxSplits), kTiles / MinTilesPerSplit));
    }

    /// <summary>K tiles per split for a requested split count; the split count actually used is
    /// ceil(kTiles / tilesPerSplit), so no split is empty.</summary>
    public static (int TilesPerSplit, int Splits) Partition(int k, int depth, int splits)
    {
        int kTiles = Math.Max(1, (k + depth - 1) / depth);
        int perSplit = (kTiles + splits - 1) / Math.Max(1, splits);
        return (perSplit, (kTiles + perSplit - 1) / perSplit);
    }

    /// <summary>y[i] = epilogue(sum over splits of partials[s][i] + bias[i % N]).</summary>
    public struct Reduce<TEpilogue> : IElementKernel where TEpilogue : struct, IEpilogue
    {
        public ArrayView<float> Partials, Bias;
        public OutputView Y;
        public int Splits, N;

        public readonly void Compute(int i)
        {
            float sum = 0f;
            // Y holds exactly M x N values: the size of one split's slice.
            for (int s = 0; s < Splits; s++) sum += Partials[s * Y.Length + i];
            if (Bias.Length > 0) sum += Bias[i % N];
            Y.Store(i, default(TEpilogue).Apply(sum));
        }
    }

    /// <summary><see cref="Reduce{TEpilogue}"/> over four neighbouring outputs (N a multiple of 4, views
    /// 16-byte aligned, y pairs aligned): 16-byte loads and a quarter of the index arithmetic, the same sums
    /// in the same order.</summary>
    public struct Reduce4<TEpilogue> : IElementKernel where TEpilogue : struct, IEpilogue
    {
        public ArrayView<F4> Partials, Bias;
        public OutputView Y;
        public int Splits, Quads;

        public readonly void Compute(int i)
        {
            float x = 0f, y = 0f, z = 0f, w = 0f;
            long slice = Y.Length / 4;
            for (int s = 0; s < Splits; s++)
            {
                F4 p = Partials[s * slice + i];
                x += p.X; y += p.Y; z += p.Z; w += p.W;
            }
            if (Bias.Length > 0)
            {
                F4 b = Bias[i % Quads];
                x += b.X; y += b.Y; z += b.Z; w += b.W;
            }
            var epilogue = default(TEpilogue);
            Y.StorePair(4L * i, epilogue.Apply(x), epilogue.Apply(y));
            Y.StorePair(4L * i + 2, epilogue.Apply(z), epilogue.Apply(w));
        }
    }

    /// <summary>
    /// Runs <paramref name="gemm"/> (bias-free, identity epilogue, writing partial sums of its z slice
    /// of K into its z slice of the given view) into a workspace, then reduces into y.
    /// </summary>
    public static void Run<TEpilogue>(Backend backend, int m, int n, int splits, ArrayView<float> bias, OutputView y,
        Action<ArrayView<float>> gemm) where TEpilogue : struct, IEpilogue
    {
        using var partials = backend.Arena.Rent(splits, m, n);
        gemm(partials.View);
        var output = y.Take((long)m * n);
        if (n % 4 == 0 && output.PairsAligned && Vectors.Float4Aligned(partials.View, bias))
        {
            ElementLauncher.Launch(backend, m * n / 4, new Reduce4<TEpilogue>
            {
                Partials = partials.View.Cast<F4>(), Bias = bias.Length > 0 ? bias.Cast<F4>() : ArrayView<F4>.Empty,
                Y = output, Splits = splits, Quads = n / 4,
            });
            return;
        }
        ElementLauncher.Launch(backend, m * n, new Reduce<TEpilogue>
        {
            Partials = partials.View, Bias = bias, Y = output, Splits = splits, N = n,
        });
    }
}
