using SmoothCache.Caching;
using SmoothCache.Kernels;

namespace SmoothCache.Tests.Caching;

[Collection(CpuBackendCollection.Name)]
public class SmoothCacheHelperTests(CpuBackendFixture fixture)
{
    private readonly Backend _backend = fixture.Backend;

    /// <summary>A compute function whose n-th call (n = 1, 2, ...) yields [n, n + 0.5, n + 0.25] times tag.</summary>
    private Func<Tensor> Counting(float tag)
    {
        int n = 0;
        return () =>
        {
            n++;
            return _backend.Arena.Upload([tag * n, tag * (n + 0.5f), tag * (n + 0.25f)], 1, 3);
        };
    }

    private static float FirstValues(float[] output, float tag) => output[0] / tag;

    [Fact]
    public void ReusesWhereTheScheduleSaysZeroAndComputesWhereOne()
    {
        var model = new FakeModel(numBlocks: 2);
        var schedule = CacheSchedule.Parse("""{"attn1": [1, 0, 1, 0, 0]}""", "test.json");
        var attn = Counting(1f);
        var ff = Counting(10f);
        using var helper = SmoothCacheHelper.Enable(model, schedule);

        var seen = new List<float>();
        for (int step = 0; step < 5; step++)
        {
            seen.Add(FirstValues(model.Call("attn1", 0, attn), 1f));
            model.Call("ff", 0, ff);
        }

        // Computed at steps 0 and 2 (calls 1 and 2); steps 1, 3, 4 return the last computed output.
        Assert.Equal([1f, 1f, 2f, 2f, 2f], seen);
        Assert.Equal(2, model.ComputeCalls[new("attn1", 0)]);
        // ff has no key: not cached, computed every step.
        Assert.Equal(5, model.ComputeCalls[new("ff", 0)]);
        Assert.Equal(["attn1"], helper.Components);
    }

    [Fact]
    public void ReturnsTheWholeStoredOutput()
    {
        var model = new FakeModel(1);
        using var helper = SmoothCacheHelper.Enable(model, CacheSchedule.Parse("""{"ff": [1, 0]}""", "t"));
        var ff = Counting(3f);
        var computed = model.Call("ff", 0, ff);
        var reused = model.Call("ff", 0, ff);
        Assert.Equal([3f, 4.5f, 3.75f], computed);
        Assert.Equal(computed, reused);
    }

    [Fact]
    public void StepsBeyondAShortScheduleCompute()
    {
        var model = new FakeModel(1);
        using var helper = SmoothCacheHelper.Enable(model, CacheSchedule.Parse("""{"ff": [1, 0]}""", "t"));
        var ff = Counting(1f);
        var seen = Enumerable.Range(0, 5).Select(_ => FirstValues(model.Call("ff", 0, ff), 1f)).ToList();
        Assert.Equal([1f, 1f, 2f, 3f, 4f], seen);
    }

    [Fact]
    public void StepZeroComputesEvenWhenTheScheduleSaysZero()
    {
        var model = new FakeModel(1);
        using var helper = SmoothCacheHelper.Enable(model, CacheSchedule.Parse("""{"ff": [0, 0, 1]}""", "t"));
        var ff = Counting(1f);
        var seen = Enumerable.Range(0, 3).Select(_ => FirstValues(model.Call("ff", 0, ff), 1f)).ToList();
        Assert.Equal([1f, 1f, 2f], seen);
    }

    [Fact]
    public void EachComponentOfEachBlockCountsItsOwnCalls()
    {
        var model = new FakeModel(2);
        var schedule = CacheSchedule.Parse("""{"attn-0": [1, 0, 0, 1], "attn-1": [1, 1, 0, 0], "mlp": [1, 0, 1, 0]}""", "t");
        using var helper = SmoothCacheHelper.Enable(model, schedule);
        var attn0 = Counting(1f);
        var attn1 = Counting(2f);
        var ff0 = Counting(3f);

        // Block 0's attention is called twice as often as anything else: its counter runs ahead alone.
        var attnBlock0 = new List<float>();
        var attnBlock1 = new List<float>();
        var ffBlock0 = new List<float>();
        for (int round = 0; round < 2; round++)
        {
            attnBlock0.Add(FirstValues(model.Call("attn1", 0, attn0), 1f));
            attnBlock0.Add(FirstValues(model.Call("attn1", 0, attn0), 1f));
            attnBlock1.Add(FirstValues(model.Call("attn1", 1, attn1), 2f));
            ffBlock0.Add(FirstValues(model.Call("ff", 0, ff0), 3f));
        }
        attnBlock1.Add(FirstValues(model.Call("attn1", 1, attn1), 2f));
        attnBlock1.Add(FirstValues(model.Call("attn1", 1, attn1), 2f));
        ffBlock0.Add(FirstValues(model.Call("ff", 0, ff0), 3f));

        Assert.Equal([1f, 1f, 1f, 2f], attnBlock0);
        Assert.Equal([1f, 2f, 2f, 2f], attnBlock1);
        Assert.Equal([1f, 1f, 2f], ffBlock0);
        Assert.Equal(["attn1", "ff"], helper.Components.Order());
    }

    [Fact]
    public void SelectedComponentsLimitWhatIsCached()
    {
        var model = new FakeModel(1);
        var schedule = CacheSchedule.Parse("""{"attn": [1, 0], "mlp": [1, 0]}""", "t");
        using var helper = SmoothCacheHelper.Enable(model, schedule, ["mlp"]);
        var attn = Counting(1f);
        var ff = Counting(1f);
        for (int step = 0; step < 2; step++)
        {
            model.Call("attn1", 0, attn);
            model.Call("ff", 0, ff);
        }
        Assert.Equal(2, model.ComputeCalls[new("attn1", 0)]);
        Assert.Equal(1, model.ComputeCalls[new("ff", 0)]);
        Assert.Equal(["ff"], helper.Components);
    }

    [Fact]
    public void ResetStartsTheCountersAgain()
    {
        var model = new FakeModel(1);
        using var helper = SmoothCacheHelper.Enable(model, CacheSchedule.Parse("""{"ff": [1, 0, 0]}""", "t"));
        var ff = Counting(1f);
        model.Call("ff", 0, ff);
        model.Call("ff", 0, ff);
        helper.Reset();
        Assert.Equal(0, helper.Stats().Computed);
        // Step 0 again: computes (call 2), then reuses that one.
        Assert.Equal(2f, FirstValues(model.Call("ff", 0, ff), 1f));
        Assert.Equal(2f, FirstValues(model.Call("ff", 0, ff), 1f));
    }

    [Fact]
    public void EnablingWithNothingToCacheIsAnError()
    {
        var model = new FakeModel(1);
        var e = Assert.Throws<ArgumentException>(() => SmoothCacheHelper.Enable(model, StaticSchedules.Fora(2, 4, ["ff"]), []));
        Assert.Contains("nothing to cache", e.Message);
        Assert.Throws<ArgumentNullException>(() => SmoothCacheHelper.Enable(null!, StaticSchedules.Fora(2, 4, ["ff"])));
        Assert.Null(model.Hook);
    }

    [Fact]
    public void EnablingTwiceIsAnError()
    {
        var model = new FakeModel(1);
        var schedule = StaticSchedules.Fora(2, 4, ["ff"]);
        using var first = SmoothCacheHelper.Enable(model, schedule);
        var e = Assert.Throws<InvalidOperationException>(() => SmoothCacheHelper.Enable(model, schedule));
        Assert.Contains("already enabled", e.Message);
        Assert.Throws<InvalidOperationException>(() => CalibrationHelper.Enable(model, 2, ["ff"]));
        Assert.Same(first, model.Hook);
        first.Dispose();
        using var second = SmoothCacheHelper.Enable(model, schedule);
        Assert.Same(second, model.Hook);
    }

    [Fact]
    public void DisposeRestoresThePreviousHook()
    {
        var previous = new PassThroughHook();
        var model = new FakeModel(1) { Hook = previous };
        var helper = SmoothCacheHelper.Enable(model, StaticSchedules.Fora(2, 4, ["ff"]));
        Assert.Same(helper, model.Hook);
        helper.Dispose();
        Assert.Same(previous, model.Hook);
        helper.Dispose();
        Assert.Same(previous, model.Hook);
        Assert.Throws<ObjectDisposedException>(() => helper.Run("ff", 0, Counting(1f)));
    }

    [Fact]
    public void StoredOutputIsNotRecycledByTheArena()
    {
        var model = new FakeModel(1);
        using var helper = SmoothCacheHelper.Enable(model, CacheSchedule.Parse("""{"ff": [1, 0, 0]}""", "t"));
        var ff = Counting(7f);
        // The fake model disposes its copy of the output after each call.
        var computed = model.Call("ff", 0, ff);
        using (var other = _backend.Arena.Rent(1, 3))
        {
            other.CopyFrom([-1f, -2f, -3f]);
            Assert.Equal(computed, model.Call("ff", 0, ff));
        }
        using var again = _backend.Arena.Upload([-4f, -5f, -6f], 1, 3);
        Assert.Equal(computed, model.Call("ff", 0, ff));
        Assert.Equal(1, model.ComputeCalls[new("ff", 0)]);
    }

    [Fact]
    public void StatsCountComputedAndReusedCallsAndMacs()
    {
        var model = new FakeModel(2);
        var schedule = CacheSchedule.Parse("""{"attn1": [1, 0, 0, 1], "ff": [1, 0, 1, 1]}""", "t");
        using var helper = SmoothCacheHelper.Enable(model, schedule);
        var compute = Counting(1f);
        for (int step = 0; step < 4; step++)
            for (int block = 0; block < 2; block++)
            {
                model.Call("attn1", block, compute);
                model.Call("ff", block, compute);
            }

        var stats = helper.Stats(c => c == "attn1" ? 100 : 1000);
        var attn = Assert.Single(stats.Components, c => c.Component == "attn1");
        var ff = Assert.Single(stats.Components, c => c.Component == "ff");
        Assert.Equal((4, 4), (attn.Computed, attn.Reused));
        Assert.Equal((6, 2), (ff.Computed, ff.Reused));
        Assert.Equal(0.5, attn.ComputedFraction);
        Assert.Equal(10, stats.Computed);
        Assert.Equal(400 + 6000, stats.MacsComputed);
        Assert.Equal(800 + 8000, stats.MacsWithoutCache);
        Assert.Equal(400 + 2000, stats.MacsSaved);

        var table = stats.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(4, table.Length);
        Assert.Equal(["component", "computed", "reused", "fraction", "MACs", "done", "MACs", "without", "cache"],
            table[0].Split(' ', StringSplitOptions.RemoveEmptyEntries));
        Assert.Equal(["attn1", "4", "4", "50.0%", "400", "800"], table[1].Split(' ', StringSplitOptions.RemoveEmptyEntries));
        Assert.Equal(["total", "10", "6", "62.5%", "6,400", "8,800"], table[3].Split(' ', StringSplitOptions.RemoveEmptyEntries));

        var withoutMacs = helper.Stats();
        Assert.Null(withoutMacs.MacsSaved);
        Assert.DoesNotContain("MACs", withoutMacs.ToString());
    }
}
