using SmoothCache.Model.Checkpoints;
using SmoothCache.Sampling;
using static SmoothCache.Tests.Cli.CliRunner;

namespace SmoothCache.Tests.Cli;

/// <summary>DESIGN §7/§8: every bad input exits 2 with one line on stderr naming the problem, no stack
/// trace and no output file.</summary>
public class GenerateCommandTests
{
    private static void AssertBadInput(string expectedInMessage, params string[] args)
    {
        using var temp = new TempFolder();
        string png = temp.File("out.png");
        var result = Run([.. args, "--device", "cpu", "--out", png]);
        Assert.Equal(2, result.ExitCode);
        var lines = result.Error.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Single(lines);
        Assert.Contains(expectedInMessage, lines[0], StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain("   at ", result.Error);
        Assert.False(File.Exists(png));
        Assert.Empty(Directory.GetFiles(temp.Path));
    }

    [Fact] public void UnknownModelFolder() => AssertBadInput("no-such-model", "generate", "--model", "no-such-model");
    [Fact] public void LabelOutOfRange() => AssertBadInput("--labels: label 1001 is outside [0, 1000): a class id, or 1000 (the null class)", "generate", "--labels", "1,1001");
    [Fact] public void LabelPastInt32IsOutOfRangeToo() => AssertBadInput("--labels: label 99999999999 is outside [0, 1000)", "generate", "--labels", "99999999999");
    [Fact] public void LabelThatIsNotAClass() => AssertBadInput("'seven'", "generate", "--labels", "seven");
    [Fact] public void AnOutputNameLongerThanFileSystemsTake() =>
        AssertBadInput("--save-images: the file name is 256 bytes long; file systems take up to 255", "generate", "--save-images", new string('c', 244) + ".safetensors");
    [Fact] public void AnOptionWhoseValueIsAnotherOption() =>
        AssertBadInput("--save-latents took '--labels' as its value: give --save-latents a value", "generate", "--save-latents", "--labels", "1");
    [Fact] public void StepsBelowOne() => AssertBadInput("--steps", "generate", "--steps", "0");
    [Fact] public void StepsAboveTheTrainingSteps() => AssertBadInput("--steps 2000 is more than the scheduler's num_train_timesteps (1000)", "generate", "--steps", "2000");
    [Fact] public void NegativeGuidance() => AssertBadInput("--guidance", "generate", "--guidance", "-1");
    [Fact] public void UnknownScheduler() => AssertBadInput("euler", "generate", "--scheduler", "euler");
    [Fact] public void UnknownDevice() => AssertBadInput("--device", "generate", "--device", "tpu");
    [Theory]
    [InlineData("cuda:x", "error: --device: device 'cuda:x': expected cuda:N")]
    [InlineData("cuda:63", "error: --device cuda:63: ")] // no CUDA device, or none numbered 63
    public void CudaDeviceThatIsNotANumberOrNotOnThisMachine(string device, string expected)
    {
        using var temp = new TempFolder();
        string png = temp.File("out.png");
        var result = Run("generate", "--device", device, "--steps", "1", "--out", png);
        Assert.Equal(2, result.ExitCode);
        Assert.StartsWith(expected, Assert.Single(result.ErrorLines));
        Assert.False(File.Exists(png));
    }

    [Fact] public void UnknownOption() => AssertBadInput("--colour", "generate", "--colour", "red");
    [Fact] public void InfiniteGuidance() => AssertBadInput("--guidance must be a finite number", "generate", "--guidance", "1e40");
    [Fact] public void StepsThatAreNotANumber() => AssertBadInput("'abc' for option '--steps' as a whole number (smoothcache generate --help", "generate", "--steps", "abc");
    [Fact] public void MistypedOptionPointsToHelp() => AssertBadInput("'--step' (smoothcache generate --help lists its options)", "generate", "--step", "5");
    [Fact] public void MistypedCommandIsNamed() => AssertBadInput("Unrecognized command or argument 'generat' (smoothcache --help lists the commands)", "generat");

    [Fact]
    public void NoCommandListsTheCommands()
    {
        var result = Run();
        Assert.Equal(2, result.ExitCode);
        Assert.StartsWith("error: no command given: expected one of generate, calibrate,", Assert.Single(result.ErrorLines));
    }
    [Fact] public void UnknownPrecision() => AssertBadInput("bf16", "generate", "--precision", "bf16");

    [Fact]
    public void NoiseFileWithTheWrongShape()
    {
        using var temp = new TempFolder();
        string noise = temp.File("noise.safetensors");
        SafetensorsWriter.Write(noise, [("initial_noise", [3, 1, 16, 16], new float[3 * 256])]);
        AssertBadInput("initial_noise", "generate", "--labels", "1,2", "--noise", noise);
    }

    [Fact]
    public void NoiseFileWithoutTheTensor()
    {
        using var temp = new TempFolder();
        string noise = temp.File("noise.safetensors");
        SafetensorsWriter.Write(noise, [("latents", [1, 1, 16, 16], new float[256])]);
        AssertBadInput("no tensor 'initial_noise' [B,C,S,S]; the file holds 'latents'", "generate", "--labels", "1", "--noise", noise);
    }

    [Fact]
    public void NoiseFileWithANaN()
    {
        using var temp = new TempFolder();
        string noise = temp.File("noise.safetensors");
        var values = new float[256];
        values[17] = float.NaN;
        SafetensorsWriter.Write(noise, [("initial_noise", [1, 1, 16, 16], values)]);
        AssertBadInput("initial_noise[17] is NaN: expected finite values", "generate", "--labels", "1", "--noise", noise);
    }

    /// <summary>Where the output cannot be written, or would not be what its name says, before any sampling.</summary>
    [Theory]
    [InlineData("--out", "folder", "is a folder")]
    [InlineData("--out", "grid.jpg", "does not end in .png")]
    [InlineData("--save-images", "folder", "is a folder")]
    [InlineData("--save-latents", "latents.npy", "does not end in .safetensors: the file written is safetensors")]
    [InlineData("--save-latents", "file.txt/latents.safetensors", "is a file: expected a folder on the way to")]
    public void UnwritableOutputs(string option, string name, string expected)
    {
        using var temp = new TempFolder();
        Directory.CreateDirectory(temp.File("folder"));
        File.WriteAllText(temp.File("file.txt"), "");
        string png = temp.File("out.png");
        string[] args = option == "--out"
            ? ["generate", "--device", "cpu", "--steps", "1", "--out", temp.File(name)]
            : ["generate", "--device", "cpu", "--steps", "1", "--out", png, option, temp.File(name)];
        var result = Run(args);
        Assert.Equal(2, result.ExitCode);
        var line = Assert.Single(result.ErrorLines);
        Assert.StartsWith($"error: {option}: ", line);
        Assert.Contains(expected, line);
        Assert.False(File.Exists(png));
        Assert.False(File.Exists(temp.File("grid.jpg")));
    }

    /// <summary>Where the folder cannot take a new file (here /proc, which refuses one even to root): before any sampling.</summary>
    [Theory]
    [InlineData("--out", "/proc/grid.png", "/proc")]
    [InlineData("--save-latents", "/proc/sys/latents.safetensors", "/proc/sys")]
    public void OutputsInAFolderThatTakesNoFiles(string option, string path, string folder)
    {
        using var temp = new TempFolder();
        string png = option == "--out" ? path : temp.File("out.png");
        var result = Run(["generate", "--device", "cpu", "--steps", "1", "--out", png, .. option == "--out" ? Array.Empty<string>() : [option, path]]);
        Assert.Equal(2, result.ExitCode);
        Assert.StartsWith($"error: {option}: cannot create a file in '{folder}': ", Assert.Single(result.ErrorLines));
        Assert.Empty(Directory.GetFiles(temp.Path));
    }

    [Fact]
    public void StatsWithoutAScheduleSayEveryComponentComputed()
    {
        using var temp = new TempFolder();
        var result = Run("generate", "--device", "cpu", "--labels", "1", "--steps", "1", "--stats", "--out", temp.File("x.png"));
        Assert.Equal(0, result.ExitCode);
        var lines = result.Out.TrimEnd().Split('\n');
        Assert.Equal("no cache schedule: every component computed", lines[0]);
        Assert.EndsWith("without cache (100.0%)", lines[1]);
        Assert.Contains("guidance 4, fp32, ", lines[^1]);
    }

    [Fact]
    public void TwoOutputsNamingOneFile()
    {
        using var temp = new TempFolder();
        string tensors = temp.File("out.safetensors");
        var result = Run("generate", "--device", "cpu", "--steps", "1", "--out", temp.File("out.png"), "--save-latents", tensors, "--save-images", tensors);
        Assert.Equal(2, result.ExitCode);
        Assert.Equal($"error: --save-images: '{tensors}' is also --save-latents's file: each output needs its own", Assert.Single(result.ErrorLines));
        Assert.Empty(Directory.GetFiles(temp.Path));
    }

    [Fact]
    public void ModelThatIsAFileAndNoiseThatIsAFolder()
    {
        using var temp = new TempFolder();
        string file = temp.File("model.json");
        File.WriteAllText(file, "{}");
        AssertBadInput("is a file: expected a folder", "generate", "--model", file);
        AssertBadInput("is a folder: expected a file", "generate", "--noise", temp.Path, "--labels", "1");
    }

    /// <summary>A noise file replaces the seeded initial noise, so a seed beside it is refused, except under ddpm, which draws
    /// noise at every step from the seed (with a noise file, that noise was silently seed 0's).</summary>
    [Fact]
    public void SeedBesideANoiseFileOnlyForDdpm()
    {
        using var temp = new TempFolder();
        string noise = temp.File("noise.safetensors");
        SafetensorsWriter.Write(noise, [("initial_noise", [1, 1, 16, 16], GaussianNoise.Sample(7, 0, 256))]);
        AssertBadInput("--seed and --noise exclude each other with ddim", "generate", "--labels", "1", "--seed", "3", "--noise", noise, "--scheduler", "ddim");
        float[] Latents(string seed)
        {
            string latents = temp.File($"latents-{seed}.safetensors");
            var run = Run("generate", "--device", "cpu", "--labels", "1", "--steps", "3", "--scheduler", "ddpm", "--noise", noise,
                "--seed", seed, "--out", temp.File($"{seed}.png"), "--save-latents", latents);
            Assert.Equal(0, run.ExitCode);
            using var file = SafetensorsFile.Open(latents);
            return file.ReadFloat32("latents", 1, 1, 16, 16);
        }
        Assert.NotEqual(Latents("3"), Latents("4"));
    }

    [Theory]
    [InlineData("[1, 0]", "object")]
    [InlineData("{\"attn1\": [1, 2]}", "attn1")]
    [InlineData("{\"attention\": [1, 0]}", "attention")]
    [InlineData("{\"attn1\": [1, 0", "json")]
    public void BadScheduleFiles(string json, string expected)
    {
        using var temp = new TempFolder();
        string schedule = Path.Combine(Path.GetTempPath(), $"schedule-{Guid.NewGuid():N}.json");
        File.WriteAllText(schedule, json);
        try
        {
            AssertBadInput(expected, "generate", "--schedule", schedule, "--steps", "2");
        }
        finally
        {
            File.Delete(schedule);
        }
    }
}
