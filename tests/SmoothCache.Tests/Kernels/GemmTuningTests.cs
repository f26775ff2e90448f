using SmoothCache.Kernels;
using SmoothCache.Model;
using SmoothCache.Kernels.Gpu;
using SmoothCache.Tests.Cli;
using static SmoothCache.Tests.TestSupport;

namespace SmoothCache.Tests.Kernels;

public class GemmTuningTests
{
    private static GemmTuning Sample(string device = "NVIDIA H200") => new(device, "LinearWgmmaTma",
    [
        new GemmChoice(512, 3456, 1152, LinearWgmmaTma.Variant.Parse("128x128-released"), 3, 0.0151, 0.0203),
        new GemmChoice(4096, 1152, 4608, LinearWgmmaTma.Variant.Parse("256x128-deep"), 1, 0.101, 0.101),
        new GemmChoice(16, 256, 64, null, 2, 0.002, 0.003),
        new GemmChoice(4096, 1152, 1152, LinearWgmmaTma.Variant.Parse("128x128-barrier"), 4, 0.03, 0.04, HeadRows: 3712),
    ], "2026-11-27: a test");

    [Fact]
    public void SavedTableLoadsBackEntryForEntry()
    {
        using var folder = new CliRunner.TempFolder();
        string path = folder.File("h200.json");
        AtomicFile.WriteAllText(path, Sample().ToJson());
        var loaded = GemmTuning.Load(path);
        Assert.Equal(("NVIDIA H200", "LinearWgmmaTma", "2026-11-27: a test"), (loaded.Device, loaded.Kernel, loaded.Measured));
        Assert.Equal(Sample().Gemms, loaded.Gemms);
        Assert.Equal(["h200.json"], Directory.GetFiles(folder.Path).Select(Path.GetFileName)); // no temporary file left
    }

    [Fact]
    public void HeadRowsAreWrittenOnlyWhereThereAreSome()
    {
        string json = Sample().ToJson();
        Assert.Equal(1, json.Split("headRows").Length - 1);
        // A table from before head rows (the shipped one) loads with none.
        var shipped = GemmTuning.Load(RepoFile("tuning", "nvidia-h200.json"));
        Assert.All(shipped.Gemms, g => Assert.Equal(0, g.HeadRows));
    }

    [Fact]
    public void OnlyExactShapesAreFound()
    {
        var table = Sample();
        Assert.Equal(3, table.Find(512, 3456, 1152)!.Value.Splits);
        Assert.Null(table.Find(513, 3456, 1152));
        Assert.Null(table.Find(512, 1152, 3456));
        var e = Assert.Throws<ArgumentException>(() => new GemmTuning("d", "k", [table.Gemms[0], table.Gemms[0]]));
        Assert.Contains("512 x 3456 x 1152 is tuned twice", e.Message);
    }

    [Theory]
    [InlineData("{", "not valid JSON")]
    [InlineData("[]", "expected a JSON object")]
    [InlineData("""{"kernel": "LinearWgmmaTma", "gemms": []}""", "device: expected a non-empty string")]
    [InlineData("""{"device": "d", "kernel": "k"}""", "gemms: expected an array")]
    [InlineData("""{"device": "d", "kernel": "k", "gemms": [{"m": 0, "n": 8, "k": 8, "splits": 1}]}""", "gemms[0].m: expected a whole number of at least 1, got 0")]
    [InlineData("""{"device": "d", "kernel": "k", "gemms": [{"m": 8, "n": 8, "k": 8, "splits": 2.5}]}""", "gemms[0].splits: expected a whole number")]
    [InlineData("""{"device": "d", "kernel": "k", "gemms": [{"m": 8, "n": 8, "k": 8, "splits": 9}]}""", "gemms[0].splits: expected 1 to 8, got 9")]
    [InlineData("""{"device": "d", "kernel": "k", "gemms": [{"m": 8, "n": 8, "k": 8, "splits": 1, "variant": "64x64-fast"}]}""", "gemms[0].variant: '64x64-fast' is not a TMA GEMM variant")]
    [InlineData("""{"device": "d", "kernel": "k", "gemms": [{"m": 8, "n": 8, "k": 8, "splits": 1, "variant": 3}]}""", "gemms[0].variant: expected a variant name or null")]
    [InlineData("""{"device": "d", "kernel": "k", "gemms": [{"m": 8, "n": 8, "k": 8, "splits": 1}, {"m": 8, "n": 8, "k": 8, "splits": 2}]}""", "gemms: GEMM 8 x 8 x 8 is tuned twice")]
    [InlineData("""{"device": "d", "kernel": "k", "gemms": [{"m": 8, "n": 8, "k": 8, "splits": 2, "headRows": 8}]}""", "gemms[0].headRows: expected fewer than m = 8 rows, got 8")]
    [InlineData("""{"device": "d", "kernel": "k", "gemms": [{"m": 8, "n": 8, "k": 8, "splits": 2, "headRows": -1}]}""", "gemms[0].headRows: expected a whole number of at least 1")]
    public void EveryFaultOfATableFileNamesTheFileAndKey(string text, string expected)
    {
        using var folder = new CliRunner.TempFolder();
        string path = folder.File("bad.json");
        File.WriteAllText(path, text);
        var e = Assert.Throws<InvalidDataException>(() => GemmTuning.Load(path));
        Assert.StartsWith(path + ": ", e.Message);
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void TheFolderGivesTheTableMeasuredOnTheDeviceOfThatName()
    {
        using var folder = new CliRunner.TempFolder();
        AtomicFile.WriteAllText(folder.File("a-h100.json"), Sample("NVIDIA H100 80GB HBM3").ToJson());
        AtomicFile.WriteAllText(folder.File("b-h200.json"), Sample().ToJson());
        File.WriteAllText(folder.File("README.md"), "not a table");
        Assert.Equal("NVIDIA H200", GemmTuning.ForDevice("NVIDIA H200", folder.Path)!.Device);
        Assert.Equal("NVIDIA H100 80GB HBM3", GemmTuning.ForDevice("NVIDIA H100 80GB HBM3", folder.Path)!.Device);
        Assert.Null(GemmTuning.ForDevice("NVIDIA A100-SXM4-80GB", folder.Path));
    }

    [Fact]
    public void WithoutATableInTheFolderTheBuiltInOneForTheDeviceApplies()
    {
        using var folder = new CliRunner.TempFolder();
        var builtIn = GemmTuning.ForDevice("NVIDIA H200", folder.File("missing"));
        Assert.NotNull(builtIn);
        Assert.Equal(GemmTuning.Load(RepoFile("tuning", "nvidia-h200.json")).Gemms, builtIn.Gemms);
        Assert.Same(builtIn, GemmTuning.ForDevice("NVIDIA H200", folder.Path));
        // A table tuned on the machine comes first.
        AtomicFile.WriteAllText(folder.File("mine.json"), Sample().ToJson());
        Assert.Equal(Sample().Gemms, GemmTuning.ForDevice("NVIDIA H200", folder.Path)!.Gemms);
    }

    [Fact]
    public void EveryShippedTableLoadsForTheTmaGemmWithSplitsItsKAllows()
    {
        // The repository's tuning/*.json, as built into the assembly: every one of them.
        var tables = GemmTuning.BuiltIn;
        Assert.Equal(Directory.GetFiles(RepoFile("tuning"), "*.json").Length, tables.Count);
        Assert.Contains(tables, t => t.Device == "NVIDIA H200");
        foreach (var table in tables)
        {
            Assert.Equal(nameof(LinearWgmmaTma), table.Kernel);
            Assert.Same(table, GemmTuning.ForDevice(table.Device, RepoFile("no-such-folder"))); // one table per device
            // A split is what the launch really runs: no split left without K tiles.
            Assert.All(table.Gemms, g => Assert.Equal(g.Splits, SplitK.Partition(g.K, LinearTensorCore.Depth, g.Splits).Splits));
        }
    }

    [Fact]
    public void SmoothcacheGemmTuningNamesTheTableOrNone()
    {
        string? saved = Environment.GetEnvironmentVariable("SMOOTHCACHE_GEMM_TUNING");
        using var folder = new CliRunner.TempFolder();
        try
        {
            string path = folder.File("t.json");
            AtomicFile.WriteAllText(path, Sample("CPUAccelerator").ToJson());
            Environment.SetEnvironmentVariable("SMOOTHCACHE_GEMM_TUNING", path);
            using (var backend = Backend.Create(DeviceKind.Cpu)) Assert.Equal(Sample().Gemms.Count, backend.GemmTuning!.Gemms.Count);
            // Unset: the tuning folder's table for the device, if any.
            Environment.SetEnvironmentVariable("SMOOTHCACHE_GEMM_TUNING", null);
            Assert.Equal("CPUAccelerator", Backend.GemmTuningFromEnvironment("CPUAccelerator", folder.Path)!.Device);
            Environment.SetEnvironmentVariable("SMOOTHCACHE_GEMM_TUNING", "None");
            Assert.Null(Backend.GemmTuningFromEnvironment("CPUAccelerator", folder.Path));
            Environment.SetEnvironmentVariable("SMOOTHCACHE_GEMM_TUNING", folder.File("missing.json"));
            var e = Assert.Throws<ArgumentException>(() => Backend.Create(DeviceKind.Cpu));
            Assert.StartsWith("SMOOTHCACHE_GEMM_TUNING: ", e.Message);
            Assert.Contains("missing.json: GEMM tuning file not found", e.Message);
        }
        finally
        {
            Environment.SetEnvironmentVariable("SMOOTHCACHE_GEMM_TUNING", saved);
        }
    }
}
