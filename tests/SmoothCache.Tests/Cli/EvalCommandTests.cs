using System.Text.Json;
using SmoothCache.Caching;
using SmoothCache.Cli;
using SmoothCache.Cli.Commands;
using SmoothCache.Cli.Evaluation;
using SmoothCache.Kernels;

namespace SmoothCache.Tests.Cli;

public sealed class EvalCommandTests : IDisposable
{
    private readonly string _folder = Path.Combine(Path.GetTempPath(), $"smoothcache-eval-{Guid.NewGuid():N}");

    public void Dispose()
    {
        if (Directory.Exists(_folder)) Directory.Delete(_folder, recursive: true);
    }

    private static (int Code, string Out, string Error) Run(params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int code = SmoothCache.Cli.Cli.Run(args, stdout, stderr);
        return (code, stdout.ToString(), stderr.ToString());
    }

    /// <summary>A tiny eval (4 steps, 2 samples); <paramref name="option"/> replaces or adds one option.</summary>
    private string[] TinyArgs(string? option = null, string? value = null)
    {
        var options = new Dictionary<string, string>
        {
            ["--model"] = TestSupport.RepoFile("models", "dit-digits"), ["--device"] = "cpu", ["--scheduler"] = "ddim",
            ["--steps"] = "4", ["--samples"] = "2", ["--thresholds"] = "0.1", ["--fora"] = "2", ["--out"] = _folder,
        };
        if (option is not null) options[option] = value!;
        return ["eval", .. options.SelectMany(kv => new[] { kv.Key, kv.Value })];
    }

    /// <summary>Every output, into a folder where an earlier eval left outputs for a schedule this one does not make (removed,
    /// and said so) and a file of the user's own (kept).</summary>
    [Fact]
    public void TinyEvalWritesEveryOutput()
    {
        Directory.CreateDirectory(Path.Combine(_folder, "schedules"));
        string[] stale = [Path.Combine(_folder, "schedules", "alpha-0.3.json"), Path.Combine(_folder, "samples-alpha-0.3.png")];
        foreach (string file in stale) File.WriteAllText(file, "from an earlier run");
        File.WriteAllText(Path.Combine(_folder, "notes.txt"), "mine");
        File.WriteAllText(Path.Combine(_folder, "samples-mine.png"), "mine too: not a name eval gives");

        var (code, stdout, stderr) = Run(TinyArgs());

        Assert.True(code == 0, stderr);
        string[] expected =
        [
            "table.md", "results.csv", "results.json", "calibration-errors.json", "schedules/alpha-0.1.json",
            "errors-attn1.png", "errors-ff.png", "schedule-alpha-0.1.png", "accuracy-vs-tmacs.png", "psnr-vs-tmacs.png",
            "samples-no-cache.png", "samples-alpha-0.1.png", "samples-fora-2.png",
        ];
        foreach (string name in expected)
            Assert.True(File.Exists(Path.Combine(_folder, name)), $"missing {name}");
        foreach (string png in expected.Where(n => n.EndsWith(".png")))
            Assert.Equal([0x89, (byte)'P', (byte)'N', (byte)'G'], File.ReadAllBytes(Path.Combine(_folder, png))[..4]);
        Assert.Empty(Directory.GetFiles(_folder, "*.tmp", SearchOption.AllDirectories));
        Assert.Contains("[4/4] FORA n=2", stderr); // progress lines
        Assert.All(stale, file => Assert.False(File.Exists(file)));
        Assert.Contains("warning: removed 2 outputs of an earlier eval for schedules this run did not make: samples-alpha-0.3.png, schedules/alpha-0.3.json", stderr);
        Assert.True(File.Exists(Path.Combine(_folder, "notes.txt")));
        Assert.True(File.Exists(Path.Combine(_folder, "samples-mine.png")));

        var table = File.ReadAllLines(Path.Combine(_folder, "table.md")).Where(l => l.StartsWith('|')).ToArray();
        Assert.Equal(["schedule", "steps", "compute", "TMACs", "latency (s)", "speedup", "rel L2", "PSNR (dB)", "accuracy", "FD"],
            table[0].Trim('|').Split('|').Select(c => c.Trim()));
        Assert.Equal(2 + 3, table.Length);
        Assert.Contains(table[2], stdout);

        var csv = File.ReadAllLines(Path.Combine(_folder, "results.csv")).Select(l => l.Split(',')).ToArray();
        Assert.Equal(4, csv.Length);
        Assert.Equal(["no cache", "SmoothCache alpha=0.1", "FORA n=2"], csv[1..].Select(r => r[0]));
        string Cell(int row, string column) => csv[row][Array.IndexOf(csv[0], column)];
        // 4 steps of the guided batch of 4: 4 x 88,981,504 MACs (see MacBudgetTests for the hand count).
        Assert.Equal("355926016", Cell(1, "macs"));
        Assert.Equal("inf", Cell(1, "psnr_db"));
        Assert.Equal("0.75", Cell(3, "computed_attn1")); // FORA 2 computes steps 0, 2 and the last, 3
        Assert.Equal("0.75", Cell(3, "computed_ff"));
        Assert.True(long.Parse(Cell(3, "macs")) < 355926016);

        using var json = JsonDocument.Parse(File.ReadAllText(Path.Combine(_folder, "results.json")));
        var rows = json.RootElement.GetProperty("rows");
        Assert.Equal(3, rows.GetArrayLength());
        Assert.Equal("fp32", json.RootElement.GetProperty("precision").GetString());
        Assert.Equal(JsonValueKind.Null, rows[0].GetProperty("psnr_db").ValueKind);
        Assert.Equal("schedules/alpha-0.1.json", rows[1].GetProperty("schedule_file").GetString());
        Assert.InRange(json.RootElement.GetProperty("classifier").GetProperty("held_out_accuracy").GetDouble(), 0.9, 1.0);

        var schedule = CacheSchedule.Load(Path.Combine(_folder, "schedules", "alpha-0.1.json"));
        Assert.Equal(["attn1", "ff"], schedule.Keys);
        Assert.Equal(4, schedule["ff"].Count);
    }

    [Theory]
    [InlineData("--thresholds", "0.1,abc", "abc")]
    [InlineData("--thresholds", "-0.1", "-0.1")]
    [InlineData("--fora", "1", "--fora")]
    [InlineData("--fora", "2.5", "2.5")]
    [InlineData("--samples", "1", "--samples must be at least 2")]
    [InlineData("--thresholds", "0.1,,0.2", "--thresholds: '0.1,,0.2': entry 2 is empty")]
    [InlineData("--samples", "140000", "--samples 140000 is more than one generation of this model takes")]
    [InlineData("--components", "attn1,attn2", "attn2")]
    [InlineData("--components", "attn1,,ff", "--components: 'attn1,,ff': entry 2 is empty")]
    [InlineData("--lookahead", "0", "--lookahead")]
    [InlineData("--steps", "0", "--steps")]
    public void BadInputExits2WithOneLineAndWritesNothing(string option, string value, string named)
    {
        var (code, _, stderr) = Run(TinyArgs(option, value));

        Assert.Equal(ExitCodes.BadInput, code);
        var lines = stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Single(lines);
        Assert.Contains(named, lines[0]);
        Assert.False(Directory.Exists(_folder));
    }

    [Fact]
    public void ALookaheadPastTheRunIsWarnedAbout()
    {
        var (code, _, stderr) = Run(TinyArgs("--lookahead", "4"));
        Assert.True(code == 0, stderr);
        Assert.Contains("warning: --lookahead 4 compares outputs up to 4 steps apart, but 4 steps are at most 3 apart", stderr);
    }

    [Fact]
    public void OutNamingAFileIsBadInput()
    {
        File.WriteAllText(_folder, "");
        try
        {
            var (code, _, stderr) = Run(TinyArgs());
            Assert.Equal(ExitCodes.BadInput, code);
            Assert.Contains("is a file: expected a folder", Assert.Single(stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries)));
        }
        finally
        {
            File.Delete(_folder);
        }
    }

    [Fact]
    public void MissingOutIsBadInput()
    {
        var (code, _, stderr) = Run("eval", "--samples", "2");

        Assert.Equal(ExitCodes.BadInput, code);
        Assert.Contains("--out", stderr);
    }

    [Fact]
    public void AnInterruptedEvalWritesNothingAndExits130()
    {
        using var cancel = new CancellationTokenSource();
        cancel.Cancel();
        var stderr = new StringWriter();
        var settings = new EvalSettings(2, 4, "ddim", 4f, 0, [0.1], [2], ["attn1", "ff"], 3);

        int code = EvalCommand.Execute(new CliContext(new StringWriter(), stderr),
            TestSupport.RepoFile("models", "dit-digits"), DeviceKind.Cpu, Precision.Fp32, settings, _folder, cancel.Token);

        Assert.Equal(EvalCommand.Interrupted, code);
        Assert.Contains("nothing was written", stderr.ToString());
        Assert.False(Directory.Exists(_folder));
    }
}
