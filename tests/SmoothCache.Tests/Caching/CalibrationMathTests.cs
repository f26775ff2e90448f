using System.Globalization;
using System.Text.Json;
using SmoothCache.Caching;

namespace SmoothCache.Tests.Caching;

public class CalibrationMathTests
{
    public static TheoryData<string> Cases => new() { "tiny_dpm20_attn", "tiny_ddim50_attn_ff" };

    private static IReadOnlyDictionary<string, double[][]> FixtureAveragedRows(JsonElement fixture) =>
        fixture.GetProperty("avg_error_rows").EnumerateObject()
            .ToDictionary(p => p.Name, p => CachingFiles.Rows(p.Value));

    [Theory]
    [MemberData(nameof(Cases))]
    public void AveragingRawRowsReproducesTheFixture(string name)
    {
        var fixture = CachingFiles.ReadJson(CachingFiles.Tiny(name + ".json"));
        var raw = CachingFiles.ReadJson(CachingFiles.Tiny(name + ".raw_errors.json")).EnumerateObject()
            .Select(p => new KeyValuePair<ComponentBlock, IReadOnlyList<IReadOnlyList<double>>>(
                CachingFiles.ParseModule(p.Name), CachingFiles.Rows(p.Value)))
            .ToList();

        var averaged = CalibrationMath.AverageByComponent(raw);

        var expected = FixtureAveragedRows(fixture);
        Assert.Equal(expected.Keys.Order(), averaged.Keys.Order());
        foreach (var (component, rows) in expected)
        {
            Assert.Equal(rows.Length, averaged[component].Length);
            for (int j = 0; j < rows.Length; j++)
            {
                Assert.Equal(rows[j].Length, averaged[component][j].Length);
                for (int i = 0; i < rows[j].Length; i++)
                    Assert.True(Math.Abs(rows[j][i] - averaged[component][j][i]) <= 1e-6,
                        $"{component} row {j} index {i}: expected {rows[j][i]}, got {averaged[component][j][i]}");
            }
        }

        // End to end: raw rows -> average -> scan gives the case's schedule.
        double alpha = fixture.GetProperty("alpha").GetDouble();
        int steps = fixture.GetProperty("steps").GetInt32();
        foreach (var component in fixture.GetProperty("schedule").EnumerateObject())
            Assert.Equal(CachingFiles.Flags(component.Value), CalibrationMath.Scan(averaged[component.Name], alpha, steps));
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void ScanningTheAveragedRowsGivesEverySchedule(string name)
    {
        var fixture = CachingFiles.ReadJson(CachingFiles.Tiny(name + ".json"));
        var rows = FixtureAveragedRows(fixture);
        int steps = fixture.GetProperty("steps").GetInt32();
        var byAlpha = fixture.GetProperty("schedules_by_alpha").EnumerateObject().ToList();
        Assert.NotEmpty(byAlpha);
        foreach (var alphaEntry in byAlpha)
        {
            double alpha = double.Parse(alphaEntry.Name, CultureInfo.InvariantCulture);
            foreach (var component in alphaEntry.Value.EnumerateObject())
                Assert.True(CachingFiles.Flags(component.Value).SequenceEqual(CalibrationMath.Scan(rows[component.Name], alpha, steps)),
                    $"alpha {alphaEntry.Name}, {component.Name}");
        }

        double caseAlpha = fixture.GetProperty("alpha").GetDouble();
        foreach (var component in fixture.GetProperty("schedule").EnumerateObject())
            Assert.Equal(CachingFiles.Flags(component.Value), CalibrationMath.Scan(rows[component.Name], caseAlpha, steps));
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void ComputedFractionMatchesTheFixture(string name)
    {
        var fixture = CachingFiles.ReadJson(CachingFiles.Tiny(name + ".json"));
        var schedule = CacheSchedule.Parse(fixture.GetProperty("schedule").GetRawText(), name);
        int steps = fixture.GetProperty("steps").GetInt32();
        foreach (var component in fixture.GetProperty("computed_fraction").EnumerateObject())
            Assert.Equal(component.Value.GetDouble(), schedule.ComputedFraction([component.Name], numBlocks: 6, steps), 12);
    }

    [Fact]
    public void ScanPrefersTheLongestLagWithinTheThreshold()
    {
        // K = 2, N = 7. i=0: lag 2 passes (0.1) -> 1,0,0. i=3: lag 2 fails (0.5), lag 1 passes -> 1,0.
        // i=5: row 2 has no index 5, row 1 fails -> 1. i=6: rows too short -> 1.
        double[][] rows = [[0.1, 9, 9, 0.2, 9, 0.9], [0.1, 9, 9, 0.5, 9]];
        Assert.Equal([true, false, false, true, false, true, true], CalibrationMath.Scan(rows, 0.3, 7));
    }

    [Fact]
    public void ScanKeepsTheLastStepAndClipsSkipsAtTheEnd()
    {
        // Every error passes: lag 3 from step 0 and 4, then lag 3 from step 8 clipped to step 9, which is forced to 1.
        var zeros = new double[10];
        double[][] rows = [zeros, zeros, zeros];
        Assert.Equal([true, false, false, false, true, false, false, false, true, true], CalibrationMath.Scan(rows, 0.0, 10));
    }

    [Fact]
    public void NaNNeverPasses()
    {
        double[][] rows = [[double.NaN, double.NaN, double.NaN]];
        Assert.All(CalibrationMath.Scan(rows, double.MaxValue, 4), Assert.True);
    }

    [Theory]
    [InlineData(-0.01)]
    [InlineData(double.NaN)]
    public void NegativeThresholdIsRejected(double alpha)
    {
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => CalibrationMath.Scan([[0.1]], alpha, 3));
        Assert.Contains("alpha", e.Message);
    }

    [Fact]
    public void AveragingCountsOnlyBlocksThatReachAnIndex()
    {
        var raw = new List<KeyValuePair<ComponentBlock, IReadOnlyList<IReadOnlyList<double>>>>
        {
            new(new("attn1", 0), new double[][] { [1, 2, 3] }),
            new(new("attn1", 1), new double[][] { [3, 4] }),
            new(new("ff", 0), new double[][] { [5] }),
        };
        var averaged = CalibrationMath.AverageByComponent(raw);
        Assert.Equal([2.0, 3.0, 3.0], averaged["attn1"][0]);
        Assert.Equal([5.0], averaged["ff"][0]);
    }
}
