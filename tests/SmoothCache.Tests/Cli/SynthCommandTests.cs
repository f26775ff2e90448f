using static SmoothCache.Tests.Cli.CliRunner;

namespace SmoothCache.Tests.Cli;

/// <summary>`smoothcache synth`'s bad inputs: exit 2, one line naming the option, nothing written.</summary>
public class SynthCommandTests
{
    [Theory]
    [InlineData("--layers", "0", "--layers must be at least 1")]
    [InlineData("--layers", "113", "--layers must be at most 112 (DiT-XL/2 has 28), got 113")]
    [InlineData("--dtype", "bf16", "--dtype 'bf16' is unknown")]
    [InlineData("--format", "onnx", "--format 'onnx' is unknown")]
    [InlineData("--out", "a-file", "--out: '")]
    [InlineData("--out", "a-file/model", "is a file: expected a folder on the way to")]
    [InlineData("--out", "full", "--out: folder '")]
    public void BadInputExits2AndWritesNothing(string option, string value, string expected)
    {
        using var temp = new TempFolder();
        File.WriteAllText(temp.File("a-file"), "");
        Directory.CreateDirectory(temp.File("full"));
        File.WriteAllText(temp.File(Path.Combine("full", "kept")), "");
        string output = temp.File("model");
        var result = option == "--out" ? Run("synth", "--out", temp.File(value)) : Run("synth", "--out", output, option, value);
        Assert.Equal(2, result.ExitCode);
        Assert.Contains(expected, Assert.Single(result.ErrorLines));
        Assert.False(Directory.Exists(output));
        Assert.Equal(2, Directory.GetFileSystemEntries(temp.Path).Length);
    }

    /// <summary>The folder is written beside the target and moved there whole: an empty --out is filled, and nothing else is
    /// left in the folder around it.</summary>
    [Fact]
    public void AnEmptyFolderIsFilledAndNothingIsLeftBesideIt()
    {
        using var temp = new TempFolder();
        string output = temp.File("model");
        Directory.CreateDirectory(output);
        var result = Run("synth", "--out", output, "--layers", "1");
        Assert.Equal(0, result.ExitCode);
        Assert.True(File.Exists(Path.Combine(output, "transformer", "config.json")));
        Assert.Equal([output], Directory.GetFileSystemEntries(temp.Path));
    }

    /// <summary>A folder that takes no files (/proc refuses them even to root), for synth and eval alike: before any work.</summary>
    [Theory]
    [InlineData("synth")]
    [InlineData("eval")]
    public void AnOutputFolderThatTakesNoFilesIsRefusedFirst(string command)
    {
        var result = command == "eval" ? Run(command, "--out", "/proc/smoothcache-out", "--device", "cpu") : Run(command, "--out", "/proc/smoothcache-out");
        Assert.Equal(2, result.ExitCode);
        Assert.Equal("error: --out: cannot create a file in '/proc': the file system refused one (read-only?)", Assert.Single(result.ErrorLines));
    }
}
