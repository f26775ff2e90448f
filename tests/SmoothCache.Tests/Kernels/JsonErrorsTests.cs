using System.Text.Json;
using SmoothCache.Caching;
using SmoothCache.Kernels;

namespace SmoothCache.Tests.Kernels;

public class JsonErrorsTests
{
    [Fact]
    public void CountsLinesAndBytesFromOneAndDropsTheParsersOwnPath()
    {
        var e = Assert.ThrowsAny<JsonException>(() => JsonDocument.Parse("{\"attn1\": [1, 0],\n \"ff\": [1, x]}"));
        string text = JsonErrors.Describe(e);
        Assert.StartsWith("not valid JSON at line 2, byte 12: ", text);
        Assert.DoesNotContain("LineNumber", text);
        Assert.DoesNotContain("Path:", text);
    }

    [Fact]
    public void ASchedulesSyntaxErrorNamesTheFileAndLine()
    {
        var e = Assert.Throws<CacheScheduleException>(() => CacheSchedule.Parse("{\"attn1\": [1, 0],\n \"ff\": [1, x]}", "my-schedule.json"));
        Assert.Contains("my-schedule.json", e.Message);
        Assert.Contains("at line 2, byte 12", e.Message);
    }
}
