using System.Text.Json;
using SmoothCache.Cli;
using SmoothCache.Kernels;
using static SmoothCache.Tests.TestSupport;

namespace SmoothCache.Tests.Bench;

/// <summary>The forward and sampling suites on the CPU accelerator, with tiny settings.</summary>
public class BenchCommandTests
{
    private static (int Code, string Out, string Err) Run(params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int code = SmoothCache.Cli.Cli.Run(args, stdout, stderr);
        return (code, stdout.ToString(), stderr.ToString());
    }

    private static string TempJson() => Path.Combine(Path.GetTempPath(), "bench-" + Guid.NewGuid().ToString("N"), "out.json");

    [Fact]
    public void ForwardSuiteOnCpuTimesDigitsAndSkipsXl()
    {
        string json = TempJson();
        try
        {
            var (code, output, err) = Run("bench", "--suite", "forward", "--device", "cpu", "--iterations", "1", "--batch", "4", "--json", json);
            Assert.True(code == ExitCodes.Success, err + output);
            Assert.Contains("DiT-XL/2 skipped", output);
            using var doc = JsonDocument.Parse(File.ReadAllText(json));
            var forward = doc.RootElement.GetProperty("forward").EnumerateArray().ToArray();
            Assert.Equal([2, 16, 4], forward.Select(f => f.GetProperty("batch").GetInt32())); // --batch adds a batch
            Assert.All(forward, f => Assert.Equal("dit-digits", f.GetProperty("model").GetString()));
            Assert.All(forward, f => Assert.True(f.GetProperty("milliseconds").GetDouble() > 0));
            // Launches per forward do not depend on the batch: 6 blocks, each with the same kernels.
            double launches = forward[0].GetProperty("launchesPerForward").GetDouble();
            Assert.True(launches > 6 * 8, $"{launches} launches");
            Assert.Equal(launches, forward[1].GetProperty("launchesPerForward").GetDouble());
            Assert.True(forward[0].GetProperty("kernelsCompiled").GetInt32() > 0);
            // The first call's kernel loads are part of it; a later batch's first call compiles (nearly) nothing new.
            double load = forward[0].GetProperty("kernelLoadMs").GetDouble(), first = forward[0].GetProperty("firstCallMs").GetDouble();
            Assert.InRange(load, double.Epsilon, first);
            Assert.InRange(forward[1].GetProperty("kernelLoadMs").GetDouble(), 0, forward[1].GetProperty("firstCallMs").GetDouble());
            Assert.Empty(doc.RootElement.GetProperty("failures").EnumerateArray());
            Assert.Equal(JsonValueKind.Null, doc.RootElement.GetProperty("gemmTuning").ValueKind); // no table on the CPU
            Assert.Equal(["out.json"], Directory.GetFiles(Path.GetDirectoryName(json)!).Select(Path.GetFileName));
        }
        finally
        {
            Directory.Delete(Path.GetDirectoryName(json)!, true);
        }
    }

    [Fact]
    public void PrecisionOptionTimesOnlyThatPrecision()
    {
        string json = TempJson();
        try
        {
            // --no-pdl (no replays with programmatic dependent launch) changes nothing where the device has none.
            var (code, output, err) = Run("bench", "--suite", "forward", "--device", "cpu", "--iterations", "1", "--batch", "2", "--precision", "FP16", "--no-pdl", "--json", json);
            Assert.True(code == ExitCodes.Success, err + output);
            using var doc = JsonDocument.Parse(File.ReadAllText(json));
            var forward = doc.RootElement.GetProperty("forward").EnumerateArray().ToArray();
            Assert.Equal(2, forward.Length);
            Assert.All(forward, f => Assert.Equal("fp16", f.GetProperty("precision").GetString()));
            // The CPU accelerator has no dependent launches: the plain replay is timed, the pdl one is not.
            Assert.All(forward, f => Assert.True(f.GetProperty("replayMilliseconds").GetDouble() > 0));
            Assert.All(forward, f => Assert.Equal(JsonValueKind.Null, f.GetProperty("dependentReplayMilliseconds").ValueKind));
        }
        finally
        {
            Directory.Delete(Path.GetDirectoryName(json)!, true);
        }
    }

    [Fact]
    public void ForwardProfileAccountsForEveryLaunchOfTheForward()
    {
        string json = TempJson();
        try
        {
            var (code, output, err) = Run("bench", "--suite", "forward", "--device", "cpu", "--iterations", "1", "--batch", "2", "--profile", "--json", json);
            Assert.True(code == ExitCodes.Success, err + output);
            Assert.Contains("profile: kernels", output);
            using var doc = JsonDocument.Parse(File.ReadAllText(json));
            var first = doc.RootElement.GetProperty("forward")[0];
            var kernels = first.GetProperty("kernels").EnumerateArray().ToDictionary(
                k => k.GetProperty("kernel").GetString()!, k => k.GetProperty("launches").GetInt32());
            Assert.Equal(first.GetProperty("launchesPerForward").GetDouble(), kernels.Values.Sum());
            // dit-digits has 6 blocks sharing one embedder: two adaLNs per block plus the final layer's,
            // each adding the residual before it; no residual needs a launch of its own.
            Assert.Equal(13, kernels["LayerNormModulate"]);
            Assert.False(kernels.ContainsKey("GatedResidual"));
            Assert.Equal(6, kernels["Attention"]);
            Assert.True(first.GetProperty("kernelMilliseconds").GetDouble() > 0);
        }
        finally
        {
            Directory.Delete(Path.GetDirectoryName(json)!, true);
        }
    }

    /// <summary>A benchmark per kernel: every kernel a profiled forward launches, and the sampler's and the cache's, has a
    /// row of its own in the kernels suite (named by its operator).</summary>
    [Fact]
    public void KernelsSuiteTimesEveryKernelAStepLaunches()
    {
        string forwardJson = TempJson(), kernelsJson = TempJson();
        try
        {
            var (code, output, err) = Run("bench", "--suite", "forward", "--device", "cpu", "--iterations", "1", "--batch", "2", "--profile", "--json", forwardJson);
            Assert.True(code == ExitCodes.Success, err + output);
            (code, output, err) = Run("bench", "--suite", "kernels", "--device", "cpu", "--iterations", "1", "--batch", "2", "--json", kernelsJson);
            Assert.True(code == ExitCodes.Success, err + output);
            using var forward = JsonDocument.Parse(File.ReadAllText(forwardJson));
            var launched = forward.RootElement.GetProperty("forward")[0].GetProperty("kernels").EnumerateArray()
                .Select(k => k.GetProperty("kernel").GetString()!.Split('<', '.')[0]).Distinct().ToArray();
            Assert.Contains("PatchEmbed", launched);
            using var kernels = JsonDocument.Parse(File.ReadAllText(kernelsJson));
            var rows = kernels.RootElement.GetProperty("kernels").EnumerateArray().Select(k => k.GetProperty("kernel").GetString()!).ToArray();
            string[] sampling = ["RepeatBatch", "Guidance", "SchedulerStep", "RelativeL1", "HalfConversion"];
            Assert.All(launched.Concat(sampling), kernel => Assert.Contains(rows, row => row.StartsWith(kernel, StringComparison.Ordinal)));
            Assert.All(kernels.RootElement.GetProperty("kernels").EnumerateArray(), k => Assert.True(k.GetProperty("milliseconds").GetDouble() > 0));
        }
        finally
        {
            foreach (var json in new[] { forwardJson, kernelsJson })
                if (Directory.Exists(Path.GetDirectoryName(json))) Directory.Delete(Path.GetDirectoryName(json)!, true);
        }
    }

    [Fact]
    public void SmokeSuiteRunsEveryStepThroughAWholeDigitsForward()
    {
        var (code, output, err) = Run("bench", "--suite", "smoke", "--device", "cpu");
        Assert.True(code == ExitCodes.Success, err + output);
        var steps = output.Split('\n').Where(l => l.StartsWith("ok ")).ToArray();
        Assert.Contains(steps, l => l.Contains("Unpatchify at dit-digits' shape"));
        Assert.Contains(steps, l => l.Contains("dit-digits forward, batch 2, portable kernels"));
        Assert.Contains(steps, l => l.EndsWith("dit-digits forward, batch 2"));
        Assert.Contains(steps, l => l.Contains("dit-digits DDIM 2 steps"));
        Assert.Contains(steps, l => l.EndsWith("recorded with dependent launches and replayed"));
        Assert.Contains(steps, l => l.EndsWith("Attention fp16, 130 tokens, 2 heads of 64, async staging"));
        Assert.Contains(steps, l => l.EndsWith("few rows on tensor cores, 8 columns a warp"));
        Assert.Contains(steps, l => l.EndsWith("LayerNormModulate [2,16,1152] fp16 after two fp16 residuals, x then y"));
        Assert.Contains(steps, l => l.EndsWith("GatedResidual, fp16 x and two fp16 residuals"));
        Assert.Contains(steps, l => l.EndsWith("dit-digits fp16 DDIM 4 steps, 1 image with CFG, SmoothCache reusing steps 1 and 2"));
        Assert.DoesNotContain("FAIL", output);
    }

    [Fact]
    public void SamplingSuiteOnCpuCalibratesADigitsScheduleForOtherSteps()
    {
        string json = TempJson();
        try
        {
            var (code, output, err) = Run("bench", "--suite", "sampling", "--device", "cpu", "--steps", "3", "--images", "1", "--runs", "2", "--json", json);
            Assert.True(code == ExitCodes.Success, err + output);
            Assert.Contains("median of 2 runs each", output);
            using var doc = JsonDocument.Parse(File.ReadAllText(json));
            var job = Assert.Single(doc.RootElement.GetProperty("sampling").EnumerateArray());
            Assert.Equal("dit-digits", job.GetProperty("model").GetString());
            Assert.Equal(1, job.GetProperty("images").GetInt32());
            Assert.Equal(3, job.GetProperty("steps").GetInt32());
            Assert.Equal(2, job.GetProperty("runs").GetInt32());
            Assert.True(job.GetProperty("uncachedSeconds").GetDouble() > 0);
            Assert.True(job.GetProperty("speedup").GetDouble() > 0);
            double computed = job.GetProperty("computedFraction").GetDouble();
            Assert.InRange(computed, 1.0 / 3, 1.0);
            // The shipped schedule is for 50 steps: a 3-step job calibrates its own.
            Assert.EndsWith("ddim-50-a0.15.json is for 50 steps)", job.GetProperty("schedule").GetString());
            Assert.StartsWith("calibrated in-process", job.GetProperty("schedule").GetString());
        }
        finally
        {
            Directory.Delete(Path.GetDirectoryName(json)!, true);
        }
    }

    [Theory]
    [InlineData("--suite", "everything", "--suite 'everything' is unknown")]
    [InlineData("--iterations", "0", "--iterations must be at least 1")]
    [InlineData("--steps", "0", "--steps must be at least 1")]
    [InlineData("--images", "-1", "--images must be 0")]
    [InlineData("--runs", "0", "--runs must be at least 1")]
    [InlineData("--batch", "0", "--batch must be from 1 to 4096, got 0")]
    [InlineData("--device", "tpu", "unknown device 'tpu'")]
    [InlineData("--precision", "fp8", "--precision: unknown precision 'fp8'")]
    [InlineData("--json", "/", "--json: '/' is a folder")]
    public void BadArgumentsExitWithCode2AndSayWhatIsWrong(string option, string value, string message)
    {
        var args = option == "--suite" ? new[] { "bench", option, value } : ["bench", "--suite", "forward", option, value];
        var (code, _, err) = Run(args);
        Assert.Equal(ExitCodes.BadInput, code);
        Assert.Contains(message, err);
    }

    [Fact]
    public void TheSmokeSuiteRefusesJsonItWouldNotWrite()
    {
        var (code, _, err) = Run("bench", "--suite", "smoke", "--json", "smoke.json");
        Assert.Equal(ExitCodes.BadInput, code);
        Assert.Contains("--json: the smoke suite writes no JSON", err);
        Assert.False(File.Exists("smoke.json"));
    }

    [Fact]
    public void BackendCountsEveryLaunch()
    {
        using var x = GpuShapedCpu.Arena.Upload(Random(1, 100), 100);
        long before = GpuShapedCpu.LaunchCount;
        Elementwise.Run<SiluEpilogue>(x).Dispose();
        Elementwise.Run<GeluTanhEpilogue>(x).Dispose();
        using var qkv = GpuShapedCpu.Arena.Upload(Random(2, 3 * 4 * 64), 1, 4, 3 * 64);
        using var output = GpuShapedCpu.Arena.Rent(1, 4, 64);
        SmoothCache.Kernels.Gpu.FlashAttention.Run(GpuShapedCpu, qkv, output, 1, 4, 1, 64);
        Assert.Equal(3, GpuShapedCpu.LaunchCount - before);
    }
}
