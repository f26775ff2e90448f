using ILGPU;

namespace SmoothCache.Kernels;

/// <summary>
/// GroupNorm with affine parameters: y = epilogue((x - mean_g) / sqrt(var_g + eps) * gamma[c] + beta[c]).
/// x and y are NCHW [B, C, H, W]; the C channels form G groups of C/G consecutive channels, and
/// mean_g, var_g (biased) are taken over one sample's group: C/G x H x W elements, contiguous in NCHW.
/// Two kernels: the statistics in two passes (mean, then variance about the mean) with compensated sums, so large
/// groups stay accurate to float32, by one thread per (sample, group) (<see cref="StatsKernel"/>; on GPU kernels a
/// group of threads each, <see cref="Gpu.GroupNormStats"/>); then one thread per element normalises.
/// </summary>
public static class GroupNorm
{
    public struct StatsArgs
    {
        /// <summary>Per (sample, group): mean and 1/sqrt(var + eps), interleaved.</summary>
        public ArrayView<float> X, Stats;
        public int GroupSize;
        public float Eps;
    }

    public struct Args<TEpilogue> : IElementKernel where TEpilogue : struct, IEpilogue
    {
        public ArrayView<float> X, Stats, Gamma, Beta, Y;
        public int C, ChannelsPerGroup, Plane;

        public readonly void Compute(int index)
        {
            int bc = index / Plane;
            int c = bc % C;
            // (sample, group) index: b * G + c / (C/G).
            int group = bc / C * (C / ChannelsPerGroup) + c / ChannelsPerGroup;
            float n = (X[index] - Stats[2 * group]) * Stats[2 * group + 1];
            Y[index] = default(TEpilogue).Apply(n * Gamma[c] + Beta[c]);
        }
    }

    public static void StatsKernel(Index1D group, StatsArgs a)
    {
        int x0 = group * a.GroupSize;
        float mean = CompensatedSum(a.X, x0, a.GroupSize, 0f, squares: false, first: 0, stride: 1) / a.GroupSize;
        float squares = CompensatedSum(a.X, x0, a.GroupSize, mean, squares: true, first: 0, stride: 1);
        a.Stats[2 * group] = mean;
        a.Stats[2 * group + 1] = 1f / MathF.Sqrt(squares / a.GroupSize + a.Eps);
    }

    /// <summary>The sum of (x - mean), or of its squares, over elements first, first + stride, .. of the count at start.
    /// Kahan summation: the error stays O(eps) instead of O(n eps) for groups of millions of values.</summary>
    internal static float CompensatedSum(ArrayView<float> x, int start, int count, float mean, bool squares, int first, int stride)
    {
        float sum = 0f, lost = 0f;
        for (int i = first; i < count; i += stride)
        {
            float d = x[start + i] - mean;
            float v = (squares ? d * d : d) - lost;
            float t = sum + v;
            lost = (t - sum) - v;
            sum = t;
        }
        return sum;
    }

    /// <param name="x">[B, C, H, W] (any trailing spatial shape; C is axis 1)</param>
    /// <param name="groups">G, dividing C</param>
    /// <param name="gamma">[C]</param>
    /// <param name="beta">[C]</param>
    /// <returns>y with x's shape, rented from the arena</returns>
    public static Tensor Run<TEpilogue>(Tensor x, int groups, Tensor gamma, Tensor beta, float eps)
        where TEpilogue : struct, IEpilogue
    {
        int b = x.Dim(0), c = x.Dim(1);
        if (groups < 1 || c % groups != 0)
            throw new ArgumentException($"GroupNorm: {groups} groups do not divide the {c} channels of {x.ShapeText}");
        if (gamma.Length != c || beta.Length != c)
            throw new ArgumentException($"GroupNorm: gamma {gamma.ShapeText} and beta {beta.ShapeText} must be [{c}]");
        int plane = (int)(x.Length / ((long)b * c));
        var arena = x.Backend.Arena;
        using var stats = arena.Rent(b * groups, 2);
        var statsArgs = new StatsArgs { X = x.View, Stats = stats.View, GroupSize = c / groups * plane, Eps = eps };
        if (x.Backend.UsesGpuKernels) Gpu.GroupNormStats.Run(x.Backend, statsArgs, b * groups);
        else x.Backend.Load<StatsArgs>(StatsKernel)(b * groups, statsArgs);
        var y = arena.Rent(x.Shape);
        var args = new Args<TEpilogue>
        {
            X = x.View, Stats = stats.View, Gamma = gamma.View, Beta = beta.View, Y = y.View,
            C = c, ChannelsPerGroup = c / groups, Plane = plane,
        };
        ElementLauncher.Launch(x.Backend, (int)x.Length, args);
        return y;
    }

    public static Tensor Run(Tensor x, int groups, Tensor gamma, Tensor beta, float eps) =>
        Run<IdentityEpilogue>(x, groups, gamma, beta, eps);
}
