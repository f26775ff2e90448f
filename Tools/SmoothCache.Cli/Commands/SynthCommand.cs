using System.CommandLine;
using System.Diagnostics;
using SmoothCache.Model.Checkpoints;
using SmoothCache.Model;

namespace SmoothCache.Cli.Commands;

/// <summary>
/// `smoothcache synth`: writes a diffusers pipeline folder with random weights in the DiT-XL/2-256
/// layout (optionally fewer layers), for benchmarks and loader checks where the real checkpoint
/// cannot be downloaded.
/// </summary>
public static class SynthCommand
{
    public static Command Create(CliContext context)
    {
        var output = new Option<string>("--out") { Description = "folder to create (must not exist or be empty)", Required = true };
        var layers = new Option<int>("--layers") { Description = "transformer blocks", DefaultValueFactory = _ => SyntheticWeights.XL2_256.NumLayers };
        var dtype = new Option<string>("--dtype") { Description = "fp16 or fp32", DefaultValueFactory = _ => "fp16" };
        var format = new Option<string>("--format") { Description = "safetensors or bin (torch.save zip)", DefaultValueFactory = _ => "safetensors" };
        var seed = new Option<int>("--seed") { Description = "seed of the random weights", DefaultValueFactory = _ => 0 };
        var command = new Command("synth", "Write a model folder with random weights in the DiT-XL/2 layout.") { output, layers, dtype, format, seed };
        command.SetAction(parse =>
        {
            string folder = UserErrors.OutputFolder("--out", parse.GetValue(output)!);
            int layerCount = parse.GetValue(layers);
            if (layerCount < 1) throw new UserInputException($"--layers must be at least 1, got {layerCount}");
            var saveType = parse.GetValue(dtype)!.ToLowerInvariant() switch
            {
                "fp16" => SaveDType.F16,
                "fp32" => SaveDType.F32,
                var other => throw new UserInputException($"--dtype '{other}' is unknown: expected fp16 or fp32"),
            };
            bool bin = parse.GetValue(format)!.ToLowerInvariant() switch
            {
                "safetensors" => false,
                "bin" => true,
                var other => throw new UserInputException($"--format '{other}' is unknown: expected safetensors or bin"),
            };
            if (Directory.Exists(folder) && Directory.EnumerateFileSystemEntries(folder).Any())
                throw new UserInputException($"--out: folder '{folder}' exists and is not empty");
            if (layerCount > MaxLayers) throw new UserInputException($"--layers must be at most {MaxLayers} (DiT-XL/2 has 28), got {layerCount}");

            var timer = Stopwatch.StartNew();
            using var weights = new SyntheticWeights(SyntheticWeights.XL2_256 with { NumLayers = layerCount }, parse.GetValue(seed));
            long parameters = weights.Names.Sum(n => weights.Describe(n).ElementCount);
            CheckRoom(folder, parameters * (saveType == SaveDType.F16 ? 2 : 4), parameters * sizeof(float));
            // Written beside the target and moved there whole: a failed or interrupted run leaves no half folder behind.
            string full = Path.GetFullPath(folder).TrimEnd(Path.DirectorySeparatorChar);
            string temporary = AtomicFile.TemporaryBeside(full);
            try
            {
                weights.WriteFolder(temporary, saveType, bin);
                if (Directory.Exists(full)) Directory.Delete(full); // empty, checked above
                Directory.Move(temporary, full);
            }
            finally
            {
                if (Directory.Exists(temporary)) Directory.Delete(temporary, recursive: true);
            }
            context.Out.WriteLine(string.Create(System.Globalization.CultureInfo.InvariantCulture, $"wrote {folder}: DiT-XL/2 layout, {layerCount} layer{(layerCount == 1 ? "" : "s")}, {weights.Names.Count} tensors, " +
                $"{parameters:N0} parameters, {parse.GetValue(dtype)} {(bin ? "bin" : "safetensors")}, {timer.Elapsed.TotalSeconds:F1} s"));
            return ExitCodes.Success;
        });
        return command;
    }

    /// <summary>Enough for a model four times DiT-XL/2's depth; each layer takes ~21M parameters.</summary>
    private const int MaxLayers = 112;

    /// <summary>Refuses, before anything is written, a checkpoint the file system or the memory cannot take: the writer
    /// holds every tensor as float32 while it writes.</summary>
    private static void CheckRoom(string folder, long fileBytes, long memoryBytes)
    {
        const double GB = 1e9;
        string? existing = Path.GetFullPath(folder);
        while (existing is not null && !Directory.Exists(existing)) existing = Path.GetDirectoryName(existing);
        long free = existing is null ? long.MaxValue : new DriveInfo(existing).AvailableFreeSpace;
        if (fileBytes > free)
            throw new UserInputException($"--out: the checkpoint takes {fileBytes / GB:F1} GB and '{existing}' has {free / GB:F1} GB free: " +
                                         "ask for fewer --layers or write elsewhere");
        long memory = GC.GetGCMemoryInfo().TotalAvailableMemoryBytes;
        if (memoryBytes > memory)
            throw new UserInputException($"--layers: writing takes {memoryBytes / GB:F1} GB of memory (every tensor as float32), " +
                                         $"more than the {memory / GB:F1} GB this process may use");
    }
}
