using SmoothCache.Caching;
using SmoothCache.Kernels;

namespace SmoothCache.Tests.Caching;

[Collection(CpuBackendCollection.Name)]
public class CalibrationHelperTests(CpuBackendFixture fixture)
{
    private readonly Backend _backend = fixture.Backend;

    /// <summary>Random outputs per (component, block, call), kept on the host for the reference errors.</summary>
    private sealed class RandomOutputs(Backend backend, int length, int seed)
    {
        private readonly Random _random = new(seed);
        public Dictionary<ComponentBlock, List<float[]>> Host { get; } = new();

        public Func<Tensor> For(string component, int block) => () =>
        {
            // Outputs drift slowly, like a component's output over denoising steps.
            var key = new ComponentBlock(component, block);
            if (!Host.TryGetValue(key, out var list)) Host[key] = list = new();
            var data = list.Count == 0
                ? Enumerable.Range(0, length).Select(_ => (float)(_random.NextDouble() * 2 - 1)).ToArray()
                : list[^1].Select(v => v + (float)(_random.NextDouble() - 0.5) * 0.2f).ToArray();
            list.Add(data);
            return backend.Arena.Upload(data, 1, length);
        };
    }

    [Fact]
    public void RecordedErrorsAreTheRelativeL1OfEachLag()
    {
        const int steps = 6, lookahead = 3, length = 1001;
        var model = new FakeModel(2);
        var outputs = new RandomOutputs(_backend, length, seed: 7);
        var helper = CalibrationHelper.Enable(model, lookahead, ["attn1", "ff"]);
        for (int step = 0; step < steps; step++)
            for (int block = 0; block < 2; block++)
            {
                model.Call("attn1", block, outputs.For("attn1", block));
                using (var scratch = _backend.Arena.Rent(1, length)) scratch.CopyFrom(Enumerable.Repeat(-9f, length).ToArray());
                model.Call("ff", block, outputs.For("ff", block));
            }
        helper.Dispose();
        Assert.Null(model.Hook);

        // The rows stay readable after disable.
        var errorRows = helper.ErrorRows;
        Assert.Equal([new("attn1", 0), new("ff", 0), new("attn1", 1), new("ff", 1)], errorRows.Select(kv => kv.Key));
        foreach (var (module, moduleRows) in errorRows)
        {
            var host = outputs.Host[module];
            Assert.Equal(lookahead, moduleRows.Count);
            for (int j = 0; j < lookahead; j++)
            {
                int lag = j + 1;
                Assert.Equal(steps - lag, moduleRows[j].Count);
                for (int i = 0; i < moduleRows[j].Count; i++)
                {
                    // Index i compares step i with step i + lag, the later step in the denominator.
                    double expected = RelativeL1Kernel.Reference(host[i], host[i + lag]);
                    Assert.True(Math.Abs(expected - moduleRows[j][i]) <= 1e-6,
                        $"{module} lag {lag} index {i}: host {expected}, helper {moduleRows[j][i]}");
                }
            }
        }

        var averaged = helper.AveragedRows();
        Assert.Equal(["attn1", "ff"], averaged.Keys);
        Assert.Equal((errorRows[0].Value[1][2] + errorRows[2].Value[1][2]) / 2, averaged["attn1"][1][2], 12);
    }

    [Fact]
    public void IdenticalOutputsGiveTheLongestSkips()
    {
        var model = new FakeModel(1);
        using var helper = CalibrationHelper.Enable(model, 3, ["ff"]);
        for (int step = 0; step < 10; step++)
            model.Call("ff", 0, () => _backend.Arena.Upload([1f, -2f, 3f], 3));

        // All errors are 0: compute, reuse 3 steps, from steps 0, 4 and 8; the last step computes.
        var schedule = helper.Schedule(alpha: 0, steps: 10);
        Assert.Equal(["ff"], schedule.Keys);
        Assert.Equal([true, false, false, false, true, false, false, false, true, true], schedule["ff"]);
    }

    [Fact]
    public void NonCalibratedComponentsPassThrough()
    {
        var model = new FakeModel(1);
        using var helper = CalibrationHelper.Enable(model, 2, ["attn1"]);
        for (int step = 0; step < 3; step++)
        {
            Assert.Equal([4f, 5f], model.Call("ff", 0, () => _backend.Arena.Upload([4f, 5f], 2)));
            model.Call("attn1", 0, () => _backend.Arena.Upload([1f, 2f], 2));
        }
        Assert.Equal([new ComponentBlock("attn1", 0)], helper.ErrorRows.Select(kv => kv.Key));
        Assert.Equal(3, model.ComputeCalls[new("ff", 0)]);
    }

    [Fact]
    public void WritesAveragedAndRawRows()
    {
        var model = new FakeModel(2);
        using var helper = CalibrationHelper.Enable(model, 2, ["attn1"]);
        for (int step = 0; step < 4; step++)
            for (int block = 0; block < 2; block++)
            {
                float scale = 1 + step * (block + 1);
                model.Call("attn1", block, () => _backend.Arena.Upload([scale, -scale], 2));
            }

        var dir = Directory.CreateTempSubdirectory("calibration-");
        try
        {
            var path = Path.Combine(dir.FullName, "errors.json");
            helper.WriteErrorsJson(path);
            var root = CachingFiles.ReadJson(path);
            Assert.Equal(2, root.GetProperty("lookahead").GetInt32());
            var raw = root.GetProperty("raw_error_rows");
            Assert.Equal(["transformer_blocks.0.attn1", "transformer_blocks.1.attn1"], raw.EnumerateObject().Select(p => p.Name));
            // Block 0 scales 1, 2, 3, 4: lag 1 at index 0 is |1 - 2| / 2.
            var block0 = CachingFiles.Rows(raw.GetProperty("transformer_blocks.0.attn1"));
            Assert.Equal(new double[][] { [0.5, 1 / 3.0, 0.25], [2 / 3.0, 0.5] }, block0, (a, b) => a.Zip(b).All(p => Math.Abs(p.First - p.Second) < 1e-6));
            var averaged = CachingFiles.Rows(root.GetProperty("avg_error_rows").GetProperty("attn1"));
            // Block 1 scales 1, 3, 5, 7: lag 1 at index 0 is 2/3.
            Assert.Equal((0.5 + 2 / 3.0) / 2, averaged[0][0], 6);
            Assert.Equal([path], Directory.GetFiles(dir.FullName));
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    [Fact]
    public void BadArgumentsAreRejectedClearly()
    {
        var model = new FakeModel(1);
        var lookahead = Assert.Throws<ArgumentOutOfRangeException>(() => CalibrationHelper.Enable(model, 0, ["ff"]));
        Assert.Contains("lookahead must be at least 1", lookahead.Message);
        Assert.Null(model.Hook);
        Assert.Throws<ArgumentException>(() => CalibrationHelper.Enable(model, 1, ["norm1"]));

        using var helper = CalibrationHelper.Enable(model, 1, ["ff"]);
        Assert.Contains("nothing calibrated yet", Assert.Throws<InvalidOperationException>(() => helper.Schedule(0.1, 10)).Message);
        for (int step = 0; step < 6; step++) model.Call("ff", 0, () => _backend.Arena.Upload([1f, step], 2));
        Assert.Equal(6, helper.CalibratedSteps);
        var alpha = Assert.Throws<ArgumentOutOfRangeException>(() => helper.Schedule(-0.1, 6));
        Assert.Contains("alpha must be a number >= 0", alpha.Message);
        // A schedule is for the run measured: past its steps there are no errors to follow, and before them other timesteps.
        foreach (int steps in new[] { 10, 5 })
        {
            var wrong = Assert.Throws<ArgumentOutOfRangeException>(() => helper.Schedule(0.1, steps));
            Assert.Equal("steps", wrong.ParamName);
            Assert.Contains("calibrated a run of 6 steps", wrong.Message);
        }
        Assert.Equal(6, helper.Schedule(0.1, 6)["ff"].Count);
        var e = Assert.Throws<InvalidOperationException>(() => CalibrationHelper.Enable(model, 1, ["ff"]));
        Assert.Contains("already enabled", e.Message);
    }
}
