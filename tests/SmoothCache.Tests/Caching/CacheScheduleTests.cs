using SmoothCache.Caching;

namespace SmoothCache.Tests.Caching;

public class CacheScheduleTests
{
    public static TheoryData<string> ShippedFiles =>
        new(Directory.GetFiles(CachingFiles.DitXlSchedules, "*.json").Select(Path.GetFileName).Order()!);

    [Fact]
    public void AllPublishedDitXlSchedulesAreThere()
    {
        Assert.Equal(9, ShippedFiles.Count);
    }

    [Theory]
    [MemberData(nameof(ShippedFiles))]
    public void PublishedDitXlScheduleLoadsAndFitsDitXl(string file)
    {
        var path = Path.Combine(CachingFiles.DitXlSchedules, file);
        var schedule = CacheSchedule.Load(path);
        // Names are steps-N-lookahead-method; diffuser_schedule.json is a 50-step schedule.
        int steps = file.StartsWith("diffuser") ? 50 : int.Parse(file.Split('-')[0]);
        Assert.NotEmpty(schedule.Keys);
        Assert.Empty(schedule.Validate(numBlocks: 28, steps));
        foreach (var key in schedule.Keys)
        {
            Assert.Equal(steps, schedule[key].Count);
            Assert.True(schedule[key][0], $"{file} {key}: step 0 computes");
            Assert.True(schedule[key][^1], $"{file} {key}: the last step computes");
        }
        Assert.Equal(path, schedule.SourceName);
    }

    [Fact]
    public void PerBlockPublishedScheduleNamesBlocksDitDigitsLacks()
    {
        var schedule = CacheSchedule.Load(Path.Combine(CachingFiles.DitXlSchedules, "50-N-2-l2c.json"));
        Assert.Equal(56, schedule.Keys.Count);
        var e = Assert.Throws<CacheScheduleException>(() => schedule.Validate(numBlocks: 6, steps: 50));
        Assert.Equal("attn-6", e.Key);
        Assert.Contains("50-N-2-l2c.json", e.Message);
        Assert.Contains("\"attn-6\"", e.Message);
        Assert.Contains("6 blocks", e.Message);
    }

    [Fact]
    public void AliasesMeanThisModelsComponents()
    {
        var schedule = CacheSchedule.Parse("""{"attn": [1, 0, 1], "mlp": [1, 1, 0]}""", "aliases.json");
        Assert.False(schedule.ShouldCompute("attn1", 4, 1));
        Assert.True(schedule.ShouldCompute("attn1", 4, 2));
        Assert.False(schedule.ShouldCompute("ff", 0, 2));
        Assert.True(schedule.ShouldCompute("ff", 0, 1));
        Assert.Equal(["attn1", "ff"], schedule.Components);
        // The indexer finds a key by any name of its component; a key the schedule lacks, or no key at all, is not found.
        Assert.Equal(new[] { true, false, true }, schedule["attn1"]);
        Assert.Equal(new[] { true, true, false }, schedule["mlp"]);
        Assert.Throws<KeyNotFoundException>(() => schedule["ff-3"]);
        Assert.Throws<KeyNotFoundException>(() => schedule["conv"]);
    }

    [Fact]
    public void PerBlockKeyWinsOverTheComponentKey()
    {
        var schedule = CacheSchedule.Parse("""{"attn1": [1, 0, 0], "attn-2": [1, 1, 1], "ff-1": [1, 0]}""", "blocks.json");
        Assert.False(schedule.ShouldCompute("attn1", 1, 1));
        Assert.True(schedule.ShouldCompute("attn1", 2, 1));
        Assert.True(schedule.ShouldCompute("attn", 2, 2));
        Assert.False(schedule.ShouldCompute("ff", 1, 1));
        Assert.False(schedule.ShouldCompute("mlp", 1, 1));
        // No "ff" key and no "ff-0": block 0 always computes.
        Assert.True(schedule.ShouldCompute("ff", 0, 1));
    }

    [Fact]
    public void StepsBeyondTheListCompute()
    {
        var schedule = CacheSchedule.Parse("""{"ff": [1, 0]}""", "short.json");
        Assert.False(schedule.ShouldCompute("ff", 0, 1));
        Assert.True(schedule.ShouldCompute("ff", 0, 2));
        Assert.True(schedule.ShouldCompute("ff", 0, 100));
        Assert.True(schedule.ShouldCompute("attn1", 0, 1));
    }

    [Fact]
    public void ShortListsAreReportedNotRejected()
    {
        var schedule = CacheSchedule.Parse("""{"attn1": [1, 0, 1], "ff": [1, 0, 1, 0, 1]}""", "short.json");
        var warnings = schedule.Validate(numBlocks: 6, steps: 5);
        var warning = Assert.Single(warnings);
        Assert.Contains("short.json", warning);
        Assert.Contains("\"attn1\"", warning);
        Assert.Contains("3 entries for 5 steps", warning);
    }

    [Fact]
    public void AListThatStartsWithReuseIsReported()
    {
        var schedule = CacheSchedule.Parse("""{"attn1": [0, 0, 1], "ff": [1, 0, 1]}""", "zero.json");
        var warning = Assert.Single(schedule.Validate(numBlocks: 6, steps: 3));
        Assert.Equal("zero.json: key \"attn1\" starts with 0, but step 0 is computed: there is no earlier output to reuse", warning);
    }

    [Fact]
    public void ListsLongerThanTheRunAreReportedOnceForTheSchedule()
    {
        var schedule = CacheSchedule.Parse("""{"attn1": [1, 0, 1, 0], "ff": [1, 0, 1, 0, 1]}""", "long.json");
        var warning = Assert.Single(schedule.Validate(numBlocks: 6, steps: 3));
        Assert.Contains("long.json", warning);
        Assert.Contains("up to 5 entries for 3 steps", warning);
        Assert.Contains("entries 3..4 are unused", warning);
        Assert.DoesNotContain(schedule.Validate(numBlocks: 6, steps: 5), w => w.Contains("unused"));
    }

    [Fact]
    public void BooleansAreAcceptedAsFlags()
    {
        var schedule = CacheSchedule.Parse("""{"ff": [true, false]}""", "bools.json");
        Assert.Equal([true, false], schedule["ff"]);
    }

    public static TheoryData<string, string?, string> BadSchedules => new()
    {
        { """{"attn1": [1, 0""", null, "not valid JSON" },
        { "", null, "not valid JSON" },
        { "[1, 0, 1]", null, "expected a JSON object" },
        { "\"attn1\"", null, "expected a JSON object" },
        { """{"attn1": [1, 2, 1]}""", "attn1", "index 1: expected 0 or 1, found 2" },
        { """{"ff": [1, 0.5]}""", "ff", "index 1: expected 0 or 1, found 0.5" },
        { """{"ff": [1.0, 0]}""", "ff", "index 0: expected 0 or 1, found 1.0" },
        { """{"ff": [1, -0]}""", "ff", "index 1: expected 0 or 1, found -0" },
        { """{"attn": [1, [0], 1]}""", "attn", "index 1: expected 0 or 1, found [0]" },
        { """{"attn": [1, "0"]}""", "attn", "index 1: expected 0 or 1, found \"0\"" },
        { """{"attn": [1, null]}""", "attn", "index 1: expected 0 or 1, found null" },
        { """{"attn": 1}""", "attn", "expected a list of 0/1, found a number" },
        { """{"attn": {"0": 1}}""", "attn", "expected a list of 0/1, found an object" },
        { """{"attn2": [1]}""", "attn2", "unknown component key" },
        { """{"lookahead": 3, "avg_error_rows": {"attn1": [[0.1]]}}""", "avg_error_rows", "a calibration's errors file, not a schedule" },
        { """{"norm1": [1]}""", "norm1", "unknown component key" },
        { """{"attn-x": [1]}""", "attn-x", "block index \"x\"" },
        { """{"ff-": [1]}""", "ff-", "block index \"\"" },
        { """{"ff-05": [1]}""", "ff-05", "leading zeros" },
        { """{"ff--1": [1]}""", "ff--1", "block index \"-1\"" },
        { """{"ff-99999999999": [1]}""", "ff-99999999999", "block index" },
        { """{"attn": [1], "attn1": [0]}""", "attn1", "same component as key \"attn\"" },
        { """{"mlp-3": [1], "ff-3": [0]}""", "ff-3", "same component as key \"mlp-3\"" },
        { """{"ff": [1], "ff": [0]}""", "ff", "appears twice" },
        { "{}", null, "names no component" },
    };

    [Theory]
    [MemberData(nameof(BadSchedules))]
    public void BadScheduleNamesFileAndKey(string json, string? key, string problem)
    {
        var e = Assert.Throws<CacheScheduleException>(() => CacheSchedule.Parse(json, "bad/schedule.json"));
        Assert.Equal("bad/schedule.json", e.File);
        Assert.Equal(key, e.Key);
        Assert.StartsWith("bad/schedule.json: ", e.Message);
        if (key is not null) Assert.Contains($"key \"{key}\"", e.Message);
        Assert.Contains(problem, e.Message);
    }

    [Fact]
    public void LoadNamesTheFileItRead()
    {
        var dir = Directory.CreateTempSubdirectory("cache-schedule-");
        try
        {
            var path = Path.Combine(dir.FullName, "broken.json");
            File.WriteAllText(path, """{"ff": [1, 3]}""");
            var e = Assert.Throws<CacheScheduleException>(() => CacheSchedule.Load(path));
            Assert.Equal(path, e.File);
            Assert.StartsWith(path + ": key \"ff\"", e.Message);

            var missing = Path.Combine(dir.FullName, "missing.json");
            var notFound = Assert.Throws<CacheScheduleException>(() => CacheSchedule.Load(missing));
            Assert.StartsWith(missing + ": cannot read the schedule", notFound.Message);
            var folder = Assert.Throws<CacheScheduleException>(() => CacheSchedule.Load(dir.FullName));
            Assert.Equal(dir.FullName + ": is a folder: expected a schedule JSON file", folder.Message);
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    [Fact]
    public void SaveWritesOneLinePerKeyAndReloads()
    {
        var dir = Directory.CreateTempSubdirectory("cache-schedule-");
        try
        {
            var schedule = CacheSchedule.Parse("""{"attn1": [1, 0, 1], "ff": [1, 1]}""", "in-memory");
            var path = Path.Combine(dir.FullName, "sub", "out.json");
            schedule.Save(path);
            Assert.Equal("{\"attn1\": [1, 0, 1],\n \"ff\": [1, 1]}\n", File.ReadAllText(path));

            // Overwrite in place, through the temporary file; nothing else is left beside it.
            StaticSchedules.Fora(2, 4, ["attn", "mlp-1"]).Save(path);
            Assert.Equal([path], Directory.GetFiles(Path.GetDirectoryName(path)!));
            var reloaded = CacheSchedule.Load(path);
            Assert.Equal(["attn", "mlp-1"], reloaded.Keys);
            Assert.Equal([true, false, true, true], reloaded["mlp-1"]);
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    [Fact]
    public void SavedPublishedScheduleReadsBackTheSame()
    {
        var original = CacheSchedule.Load(Path.Combine(CachingFiles.DitXlSchedules, "50-N-2-l2c.json"));
        var copy = CacheSchedule.Parse(original.ToJson(), "copy");
        Assert.Equal(original.Keys, copy.Keys);
        foreach (var key in original.Keys) Assert.Equal(original[key], copy[key]);
        Assert.Equal(original.Keys.Count, original.ToJson().Count(c => c == '\n'));
    }

    [Fact]
    public void ComputedFractionCountsTheFirstStepAsComputed()
    {
        // attn1 computes 2 of 4 steps in every block; ff's list starts with 0, but step 0 has nothing to reuse.
        var schedule = CacheSchedule.Parse("""{"attn1": [1, 0, 1, 0], "ff": [0, 0, 0, 0]}""", "fraction.json");
        Assert.Equal(0.5, schedule.ComputedFraction(["attn1"], 3, 4), 12);
        Assert.Equal(0.25, schedule.ComputedFraction(["mlp"], 3, 4), 12);
        Assert.Equal(0.375, schedule.ComputedFraction(["attn1", "ff"], 3, 4), 12);
    }
}
