using System.Text.Json;
using SmoothCache.Cli.Bench;
using static SmoothCache.Tests.TestSupport;

namespace SmoothCache.Tests.Bench;

/// <summary>The benchmark and check commands run on a GPU only; what runs here is their host side.</summary>
public class GemmBenchOutputTests
{
    [Fact]
    public void WritesResultsAndChecksAsJsonReplacingAnOldFile()
    {
        string dir = Path.Combine(Path.GetTempPath(), "gemm-bench-" + Guid.NewGuid().ToString("N"));
        string path = Path.Combine(dir, "out.json");
        try
        {
            Directory.CreateDirectory(dir);
            File.WriteAllText(path, "old");
            var results = new[] { new BenchResult("ours SGEMM fp32", 512, 1152, 1152, 1e-7, 450, 0.1, 13.6) };
            var checks = new[] { new CheckResult("SGEMM bias", 37, 19, 24, 2e-7, 1e-5), new CheckResult("tensor-core bias", 1, 8, 8, 1, 1e-5) };
            GemmBench.WriteJson(path, "test device", results, checks);
            using var doc = JsonDocument.Parse(File.ReadAllText(path));
            Assert.Equal("test device", doc.RootElement.GetProperty("device").GetString());
            var r = doc.RootElement.GetProperty("results")[0];
            Assert.Equal(1152, r.GetProperty("n").GetInt32());
            Assert.Equal(13.6, r.GetProperty("tflops").GetDouble());
            var c = doc.RootElement.GetProperty("checks");
            Assert.True(c[0].GetProperty("passed").GetBoolean());
            Assert.False(c[1].GetProperty("passed").GetBoolean());
            Assert.Equal(["out.json"], Directory.GetFiles(dir).Select(Path.GetFileName));
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    [Fact]
    public void RefuseToRunWithoutCuda()
    {
        Assert.Contains("CUDA", Assert.Throws<InvalidOperationException>(() => GpuChecks.Run(Cpu, TextWriter.Null)).Message);
        Assert.Contains("CUDA", Assert.Throws<InvalidOperationException>(() => GemmBench.Run(Cpu, TextWriter.Null)).Message);
    }
}
