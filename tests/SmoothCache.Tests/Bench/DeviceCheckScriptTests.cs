using System.Text.RegularExpressions;
using SmoothCache.Cli;
using SmoothCache.Kernels.Gpu;
using static SmoothCache.Tests.TestSupport;

namespace SmoothCache.Tests.Bench;

/// <summary>
/// scripts/device-check.sh is what a session with a lent GPU runs, once, in a few minutes of device time: a mistyped
/// option or a variant since removed would cost that call. Its smoothcache commands are parsed here as the CLI parses
/// them, with the shell's variables filled in.
/// </summary>
public class DeviceCheckScriptTests
{
    private static readonly string Script = File.ReadAllText(RepoFile("scripts", "device-check.sh"));

    /// <summary>The script's lines with continuations joined.</summary>
    private static IEnumerable<string> Lines() => Script.Replace("\\\n", " ").Split('\n');

    /// <summary>The arguments after "step NAME LIMIT" on every line that runs a step (comments and the step function's
    /// own definition excepted).</summary>
    public static TheoryData<string> StepCommands()
    {
        var commands = new List<string>();
        foreach (string line in Lines())
        {
            if (line.TrimStart().StartsWith('#')) continue;
            var match = Regex.Match(line, @"\bstep\s+\S+\s+\S+\s+(.*)$");
            if (match.Success && !line.TrimStart().StartsWith("step()", StringComparison.Ordinal)) commands.Add(match.Groups[1].Value);
        }
        return new TheoryData<string>(commands.Distinct());
    }

    private static string[] Words(string command)
    {
        string filled = Regex.Replace(command, @"\$\{\w+:-\}", "");           // ${NO_PDL:-}, ${VARIANTS:-}: unset
        filled = filled.Replace("$OUT", "/tmp/out").Replace("\"$1\"", "5").Replace("$1", "name").Replace("\"$2\"", "5");
        return filled.Replace("\"", "").Split(' ', StringSplitOptions.RemoveEmptyEntries);
    }

    [Fact]
    public void TheScriptRunsSteps() => Assert.True(StepCommands().Count >= 12, $"{StepCommands().Count} step lines found");

    [Theory]
    [MemberData(nameof(StepCommands))]
    public void EveryStepsCommandParses(string command)
    {
        string[] words = Words(command);
        Assert.DoesNotContain(words, w => w.Contains('$'));
        var parse = SmoothCache.Cli.Cli.Parse(words, new CliContext(TextWriter.Null, TextWriter.Null));
        Assert.True(parse.Errors.Count == 0, $"{string.Join(' ', words)}: {string.Join("; ", parse.Errors.Select(e => e.Message))}");
    }

    [Theory]
    [InlineData("device-check.sh")]
    [InlineData("ptxas-check.sh")]
    [InlineData("package-check.sh")]
    public void TheScriptIsValidBash(string name)
    {
        using var bash = System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo("bash", ["-n", RepoFile("scripts", name)])
            { RedirectStandardError = true })!;
        string error = bash.StandardError.ReadToEnd();
        bash.WaitForExit();
        Assert.True(bash.ExitCode == 0, error);
    }

    [Fact]
    public void EveryTmaGemmVariantItNamesExists()
    {
        var names = Regex.Matches(Script, @"\b(?:128|256)x128(?:x64)?-[a-z]+\b").Select(m => m.Value).Distinct().ToList();
        Assert.True(names.Count >= 17, $"{names.Count} variant names found");
        foreach (string name in names) LinearWgmmaTma.Variant.Parse(name);
    }

    [Fact]
    public void EveryModeItOffersIsHandled()
    {
        var usage = Regex.Match(Script, @"usage: bash scripts/device-check.sh \[([a-z|]+)\]");
        Assert.True(usage.Success);
        foreach (string mode in usage.Groups[1].Value.Split('|'))
            Assert.Contains(mode, Regex.Match(Script, @"^\s+([a-z|]+)\) ;;$", RegexOptions.Multiline).Groups[1].Value.Split('|'));
    }
}
