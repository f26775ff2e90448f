using static SmoothCache.Tests.Cli.CliRunner;

namespace SmoothCache.Tests.Cli;

/// <summary>`smoothcache synth`'s bad inputs: exit 2, one line naming the option, nothing written.</summary>
public class SynthCommandTests
{
    [Theory]
    [InlineData("--layers", "0", "--layers must be at least 1")]
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
