using ILGPU;

namespace SmoothCache.Kernels.Gpu;

/// <summary>
/// <see cref="GroupNorm"/>'s statistics shaped for a GPU: a group of 256 threads per (sample, group), thread t summing
/// the group's elements t, t + 256, .. (coalesced; compensated per thread), the 8 warps' sums combined through shared
/// memory. Two passes over the group, the mean and then the variance about it, as in the portable kernel
/// (<see cref="GroupNorm.StatsKernel"/>, its reference; only the order of the sums differs). The portable kernel's one
/// thread per (sample, group) walks a VAE group of 0.3-0.5M values alone: 256 threads in all for 8 images at 256x256.
/// </summary>
public static class GroupNormStats
{
    public const int Threads = 256;
    private const int Warps = Threads / 32;

    /// <summary>Stats[2 g] = mean, Stats[2 g + 1] = 1/sqrt(var + eps) of group g = Grid.IdxX, X's elements
    /// g GroupSize .. (g + 1) GroupSize - 1.</summary>
    public static void Kernel(GroupNorm.StatsArgs a)
    {
        int group = Grid.IdxX, start = group * a.GroupSize;
        var partials = SharedMemory.Allocate<float>(Warps);
        // This thread's share: elements t, t + 256, .. of the group, summed as the portable kernel sums them all.
        float mean = GroupSum(GroupNorm.CompensatedSum(a.X, start, a.GroupSize, 0f, false, Group.IdxX, Threads), partials) / a.GroupSize;
        float squares = GroupSum(GroupNorm.CompensatedSum(a.X, start, a.GroupSize, mean, true, Group.IdxX, Threads), partials);
        if (Group.IdxX != 0) return;
        a.Stats[2 * group] = mean;
        a.Stats[2 * group + 1] = 1f / MathF.Sqrt(squares / a.GroupSize + a.Eps);
    }

    /// <summary>The sum of <paramref name="value"/> over the group's threads, in every thread (each adds the warps' sums in
    /// the same order, so all agree).</summary>
    private static float GroupSum(float value, ArrayView<float> partials)
    {
        value = Vectors.WarpSum(value);
        if (Warp.LaneIdx == 0) partials[Warp.WarpIdx] = value;
        Group.Barrier();
        float sum = 0f;
        for (int w = 0; w < Warps; w++) sum += partials[w];
        Group.Barrier(); // every thread has read the partials before the next pass writes them
        return sum;
    }

    public static void Run(Backend backend, GroupNorm.StatsArgs args, int groups) =>
        backend.LoadGrouped<GroupNorm.StatsArgs>(Kernel)(new KernelConfig(groups, Threads), args);
}
