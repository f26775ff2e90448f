namespace SmoothCache.Caching;

/// <summary>Schedules that need no calibration.</summary>
public static class StaticSchedules
{
    /// <summary>
    /// FORA: compute every <paramref name="n"/>-th step (0, n, 2n, ...) and the last step, reuse the rest.
    /// Keys are the component names as given (so ["attn", "mlp"] reproduces the published N-2-fora files).
    /// </summary>
    public static CacheSchedule Fora(int n, int steps, IEnumerable<string> components)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(n, 1);
        return Uniform(steps, components, $"fora-{n}", step => step % n == 0 || step == steps - 1);
    }

    /// <summary>Every step computed: the cache helper runs but never reuses.</summary>
    public static CacheSchedule NoCache(int steps, IEnumerable<string> components) =>
        Uniform(steps, components, "no-cache", _ => true);

    private static CacheSchedule Uniform(int steps, IEnumerable<string> components, string name, Func<int, bool> compute)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(steps, 1);
        ArgumentNullException.ThrowIfNull(components);
        if (!components.Any())
            throw new ArgumentException($"no components to schedule: expected some of {ComponentNames.Expected}", nameof(components));
        var flags = Enumerable.Range(0, steps).Select(compute).ToArray();
        return new CacheSchedule(components.Select(c => new KeyValuePair<string, IReadOnlyList<bool>>(c, flags)),
            $"{name} schedule ({steps} steps)");
    }
}
