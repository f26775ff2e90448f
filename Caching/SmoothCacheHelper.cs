using SmoothCache.Kernels;
using SmoothCache.Model;

namespace SmoothCache.Caching;

/// <summary>
/// SmoothCache at inference (DESIGN §3): each (component, block) counts its calls; at step s it returns
/// the output stored at the last computed step when the schedule says 0 and one is stored, otherwise
/// it computes and stores the new output. Enable installs it as the model's hook; Dispose disables it.
/// </summary>
public sealed class SmoothCacheHelper : IComponentHook, IDisposable
{
    private readonly HookAttachment _attachment;
    private readonly HashSet<string> _cached;
    private readonly Dictionary<ComponentBlock, int> _calls = new();
    // Each stored tensor is an owner of its storage, so the arena cannot hand it out while stored.
    private readonly Dictionary<ComponentBlock, Tensor> _stored = new();
    private readonly Dictionary<string, (long Computed, long Reused)> _counts = new();
    private bool _disposed;

    /// <summary>The schedule this helper follows (given to Enable; checked against the model's blocks there).</summary>
    public CacheSchedule Schedule { get; }

    /// <summary>The canonical components ("attn1", "ff") this helper caches; others always compute.</summary>
    public IReadOnlyCollection<string> Components => _cached;

    private SmoothCacheHelper(IHookable model, CacheSchedule schedule, IReadOnlyList<string> components)
    {
        Schedule = schedule;
        _cached = components.ToHashSet();
        _attachment = HookAttachment.Attach(model, this);
    }

    /// <summary>
    /// Installs a cache helper on <paramref name="model"/>. <paramref name="components"/> selects what is
    /// cached (names or aliases); by default the components the schedule has keys for.
    /// </summary>
    /// <exception cref="InvalidOperationException">a cache or calibration helper is already enabled on the model</exception>
    /// <exception cref="CacheScheduleException">a schedule key names a block the model lacks</exception>
    public static SmoothCacheHelper Enable(IHookable model, CacheSchedule schedule, IEnumerable<string>? components = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(schedule);
        schedule.CheckBlocks(model.NumBlocks);
        var selected = components is null ? schedule.Components : ComponentNames.CanonicalSet(components);
        if (selected.Count == 0)
            throw new ArgumentException($"nothing to cache: no components given (expected some of {ComponentNames.Expected})",
                                        nameof(components));
        return new SmoothCacheHelper(model, schedule, selected);
    }

    /// <summary>Counts the call as step s of this (component, block); where the schedule says 0 for s and an output is stored,
    /// returns that output (shared), else computes and stores the new one. Components not cached always compute. The
    /// returned tensor is the caller's.</summary>
    /// <exception cref="ObjectDisposedException">the helper was disposed</exception>
    public Tensor Run(string component, int block, Func<Tensor> compute)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var canonical = ComponentNames.CanonicalOrNull(component) ?? component;
        var counts = _counts.GetValueOrDefault(canonical);
        if (!_cached.Contains(canonical))
        {
            _counts[canonical] = (counts.Computed + 1, counts.Reused);
            return compute();
        }

        var key = new ComponentBlock(canonical, block);
        int step = _calls.GetValueOrDefault(key);
        _calls[key] = step + 1;
        if (!Schedule.ShouldCompute(canonical, block, step) && _stored.TryGetValue(key, out var stored))
        {
            _counts[canonical] = (counts.Computed, counts.Reused + 1);
            return stored.Share();
        }

        var result = compute();
        var kept = result.Share();
        if (_stored.Remove(key, out var old)) old.Dispose();
        _stored[key] = kept;
        _counts[canonical] = (counts.Computed + 1, counts.Reused);
        return result;
    }

    /// <summary>Starts over: call counters to 0, stored outputs released, statistics cleared.</summary>
    public void Reset()
    {
        ReleaseStored();
        _calls.Clear();
        _counts.Clear();
    }

    /// <summary>
    /// Computed and reused calls per component type since enable/reset (a pipeline's generation resets first: after one,
    /// its own); with
    /// <paramref name="macsPerCall"/> (MACs of one call of a component) also the MACs done and saved.
    /// </summary>
    public CacheStats Stats(Func<string, long>? macsPerCall = null) =>
        new(_counts.Select(kv => new ComponentCacheStats(kv.Key, kv.Value.Computed, kv.Value.Reused, macsPerCall?.Invoke(kv.Key)))
            .ToList());

    private void ReleaseStored()
    {
        foreach (var tensor in _stored.Values) tensor.Dispose();
        _stored.Clear();
    }

    /// <summary>Disables: the model's previous hook comes back and stored outputs are released; statistics stay readable.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _attachment.Detach();
        ReleaseStored();
    }
}
