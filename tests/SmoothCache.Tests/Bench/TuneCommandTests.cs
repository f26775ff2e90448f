using System.Text.Json;
using SmoothCache.Cli;
using SmoothCache.Cli.Bench;
using SmoothCache.Kernels;
using SmoothCache.Kernels.Gpu;
using SmoothCache.Model;
using SmoothCache.Sampling;
using SmoothCache.Tests.Cli;
using static SmoothCache.Tests.TestSupport;

namespace SmoothCache.Tests.Bench;

/// <summary>`smoothcache tune` on the CPU accelerator with the TMA GEMM emulated (its timings mean nothing there; what
/// is checked is the table it writes and that a forward then takes it).</summary>
public class TuneCommandTests
{
    private static T WithKernels<T>(string? kernels, Func<T> run)
    {
        string? saved = Environment.GetEnvironmentVariable("SMOOTHCACHE_KERNELS");
        try
        {
            Environment.SetEnvironmentVariable("SMOOTHCACHE_KERNELS", kernels);
            return run();
        }
        finally
        {
            Environment.SetEnvironmentVariable("SMOOTHCACHE_KERNELS", saved);
        }
    }

    [Fact]
    public void TuneWritesATableOfEveryShapeThatTheForwardThenTakes()
    {
        using var folder = new CliRunner.TempFolder();
        string table = folder.File("tuning.json"), json = folder.File("candidates.json");
        var result = WithKernels("wgmma-tma", () => CliRunner.Run("tune", "--device", "cpu", "--model", RepoFile("models", "dit-digits"),
            "--batch", "2", "--variants", "128x128-barrier", "128x128x64-shallowreleased", "--splits", "1", "2", "--iterations", "1",
            "--out", table, "--json", json));
        Assert.True(result.ExitCode == ExitCodes.Success, result.Error + result.Out);
        Assert.Contains("batch 2: fp16 GEMM device time per forward", result.Out);
        // Each shape timed as the forward runs it: fc1 with its GELU into fp16 (what the next GEMM reads), fc2 into fp16
        // (the component's output on the fp16 path).
        Assert.Contains("timed with GeluTanhEpilogue into fp16", result.Out);
        Assert.Contains("timed with IdentityEpilogue into fp16", result.Out);

        var tuning = GemmTuning.Load(table);
        Assert.Equal(("CPUAccelerator", "LinearWgmmaTma"), (tuning.Device, tuning.Kernel));
        using var doc = JsonDocument.Parse(File.ReadAllText(json));
        var candidates = doc.RootElement.GetProperty("candidates").EnumerateArray()
            .Select(c => (M: c.GetProperty("m").GetInt32(), N: c.GetProperty("n").GetInt32(), K: c.GetProperty("k").GetInt32(),
                Variant: c.GetProperty("variant").GetString(), Splits: c.GetProperty("splits").GetInt32(),
                BuiltIn: c.GetProperty("builtIn").GetBoolean(), Error: c.GetProperty("relativeError").GetDouble())).ToArray();
        Assert.All(candidates, c => Assert.True(c.Error < GemmTuner.Tolerance, $"{c}"));
        foreach (var g in tuning.Gemms)
        {
            // Every chosen launch was tried and checked, and is never slower than the built-in one.
            Assert.Contains(candidates, c => (c.M, c.N, c.K, c.Variant, c.Splits) == (g.M, g.N, g.K, g.Variant!.Value.Name, g.Splits));
            Assert.Single(candidates, c => (c.M, c.N, c.K) == (g.M, g.N, g.K) && c.BuiltIn);
            Assert.True(g.Milliseconds <= g.DefaultMilliseconds, $"{g}");
        }

        // A forward at the tuned batch launches every fp16 GEMM as the table says, the same shapes the tuner saw.
        using var backend = Backend.Create(DeviceKind.Cpu, KernelSet.WgmmaTma);
        backend.GemmTuning = tuning;
        using var pipeline = DiTPipeline.Load(RepoFile("models", "dit-digits"), backend, Precision.Fp16);
        var (latents, timesteps, labels) = ModelBench.ForwardInputs(pipeline.Transformer, 2);
        backend.GemmLog = new();
        using (latents) pipeline.Transformer.Forward(latents, timesteps, labels).Dispose();
        var launched = backend.GemmLog.Select(g => (g.M, g.N, g.K, g.Variant, g.Splits)).Distinct().OrderBy(g => (g.M, g.N, g.K));
        Assert.Equal(string.Join("\n", tuning.Gemms.Select(g => (g.M, g.N, g.K, g.Variant?.Name, g.Splits)).OrderBy(g => (g.M, g.N, g.K))),
            string.Join("\n", launched.Select(g => (g.M, g.N, g.K, g.Variant?.Name, g.Splits))));
    }

    [Fact]
    public void BenchSaysWhichTuningTableAndKernelOptionsItRunsOn()
    {
        using var folder = new CliRunner.TempFolder();
        var table = new GemmTuning("CPUAccelerator", "LinearWgmmaTma", [new GemmChoice(128, 192, 64, LinearWgmmaTma.Variant.Parse("128x128-released"), 1, 1, 2)],
            "2026-11-27: a test");
        AtomicFile.WriteAllText(folder.File("t.json"), table.ToJson());
        string[] names = ["SMOOTHCACHE_GEMM_TUNING", "SMOOTHCACHE_ATTENTION", "SMOOTHCACHE_SKINNY"];
        var saved = names.Select(Environment.GetEnvironmentVariable).ToArray();
        try
        {
            Environment.SetEnvironmentVariable("SMOOTHCACHE_GEMM_TUNING", folder.File("t.json"));
            Environment.SetEnvironmentVariable("SMOOTHCACHE_ATTENTION", "registers");
            Environment.SetEnvironmentVariable("SMOOTHCACHE_SKINNY", "tiles");
            var result = CliRunner.Run("bench", "--suite", "kernels", "--device", "cpu", "--iterations", "1", "--batch", "2", "--json", folder.File("k.json"));
            Assert.True(result.ExitCode == ExitCodes.Success, result.Error + result.Out);
            Assert.Contains("GEMM tuning: 1 shapes for LinearWgmmaTma on CPUAccelerator (2026-11-27: a test)", result.Out);
            const string options = "attention staging registers, few-row fp16 GEMMs on 128-row tiles";
            Assert.Contains("kernel options: " + options, result.Out);
            using var doc = JsonDocument.Parse(File.ReadAllText(folder.File("k.json")));
            Assert.Equal(table.Summary, doc.RootElement.GetProperty("gemmTuning").GetString());
            Assert.Equal(options, doc.RootElement.GetProperty("kernelOptions").GetString());
        }
        finally
        {
            for (int i = 0; i < names.Length; i++) Environment.SetEnvironmentVariable(names[i], saved[i]);
        }
    }

    [Theory]
    [InlineData("--splits", "9", "--splits takes split counts from 1 to 8")]
    [InlineData("--batch", "0", "--batch takes batches of at least 1")]
    [InlineData("--iterations", "0", "--iterations must be at least 1")]
    [InlineData("--variants", "128x128-fast", "--variants: '128x128-fast' is not a TMA GEMM variant")]
    [InlineData("--device", "tpu", "--device: unknown device 'tpu'")]
    [InlineData("--out", "/", "--out: '/' is a folder")]
    [InlineData("--model", "no-such-model", "--model: 'no-such-model': folder not found")]
    public void RejectsBadOptionsBeforeTiming(string option, string value, string expected)
    {
        var result = option == "--device" ? CliRunner.Run("tune", option, value) : CliRunner.Run("tune", "--device", "cpu", option, value);
        Assert.Equal(ExitCodes.BadInput, result.ExitCode);
        Assert.Contains(expected, result.Error);
    }

    [Fact]
    public void RefusesABackendWithoutTensorCoreGemmsOrVariantsWithoutTheTmaGemm()
    {
        var portable = WithKernels(null, () => CliRunner.Run("tune", "--device", "cpu"));
        Assert.Equal(ExitCodes.BadInput, portable.ExitCode);
        Assert.Contains("tune times the fp16 tensor-core GEMMs", portable.Error);
        var mmaSync = WithKernels("tensorcores", () => CliRunner.Run("tune", "--device", "cpu", "--variants", "256x128-deep"));
        Assert.Equal(ExitCodes.BadInput, mmaSync.ExitCode);
        Assert.Contains("LinearTensorCore, which has no variants", mmaSync.Error);
    }

    private static TunedCandidate Candidate(string variant, double ms, bool builtIn = false, double error = 1e-7) =>
        new(512, 1152, 1152, variant, 1, builtIn, error, ms);

    [Fact]
    public void TheBuiltInChoiceStaysUnlessACheckedCandidateIsClearlyFaster()
    {
        var builtIn = Candidate("128x128-barrier", 0.100, builtIn: true);
        Assert.Same(builtIn, GemmTuner.Choose([builtIn, Candidate("128x128-released", 0.099)])); // 1% is noise
        var faster = Candidate("128x128-released", 0.090);
        Assert.Same(faster, GemmTuner.Choose([builtIn, faster, Candidate("128x128-deep", 0.095)]));
        // The fastest of all gave a wrong result: never chosen.
        Assert.Same(faster, GemmTuner.Choose([builtIn, faster, Candidate("128x128-multicast", 0.050, error: 0.3)]));
        Assert.Null(GemmTuner.Choose([Candidate("128x128-barrier", double.NaN, builtIn: true, error: double.PositiveInfinity)]));
    }
}
